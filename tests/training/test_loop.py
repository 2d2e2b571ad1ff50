"""In-process tests of the training loop with the test-double model and loader."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import torch

from slamasr.training import checkpoint as ckpt
from slamasr.training import loop
from slamasr.training.config import TrainConfig
from slamasr.training.optim import lr_factor
from slamasr.training.run import ExpDirError

from .train_double import run_double, small_config


def test_run_writes_checkpoints_logs_and_accuracy_plot(tmp_path: Path) -> None:
    """A short run leaves step/best checkpoints, a train log and the accuracy figure."""
    exp = tmp_path / "exp"
    model, state = run_double(exp, small_config(max_steps=6, tensorboard=True))
    assert state.step == 6 and [s for s, _ in ckpt.list_step_checkpoints(exp / "checkpoints")] == [
        3,
        6,
    ]
    assert (exp / "checkpoints" / "best").is_dir() and (exp / "train-accuracy.png").stat().st_size
    assert any(p.name.startswith("log-train-") for p in (exp / "log").iterdir())
    assert any((exp / "tensorboard").iterdir())
    assert [h["step"] for h in state.history] == list(range(1, 7))


def test_checkpoint_holds_only_trainable_weights_and_loads_weights_only(tmp_path: Path) -> None:
    """Only projector tensors are saved; optimizer state loads with weights_only=True."""
    exp = tmp_path / "exp"
    model, _ = run_double(exp, small_config(max_steps=3))
    path = exp / "checkpoints" / "step-3"
    weights = ckpt.load_trainable(path)
    assert set(weights) == set(model.trainable_state_dict()) and all(
        k.startswith("projector.") for k in weights
    )
    for key, value in model.trainable_state_dict().items():
        assert torch.equal(weights[key], value)
    assert ckpt.load_optimizer_state(path)["state"]
    assert ckpt.verify_checkpoint(path) is None
    assert ckpt.load_state(path)["loop"]["step"] == 3


def test_nonfinite_loss_steps_are_skipped_and_counted(tmp_path: Path) -> None:
    """A NaN batch causes no update; training continues to max_steps."""
    _, state = run_double(tmp_path / "exp", small_config(max_steps=6), nan_items=(0,))
    assert state.step == 6 and state.bad_steps >= 1 and state.consecutive_bad == 0


def test_too_many_consecutive_bad_steps_stop_with_clear_message(tmp_path: Path) -> None:
    """Every batch NaN: stop after max_bad_steps with a message naming the setting."""
    with pytest.raises(loop.TooManyBadStepsError, match="max_bad_steps=3"):
        run_double(tmp_path / "exp", small_config(max_bad_steps=3), nan_items=tuple(range(40)))


def test_skipped_step_leaves_weights_untouched(tmp_path: Path) -> None:
    """train_one_step on an all-NaN stream returns None and changes no parameter."""
    from .doubles import DoubleLoader, DoubleModel

    model = DoubleModel()
    trainer = loop.build_trainer(
        small_config(max_bad_steps=5),
        tmp_path,
        model,
        DoubleLoader(8, 4, nan_items=tuple(range(8))),
        None,
        torch.device("cpu"),
        torch.float32,
        loop.DistInfo(),
    )
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    assert loop.train_one_step(trainer, loop.EpochStream(trainer)) is None
    assert trainer.state.bad_steps == 1 and trainer.state.step == 0
    for k, v in model.trainable_state_dict().items():
        assert torch.equal(before[k], v)


def test_exp_dir_with_checkpoints_refuses_fresh_start_unless_overwrite(tmp_path: Path) -> None:
    """No silent overwrite; --overwrite starts again from step 0."""
    exp = tmp_path / "exp"
    run_double(exp, small_config(max_steps=3))
    with pytest.raises(ExpDirError, match="--overwrite"):
        run_double(exp, small_config(max_steps=3))
    _, state = run_double(exp, small_config(max_steps=3), overwrite=True)
    assert state.step == 3


def test_resume_skips_corrupt_newest_checkpoint_with_warning(tmp_path: Path, caplog) -> None:
    """A truncated newest checkpoint is detected; resume uses the previous good one."""
    exp = tmp_path / "exp"
    run_double(exp, small_config(max_steps=6))
    weights = exp / "checkpoints" / "step-6" / ckpt.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        assert ckpt.latest_valid_checkpoint(exp / "checkpoints") == exp / "checkpoints" / "step-3"
    assert "step-6" in caplog.text and "bytes" in caplog.text
    _, state = run_double(exp, small_config(max_steps=9), resume=True)
    assert state.step == 9


def test_early_stopping_after_patience_validations(tmp_path: Path, monkeypatch) -> None:
    """Dev loss that stops improving ends training; best points at the best step."""
    monkeypatch.setattr(loop, "validate", lambda t: {"loss": float(t.state.step), "acc": 0.0})
    exp = tmp_path / "exp"
    _, state = run_double(exp, small_config(max_steps=40, valid_interval=4, patience=2))
    assert state.stopped_early and state.step == 12 and state.best_step == 4
    assert ckpt.load_state(exp / "checkpoints" / "best")["step"] == 4
    assert ckpt.list_step_checkpoints(exp / "checkpoints")[-1][0] == 12


def test_lr_schedule_warmup_then_constant_or_linear_decay() -> None:
    """Paper schedule: linear warm-up, then constant; 'linear' decays to 0 at max_steps."""
    const = TrainConfig(warmup_steps=4, max_steps=10)
    assert [lr_factor(s, const) for s in (0, 3, 4, 9)] == [0.25, 1.0, 1.0, 1.0]
    lin = TrainConfig(warmup_steps=4, max_steps=10, scheduler="linear")
    assert lr_factor(4, lin) == 1.0 and lr_factor(7, lin) == 0.5 and lr_factor(10, lin) == 0.0


def test_rng_state_roundtrip() -> None:
    """Captured RNG states restore every generator exactly."""
    import random

    import numpy as np

    state = ckpt.capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


class _Killed(Exception):
    """Stands for the process dying after a step."""


def _train_on_lhotse(
    exp: Path, bucketing: bool, resume: bool = False, kill_after: int | None = None
):
    """Train the double model on a Lhotse-sampled loader; return it and the cuts it loaded."""
    from slamasr.training.run import prepare_exp_dir, run_training
    from slamasr.utils import set_seed

    from .doubles import DoubleLoader, DoubleModel, lhotse_loader

    cfg = small_config(max_steps=12)
    prepare_exp_dir(exp, resume, False, True)
    set_seed(cfg.seed)
    model, train = DoubleModel(), lhotse_loader(40, 4, bucketing=bucketing)

    def hook(step: int) -> None:
        if step == kill_after:
            raise _Killed

    with contextlib.suppress(_Killed):
        run_training(
            cfg,
            exp,
            model,
            train,
            DoubleLoader(12, 4),
            torch.device("cpu"),
            loop.DistInfo(),
            resume,
            hook,
        )
    return model, train.dataset.loaded


@pytest.mark.parametrize("bucketing", [False, True], ids=["cut_sampler", "bucketing"])
def test_resume_positions_lhotse_sampler_without_loading_skipped_cuts(
    tmp_path: Path, bucketing: bool
) -> None:
    """Resume from step 6 (12 batches consumed) loads only the batches an uninterrupted run
    loads after that point, in the same order, and ends with equal weights."""
    full_model, full_loads = _train_on_lhotse(tmp_path / "full", bucketing)
    _train_on_lhotse(tmp_path / "killed", bucketing, kill_after=8)
    assert ckpt.latest_valid_checkpoint(tmp_path / "killed" / "checkpoints").name == "step-6"
    resumed_model, resumed_loads = _train_on_lhotse(tmp_path / "killed", bucketing, resume=True)
    assert len(full_loads) == 24 and resumed_loads == full_loads[12:]
    for key, value in full_model.trainable_state_dict().items():
        assert torch.equal(resumed_model.trainable_state_dict()[key], value), key
