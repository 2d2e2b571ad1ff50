"""Lhotse samplers for training (bucketing or fixed batch size) and decoding.

Training, ``data.max_duration > 0``: ``DynamicBucketingSampler`` (batches of up to
``max_duration`` seconds from ``num_buckets`` duration buckets). ``data.max_duration == 0``:
``DynamicCutSampler(max_cuts=data.batch_size)`` — the paper's fixed batch of 4 (Whisper)
or 6 (other encoders). Both are DDP-aware (``world_size``/``rank``), reshuffle per epoch
with ``set_epoch(epoch)`` and resume mid-epoch through ``state_dict()``/
``load_state_dict()``.

Resume: the training loop records how many batches of the epoch the model consumed and
calls :func:`restore_sampler_position`, which hands the sampler a ``load_state_dict()`` for
exactly that position; Lhotse then re-draws the skipped batches from the cut manifest alone
(no audio or features are read) and continues from there. Using the consumed count rather
than the sampler's own saved counter keeps resume exact with ``num_workers > 0`` too (the
DataLoader's prefetching runs the sampler a few batches ahead of the model).

Decoding: ``SimpleCutSampler`` without shuffling and without dropping anything; cuts are
optionally sorted by duration first (less padding). For several decoding processes, cut
``i`` goes to rank ``i % world_size`` so that every cut is decoded exactly once.
"""

from __future__ import annotations

from typing import Any

from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler, SimpleCutSampler
from lhotse.dataset.sampling.base import CutSampler

from slamasr.data.config import DataConfig


def build_train_sampler(
    cuts: CutSet, cfg: DataConfig, world_size: int = 1, rank: int = 0
) -> CutSampler:
    """Sampler for training batches.

    Args:
        cuts: Training cuts (lazy is fine).
        cfg: ``max_duration`` (> 0: bucketing) or ``batch_size``, ``num_buckets``,
            ``shuffle``, ``seed``, ``buffer_size``.
        world_size: DDP world size.
        rank: This process's DDP rank.

    Returns:
        A Lhotse sampler yielding CutSets (use with ``DataLoader(batch_size=None)``).
    """
    if cfg.max_duration > 0:
        return DynamicBucketingSampler(
            cuts,
            max_duration=cfg.max_duration,
            num_buckets=cfg.num_buckets,
            shuffle=cfg.shuffle,
            seed=cfg.seed,
            buffer_size=cfg.buffer_size,
            drop_last=False,
            world_size=world_size,
            rank=rank,
        )
    return DynamicCutSampler(
        cuts,
        max_cuts=cfg.batch_size,
        shuffle=cfg.shuffle,
        seed=cfg.seed,
        shuffle_buffer_size=cfg.buffer_size,
        drop_last=False,
        world_size=world_size,
        rank=rank,
    )


def sampler_state_at(sampler: CutSampler, epoch: int, batches: int) -> dict[str, Any]:
    """A ``state_dict()`` of ``sampler`` positioned after ``batches`` batches of ``epoch``.

    Lhotse's ``load_state_dict()`` fast-forwards by the number of batches its diagnostics
    say this rank yielded in the current epoch; this sets that number.
    """
    state = sampler.state_dict()
    state["epoch"] = epoch
    state["diagnostics"] = {
        "current_epoch": epoch,
        "stats_per_epoch": {
            epoch: {
                "epoch": epoch,
                "kept_cuts": 0,
                "discarded_cuts": 0,
                "kept_batches": batches,
                "discarded_batches": 0,
            }
        },
    }
    return state


def restore_sampler_position(sampler: Any, epoch: int, batches: int) -> bool:
    """Position a Lhotse sampler ``batches`` batches into ``epoch`` without loading data.

    The next ``iter()`` over the sampler (or its DataLoader) continues from there.

    Returns:
        False when ``sampler`` is not a Lhotse ``CutSampler`` (the caller must skip batches
        by iterating).
    """
    if not isinstance(sampler, CutSampler):
        return False
    sampler.load_state_dict(sampler_state_at(sampler, epoch, batches))
    return True


def shard_cuts(cuts: CutSet, world_size: int, rank: int) -> CutSet:
    """Cuts ``rank, rank + world_size, ...`` (every cut lands on exactly one rank)."""
    if world_size <= 1:
        return cuts
    return CutSet.from_cuts(c for i, c in enumerate(cuts) if i % world_size == rank)


def build_decode_sampler(
    cuts: CutSet,
    cfg: DataConfig,
    world_size: int = 1,
    rank: int = 0,
    sort_by_duration: bool | None = None,
) -> SimpleCutSampler:
    """Sampler for decoding: keeps every cut, no shuffling.

    Args:
        cuts: Test cuts.
        cfg: ``max_duration`` (> 0: seconds per batch) or ``batch_size`` (cuts per batch).
        world_size: Number of decoding processes.
        rank: This process's index.
        sort_by_duration: Sort cuts longest first; default ``cfg.decode_sort_by_duration``.

    Returns:
        A SimpleCutSampler over this rank's share of the cuts.
    """
    cuts = shard_cuts(cuts, world_size, rank)
    if cfg.decode_sort_by_duration if sort_by_duration is None else sort_by_duration:
        cuts = cuts.to_eager().sort_by_duration(ascending=False)
    limits = {"max_duration": cfg.max_duration} if cfg.max_duration > 0 else {}
    return SimpleCutSampler(
        cuts,
        max_cuts=None if limits else cfg.batch_size,
        shuffle=False,
        drop_last=False,
        # already sharded above: without these Lhotse shards again by torch.distributed's
        # rank and pads short shards with duplicated cuts
        world_size=1,
        rank=0,
        **limits,
    )
