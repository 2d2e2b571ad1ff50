"""The read side of checkpoints (``slamasr.checkpoints``), shared by training and decoding."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slamasr import checkpoints
from slamasr.training.checkpoint import save_checkpoint

from .training.train_double import run_double, small_config


def test_the_read_side_imports_nothing_of_training() -> None:
    """Decoding can read checkpoints without loading the training package."""
    code = (
        "import sys, slamasr.checkpoints\n"
        "print(sorted(m for m in sys.modules if m.startswith('slamasr.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert ast.literal_eval(out) == ["slamasr.checkpoints"]


def test_average_and_resolve_checkpoints(tmp_path: Path) -> None:
    """--avg averages the last K step checkpoints up to the chosen one."""
    exp = tmp_path / "exp"
    run_double(exp, small_config(max_steps=9))
    root = exp / "checkpoints"
    assert checkpoints.resolve_checkpoint(root, "last").name == "step-9"
    paths = checkpoints.checkpoints_for_average(root, "step-9", 2)
    assert [p.name for p in paths] == ["step-6", "step-9"]
    avg = checkpoints.average_trainable(paths)
    a, b = checkpoints.load_trainable(paths[0]), checkpoints.load_trainable(paths[1])
    for key in avg:
        torch.testing.assert_close(avg[key], (a[key] + b[key]) / 2)
    with pytest.raises(FileNotFoundError):
        checkpoints.checkpoints_for_average(root, "step-3", 2)


def _write_steps(ckpt_dir: Path, values: dict[str, float]) -> None:
    for name, value in values.items():
        weights = {"projector.w": torch.full((3,), value)}
        step = int(name.split("-")[1]) if name.startswith("step-") else 2
        save_checkpoint(ckpt_dir, name, weights, {}, {"step": step}, {})


def test_load_trainable_weights_averages_up_to_best(tmp_path: Path, caplog) -> None:
    """``best`` with ``avg=2`` ends at best's step (2): steps 1 and 2, not 3; logs the paths."""
    _write_steps(tmp_path / "checkpoints", {"step-1": 1.0, "step-2": 2.0, "step-3": 6.0})
    _write_steps(tmp_path / "checkpoints", {"best": 2.0})
    with caplog.at_level(logging.INFO):
        weights, paths = checkpoints.load_trainable_weights(tmp_path, "best", 2)
    assert [p.name for p in paths] == ["step-1", "step-2"]
    assert torch.equal(weights["projector.w"], torch.full((3,), 1.5))
    assert "step-1" in caplog.text and "step-2" in caplog.text
    weights, paths = checkpoints.load_trainable_weights(tmp_path, "best", 1)
    assert paths == [tmp_path / "checkpoints" / "best"]
    assert torch.equal(weights["projector.w"], torch.full((3,), 2.0))


def test_resolve_rejects_a_bad_name_and_a_missing_checkpoint(tmp_path: Path) -> None:
    _write_steps(tmp_path, {"step-1": 1.0})
    with pytest.raises(ValueError, match="best, last or step-N"):
        checkpoints.resolve_checkpoint(tmp_path, "newest")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoints.resolve_checkpoint(tmp_path, "best")
    assert checkpoints.checkpoint_shapes(tmp_path / "step-1") == {"projector.w": (3,)}
