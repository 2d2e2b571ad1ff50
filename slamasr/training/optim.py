"""Optimizer and learning-rate schedule (paper: AdamW 1e-4, 1k warm-up, then constant)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from slamasr.training.config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters with ``cfg.lr``, ``cfg.betas``, ``cfg.weight_decay``."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(
        params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=False
    )


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak lr before optimizer step ``step`` (0-based).

    Linear warm-up from 1/warmup to 1 over ``warmup_steps``; then 1 (``constant``) or a
    linear decay reaching 0 at ``max_steps`` (``linear``).
    """
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.scheduler == "constant":
        return 1.0
    remaining = cfg.max_steps - step
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    return max(0.0, remaining / span)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> LambdaLR:
    """LambdaLR following :func:`lr_factor`; stepped once per optimizer step."""
    return LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
