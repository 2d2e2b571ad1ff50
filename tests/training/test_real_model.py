"""Integration: the loop trains the real tiny SlamASR (fbank encoder, tiny Llama) and decodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slamasr.decoding import decode_batch
from slamasr.decoding_config import DecodeConfig
from slamasr.distributed import DistInfo
from slamasr.training import checkpoint as ckpt
from slamasr.training.run import prepare_exp_dir, run_training
from tests.helpers import make_tiny_batch, make_tiny_model

from .train_double import small_config


class _Batches:
    """Two fixed batches per epoch."""

    def __init__(self) -> None:
        self.batches = [make_tiny_batch("fbank", num=2, seed=s) for s in (0, 1)]

    def __iter__(self):
        return iter(self.batches)


@pytest.mark.slow
def test_loop_trains_real_tiny_slamasr_and_saves_only_projector(tmp_path: Path) -> None:
    model = make_tiny_model("fbank", tmp_path / "models")
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    exp = tmp_path / "exp"
    prepare_exp_dir(exp, resume=False, overwrite=False, is_main=True)
    cfg = small_config(max_steps=4, grad_accum=1, lr=1e-3, dtype="auto")
    state = run_training(cfg, exp, model, _Batches(), _Batches(), torch.device("cpu"), DistInfo())
    assert state.step == 4 and state.bad_steps == 0
    saved = ckpt.load_trainable(exp / "checkpoints" / "step-4")
    assert set(saved) == set(before)
    assert any(not torch.equal(saved[k], before[k]) for k in before)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[name]), f"frozen {name} changed"
    hyps = decode_batch(
        model, make_tiny_batch("fbank", num=2), DecodeConfig(num_beams=2), torch.device("cpu")
    )
    assert len(hyps) == 2
