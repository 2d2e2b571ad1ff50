"""Samplers: bucketing by duration, fixed batch size, DDP shards, mid-epoch resume, decoding."""

import random

import pytest
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

from slamasr.data.config import DataConfig
from slamasr.data.sampling import build_decode_sampler, build_train_sampler


@pytest.fixture
def cuts() -> CutSet:
    return CutSet.from_cuts(
        dummy_cut(i, duration=round(random.Random(i).uniform(1.0, 10.0), 2)) for i in range(60)
    )


def _ids(sampler) -> list[list[str]]:
    return [[c.id for c in batch] for batch in sampler]


def test_bucketing_respects_max_duration_and_keeps_every_cut(cuts: CutSet) -> None:
    sampler = build_train_sampler(cuts, DataConfig(max_duration=25.0, num_buckets=4))
    batches = list(sampler)
    assert all(sum(c.duration for c in b) <= 25.0 for b in batches)
    assert sorted(c.id for b in batches for c in b) == sorted(cuts.ids)


def test_fixed_batch_size_mode_when_max_duration_is_zero(cuts: CutSet) -> None:
    sampler = build_train_sampler(cuts, DataConfig(max_duration=0.0, batch_size=6))
    sizes = [len(b) for b in _ids(sampler)]
    assert sizes == [6] * 10


def test_shuffle_depends_on_seed_and_epoch(cuts: CutSet) -> None:
    cfg = DataConfig(max_duration=25.0, num_buckets=4, seed=1)
    a, b = build_train_sampler(cuts, cfg), build_train_sampler(cuts, cfg)
    assert _ids(a) == _ids(b)
    b.set_epoch(2)
    assert _ids(a) != _ids(b)


@pytest.mark.parametrize("max_duration", [25.0, 0.0])
def test_ddp_ranks_get_disjoint_batches(cuts: CutSet, max_duration: float) -> None:
    cfg = DataConfig(max_duration=max_duration, batch_size=4, num_buckets=4)
    per_rank = [
        {i for b in _ids(build_train_sampler(cuts, cfg, world_size=2, rank=r)) for i in b}
        for r in range(2)
    ]
    assert not per_rank[0] & per_rank[1]
    assert len(per_rank[0] | per_rank[1]) >= 0.9 * len(cuts)


@pytest.mark.parametrize("max_duration", [25.0, 0.0])
def test_resume_from_state_dict_yields_the_remaining_batches(
    cuts: CutSet, max_duration: float
) -> None:
    cfg = DataConfig(max_duration=max_duration, batch_size=4, num_buckets=4, seed=7)
    reference = build_train_sampler(cuts, cfg)
    reference.set_epoch(3)
    full = _ids(reference)
    sampler = build_train_sampler(cuts, cfg)
    sampler.set_epoch(3)
    it = iter(sampler)
    consumed = [[c.id for c in next(it)] for _ in range(4)]
    state = sampler.state_dict()
    resumed = build_train_sampler(cuts, cfg)
    resumed.load_state_dict(state)
    assert consumed == full[:4]
    assert _ids(resumed) == full[4:]


@pytest.mark.parametrize("sort", [True, False])
def test_decode_sampler_keeps_every_cut_in_a_fixed_order(cuts: CutSet, sort: bool) -> None:
    cfg = DataConfig(max_duration=0.0, batch_size=7, shuffle=True)
    batches = _ids(build_decode_sampler(cuts, cfg, sort_by_duration=sort))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == sorted(cuts.ids) and len(flat) == len(cuts)
    if sort:
        durs = [cuts[i].duration for i in flat]
        assert durs == sorted(durs, reverse=True)
    else:
        assert flat == list(cuts.ids)


def test_decode_shards_cover_every_cut_once(cuts: CutSet) -> None:
    cfg = DataConfig(max_duration=20.0)
    shards = [
        [i for b in _ids(build_decode_sampler(cuts, cfg, world_size=3, rank=r)) for i in b]
        for r in range(3)
    ]
    flat = [i for s in shards for i in s]
    assert sorted(flat) == sorted(cuts.ids)
