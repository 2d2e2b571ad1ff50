"""Progress reporting for training: log lines, TensorBoard, tqdm, and the accuracy plot.

The plot ``exp_dir/train-accuracy.png`` is the paper's "capability emergence" figure:
next-token accuracy on the training batches against optimizer steps.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

from slamasr.training.config import TrainConfig
from slamasr.training.stats import AUDIO_SECONDS, Stats, add_stats, mean_metrics

ACCURACY_PLOT = "train-accuracy.png"
LLM_METRICS = ("loss", "acc")  # the paper's; every other metric is an auxiliary loss


def plot_accuracy(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    """Write a PNG of training accuracy vs. steps.

    Args:
        history: ``[{"step": int, "acc": float, ...}, ...]``.
        path: output PNG.
        title: plot title (e.g. the experiment name).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    points = [h for h in history if "acc" in h]  # CTC-only steps have no LLM accuracy
    ax.plot([h["step"] for h in points], [100.0 * h["acc"] for h in points], lw=1.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("next-token accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title or "training accuracy", fontsize=8 if len(title) > 50 else 12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _auxiliary(metrics: dict[str, float]) -> dict[str, float]:
    """The auxiliary losses among ``metrics`` (all but step, lr, loss, acc)."""
    return {k: v for k, v in metrics.items() if k not in ("step", "lr", *LLM_METRICS)}


def _label(name: str) -> str:
    """How a statistic is named in log lines: ``char_ctc`` -> ``char-ctc``."""
    return name.replace("_", "-")


class TrainingReporter:
    """Collects per-step stats and reports them every ``log_interval`` steps.

    Every rank keeps the history (it is part of the checkpointed loop state); only the main
    rank prints, writes TensorBoard, drives the progress bar and draws the plot.
    """

    def __init__(self, exp_dir: Path, cfg: TrainConfig, is_main: bool) -> None:
        self.exp_dir, self.cfg, self.is_main = exp_dir, cfg, is_main
        self.writer: Any = None
        self.bar: Any = None
        self._window: Stats = {}
        self._t0 = time.time()

    def start(self, step: int) -> None:
        """Open TensorBoard and the progress bar (main rank) at ``step``."""
        self._t0 = time.time()
        if not self.is_main:
            return
        if self.cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                logging.warning(
                    "no TensorBoard logs: %s (pip install tensorboard, or set "
                    "train.tensorboard=false)", e
                )
            else:
                self.writer = SummaryWriter(log_dir=str(self.exp_dir / "tensorboard"))
        if self.cfg.progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.cfg.max_steps, initial=step, desc="train", dynamic_ncols=True
            )

    def add_step(self, state: Any, stats: Stats, lr: float) -> None:
        """Account one optimizer step's statistics by name (``slamasr.training.stats``); log
        on interval."""
        add_stats(self._window, stats)
        if self.bar is not None:
            self.bar.update(1)
        if state.step % self.cfg.log_interval == 0:
            state.history.append(self._flush(state.step, lr))

    def _flush(self, step: int, lr: float) -> dict[str, float]:
        # no loss/acc during CTC-only steps: no LLM loss, nothing to plot
        entry: dict[str, float] = {"step": step, "lr": lr, **mean_metrics(self._window)}
        if self.is_main:
            elapsed = max(time.time() - self._t0, 1e-9)
            seconds = self._window.get(AUDIO_SECONDS, [0.0, 0.0])[0]
            tokens = self._window.get("ce", [0.0, 0.0])[1]
            speed = {"audio_sec_per_sec": seconds / elapsed, "tokens_per_sec": tokens / elapsed}
            logging.info(
                "step %d: loss %s acc %s%s lr %.3g | %.1f audio s/s, %.0f tokens/s",
                step,
                f"{entry['loss']:.4f}" if "loss" in entry else "-",
                f"{100 * entry['acc']:.2f}%" if "acc" in entry else "-",
                "".join(f" {_label(k)} {v:.4f}" for k, v in _auxiliary(entry).items()),
                lr,
                speed["audio_sec_per_sec"],
                speed["tokens_per_sec"],
            )
            self._scalars("train", step, {**entry, **speed})
            if self.bar is not None:
                shown = {k: f"{v:.3f}" for k, v in entry.items() if k not in ("step", "lr")}
                self.bar.set_postfix(**shown)
        self._window = {}
        self._t0 = time.time()
        return entry

    def log_valid(self, step: int, metrics: dict[str, float]) -> None:
        """Report one validation."""
        if self.is_main:
            parts = []
            if "loss" in metrics:
                parts.append(f"dev loss {metrics['loss']:.4f}, dev acc {100 * metrics['acc']:.2f}%")
            parts += [f"dev {_label(k)} {v:.4f}" for k, v in _auxiliary(metrics).items()]
            logging.info("validation at step %d: %s", step, ", ".join(parts))
            self._scalars("valid", step, metrics)

    def _scalars(self, prefix: str, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if key != "step":
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def finish(self, state: Any, title: Optional[str] = None) -> None:
        """Close the bar and TensorBoard; draw the accuracy plot (main rank)."""
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.add_scalar("train/bad_steps", state.bad_steps, state.step)
            self.writer.close()
        if self.is_main and any("acc" in h for h in state.history):
            path = self.exp_dir / ACCURACY_PLOT
            try:
                plot_accuracy(state.history, path, title or self.exp_dir.name)
                logging.info("Wrote %s", path)
            except (ImportError, OSError, ValueError, RuntimeError) as e:
                # the plot is a report: training is done and saved, so it never fails the run
                logging.warning("no accuracy plot %s: %s (pip install matplotlib)", path, e)
        if self.is_main:
            logging.info(
                "Training done at step %d (best checkpoint by dev %s: step %d, dev loss %s, "
                "dev acc %s; %d skipped steps)",
                state.step,
                self.cfg.select_on,
                state.best_step,
                _fmt(state.best_valid_loss),
                _fmt(getattr(state, "best_valid_acc", None)),
                state.bad_steps,
            )
