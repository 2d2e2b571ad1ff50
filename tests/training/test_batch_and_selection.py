"""Global batch (train.global_batch_size, its log line) and checkpoint selection (select_on)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slamasr.config import ConfigError, ExperimentConfig
from slamasr.data.config import DataConfig
from slamasr.training import checkpoint as ckpt
from slamasr.training import loop
from slamasr.training.config import (
    TrainConfig,
    global_batch_description,
    resolve_batch,
    split_global_batch,
)

from .doubles import DoubleLoader, DoubleModel
from .train_double import run_double, small_config


@pytest.mark.parametrize(
    ("world_size", "expected"),
    [(1, (6, 2)), (2, (6, 1)), (3, (4, 1)), (4, (3, 1)), (6, (2, 1)), (12, (1, 1))],
)
def test_global_batch_12_splits_into_per_gpu_batch_and_accumulation(world_size, expected):
    """The official 2 x 6 = 12 on any process count dividing it, at most 6 per process."""
    batch, accum = split_global_batch(12, 6, world_size)
    assert (batch, accum) == expected and batch * accum * world_size == 12


def test_global_batch_that_cannot_be_split_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"over 8 processes; run on 1, 2, 3, 4, 6, 12 GPUs"):
        split_global_batch(12, 6, 8)


def test_resolve_batch_applies_global_batch_and_leaves_it_off_by_default() -> None:
    data = DataConfig(batch_size=6)
    assert resolve_batch(TrainConfig(grad_accum=3), data, 8) == (TrainConfig(grad_accum=3), data)
    train, data1 = resolve_batch(TrainConfig(global_batch_size=12), data, 1)
    assert (data1.batch_size, train.grad_accum) == (6, 2)
    with pytest.raises(ConfigError, match="data.max_duration=200"):
        resolve_batch(TrainConfig(global_batch_size=12), DataConfig(max_duration=200), 1)
    with pytest.raises(ValueError, match="select_on"):
        TrainConfig(select_on="wer").validate()


def test_global_batch_description_per_config_kind() -> None:
    assert global_batch_description(TrainConfig(), DataConfig(batch_size=6), 8) == (
        "global batch: 48 utterances = 6 x 8 process(es) x 1 accumulation step(s)"
    )
    assert global_batch_description(TrainConfig(grad_accum=2), DataConfig(max_duration=200), 4) == (
        "global batch: up to 1600 s of audio = 200 s x 4 process(es) x 2 accumulation step(s)"
    )


def test_training_logs_the_global_batch_and_refuses_an_impossible_one(tmp_path, monkeypatch):
    """train_from_config logs the derived global batch, and refuses an impossible one first."""
    import slamasr.models
    import slamasr.training.run as run
    from slamasr.training.run import train_from_config

    class Built(Exception):
        pass

    def stop(*args, **kwargs):
        raise Built

    monkeypatch.setattr(slamasr.models, "build_model", lambda *args, **kwargs: object())
    monkeypatch.setattr(run, "check_manifests", lambda data: None)
    monkeypatch.setattr(run, "build_loaders", stop)
    cfg = ExperimentConfig()
    cfg.data.batch_size, cfg.train.global_batch_size = 6, 12
    cfg.train.device, cfg.train.tensorboard = "cpu", False
    with pytest.raises(Built):
        train_from_config(cfg, tmp_path / "exp")
    (log,) = (tmp_path / "exp" / "log").iterdir()
    text = log.read_text()
    assert "global batch: 12 utterances = 6 x 1 process(es) x 2 accumulation step(s)" in text
    cfg.data.max_duration = 100.0
    with pytest.raises(ConfigError, match="global_batch_size=12"):
        train_from_config(cfg, tmp_path / "exp2")
    assert not (tmp_path / "exp2").exists()


def _one_step_gradients(batch_size: int, grad_accum: int, tmp_path: Path) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = DoubleModel()
    model.projector[2].p = 0.0  # no dropout: the two runs draw different masks
    cfg = small_config(grad_accum=grad_accum, grad_clip=0.0)
    loader = DoubleLoader(num_items=6, batch_size=batch_size)
    trainer = loop.build_trainer(
        cfg, tmp_path, model, loader, None, torch.device("cpu"), torch.float32, loop.DistInfo()
    )
    assert loop.train_one_step(trainer, loop.EpochStream(trainer)) is not None
    return [p.grad.clone() for p in model.trainable_parameters()]


def test_accumulating_two_batches_of_3_equals_one_batch_of_6(tmp_path: Path) -> None:
    """grad_accum=2 x batch 3 gives the gradient of batch 6 (equal tokens per utterance)."""
    accumulated = _one_step_gradients(3, 2, tmp_path / "a")
    single = _one_step_gradients(6, 1, tmp_path / "b")
    for a, b in zip(accumulated, single):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def _peaked_validation(t: loop.Trainer) -> dict[str, float]:
    """Dev loss only rises; dev accuracy peaks at step 8."""
    acc = {4: 0.5, 8: 0.9, 12: 0.7, 16: 0.6, 20: 0.6}
    return {"loss": float(t.state.step), "acc": acc.get(t.state.step, 0.1)}


@pytest.mark.parametrize(("select_on", "best", "stop"), [("loss", 4, 12), ("acc", 8, 16)])
def test_select_on_picks_best_checkpoint_and_early_stops(
    tmp_path, monkeypatch, select_on, best, stop
):
    """select_on=loss keeps the lowest dev loss, acc the highest dev accuracy."""
    monkeypatch.setattr(loop, "validate", _peaked_validation)
    exp = tmp_path / "exp"
    cfg = small_config(max_steps=40, valid_interval=4, patience=2, select_on=select_on)
    _, state = run_double(exp, cfg)
    assert state.stopped_early and state.step == stop and state.best_step == best
    assert ckpt.load_state(exp / "checkpoints" / "best")["step"] == best
    assert (state.best_valid_loss, state.best_valid_acc) == (float(best), {4: 0.5, 8: 0.9}[best])
