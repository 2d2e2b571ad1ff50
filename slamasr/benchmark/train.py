"""One timed training pass per mode through the trainer's own step, and the dev loss.

Each mode gets a ``Trainer`` from ``slamasr.training.loop.build_trainer`` (optimizer,
scheduler, autocast as training builds them) and every timed step is ``train_one_step``:
forward under autocast, backward, gradient clipping, AdamW update. The benchmark forces only
what a fair side-by-side pass needs (:func:`bench_train_config`). A step's time runs from
asking for its batch to the end of the update (data loading included).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from slamasr.benchmark.flops import llm_shape, training_flops, utterance_counts
from slamasr.benchmark.modes import ModeSetup
from slamasr.benchmark.peaks import (
    gpu_max_allocated_bytes,
    peak_rss_bytes,
    reset_peak_memory,
    synchronize,
)
from slamasr.distributed import DistInfo
from slamasr.training.config import TrainConfig
from slamasr.training.loop import EpochStream, Trainer, build_trainer, compute_loss, train_one_step

Batch = dict[str, Any]


def bench_train_config(train_cfg: TrainConfig, lr: float) -> TrainConfig:
    """The experiment's ``train`` section for a side-by-side pass: constant ``lr`` without
    warm-up, one batch per step, the LLM loss from the first step, no TensorBoard or progress
    bar (betas, weight decay, gradient clipping and the rest stay as configured)."""
    return dataclasses.replace(
        train_cfg,
        lr=lr,
        warmup_steps=0,
        scheduler="constant",
        grad_accum=1,
        global_batch_size=0,
        ctc_only_steps=0,
        tensorboard=False,
        progress_bar=False,
    )


class OnePass:
    """A loader's batches, one pass, each fetched on request (:meth:`fetch`) before the
    trainer's stream takes it, so the timed loop knows when the pass is over."""

    def __init__(self, loader: Iterable[Batch]) -> None:
        self.loader = loader
        self.last: Optional[Batch] = None
        self._it: Optional[Iterator[Batch]] = None
        self._next: Optional[Batch] = None

    def fetch(self) -> bool:
        """Load the next batch; False when the pass is over."""
        if self._it is None:
            self._it = iter(self.loader)
        self._next = next(self._it, None)
        return self._next is not None

    def __iter__(self) -> Iterator[Batch]:
        while self._next is not None:
            self.last, self._next = self._next, None
            yield self.last


class LastLoss:
    """The ``loss`` of a model's latest forward, kept by a forward hook (the trainer step's
    own statistics are not read, whatever their layout)."""

    def __init__(self, model: nn.Module) -> None:
        self.value: Optional[torch.Tensor] = None
        self._handle = model.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: Any, out: dict[str, torch.Tensor]) -> None:
        self.value = out["loss"].detach()

    def take(self) -> float:
        """The latest loss as a float (NaN before any forward)."""
        return float("nan") if self.value is None else float(self.value)

    def __enter__(self) -> LastLoss:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


@dataclass
class StepRecord:
    """One measured optimizer step."""

    seconds: float
    audio_seconds: float
    utterances: int
    llm_tokens: int
    padded_tokens: int
    supervised_tokens: int
    flops: float
    loss: float


@dataclass
class TrainRun:
    """Steps of one mode's training pass plus memory peaks."""

    steps: list[StepRecord] = field(default_factory=list)
    warmup_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_rss_reset: bool = False
    gpu_max_allocated_bytes: Optional[int] = None


def make_trainer(
    setup: ModeSetup,
    loader: Iterable[Batch],
    train_cfg: TrainConfig,
    device: torch.device,
    exp_dir: Path,
) -> Trainer:
    """The training loop's Trainer for ``setup`` over one pass of ``loader`` (a
    :class:`OnePass`), autocast in the mode's dtype; nothing is written to ``exp_dir``."""
    return build_trainer(
        train_cfg, exp_dir, setup.model, OnePass(loader), None, device, setup.compute_dtype,
        DistInfo(),
    )  # fmt: skip


def _record(setup: ModeSetup, batch: Batch, seconds: float, loss: float) -> StepRecord:
    counts = utterance_counts(setup.model, batch)
    flops = training_flops(
        counts,
        llm_shape(setup.model.llm),
        setup.model.projector,
        full_vocab=setup.full_vocab,
        encoder_flops_per_utt=setup.encoder_flops_per_utt,
    )
    return StepRecord(
        seconds=seconds,
        audio_seconds=float(batch["durations"].sum()),
        utterances=len(counts),
        llm_tokens=sum(c.length for c in counts),
        padded_tokens=len(counts) * max(c.length for c in counts),
        supervised_tokens=sum(c.supervised for c in counts),
        flops=flops,
        loss=loss,
    )


def warm_up(trainer: Trainer, batch: Batch) -> float:
    """One forward/backward through ``compute_loss`` (allocator, kernels); no update.

    Returns:
        Its wall time in seconds.
    """
    start = time.perf_counter()
    trainer.model.train()
    compute_loss(trainer, batch)["loss"].float().backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    synchronize(trainer.device)
    return time.perf_counter() - start


def _timed_steps(setup: ModeSetup, trainer: Trainer) -> list[StepRecord]:
    """``train_one_step`` over the trainer's one pass, each step timed with its loading."""
    batches, device = trainer.train_loader, trainer.device
    stream, records = EpochStream(trainer), []
    with LastLoss(trainer.model) as loss:
        while True:
            synchronize(device)
            start = time.perf_counter()
            if not batches.fetch():
                break
            train_one_step(trainer, stream)
            synchronize(device)
            seconds = time.perf_counter() - start
            records.append(_record(setup, batches.last, seconds, loss.take()))
    return records


def train_pass(
    setup: ModeSetup, trainer: Trainer, warmup_batch: Optional[Batch] = None
) -> TrainRun:
    """Train ``setup.model`` over the trainer's loader once, timing every step.

    Args:
        setup: the mode.
        trainer: from :func:`make_trainer` for this mode.
        warmup_batch: a batch to warm up on before timing (not trained on).

    Returns:
        The measured steps and this mode's memory peaks.
    """
    run = TrainRun()
    if warmup_batch is not None:
        run.warmup_seconds = warm_up(trainer, warmup_batch)
    run.peak_rss_reset = reset_peak_memory(trainer.device)
    run.steps = _timed_steps(setup, trainer)
    run.peak_rss_bytes = peak_rss_bytes()
    run.gpu_max_allocated_bytes = gpu_max_allocated_bytes(trainer.device)
    return run


def summarize_training(run: TrainRun, peak_flops: float) -> dict[str, Any]:
    """Throughput, tokens/s, s/step, MFU and memory of a :class:`TrainRun`."""
    wall = sum(s.seconds for s in run.steps)
    audio = sum(s.audio_seconds for s in run.steps)
    tokens = sum(s.llm_tokens for s in run.steps)
    padded = sum(s.padded_tokens for s in run.steps)
    flops = sum(s.flops for s in run.steps)
    return {
        "steps": len(run.steps),
        "utterances": sum(s.utterances for s in run.steps),
        "audio_seconds": audio,
        "wall_seconds": wall,
        "warmup_seconds": run.warmup_seconds,
        "seconds_per_step": wall / max(len(run.steps), 1),
        "audio_seconds_per_second": audio / wall if wall else 0.0,
        "llm_tokens": tokens,
        "llm_tokens_per_second": tokens / wall if wall else 0.0,
        "padding_fraction": 1.0 - tokens / padded if padded else 0.0,
        "supervised_tokens": sum(s.supervised_tokens for s in run.steps),
        "flops": flops,
        "achieved_flops_per_second": flops / wall if wall else 0.0,
        "mfu": flops / wall / peak_flops if wall and peak_flops else 0.0,
        "final_train_loss": run.steps[-1].loss if run.steps else float("nan"),
        "peak_rss_bytes": run.peak_rss_bytes,
        "peak_rss_reset": run.peak_rss_reset,
        "gpu_max_allocated_bytes": run.gpu_max_allocated_bytes,
    }


@torch.no_grad()
def dev_loss(trainer: Trainer, loader: Iterable[Batch]) -> dict[str, float]:
    """Token-weighted dev loss and next-token accuracy of a mode on its own path
    (``compute_loss``: the trainer's forward under its autocast)."""
    trainer.model.eval()
    loss_sum, tokens, correct = 0.0, 0.0, 0.0
    for batch in loader:
        if not batch["cut_ids"]:
            continue
        out = compute_loss(trainer, batch)
        n = float(out["ce"][1])
        loss_sum += float(out["loss"]) * n
        tokens += n
        correct += float(out["correct"][0])
    trainer.model.train()
    return {
        "loss": loss_sum / max(tokens, 1.0),
        "acc": correct / max(tokens, 1.0),
        "tokens": tokens,
    }
