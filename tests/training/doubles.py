"""Test doubles for the training loop: a contract-following tiny model and in-memory loader.

They isolate loop behaviours (exact resume, data-parallel equality, NaN handling) from the
real model: ``forward(batch) -> {loss, ce: (sum, count), correct: (sum, count)}``,
``stat_names()``, ``trainable_parameters()``,
``trainable_state_dict()``, ``load_trainable_state_dict()``, ``generate()``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DIM, CLASSES = 4, 8


class DoubleModel(nn.Module):
    """Frozen linear "encoder" + trainable MLP "projector" with dropout (uses the torch RNG)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(DIM, DIM)
        self.encoder.requires_grad_(False)
        self.projector = nn.Sequential(
            nn.Linear(DIM, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, CLASSES)
        )

    def train(self, mode: bool = True) -> DoubleModel:
        """Only the projector switches mode; the frozen part stays in eval."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Classify ``len(text) % CLASSES`` from mean-pooled inputs; NaN if a text says NAN."""
        x = batch["inputs"]  # (B, T, D)
        with torch.no_grad():
            h = self.encoder(x).mean(dim=1)  # (B, D)
        logits = self.projector(h)  # (B, C)
        targets = torch.tensor([len(t) % CLASSES for t in batch["texts"]])  # (B,)
        loss = F.cross_entropy(logits.float(), targets)
        if any("NAN" in t for t in batch["texts"]):
            loss = loss * float("nan")
        correct = (logits.argmax(-1) == targets).sum()
        count = torch.tensor(len(targets))
        return {"loss": loss, "ce": (loss.detach() * count, count), "correct": (correct, count)}

    def stat_names(self, llm_loss: bool = True) -> list[str]:
        """What :meth:`forward` reports besides ``loss``."""
        return ["ce", "correct"]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer gets."""
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Projector weights only."""
        return {f"projector.{k}": v for k, v in self.projector.state_dict().items()}

    def load_trainable_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`trainable_state_dict` (strict)."""
        self.projector.load_state_dict({k.removeprefix("projector."): v for k, v in sd.items()})

    def generate(self, batch: dict[str, Any], num_beams: int = 4, **kwargs: Any) -> list[str]:
        """One hypothesis per utterance, in batch order: the reference's first word."""
        return [t.split()[0] if t.split() else "" for t in batch["texts"]]


class DoubleSampler:
    """Shuffles item indices per epoch (seeded), shards batches over ranks."""

    def __init__(self, num_items: int, batch_size: int, world_size: int, rank: int) -> None:
        self.num_items, self.batch_size = num_items, batch_size
        self.world_size, self.rank, self.epoch = world_size, rank, 0
        self.yielded = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shuffle."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.epoch))
        batches = order.split(self.batch_size)
        self.yielded = 0
        for i in range(self.rank, len(batches), self.world_size):
            self.yielded += 1
            yield batches[i].tolist()

    def state_dict(self) -> dict[str, int]:
        """Epoch and batches yielded (saved by the loop with each checkpoint)."""
        return {"epoch": self.epoch, "yielded": self.yielded}


class DoubleLoader:
    """In-memory loader of batch dicts; adds noise from the global torch RNG (like augmentation).

    Items listed in ``nan_items`` get the text ``NAN`` (the double model's loss becomes NaN).
    """

    def __init__(
        self,
        num_items: int = 40,
        batch_size: int = 4,
        world_size: int = 1,
        rank: int = 0,
        nan_items: tuple[int, ...] = (),
    ) -> None:
        self.sampler = DoubleSampler(num_items, batch_size, world_size, rank)
        self.nan_items = set(nan_items)

    def _item(self, idx: int) -> tuple[torch.Tensor, str]:
        x = torch.randn(6, DIM, generator=torch.Generator().manual_seed(1000 + idx))  # (T, D)
        text = "NAN" if idx in self.nan_items else "W" * (1 + idx % 11)
        return x + 0.01 * torch.randn(6, DIM), text

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for idxs in self.sampler:
            items = [self._item(i) for i in idxs]
            yield {
                "inputs": torch.stack([x for x, _ in items]),  # (B, T, D)
                "input_lengths": torch.full((len(idxs),), 6),
                "texts": [t for _, t in items],
                "cut_ids": [f"item-{i}" for i in idxs],
                "durations": torch.full((len(idxs),), 1.5),
                "bad_cut_ids": [],
            }


class CountingDataset(torch.utils.data.Dataset):
    """Lhotse-style map dataset (``__getitem__(CutSet) -> batch dict``) that records every
    cut it loads; the same items as :class:`DoubleLoader` (cut ``dummy-mono-cut-0007`` is
    item 7)."""

    def __init__(self) -> None:
        self.loaded: list[list[str]] = []  # cut ids per loaded batch

    def __getitem__(self, cuts: Any) -> dict[str, Any]:
        ids = [c.id for c in cuts]
        self.loaded.append(ids)
        idxs = [int(i.rsplit("-", 1)[1]) for i in ids]
        xs = [torch.randn(6, DIM, generator=torch.Generator().manual_seed(1000 + i)) for i in idxs]
        return {
            "inputs": torch.stack([x + 0.01 * torch.randn(6, DIM) for x in xs]),  # (B, T, D)
            "input_lengths": torch.full((len(idxs),), 6),
            "texts": ["W" * (1 + i % 11) for i in idxs],
            "cut_ids": ids,
            "durations": torch.tensor([c.duration for c in cuts]),
            "bad_cut_ids": [],
        }


def lhotse_loader(
    num_items: int = 40,
    batch_size: int = 4,
    world_size: int = 1,
    rank: int = 0,
    bucketing: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over a shuffling Lhotse sampler of dummy cuts, like the recipe's training
    loader: ``DynamicCutSampler(max_cuts=batch_size)`` or, with ``bucketing``,
    ``DynamicBucketingSampler`` (2 buckets, 5 s batches). ``loader.dataset.loaded`` lists the
    cuts it loaded."""
    from lhotse import CutSet
    from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler
    from lhotse.testing.dummies import dummy_cut

    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0 + (i % 5) / 4) for i in range(num_items))
    common = dict(shuffle=True, seed=3, world_size=world_size, rank=rank)
    with warnings.catch_warnings():  # "eagerly read CutSet": intended for 40 cuts
        warnings.simplefilter("ignore", UserWarning)
        if bucketing:
            sampler = DynamicBucketingSampler(
                cuts, max_duration=5.0, num_buckets=2, buffer_size=20, **common
            )
        else:
            sampler = DynamicCutSampler(cuts, max_cuts=batch_size, **common)
    return torch.utils.data.DataLoader(CountingDataset(), sampler=sampler, batch_size=None)
