"""Auxiliary heads attach through ``slamasr.models.heads``; statistics travel by name.

A head the training code has never heard of (``length``: predicts the transcript's length
from the encoder frames) is trained, summed, all-reduced, logged and validated under its
name with no change to the model's loss code, the loop or the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from slamasr.distributed import DistInfo
from slamasr.models import SlamASR, build_model
from slamasr.models.heads import Transcripts
from slamasr.training import loop
from slamasr.training import stats as stats_mod
from tests.helpers import make_tiny_batch, tiny_model_config

from .train_double import small_config


class LengthHead(nn.Module):
    """Predicts a transcript's length in characters / 10 from the mean encoder frame."""

    name = "length"
    reads = "frames"

    def __init__(self, dim: int, weight: float) -> None:
        super().__init__()
        self.weight = weight
        self.net = nn.Linear(dim, 1)

    def aux_loss(
        self, frames: torch.Tensor, lengths: torch.Tensor, transcripts: Transcripts
    ) -> tuple[torch.Tensor, int]:
        mask = (torch.arange(frames.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
        pooled = (frames * mask).sum(1) / lengths[:, None].clamp(min=1)  # (B, D)
        target = torch.tensor([len(t) / 10 for t in transcripts.texts])
        return nn.functional.mse_loss(self.net(pooled).squeeze(-1), target), len(target)


@pytest.fixture()
def model(tmp_path: Path) -> SlamASR:
    torch.manual_seed(0)
    base = build_model(tiny_model_config("fbank", tmp_path), device="cpu")
    head = LengthHead(base.encoder.output_dim, weight=0.25)
    return SlamASR(base.encoder, base.projector, base.llm, base.tokenizer, base.template, [head])


def test_a_new_head_is_registered_weighted_and_reported_by_name(model: SlamASR) -> None:
    assert {"length.net.weight", "length.net.bias"} <= set(model.trainable_state_dict())
    assert model.char_ctc is None and model.stat_names() == ["length", "ce", "correct"]
    batch = make_tiny_batch("fbank", num=3)
    out = model(batch)
    assert list(out) == ["length", "ce", "correct", "loss"]
    ce, length = (out[name][0] / out[name][1] for name in ("ce", "length"))
    assert int(out["length"][1]) == 3
    torch.testing.assert_close(out["loss"], (ce + 0.25 * length).float())
    only = model(batch, llm_loss=False)  # the heads alone, unweighted, no LLM run
    assert list(only) == ["length", "loss"]
    torch.testing.assert_close(only["loss"], length.float())


class _Batches:
    def __init__(self, seeds: tuple[int, ...]) -> None:
        self.batches = [make_tiny_batch("fbank", num=2, seed=s) for s in seeds]

    def __iter__(self):
        return iter(self.batches)


def test_the_loop_trains_logs_and_validates_a_new_head_by_name(
    model: SlamASR, tmp_path: Path, caplog
) -> None:
    cfg = small_config(max_steps=3, ctc_only_steps=1, grad_accum=1, valid_interval=1)
    trainer = loop.build_trainer(
        cfg, tmp_path / "exp", model, _Batches((0, 1)), _Batches((2,)),
        torch.device("cpu"), torch.float32, DistInfo(),
    )  # fmt: skip
    before = model.aux_heads["length"].net.weight.detach().clone()
    with caplog.at_level(logging.INFO):
        state = loop.train(trainer)
    assert not torch.equal(before, model.aux_heads["length"].net.weight)
    assert [sorted(h) for h in state.history] == [
        ["length", "lr", "step"],  # the heads-only warm-up: no LLM loss
        ["acc", "length", "loss", "lr", "step"],
        ["acc", "length", "loss", "lr", "step"],
    ]
    assert [sorted(h) for h in state.valid_history] == [
        ["length", "step"],
        ["acc", "length", "loss", "step"],
        ["acc", "length", "loss", "step"],
    ]
    assert all(h["length"] > 0 for h in state.history + state.valid_history)
    assert "step 1: loss - acc - length " in caplog.text and "dev length " in caplog.text


def test_stats_are_summed_by_name_whatever_order_each_rank_holds(monkeypatch) -> None:
    sent = []
    monkeypatch.setattr(stats_mod, "all_reduce_sum", lambda t: sent.append(t) or t)
    stats_mod.all_reduce_stats({"ctc": [3.0, 1.0], "ce": [10.0, 5.0]})  # the other rank's
    monkeypatch.setattr(stats_mod, "all_reduce_sum", lambda t: t + sent[0])
    summed = stats_mod.all_reduce_stats({"ce": [1.0, 2.0], "ctc": [0.5, 1.0]})
    assert summed == {"ce": [11.0, 7.0], "ctc": [3.5, 2.0]}


def test_a_rank_without_dev_batches_all_reduces_the_same_names(
    model: SlamASR, tmp_path: Path, monkeypatch
) -> None:
    cfg = small_config(max_steps=3, grad_accum=1)
    sent = []
    monkeypatch.setattr(stats_mod, "all_reduce_sum", lambda t: sent.append(t.numel()) or t)
    for dev in (_Batches((2,)), []):
        trainer = loop.build_trainer(
            cfg, tmp_path / "exp", model, _Batches((0,)), dev,
            torch.device("cpu"), torch.float32, DistInfo(),
        )  # fmt: skip
        trainer.state.step = 1  # past the (absent) warm-up: the LLM runs
        metrics = loop.validate(trainer)
    assert sent == [6, 6] and metrics == {}
