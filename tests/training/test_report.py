"""The reporter's log lines and TensorBoard tags from statistics by name (formats as before)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from slamasr.training.report import TrainingReporter

from .train_double import small_config


class _Writer:
    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars[tag] = value


def test_log_lines_and_tags_name_every_statistic(tmp_path: Path, caplog) -> None:
    reporter = TrainingReporter(tmp_path, small_config(log_interval=2), is_main=True)
    reporter.writer = _Writer()
    state = SimpleNamespace(step=1, history=[])
    step = {
        "ctc": [6.0, 3.0], "char_ctc": [9.0, 2.0], "ce": [12.0, 8.0], "correct": [2.0, 8.0],
        "audio_seconds": [1.5, 1.0], "nonfinite": [0.0, 0.0],
    }  # fmt: skip
    warmup = {"ctc": [3.0, 3.0], "audio_seconds": [1.0, 1.0], "nonfinite": [0.0, 0.0]}
    with caplog.at_level(logging.INFO):
        reporter.add_step(state, warmup, 0.01)  # step 1: kept, no line (log_interval=2)
        state.step = 2
        reporter.add_step(state, step, 0.01)
        reporter.log_valid(2, {"loss": 1.25, "acc": 0.5, "ctc": 2.0, "char_ctc": 4.5})
    assert state.history == [
        {"step": 2, "lr": 0.01, "loss": 1.5, "acc": 0.25, "ctc": 1.5, "char_ctc": 4.5}
    ]
    assert "step 2: loss 1.5000 acc 25.00% ctc 1.5000 char-ctc 4.5000 lr 0.01 | " in caplog.text
    assert "validation at step 2: dev loss 1.2500, dev acc 50.00%, dev ctc 2.0000, " in caplog.text
    assert "dev char-ctc 4.5000" in caplog.text
    assert set(reporter.writer.scalars) == {
        "train/lr", "train/loss", "train/acc", "train/ctc", "train/char_ctc",
        "train/audio_sec_per_sec", "train/tokens_per_sec",
        "valid/loss", "valid/acc", "valid/ctc", "valid/char_ctc",
    }  # fmt: skip
