"""Training configuration (``train:``): the paper's optimizer and schedule as defaults."""

from __future__ import annotations

from dataclasses import dataclass


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
        grad_accum: micro-batches per optimizer step.
        grad_clip: max grad norm (0 = off).
        valid_interval: validate every N steps (and at the end).
        valid_max_batches: cap on dev batches per validation (0 = whole dev set).
        patience: early stop after this many validations without dev-loss improvement (0 = off).
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
    grad_clip: float = 0.0
    valid_interval: int = 1000
    valid_max_batches: int = 0
    patience: int = 0
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
