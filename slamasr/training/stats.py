"""Training statistics by name: ``{name: [sum, count]}``, summed over micro-batches, steps
and ranks without knowing what they measure.

The model reports ``ce`` (CE summed over target tokens, their number), ``correct`` (argmax
hits, the same tokens) and one entry per auxiliary head (its loss summed over the
utterances it covered, their number); the loop adds :data:`AUDIO_SECONDS` and
:data:`NONFINITE`. A statistic's value is ``sum / count``; ``ce`` and ``correct`` are shown
as ``loss`` and ``acc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from slamasr.distributed import all_reduce_sum

Stats = dict[str, list[float]]  # name -> [sum, count]

AUDIO_SECONDS = "audio_seconds"  # seconds of audio trained on, per micro-batch
NONFINITE = "nonfinite"  # micro-batches whose loss was not finite
LOOP_STATS = (AUDIO_SECONDS, NONFINITE)


def zero_stats(names: list[str]) -> Stats:
    """``names`` at ``[0, 0]``, in that order."""
    return {name: [0.0, 0.0] for name in names}


def add_stats(total: Stats, new: Mapping[str, Sequence[Any]]) -> None:
    """Add ``new``'s ``(sum, count)`` pairs (numbers or 0-dim tensors) to ``total``."""
    for name, (value, count) in new.items():
        acc = total.setdefault(name, [0.0, 0.0])
        acc[0] += float(value)
        acc[1] += float(count)


def all_reduce_stats(stats: Stats) -> Stats:
    """Sum ``stats`` over ranks: one float64 all-reduce in sorted name order (every rank
    must hold the same names); the result keeps ``stats``' order."""
    names = sorted(stats)
    flat = torch.tensor([v for name in names for v in stats[name]], dtype=torch.float64)
    values = all_reduce_sum(flat).tolist()
    summed = {name: values[2 * i : 2 * i + 2] for i, name in enumerate(names)}
    return {name: summed[name] for name in stats}


def mean_metrics(stats: Stats) -> dict[str, float]:
    """``loss`` and ``acc`` (when a target token was scored), then every other model
    statistic with a count, as ``sum / count``."""
    metrics: dict[str, float] = {}
    tokens = stats.get("ce", [0.0, 0.0])[1]
    if tokens > 0:
        metrics["loss"] = stats["ce"][0] / tokens
        metrics["acc"] = stats["correct"][0] / tokens
    for name, (value, count) in stats.items():
        if name not in ("ce", "correct", *LOOP_STATS) and count > 0:
            metrics[name] = value / count
    return metrics
