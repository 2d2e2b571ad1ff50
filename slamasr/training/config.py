"""Training configuration (``train:``): the paper's optimizer and schedule as defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from slamasr.data.config import DataConfig

SELECT_ON = ("loss", "acc")


@dataclass
class TrainConfig:
    """The ``train:`` section.

    Attributes:
        lr: peak learning rate (paper 1e-4).
        weight_decay: AdamW weight decay (paper 0).
        betas: AdamW betas.
        warmup_steps: linear warm-up steps (paper 1,000).
        scheduler: constant (paper) | linear (decay to 0 at max_steps, reference code).
        max_steps: optimizer steps (paper 100,000).
        grad_accum: micro-batches per optimizer step (per process).
        global_batch_size: utterances per optimizer step over all processes (0 = off: the
            global batch is ``data.batch_size`` x processes x ``grad_accum``). When set, each
            run derives the per-process batch (at most ``data.batch_size``, the per-GPU memory
            cap) and ``grad_accum`` for its process count, e.g. 12 (the official code's
            2 GPUs x 6) on 1 GPU: 6 x 2 accumulation steps, on 4 GPUs: 3 each. Needs the fixed
            batch (``data.max_duration: 0``) and a process count that divides it.
        grad_clip: max grad norm (0 = off).
        valid_interval: validate every N steps (and at the end).
        valid_max_batches: cap on dev batches per validation (0 = whole dev set).
        patience: early stop after this many validations without improvement of the
            ``select_on`` dev metric (0 = off).
        select_on: the dev metric that picks the ``best`` checkpoint and drives early
            stopping: loss (lowest dev loss; paper) | acc (highest dev next-token accuracy; the
            official code).
        save_interval: write a checkpoint every N steps.
        keep_last: how many step checkpoints to keep (best and last are always kept).
        log_interval: log every N steps.
        seed: global seed.
        dtype: autocast dtype for the frozen parts: auto (bf16 on GPU and CPU) | float32 | bfloat16.
        max_bad_steps: stop after this many consecutive non-finite losses.
        device: auto (CUDA when available, else CPU) | cpu | cuda.
        tensorboard: write TensorBoard event files to ``exp_dir/tensorboard``.
        progress_bar: show a tqdm bar on rank 0.
        ctc_only_steps: the first N optimizer steps train the projector on its auxiliary CTC
            loss alone, without running the frozen LLM (needs ``model.projector.ctc_weight``
            > 0); a warm-up that sees many utterances per second. 0 = off.
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1000
    scheduler: str = "constant"
    max_steps: int = 100000
    grad_accum: int = 1
    global_batch_size: int = 0
    grad_clip: float = 0.0
    valid_interval: int = 1000
    valid_max_batches: int = 0
    patience: int = 0
    select_on: str = "loss"
    save_interval: int = 1000
    keep_last: int = 5
    log_interval: int = 50
    seed: int = 42
    dtype: str = "auto"
    max_bad_steps: int = 20
    device: str = "auto"
    tensorboard: bool = True
    progress_bar: bool = True
    ctc_only_steps: int = 0

    def validate(self) -> None:
        """Check values without building anything; raise ValueError naming the key."""
        if self.scheduler not in ("constant", "linear"):
            raise ValueError(f"train.scheduler={self.scheduler!r}; choose constant|linear")
        if self.lr <= 0 or self.max_steps <= 0 or self.grad_accum <= 0:
            raise ValueError("train.lr, train.max_steps and train.grad_accum must be > 0")
        if self.select_on not in SELECT_ON:
            raise ValueError(f"train.select_on={self.select_on!r}; choose loss|acc")
        if self.global_batch_size < 0:
            raise ValueError(
                f"train.global_batch_size={self.global_batch_size} must be >= 0 (0 = off)"
            )
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"train.dtype={self.dtype!r}; choose auto|float32|bfloat16")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device={self.device!r}; choose auto|cpu|cuda")
        for key in ("valid_interval", "save_interval", "log_interval", "max_bad_steps"):
            if getattr(self, key) <= 0:
                raise ValueError(f"train.{key} must be > 0")
        if not 0 <= self.ctc_only_steps < self.max_steps:
            raise ValueError(
                f"train.ctc_only_steps={self.ctc_only_steps} must be >= 0 (0 = off) and below "
                f"train.max_steps={self.max_steps}: the LLM loss must train some steps"
            )
        if self.warmup_steps < 0 or self.keep_last < 1 or self.patience < 0:
            raise ValueError("train.warmup_steps/patience must be >= 0 and train.keep_last >= 1")


def _batch_config_error(message: str) -> Exception:
    from slamasr.config import ConfigError  # slamasr.config imports this module

    return ConfigError(message)


def split_global_batch(global_batch: int, max_per_process: int, world_size: int) -> tuple[int, int]:
    """Per-process batch and accumulation steps whose product over ``world_size`` processes
    is exactly ``global_batch``: the largest per-process batch <= ``max_per_process`` (fewest
    accumulation steps).

    Raises:
        ConfigError: ``world_size`` does not divide ``global_batch``.
    """
    if global_batch % world_size:
        counts = [n for n in range(1, global_batch + 1) if global_batch % n == 0]
        raise _batch_config_error(
            f"train.global_batch_size={global_batch} cannot be split evenly over {world_size} "
            f"processes; run on {', '.join(map(str, counts))} GPUs, or set "
            f"train.global_batch_size to a multiple of {world_size} (and scale train.lr)"
        )
    per_process = global_batch // world_size
    accum = next(
        a
        for a in range(1, per_process + 1)
        if per_process % a == 0 and per_process // a <= max_per_process
    )
    return per_process // accum, accum


def resolve_batch(
    train: TrainConfig, data: DataConfig, world_size: int
) -> tuple[TrainConfig, DataConfig]:
    """Apply ``train.global_batch_size`` for this process count (unchanged when it is 0).

    Returns:
        Copies of ``train`` (``grad_accum``) and ``data`` (``batch_size``) to build with.

    Raises:
        ConfigError: the global batch cannot be reproduced with these settings.
    """
    if not train.global_batch_size:
        return train, data
    if data.max_duration > 0:
        raise _batch_config_error(
            f"train.global_batch_size={train.global_batch_size} counts utterances, but "
            f"data.max_duration={data.max_duration} batches by seconds; set data.max_duration=0 "
            "(fixed batch of data.batch_size) or train.global_batch_size=0"
        )
    batch, accum = split_global_batch(train.global_batch_size, data.batch_size, world_size)
    return (
        dataclasses.replace(train, grad_accum=accum),
        dataclasses.replace(data, batch_size=batch),
    )


def global_batch_description(train: TrainConfig, data: DataConfig, world_size: int) -> str:
    """One line for the training log: per-process batch x processes x accumulation."""
    factors = f"{world_size} process(es) x {train.grad_accum} accumulation step(s)"
    if data.max_duration > 0:
        total = data.max_duration * world_size * train.grad_accum
        return f"global batch: up to {total:g} s of audio = {data.max_duration:g} s x {factors}"
    total = data.batch_size * world_size * train.grad_accum
    return f"global batch: {total} utterances = {data.batch_size} x {factors}"
