"""The frozen-encoder output cache: same frames as the encoder, bad cuts kept, no overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment, load_manifest
from lhotse.utils import fastcopy

from slamasr.data.config import DataConfig
from slamasr.data.dataset import build_dataloader
from slamasr.data.features import compute_features
from slamasr.encoder_cache import compute_encoder_cache
from slamasr.models.config import EncoderConfig
from slamasr.models.encoders import build_encoder
from tests.helpers import make_tiny_encoder


def _lose_features(cut: MonoCut, where: Path) -> MonoCut:
    return fastcopy(cut, features=fastcopy(cut.features, storage_path=str(where)))


def _cut(path: Path, seconds: float, text: str) -> MonoCut:
    rng = np.random.default_rng(int(seconds * 100))
    sf.write(str(path), (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
    rec = Recording.from_file(path, recording_id=path.stem)
    sup = SupervisionSegment(path.stem, path.stem, 0.0, rec.duration, text=text)
    return MonoCut(path.stem, 0.0, rec.duration, 0, recording=rec, supervisions=[sup])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EncoderConfig, DataConfig]:
    tmp = tmp_path_factory.mktemp("cache")
    cuts = CutSet.from_cuts(
        _cut(tmp / f"u{i}.wav", sec, f"word {i}") for i, sec in enumerate([0.7, 1.3, 2.1])
    )
    cuts.to_file(tmp / "cuts.jsonl.gz")
    feats = compute_features(tmp / "cuts.jsonl.gz", tmp / "mel", "whisper_mel")
    enc_cfg = EncoderConfig(name="whisper", path=str(make_tiny_encoder("whisper", tmp / "w")))
    return feats, enc_cfg, DataConfig(input_kind="whisper_mel", num_workers=0, text_norm="lower")


def test_cached_frames_equal_the_encoder_output(setup, tmp_path: Path) -> None:
    feats, enc_cfg, data_cfg = setup
    out = compute_encoder_cache(feats, tmp_path, enc_cfg, data_cfg, bf16=False)
    cached = {c.id: torch.from_numpy(c.load_features()).float() for c in load_manifest(out)}
    encoder = build_encoder(enc_cfg)
    loader = build_dataloader(load_manifest(feats), data_cfg, train=False)
    seen = 0
    for batch in loader:
        with torch.inference_mode():
            frames, lengths = encoder(batch["inputs"], batch["input_lengths"])
        for i, cut_id in enumerate(batch["cut_ids"]):
            expected = frames[i, : int(lengths[i])]  # (T_i, D)
            assert cached[cut_id].shape == expected.shape
            torch.testing.assert_close(cached[cut_id], expected, atol=2e-2, rtol=2e-2)
            seen += 1
    assert seen == 3
    # the cache feeds the model through the encoder_cache input kind
    enc_loader = build_dataloader(
        load_manifest(out), DataConfig(input_kind="encoder_cache", num_workers=0), train=False
    )
    batch = next(iter(enc_loader))
    assert batch["encoder_frames"].shape[-1] == encoder.output_dim


def test_unreadable_cut_is_kept_without_features(setup, tmp_path: Path) -> None:
    feats, enc_cfg, data_cfg = setup
    cuts = load_manifest(feats)
    broken = _lose_features(cuts[1], tmp_path / "nowhere")
    mixed = CutSet.from_cuts([cuts[0], broken, cuts[2]])
    mixed.to_file(tmp_path / "mixed.jsonl.gz")
    out = compute_encoder_cache(tmp_path / "mixed.jsonl.gz", tmp_path / "c", enc_cfg, data_cfg)
    result = {c.id: c for c in load_manifest(out)}
    assert len(result) == 3 and not result[broken.id].has_features
    assert result[cuts[0].id].has_features and result[cuts[2].id].has_features
    loader = build_dataloader(
        load_manifest(out), DataConfig(input_kind="encoder_cache", num_workers=0), train=False
    )
    bad = [cid for batch in loader for cid in batch["bad_cut_ids"]]
    assert bad == [broken.id]


def test_all_unreadable_is_an_error_and_existing_output_is_reused(setup, tmp_path: Path) -> None:
    feats, enc_cfg, data_cfg = setup
    moved = load_manifest(feats).map(lambda c: _lose_features(c, tmp_path / "nowhere"))
    moved.to_file(tmp_path / "moved.jsonl.gz")
    with pytest.raises(RuntimeError, match="none of the 3 cuts"):
        compute_encoder_cache(tmp_path / "moved.jsonl.gz", tmp_path / "c", enc_cfg, data_cfg)
    assert not list((tmp_path / "c").glob("*.jsonl.gz"))
    first = compute_encoder_cache(feats, tmp_path / "ok", enc_cfg, data_cfg)
    stamp = first.stat().st_mtime_ns
    assert compute_encoder_cache(feats, tmp_path / "ok", enc_cfg, data_cfg) == first
    assert first.stat().st_mtime_ns == stamp


def test_parallel_build_equals_serial_build(setup, tmp_path: Path) -> None:
    """Two encoder processes write the same manifest (same order) and the same frames."""
    feats, enc_cfg, data_cfg = setup
    serial = load_manifest(compute_encoder_cache(feats, tmp_path / "a", enc_cfg, data_cfg))
    parallel = load_manifest(
        compute_encoder_cache(feats, tmp_path / "b", enc_cfg, data_cfg, num_jobs=2)
    )
    assert (
        [c.id for c in parallel] == [c.id for c in serial] == [c.id for c in load_manifest(feats)]
    )
    for one, two in zip(serial, parallel):
        assert "/b/" in two.features.storage_path
        # thread counts may differ between the builds: equal up to bf16 rounding
        np.testing.assert_allclose(one.load_features(), two.load_features(), rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="num_jobs=0"):
        compute_encoder_cache(feats, tmp_path / "c", enc_cfg, data_cfg, num_jobs=0)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_cut_ids_never_become_paths(setup, tmp_path: Path) -> None:
    """Ids with '..', an absolute path or separators: every file lands in the output dirs."""
    _, enc_cfg, data_cfg = setup
    work = tmp_path / "a" / "b" / "c"  # deep enough for ../../../ to stay inside tmp_path
    absolute = str(tmp_path / "abs" / "evil")
    hostile = ["../../../escaped", absolute, "x/y/z", "..", "normal-id"]
    cuts = [
        _cut(tmp_path / f"u{i}.wav", 0.5 + 0.2 * i, f"word {i}").with_id(cut_id)
        for i, cut_id in enumerate(hostile)
    ]
    CutSet.from_cuts(cuts).to_file(tmp_path / "hostile_cuts.jsonl.gz")
    before = _files(tmp_path)
    feats = compute_features(tmp_path / "hostile_cuts.jsonl.gz", work / "mel", "whisper_mel")
    out = compute_encoder_cache(feats, work / "enc", enc_cfg, data_cfg, bf16=False)
    created = _files(tmp_path) - before
    outside = [p for p in created if work not in p.parents]
    assert not outside, outside
    assert not (tmp_path / "abs").exists() and not list(tmp_path.rglob("escaped*"))
    cached = {c.id: c for c in load_manifest(out)}
    assert sorted(cached) == sorted(hostile)
    for cut_id, cut in cached.items():  # each id has its own, readable array
        assert cut.load_features().shape[0] == cut.features.num_frames > 0, cut_id
    assert len({c.features.storage_key for c in cached.values()}) == len(hostile)
