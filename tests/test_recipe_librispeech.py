"""The LibriSpeech recipe end to end on CPU: a generated mini corpus and tiny random models.

``run.sh`` runs in a scratch directory that links to the recipe's ``run.sh``, ``path.sh`` and
``conf/``, so ``data/``, ``exp/`` and ``download/`` never land in the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import WORDS, make_tiny_encoder, make_tiny_llm

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "librispeech" / "slam_asr"
SAMPLE_RATE = 16000
# part -> number of utterances; train-clean-360 checks that train-960 combines the train parts
PARTS = {
    "train-clean-100": 4,
    "train-clean-360": 2,
    "dev-other": 2,
    "test-clean": 3,
    "test-other": 2,
}
TINY_OVERRIDES = (
    "data.batch_size=2 data.num_workers=0 train.max_steps=4 train.warmup_steps=1 "
    "train.valid_interval=2 train.save_interval=2 train.valid_max_batches=1 train.log_interval=1 "
    "train.patience=0 train.device=cpu train.progress_bar=false train.tensorboard=false "
    "decode.num_beams=2 decode.batch_size=2 decode.max_new_tokens_per_second=4 "
    "decode.min_new_tokens_bound=16"  # random tiny LLMs rarely end: keep their decoding short
)


def write_utterance(chapter_dir: Path, utt_id: str, rng: np.random.Generator) -> str:
    """Write ``<utt_id>.flac`` (a tone in noise, 0.6-1.4 s) and return its transcript."""
    seconds = rng.uniform(0.6, 1.4)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 900) * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(chapter_dir / f"{utt_id}.flac", audio.astype(np.float32), SAMPLE_RATE)
    return " ".join(rng.choice(WORDS, size=int(rng.integers(2, 5))))


def make_fake_librispeech(root: Path, parts: dict[str, int], seed: int = 0) -> Path:
    """Write ``root/LibriSpeech/<part>/<spk>/<chapter>/`` with flac files and .trans.txt."""
    rng = np.random.default_rng(seed)
    for i, (part, num) in enumerate(parts.items()):
        spk, chapter = str(100 + i), str(2000 + i)
        chapter_dir = root / "LibriSpeech" / part / spk / chapter
        chapter_dir.mkdir(parents=True)
        lines = []
        for n in range(num):
            utt_id = f"{spk}-{chapter}-{n:04d}"
            lines.append(f"{utt_id} {write_utterance(chapter_dir, utt_id, rng)}")
        (chapter_dir / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def make_recipe_dir(work: Path) -> Path:
    """A scratch recipe dir whose run.sh, path.sh and conf/ link to the real ones."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("run.sh", "path.sh", "conf"):
        (work / name).symlink_to(RECIPE / name)
    return work


def write_tiny_conf(path: Path, models: Path) -> Path:
    """A conf that includes the real Whisper-tiny + Vicuna conf with tiny local models."""
    encoder = make_tiny_encoder("whisper", models / "whisper")
    llm = make_tiny_llm(models / "llm")
    path.write_text(
        f"include: {RECIPE / 'conf' / 'whisper_tiny-vicuna.yaml'}\n"
        "model:\n"
        f"  encoder:\n    path: {encoder}\n    dtype: float32\n"
        "  projector:\n    hidden_dim: 64\n"
        f"  llm:\n    path: {llm}\n    dtype: float32\n"
    )
    return path


def run_recipe(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``./run.sh ARGS`` in ``cwd``; stdout and stderr together in ``.stdout``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        ["bash", "./run.sh", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


@dataclass
class RecipeRun:
    """A finished stage 1-5 run of the recipe."""

    work: Path
    dl_dir: Path
    conf: Path
    exp_dir: Path
    result: subprocess.CompletedProcess

    def args(self, stage: int, stop_stage: int, *extra: str) -> list[str]:
        return [
            *("--stage", str(stage), "--stop-stage", str(stop_stage)),
            *("--skip-download", "true", "--dl-dir", str(self.dl_dir), "--nj", "1"),
            *("--config", str(self.conf), "--exp-dir", str(self.exp_dir)),
            *("--parts", " ".join(PARTS), "--overrides", TINY_OVERRIDES),
            *extra,
        ]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory: pytest.TempPathFactory) -> RecipeRun:
    root = tmp_path_factory.mktemp("recipe")
    run = RecipeRun(
        work=make_recipe_dir(root / "slam_asr"),
        dl_dir=make_fake_librispeech(root / "download", PARTS),
        conf=write_tiny_conf(root / "tiny.yaml", root / "models"),
        exp_dir=root / "slam_asr" / "exp" / "tiny",
        result=subprocess.CompletedProcess([], 0),
    )
    run.result = run_recipe(run.work, *run.args(0, 5))
    return run


def recog_ids(path: Path) -> list[str]:
    """Cut ids of a recogs file (one ``<id>:\\tref=[...]`` / ``hyp=[...]`` block per cut)."""
    return [line.split(":\t", 1)[0] for line in path.read_text().splitlines() if "\tref=" in line]


def cut_ids(manifest: Path) -> list[str]:
    from lhotse import load_manifest_lazy

    return [c.id for c in load_manifest_lazy(manifest)]


@pytest.mark.slow
def test_stages_0_to_5_write_manifests_features_checkpoints_recogs_and_wer(
    recipe_run: RecipeRun,
) -> None:
    assert recipe_run.result.returncode == 0, recipe_run.result.stdout[-5000:]
    data = recipe_run.work / "data"
    train_960 = data / "manifests" / "librispeech_cuts_train-960.jsonl.gz"
    assert len(cut_ids(train_960)) == PARTS["train-clean-100"] + PARTS["train-clean-360"]
    for part, num in PARTS.items():
        feats = data / "whisper_mel" / f"librispeech_cuts_{part}_whisper_mel80.jsonl.gz"
        assert len(cut_ids(feats)) == num
    assert not (RECIPE / "data").exists() and not (RECIPE / "exp").exists()

    exp = recipe_run.exp_dir
    assert (exp / "checkpoints" / "step-4").is_dir() and (exp / "config.yaml").is_file()
    decode_dir = exp / "decode-best-avg1-beam2"
    for test_set in ("test-clean", "test-other"):
        manifest = data / "whisper_mel" / f"librispeech_cuts_{test_set}_whisper_mel80.jsonl.gz"
        assert sorted(recog_ids(decode_dir / f"recogs-{test_set}.txt")) == sorted(cut_ids(manifest))
        assert "%WER" in (decode_dir / f"errs-{test_set}.txt").read_text()
    wer_lines = (exp / "wer").read_text().splitlines()
    for test_set in ("test-clean", "test-other"):
        assert any(test_set in line and "decode-best-avg1-beam2" in line for line in wer_lines)


@pytest.mark.slow
def test_rerun_of_stages_4_and_5_skips_unless_forced(recipe_run: RecipeRun) -> None:
    assert recipe_run.result.returncode == 0, recipe_run.result.stdout[-5000:]
    recogs = recipe_run.exp_dir / "decode-best-avg1-beam2" / "recogs-test-clean.txt"
    before = recogs.stat().st_mtime_ns
    again = run_recipe(recipe_run.work, *recipe_run.args(4, 5))
    assert again.returncode == 0, again.stdout[-3000:]
    assert ".done exists: skipping" in again.stdout
    assert ".scored exists: skipping" in again.stdout
    assert recogs.stat().st_mtime_ns == before

    errs = recogs.with_name("errs-test-clean.txt")
    errs_before = errs.stat().st_mtime_ns
    forced = run_recipe(recipe_run.work, *recipe_run.args(5, 5, "--force", "true"))
    assert forced.returncode == 0, forced.stdout[-3000:]
    assert errs.stat().st_mtime_ns != errs_before


@pytest.mark.slow
def test_decode_without_overwrite_refuses_existing_recogs(recipe_run: RecipeRun) -> None:
    assert recipe_run.result.returncode == 0, recipe_run.result.stdout[-5000:]
    proc = subprocess.run(
        ["python", "-m", "slamasr.bin.decode", "--exp-dir", str(recipe_run.exp_dir)],
        cwd=recipe_run.work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode != 0
    assert "--overwrite" in proc.stdout


def _decode_one_per_batch(run: RecipeRun, nproc: int) -> dict[str, str]:
    """Decode with ``nproc`` torchrun processes (batches of one cut); return recogs by set."""
    proc = subprocess.run(
        [
            *("torchrun", "--standalone", f"--nproc_per_node={nproc}", "-m", "slamasr.bin.decode"),
            *("--exp-dir", str(run.exp_dir), "--overwrite", "--checkpoint", "last"),
            *("--set", "decode.batch_size=1", "--set", "decode.max_duration=0"),
        ],
        cwd=run.work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = run.exp_dir / "decode-last-avg1-beam2"
    return {s: (out / f"recogs-{s}.txt").read_text() for s in ("test-clean", "test-other")}


@pytest.mark.slow
def test_decoding_sharded_over_two_processes_equals_one_process(recipe_run: RecipeRun) -> None:
    assert recipe_run.result.returncode == 0, recipe_run.result.stdout[-5000:]
    single = _decode_one_per_batch(recipe_run, 1)
    sharded = _decode_one_per_batch(recipe_run, 2)
    assert sharded == single
    assert len(recog_ids_from_text(sharded["test-clean"])) == PARTS["test-clean"]


def recog_ids_from_text(text: str) -> list[str]:
    return [line.split(":\t", 1)[0] for line in text.splitlines() if "\tref=" in line]


def test_stage_0_without_corpus_fails_clearly(tmp_path: Path) -> None:
    work = make_recipe_dir(tmp_path / "slam_asr")
    proc = run_recipe(
        work,
        *("--stage", "0", "--stop-stage", "0", "--skip-download", "true"),
        *("--dl-dir", str(tmp_path / "nowhere"), "--config", "conf/whisper_tiny-vicuna.yaml"),
        timeout=120,
    )
    assert proc.returncode != 0
    assert "--skip-download true but" in proc.stdout
    assert str(tmp_path / "nowhere" / "LibriSpeech") in proc.stdout
    assert not (work / "data").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_stage_1_without_corpus_names_the_missing_parts(tmp_path: Path) -> None:
    work = make_recipe_dir(tmp_path / "slam_asr")
    proc = run_recipe(
        work,
        *("--stage", "1", "--stop-stage", "1", "--parts", "test-clean"),
        *("--dl-dir", str(tmp_path / "nowhere"), "--config", "conf/slam_asr.yaml"),
        timeout=120,
    )
    assert proc.returncode != 0
    assert "test-clean" in proc.stdout and "not found" in proc.stdout
    assert not (work / "data" / "manifests" / ".done").exists()
