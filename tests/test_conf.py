"""Every recipe conf loads and validates (a dry run, no model), and agrees with its recipe.

Checks per ``egs/*/slam_asr/conf/*.yaml`` (``conf/common/`` holds shared bases, not
experiments): the include chain names files that exist, the config validates, the data paths
are the manifests that stage 2 of run.sh writes for the conf's ``data.input_kind``, and the
projector has the paper's parameter count for its encoder/LLM pair.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from slamasr.config import ExperimentConfig, load_config
from slamasr.models.projector import projector_num_params

EGS = Path(__file__).resolve().parents[1] / "egs"
CONFS = sorted(p for p in EGS.glob("*/slam_asr/conf/*.yaml"))
LIBRISPEECH_CONFS = [p for p in CONFS if p.parts[-4] == "librispeech"]

# Output widths of the paper's encoders and hidden sizes of its LLMs (model cards / configs).
ENCODER_DIMS = {
    "openai/whisper-tiny": 384,
    "openai/whisper-base": 512,
    "openai/whisper-small": 768,
    "openai/whisper-medium": 1024,
    "openai/whisper-large-v2": 1280,
    "facebook/hubert-base-ls960": 768,
    "facebook/hubert-large-ll60k": 1024,
    "facebook/hubert-large-ls960-ft": 1024,
    "facebook/hubert-xlarge-ll60k": 1280,
    "facebook/hubert-xlarge-ls960-ft": 1280,
    "microsoft/wavlm-base": 768,
    "microsoft/wavlm-large": 1024,
}
LLM_DIMS = {
    "lmsys/vicuna-7b-v1.5": 4096,
    "meta-llama/Llama-2-7b-hf": 4096,
    "meta-llama/Llama-2-7b-chat-hf": 4096,
    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": 2048,
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": 2048,
    "microsoft/phi-2": 2560,
}


def conf_id(path: Path) -> str:
    return str(path.relative_to(EGS))


def include_chain(path: Path) -> list[Path]:
    """The files a conf reads: itself, then each ``include:`` in turn."""
    chain = [path]
    while True:
        data = yaml.safe_load(chain[-1].read_text()) or {}
        base = data.get("include")
        if not base:
            return chain
        chain.append(chain[-1].parent / base)
        assert chain[-1].is_file(), f"{chain[-2]} includes missing file {base}"
        assert len(chain) < 10, f"include cycle from {path}"


def stage2_manifest_re(cfg: ExperimentConfig) -> str:
    """Regex of the cut manifests run.sh's stage 2 leaves for this conf's input kind."""
    kind = cfg.data.input_kind
    if kind == "audio":  # stage 1's manifests, read as audio
        return r"data/manifests/librispeech_cuts_(?P<part>[a-z0-9-]+)\.jsonl\.gz"
    suffix = "fbank" if kind == "fbank" else f"{kind}{cfg.data.n_mels}"
    return rf"data/{kind}/librispeech_cuts_(?P<part>[a-z0-9-]+)_{suffix}\.jsonl\.gz"


def projector_params(cfg: ExperimentConfig) -> int:
    """Projector parameters implied by the conf's encoder and LLM widths."""
    enc = cfg.model.encoder
    enc_dim = enc.feature_dim if enc.name == "fbank" else ENCODER_DIMS[enc.path]
    p = cfg.model.projector
    return projector_num_params(
        enc_dim, LLM_DIMS[cfg.model.llm.path], p.downsample_rate, p.hidden_dim, p.name
    )


def test_there_are_confs_to_check() -> None:
    assert len(LIBRISPEECH_CONFS) >= 20
    assert (EGS / "librispeech" / "slam_asr" / "conf" / "slam_asr.yaml") in CONFS


@pytest.mark.parametrize("path", CONFS, ids=conf_id)
def test_conf_loads_validates_and_includes_existing_files(path: Path) -> None:
    include_chain(path)
    # validate=True: every section's dry-run checks; the model directories a recipe's stage 0
    # creates (the CPU recipe's models/) need not exist yet
    cfg = load_config(path, check_paths=False)
    assert cfg.model.llm.path, "a conf must name its LLM"
    assert cfg.model.encoder.name == "fbank" or cfg.model.encoder.path


@pytest.mark.parametrize("path", LIBRISPEECH_CONFS, ids=conf_id)
def test_librispeech_data_paths_are_what_stage_2_writes(path: Path) -> None:
    cfg = load_config(path)
    pattern = stage2_manifest_re(cfg)
    parts = {}
    for role, manifest in {
        "train": cfg.data.train_cuts,
        "dev": cfg.data.dev_cuts,
        **cfg.data.test_sets,
    }.items():
        match = re.fullmatch(pattern, manifest)
        assert match, f"{role}: {manifest} is not what stage 2 writes ({pattern})"
        parts[role] = match["part"]
    expected = {"train": "train-960", "dev": "dev-other"}
    expected.update({"test-clean": "test-clean", "test-other": "test-other"})
    assert parts == expected


@pytest.mark.parametrize("path", LIBRISPEECH_CONFS, ids=conf_id)
def test_projector_size_matches_encoder_and_llm_widths(path: Path) -> None:
    cfg = load_config(path)
    p = cfg.model.projector
    assert (p.name, p.downsample_rate, p.hidden_dim) == ("mlp", 5, 2048)
    n = projector_params(cfg)
    assert 5e6 < n < 3e7, f"{n} parameters is outside the paper's range"


@pytest.mark.parametrize(
    ("conf", "millions"),
    [
        ("whisper_large_v2-vicuna.yaml", 21.50),  # 1280-d into 4096-d
        ("whisper_tiny-vicuna.yaml", 12.33),  # 384-d into 4096-d
        ("hubert_xlarge_ft-tinyllama.yaml", 17.31),  # 1280-d into 2048-d
        ("slam_asr.yaml", 21.50),  # HuBERT X-Large into Vicuna-7B
    ],
)
def test_projector_parameter_counts_of_the_paper(conf: str, millions: float) -> None:
    cfg = load_config(EGS / "librispeech" / "slam_asr" / "conf" / conf)
    assert round(projector_params(cfg) / 1e6, 2) == millions


def test_slam_asr_conf_is_hubert_xlarge_ft_with_vicuna() -> None:
    cfg = load_config(EGS / "librispeech" / "slam_asr" / "conf" / "slam_asr.yaml")
    assert cfg.model.encoder.name == "hubert"
    assert cfg.model.encoder.path == "facebook/hubert-xlarge-ls960-ft"
    assert cfg.model.llm.path == "lmsys/vicuna-7b-v1.5"
    assert cfg.decode.num_beams == 4 and cfg.model.prompt.mode == "short"
    assert (cfg.train.lr, cfg.train.warmup_steps, cfg.train.scheduler) == (1e-4, 1000, "constant")
