"""Cuts longer than Whisper's 30-s window (LibriSpeech dev-other's longest is 35.16 s) go
through validation and decoding: encoded in pieces cut at a pause, never a crash or an
empty hypothesis."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet

from slamasr.data.config import DataConfig
from slamasr.data.dataset import build_dataloader
from slamasr.data.features import compute_features
from slamasr.data.manifests import load_cuts
from slamasr.decoding import DecodeSet, decode_test_set
from slamasr.decoding_config import DecodeConfig
from slamasr.distributed import DistInfo
from slamasr.scoring import read_recogs
from slamasr.training.run import prepare_exp_dir, run_training
from tests.data.conftest import make_cut
from tests.helpers import make_tiny_model
from tests.training.train_double import small_config

SR = 16000


def _voice(seconds: float, pause: tuple[float, float] | None = None, seed: int = 0) -> np.ndarray:
    """Noise-excited tones, silent inside ``pause`` (s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    audio = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.shape[0])
    if pause:
        audio[int(pause[0] * SR) : int(pause[1] * SR)] = 0.0
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def dev_cuts(tmp_path_factory: pytest.TempPathFactory) -> CutSet:
    """A 35.16-s cut (pause at 16-17 s) and two short ones, with Whisper log-mel."""
    root = tmp_path_factory.mktemp("long")
    cuts = []
    for name, audio in (
        ("long", _voice(35.16, (16.0, 17.0))),
        ("short1", _voice(2.0, seed=1)),
        ("short2", _voice(3.0, seed=2)),
    ):
        sf.write(root / f"{name}.wav", audio, SR)
        cuts.append(make_cut(root / f"{name}.wav", "HELLO WORLD " * (8 if name == "long" else 1)))
    CutSet.from_cuts(cuts).to_file(root / "cuts.jsonl.gz")
    return load_cuts(compute_features(root / "cuts.jsonl.gz", root / "feats", "whisper_mel"))


def _loader(cuts: CutSet) -> object:
    cfg = DataConfig(input_kind="whisper_mel", batch_size=3, max_duration=0.0, num_workers=0)
    return build_dataloader(cuts, cfg, train=False)


def test_validation_with_a_35s_dev_cut_runs_and_counts_it(
    dev_cuts: CutSet, tmp_path: Path, caplog
) -> None:
    """One training step, then validation over the 35-s cut: a finite dev loss (it used to
    die at the first validation: 'Whisper takes at most 3000 frames')."""
    model = make_tiny_model("whisper", tmp_path / "models")
    short = CutSet.from_cuts(c for c in dev_cuts if c.duration < 30)
    exp = tmp_path / "exp"
    prepare_exp_dir(exp, resume=False, overwrite=False, is_main=True)
    cfg = small_config(max_steps=1, grad_accum=1, valid_interval=1, save_interval=1)
    with caplog.at_level("WARNING"):
        state = run_training(
            cfg, exp, model, _loader(short), _loader(dev_cuts), torch.device("cpu"), DistInfo()
        )
    assert state.step == 1 and len(state.valid_history) == 1
    assert math.isfinite(state.valid_history[0]["loss"])
    assert model.encoder.num_long_inputs == 1
    assert "35.16 s is longer than the 30-s window: encoded in 2 pieces" in caplog.text


def test_decoding_a_35s_cut_gives_a_hypothesis_not_a_bad_cut(
    dev_cuts: CutSet, tmp_path: Path
) -> None:
    """Decoding the set: every cut has a hypothesis, the bad-cuts file is empty."""
    model = make_tiny_model("whisper", tmp_path / "models")
    refs = {c.id: c.supervisions[0].text.strip() for c in dev_cuts}
    test_set = DecodeSet("dev", refs, _loader(dev_cuts))
    cfg = DecodeConfig(num_beams=1, max_new_tokens_per_second=0.5, min_new_tokens_bound=3)
    recogs = decode_test_set(model, test_set, cfg, tmp_path, torch.device("cpu"))
    results = {cut_id: hyp for cut_id, _, hyp in read_recogs(recogs)}
    assert set(results) == set(refs)
    assert (tmp_path / "bad-cuts-dev.txt").read_text() == ""
    assert results["long"], "the 35-s cut got an empty hypothesis"
    assert model.encoder.num_long_inputs == 1
