"""The training loop: steps, validation, early stopping, checkpoints and exact resume.

The loop sees the model only through the contract of ``docs/internals.md``::

    out = model(batch)  # {"loss": what to minimise, "ce": (sum, count), "correct": ..., ...}
    model.stat_names(llm_loss)  # the names besides "loss" that forward reports
    model.trainable_parameters(); model.trainable_state_dict(); model.load_trainable_state_dict()

Statistics travel by name (``slamasr.training.stats``), so a statistic the model adds
(an auxiliary head's loss) is summed, all-reduced, logged and plotted with no change here.

and the data only as iterables of batch dicts whose optional ``.sampler`` has ``set_epoch``
and ``state_dict``.

Exact resume: a checkpoint records the epoch and how many batches of it this rank has
consumed, plus every RNG state. Each epoch starts from a seed derived from (seed, epoch, rank);
on resume the loop re-creates that epoch's iterator past the consumed batches (a Lhotse
sampler through ``load_state_dict``, which reads cut metadata only; other loaders by
iterating), and then restores the RNG states — so the resumed run sees the same batches, the
same random numbers and the same optimizer/scheduler state as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from slamasr.data.sampling import restore_sampler_position
from slamasr.distributed import (
    DistInfo,
    average_gradients,
    broadcast_parameters,
    collective_device,
)
from slamasr.training import checkpoint as ckpt
from slamasr.training.config import TrainConfig
from slamasr.training.optim import build_optimizer, build_scheduler
from slamasr.training.report import TrainingReporter
from slamasr.training.stats import (
    AUDIO_SECONDS,
    LOOP_STATS,
    NONFINITE,
    Stats,
    add_stats,
    all_reduce_stats,
    mean_metrics,
    zero_stats,
)
from slamasr.utils import set_seed

Batch = dict[str, Any]


class TooManyBadStepsError(RuntimeError):
    """Raised when ``train.max_bad_steps`` consecutive steps had a non-finite loss/gradient."""


@dataclass
class LoopState:
    """Everything about the loop's progress that a checkpoint must restore (JSON-safe).

    Attributes:
        step: optimizer steps done.
        epoch: current epoch (0-based).
        batches_in_epoch: micro-batches this rank has consumed in ``epoch``.
        best_valid_loss: dev loss of the best validation so far (None before the first);
            the best is the lowest loss or, with ``train.select_on=acc``, the highest accuracy.
        best_valid_acc: dev accuracy of that validation (None in checkpoints from before
            ``select_on`` existed).
        best_step: step of the best validation.
        valid_without_improvement: validations since the selected dev metric last improved.
        bad_steps: total skipped (non-finite) steps; consecutive_bad: the current run of them.
        history: train metrics per log interval ({step, loss, acc, lr}) for plots.
        valid_history: dev metrics per validation ({step, loss, acc}).
        stopped_early: early stopping triggered.
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_valid_loss: Optional[float] = None
    best_valid_acc: Optional[float] = None
    best_step: int = -1
    valid_without_improvement: int = 0
    bad_steps: int = 0
    consecutive_bad: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    valid_history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


@dataclass
class Trainer:
    """The objects one training run works with (built by :func:`build_trainer`)."""

    cfg: TrainConfig
    exp_dir: Path
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: Iterable[Batch]
    dev_loader: Optional[Iterable[Batch]]
    device: torch.device
    autocast_dtype: torch.dtype
    dist: DistInfo
    reporter: TrainingReporter
    state: LoopState = field(default_factory=LoopState)

    @property
    def ckpt_dir(self) -> Path:
        """``exp_dir/checkpoints``."""
        return self.exp_dir / "checkpoints"

    @property
    def collective_device(self) -> torch.device:
        """Where the tensors of this trainer's collectives live (CUDA under nccl, CPU under
        gloo). Statistics are gathered on the CPU; ``distributed``'s collectives move them."""
        return collective_device()


# --------------------------------------------------------------------------- batches


def move_batch(batch: Batch, device: torch.device) -> Batch:
    """Return ``batch`` with its tensors on ``device`` (lists and strings untouched)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _sampler_of(loader: Iterable[Batch]) -> Any:
    return getattr(loader, "sampler", None)


def _set_epoch(loader: Iterable[Batch], epoch: int) -> None:
    for obj in (_sampler_of(loader), loader):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return


def sampler_state(loader: Iterable[Batch]) -> Optional[dict[str, Any]]:
    """The loader's sampler ``state_dict()`` if it has one (saved with each checkpoint)."""
    for obj in (_sampler_of(loader), loader):
        if obj is not None and hasattr(obj, "state_dict"):
            return obj.state_dict()
    return None


class EpochStream:
    """Endless stream of training batches across epochs, tracking position in ``LoopState``."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._it: Optional[Iterator[Batch]] = None

    def _start_epoch(self, skip: int) -> None:
        """Start the current epoch's iterator ``skip`` batches in.

        A Lhotse sampler is positioned through its state (cut metadata only); any other
        loader skips by iterating, i.e. by loading the skipped batches.
        """
        t = self.trainer
        _set_epoch(t.train_loader, t.state.epoch)
        set_seed(t.cfg.seed + 100_003 * t.state.epoch + t.dist.rank)
        sampler = _sampler_of(t.train_loader)
        if skip and restore_sampler_position(sampler, t.state.epoch, skip):
            logging.info("Sampler positioned at batch %d of epoch %d", skip, t.state.epoch)
            skip = 0
        self._it = iter(t.train_loader)
        for _ in range(skip):
            if next(self._it, None) is None:
                break

    def resume(self, rng_state: Optional[dict[str, Any]]) -> None:
        """Re-enter the recorded epoch, skip its consumed batches, then restore RNG states."""
        self._start_epoch(skip=self.trainer.state.batches_in_epoch)
        if rng_state is not None:
            ckpt.restore_rng_state(rng_state)

    def next(self) -> Batch:
        """Return the next batch, starting a new epoch when the current one ends."""
        state = self.trainer.state
        if self._it is None:
            self._start_epoch(skip=0)
        for _ in range(2):
            try:
                batch = next(self._it)
                state.batches_in_epoch += 1
                return batch
            except StopIteration:
                state.epoch += 1
                state.batches_in_epoch = 0
                self._start_epoch(skip=0)
        raise RuntimeError("the training loader yields no batches")


# --------------------------------------------------------------------------- one step


def compute_loss(trainer: Trainer, batch: Batch, llm_loss: bool = True) -> dict[str, Any]:
    """Forward one batch under autocast; return the model's output.

    Returns:
        ``{"loss": tensor to minimise, name: (sum, count), ...}`` (``SlamASR.forward``):
        ``ce`` and ``correct`` (with the LLM) and each auxiliary head's loss by its name.
        ``llm_loss=False``: the auxiliary heads only (``train.ctc_only_steps``).
    """
    batch = move_batch(batch, trainer.device)
    use_autocast = trainer.autocast_dtype != torch.float32
    ctx = (
        torch.autocast(trainer.device.type, dtype=trainer.autocast_dtype)
        if use_autocast
        else contextlib.nullcontext()
    )
    with ctx:
        return trainer.model(batch) if llm_loss else trainer.model(batch, llm_loss=False)


def _batch_seconds(batch: Batch) -> float:
    durations = batch.get("durations")
    return float(durations.sum()) if torch.is_tensor(durations) else 0.0


def _zero_stats(trainer: Trainer, llm_loss: bool, loop_stats: tuple[str, ...] = ()) -> Stats:
    """Every statistic this rank will report, at zero: the same names on all ranks, also
    on one that sees no batch."""
    return zero_stats([*trainer.model.stat_names(llm_loss), *loop_stats])


def _model_stats(out: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in out.items() if name != "loss"}


def _accumulate(trainer: Trainer, stream: EpochStream) -> Stats:
    """Run ``grad_accum`` forward/backward passes.

    Returns:
        Their statistics by name (``slamasr.training.stats``): the model's (``ce``,
        ``correct``, each auxiliary head's loss) over the finite micro-batches, plus
        ``audio_seconds`` and ``nonfinite`` (micro-batches whose loss was not finite).
    """
    llm_loss = trainer.state.step >= trainer.cfg.ctc_only_steps
    stats = _zero_stats(trainer, llm_loss, LOOP_STATS)
    for _ in range(trainer.cfg.grad_accum):
        batch = stream.next()
        out = compute_loss(trainer, batch, llm_loss)
        loss = out["loss"]
        if not torch.isfinite(loss.detach()).item():
            add_stats(stats, {NONFINITE: (1.0, 1.0)})
            continue
        (loss.float() / trainer.cfg.grad_accum).backward()
        add_stats(stats, _model_stats(out))
        add_stats(stats, {AUDIO_SECONDS: (_batch_seconds(batch), 1.0)})
    return stats


def _grad_norm(trainer: Trainer) -> torch.Tensor:
    max_norm = trainer.cfg.grad_clip if trainer.cfg.grad_clip > 0 else float("inf")
    return torch.nn.utils.clip_grad_norm_(trainer.params, max_norm)


def train_one_step(trainer: Trainer, stream: EpochStream) -> Optional[Stats]:
    """One optimizer step: accumulate, average gradients over ranks, clip, update.

    A step whose loss or gradient norm is non-finite on any rank is skipped on all ranks
    (no update, scheduler not advanced) and counted.

    Returns:
        The step's statistics summed over ranks, ``{name: [sum, count]}`` (see
        :func:`_accumulate`; e.g. the mean CE is ``stats["ce"][0] / stats["ce"][1]``), or
        None if skipped.
    """
    trainer.model.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    stats = all_reduce_stats(_accumulate(trainer, stream))
    bad = stats[NONFINITE][0] > 0
    if not bad:
        average_gradients(trainer.params)
        bad = not torch.isfinite(_grad_norm(trainer)).item()
    if bad:
        trainer.optimizer.zero_grad(set_to_none=True)
        _count_bad_step(trainer)
        return None
    trainer.optimizer.step()
    trainer.scheduler.step()
    trainer.state.step += 1
    trainer.state.consecutive_bad = 0
    return stats


def _count_bad_step(trainer: Trainer) -> None:
    state = trainer.state
    state.bad_steps += 1
    state.consecutive_bad += 1
    logging.warning(
        "Non-finite loss or gradient before step %d: step skipped (%d in a row, %d in total)",
        state.step + 1,
        state.consecutive_bad,
        state.bad_steps,
    )
    if state.consecutive_bad >= trainer.cfg.max_bad_steps:
        raise TooManyBadStepsError(
            f"{state.consecutive_bad} consecutive steps had a non-finite loss or gradient "
            f"(train.max_bad_steps={trainer.cfg.max_bad_steps}); stopping at step {state.step}. "
            "Lower train.lr, set train.grad_clip, try train.dtype=float32, or check the data."
        )


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(trainer: Trainer) -> dict[str, float]:
    """Dev LLM loss (token-weighted CE) and next-token accuracy, summed over all ranks'
    shards; with auxiliary heads also their dev losses by name (``ctc``, ``char_ctc``,
    utterance-weighted).

    During the CTC-only warm-up (``train.ctc_only_steps``) the LLM is not run: the metrics
    hold ``ctc`` only (no ``loss``/``acc``), and best/patience bookkeeping waits.
    """
    trainer.model.eval()
    llm_loss = trainer.state.step > trainer.cfg.ctc_only_steps
    stats = _zero_stats(trainer, llm_loss)
    for i, batch in enumerate(trainer.dev_loader):
        if trainer.cfg.valid_max_batches and i >= trainer.cfg.valid_max_batches:
            break
        add_stats(stats, _model_stats(compute_loss(trainer, batch, llm_loss)))
    trainer.model.train()
    return mean_metrics(all_reduce_stats(stats))


def _improved(trainer: Trainer, metrics: dict[str, float]) -> bool:
    """Whether ``metrics`` beat the best so far on ``train.select_on`` (loss: lower, acc:
    higher); a non-finite value never does."""
    key, state = trainer.cfg.select_on, trainer.state
    value = metrics[key]
    if not math.isfinite(value):
        return False
    best = state.best_valid_loss if key == "loss" else state.best_valid_acc
    return best is None or (value < best if key == "loss" else value > best)


def _after_validation(trainer: Trainer, metrics: dict[str, float]) -> bool:
    """Update best/patience bookkeeping; save ``best``; return True to stop early."""
    state, cfg = trainer.state, trainer.cfg
    state.valid_history.append({"step": state.step, **metrics})
    trainer.reporter.log_valid(state.step, metrics)
    if "loss" not in metrics:  # CTC-only warm-up: no LLM loss to select or stop on yet
        return False
    if _improved(trainer, metrics):
        state.best_valid_loss, state.best_valid_acc = metrics["loss"], metrics["acc"]
        state.best_step = state.step
        state.valid_without_improvement = 0
        save(trainer, "best")
    else:
        state.valid_without_improvement += 1
    if cfg.patience and state.valid_without_improvement >= cfg.patience:
        logging.info(
            "Early stop at step %d: dev %s has not improved for %d validations (best at step "
            "%d: dev loss %s, dev acc %s)",
            state.step,
            cfg.select_on,
            cfg.patience,
            state.best_step,
            state.best_valid_loss,
            state.best_valid_acc,
        )
        state.stopped_early = True
    return state.stopped_early


# --------------------------------------------------------------------------- checkpoints


def save(trainer: Trainer, name: str) -> Path:
    """Write checkpoint ``name`` (``step-N`` or ``best``) on all ranks (collective)."""
    state = {
        "step": trainer.state.step,
        "loop": dataclasses.asdict(trainer.state),
        "scheduler": trainer.scheduler.state_dict(),
        "world_size": trainer.dist.world_size,
    }
    rank_state = {
        "rng": ckpt.capture_rng_state(),
        "sampler": sampler_state(trainer.train_loader),
    }
    path = ckpt.save_checkpoint(
        trainer.ckpt_dir,
        name,
        trainer.model.trainable_state_dict(),
        trainer.optimizer.state_dict(),
        state,
        rank_state,
    )
    logging.info("Saved checkpoint %s", path)
    return path


def restore(trainer: Trainer, path: Path) -> Optional[dict[str, Any]]:
    """Load weights, optimizer, scheduler and loop state from ``path``.

    Returns:
        This rank's RNG state to apply once the data stream is repositioned (or None).
    """
    weights = {k: v.to(trainer.device) for k, v in ckpt.load_trainable(path).items()}
    trainer.model.load_trainable_state_dict(weights)
    trainer.optimizer.load_state_dict(ckpt.load_optimizer_state(path, trainer.device))
    state = ckpt.load_state(path)
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.state = LoopState(**state["loop"])
    rank_state = ckpt.load_rank_state(path, trainer.dist.rank)
    if state.get("world_size") != trainer.dist.world_size or rank_state is None:
        logging.warning(
            "Checkpoint %s was written by %s ranks, this run has %d: data order and RNG "
            "streams will not match an uninterrupted run",
            path,
            state.get("world_size"),
            trainer.dist.world_size,
        )
        return None
    logging.info(
        "Resumed from %s (step %d, epoch %d)", path, trainer.state.step, trainer.state.epoch
    )
    return rank_state["rng"]


def _save_step(trainer: Trainer) -> None:
    save(trainer, f"step-{trainer.state.step}")
    if trainer.dev_loader is None:
        save(trainer, "best")
    if trainer.dist.is_main:
        ckpt.prune_checkpoints(trainer.ckpt_dir, trainer.cfg.keep_last)


# --------------------------------------------------------------------------- the loop


def build_trainer(
    cfg: TrainConfig,
    exp_dir: Path,
    model: torch.nn.Module,
    train_loader: Iterable[Batch],
    dev_loader: Optional[Iterable[Batch]],
    device: torch.device,
    autocast_dtype: torch.dtype,
    dist_info: DistInfo,
) -> Trainer:
    """Assemble a Trainer: optimizer and scheduler over the model's trainable parameters."""
    params = list(model.trainable_parameters())
    broadcast_parameters(params)
    optimizer = build_optimizer(params, cfg)
    return Trainer(
        cfg=cfg,
        exp_dir=Path(exp_dir),
        model=model,
        params=params,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, cfg),
        train_loader=train_loader,
        dev_loader=dev_loader,
        device=device,
        autocast_dtype=autocast_dtype,
        dist=dist_info,
        reporter=TrainingReporter(Path(exp_dir), cfg, dist_info.is_main),
    )


def _end_of_step(trainer: Trainer, stats: Stats) -> bool:
    """Log, validate, save after optimizer step; return True when training should stop."""
    state, cfg = trainer.state, trainer.cfg
    trainer.reporter.add_step(state, stats, trainer.scheduler.get_last_lr()[0])
    stop = state.step >= cfg.max_steps
    if trainer.dev_loader is not None and (state.step % cfg.valid_interval == 0 or stop):
        stop = _after_validation(trainer, validate(trainer)) or stop
    if state.step % cfg.save_interval == 0 or stop:
        _save_step(trainer)
    return stop


def train(
    trainer: Trainer,
    resume_from: Optional[Path] = None,
    on_step_end: Optional[Callable[[int], None]] = None,
) -> LoopState:
    """Train until ``max_steps`` or early stop.

    Args:
        trainer: from :func:`build_trainer`.
        resume_from: checkpoint directory to continue from (exactly), or None.
        on_step_end: called with the step number after every step (after any save).

    Returns:
        The final loop state.
    """
    stream = EpochStream(trainer)
    if resume_from is not None:
        stream.resume(restore(trainer, resume_from))
    logging.info(
        "collectives on %s (world size %d)", trainer.collective_device, trainer.dist.world_size
    )
    trainer.reporter.start(trainer.state.step)
    stop = trainer.state.step >= trainer.cfg.max_steps or trainer.state.stopped_early
    while not stop:
        stats = train_one_step(trainer, stream)
        if stats is None:
            continue
        stop = _end_of_step(trainer, stats)
        if on_step_end is not None:
            on_step_end(trainer.state.step)
    trainer.reporter.finish(trainer.state)
    return trainer.state
