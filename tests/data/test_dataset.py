"""Dataset + DataLoader: the batch dict of docs/internals.md, workers, and bad input."""

import logging
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from slamasr.data.config import DataConfig
from slamasr.data.dataset import FeatureDimError, SlamAsrDataset, build_dataloader
from slamasr.data.features import compute_features, num_frames
from slamasr.data.filters import filter_cuts_for_training
from slamasr.data.manifests import load_cuts
from tests.data.conftest import attach_encoder_cache, corrupt, make_cut, write_audio

BATCH_KEYS = {"inputs", "input_lengths", "texts", "cut_ids", "durations", "bad_cut_ids"}


def _with_features(cuts: CutSet, tmp_path: Path, kind: str) -> CutSet:
    manifest = tmp_path / "c_cuts.jsonl.gz"
    cuts.to_file(manifest)
    return load_cuts(compute_features(manifest, tmp_path / "feats", kind, num_jobs=1))


def _decode_cfg(**kw) -> DataConfig:
    return DataConfig(**{"max_duration": 0.0, "batch_size": 3, "num_workers": 0, **kw})


@pytest.mark.parametrize("kind", ["whisper_mel", "fbank"])
def test_feature_batch_matches_the_contract(good_cuts: CutSet, tmp_path: Path, kind: str):
    cuts = _with_features(good_cuts, tmp_path, kind)
    loader = build_dataloader(cuts, _decode_cfg(input_kind=kind), train=False)
    by_id = {c.id: c for c in cuts}
    seen = []
    for batch in loader:
        assert set(batch) == BATCH_KEYS
        x, lens = batch["inputs"], batch["input_lengths"]
        assert x.dtype == torch.float32 and lens.dtype == torch.long
        assert x.shape == (len(lens), int(lens.max()), 80)  # (B, T, n_mels), time-major
        for i, cid in enumerate(batch["cut_ids"]):
            cut = by_id[cid]
            num_samples = round(cut.duration * 16000)
            expected = num_samples // 160 if kind == "whisper_mel" else num_frames(num_samples)
            assert lens[i] == expected  # 100 frames/s; whisper_mel as HF, fbank as Lhotse
            assert torch.all(x[i, lens[i] :] == 0.0)  # padding value
            assert batch["durations"][i] == pytest.approx(cut.duration)
            assert batch["texts"][i] == f"HELLO WORLD NUMBER {cid[-1]}"
        assert batch["bad_cut_ids"] == []
        seen += batch["cut_ids"]
    assert sorted(seen) == sorted(by_id)
    assert round(by_id["utt4"].duration * 16000) % 160 == 88  # has Lhotse's extra frame


def test_whisper_mel_with_wrong_n_mels_is_a_config_error(good_cuts: CutSet, tmp_path: Path):
    cuts = _with_features(good_cuts, tmp_path, "whisper_mel")  # 80-d
    with pytest.raises(FeatureDimError, match="data.n_mels"):
        SlamAsrDataset("whisper_mel", n_mels=128)[cuts]


def test_audio_batch_is_16khz_waveform_even_for_other_rates(tmp_path: Path):
    cuts = CutSet.from_cuts(
        [
            make_cut(
                write_audio(tmp_path / "a8k.wav", 1.0, sr=8000), "Caf\u00e9, s'il vous pla\u00eet!"
            ),
            make_cut(write_audio(tmp_path / "b16k.flac", 0.5), "b"),
        ]
    )
    batch = SlamAsrDataset("audio", "upper")[cuts]
    assert batch["inputs"].shape == (2, 16000)  # (B, S)
    assert batch["input_lengths"].tolist() == [16000, 8000]
    assert batch["texts"] == ["CAFE S'IL VOUS PLAIT", "B"]


def test_encoder_cache_batch_has_encoder_frames_instead_of_inputs(good_cuts, tmp_path: Path):
    cuts = CutSet.from_cuts(
        attach_encoder_cache(c, tmp_path / "enc", n) for c, n in zip(good_cuts, [7, 12, 9])
    )
    batch = SlamAsrDataset("encoder_cache")[cuts]
    assert set(batch) == BATCH_KEYS - {"inputs", "input_lengths"} | {
        "encoder_frames",
        "encoder_frame_lengths",
    }
    assert batch["encoder_frames"].shape == (3, 12, 8)  # (B, T_enc, D)
    assert batch["encoder_frame_lengths"].tolist() == [7, 12, 9]


def test_training_loader_with_two_workers_sees_every_cut(good_cuts: CutSet):
    cfg = DataConfig(input_kind="audio", max_duration=3.0, num_buckets=2, num_workers=2)
    loader = build_dataloader(good_cuts, cfg, train=True)
    seen = [cid for batch in loader for cid in batch["cut_ids"]]
    assert sorted(seen) == sorted(good_cuts.ids)
    assert loader.filter_report.num_skipped == 0
    assert "state_dict" in dir(loader.sampler)


def test_missing_and_corrupt_audio_are_skipped_in_training_with_a_warning(
    good_cuts: CutSet, caplog
):
    cuts = list(good_cuts)
    Path(cuts[0].recording.sources[0].source).unlink()
    corrupt(Path(cuts[1].recording.sources[0].source))
    cfg = DataConfig(input_kind="audio", max_duration=0.0, batch_size=2, num_workers=0)
    with caplog.at_level(logging.WARNING):
        batches = list(build_dataloader(CutSet.from_cuts(cuts), cfg, train=True))
    bad = sorted(i for b in batches for i in b["bad_cut_ids"])
    good = sorted(i for b in batches for i in b["cut_ids"])
    assert bad == sorted([cuts[0].id, cuts[1].id])
    assert good == sorted(c.id for c in cuts[2:])
    assert f"cannot read cut {cuts[0].id}" in caplog.text
    assert f"cannot read cut {cuts[1].id}" in caplog.text


def test_decoding_batch_of_only_bad_cuts_arrives_empty(good_cuts: CutSet, tmp_path: Path):
    cuts = _with_features(good_cuts, tmp_path, "fbank")
    for path in (tmp_path / "feats").glob("*.lca"):
        path.unlink()  # every feature file gone
    batches = list(build_dataloader(cuts, _decode_cfg(input_kind="fbank"), train=False))
    assert len(batches) == 2
    for batch in batches:
        assert batch["inputs"].shape == (0, 0, 80)
        assert batch["input_lengths"].shape == (0,) and batch["durations"].shape == (0,)
        assert batch["texts"] == [] and batch["cut_ids"] == []
    assert sorted(i for b in batches for i in b["bad_cut_ids"]) == sorted(cuts.ids)


def test_decoding_keeps_cuts_training_would_skip(tmp_path: Path):
    cuts = CutSet.from_cuts(
        [
            make_cut(write_audio(tmp_path / "long.wav", 2.0), "long"),
            make_cut(write_audio(tmp_path / "empty.wav", 0.5), " ... "),
        ]
    )
    cfg = _decode_cfg(input_kind="audio", max_audio_seconds=1.0)
    batches = list(build_dataloader(cuts, cfg, train=False))
    assert sorted(i for b in batches for i in b["cut_ids"]) == ["empty", "long"]


def test_training_filter_counts_each_problem_once_across_epochs(tmp_path: Path, caplog):
    def cut(name: str, seconds: float, text: str = "fine text"):
        return make_cut(write_audio(tmp_path / f"{name}.wav", seconds), text, cut_id=name)

    cuts = CutSet.from_cuts(
        [
            cut("ok", 1.0),
            cut("unicode", 1.0, "\u201cNa\u00efve\u201d \u2014 it\u2019s odd!"),
            cut("empty", 1.0, "  ?!  "),
            cut("short", 0.05),
            cut("long", 2.5),
        ]
    )
    cfg = DataConfig(input_kind="audio", max_audio_seconds=2.0, min_audio_seconds=0.1)
    filtered, report = filter_cuts_for_training(cuts, cfg)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # two epochs
            assert sorted(filtered.ids) == ["ok", "unicode"]
    assert {k: sorted(v) for k, v in report.skipped.items()} == {
        "empty_text": ["empty"],
        "too_short": ["short"],
        "too_long": ["long"],
    }
    assert report.summary() == "skipped 3 of 5 cuts seen: empty_text=1, too_long=1, too_short=1"
    assert "skipping cut long for training: too_long" in caplog.text
    report.log_summary()
    assert "training data filter: skipped 3 of 5" in caplog.text


def test_encoder_cache_cuts_shorter_than_one_projector_frame_are_skipped(good_cuts, tmp_path):
    cuts = CutSet.from_cuts(
        attach_encoder_cache(c, tmp_path / "enc", n) for c, n in zip(good_cuts, [4, 5, 30])
    )
    # 20 characters on 0.08-0.1 s of synthetic frames: only the frame count is tested here
    cfg = DataConfig(
        input_kind="encoder_cache",
        min_encoder_frames=5,
        min_audio_seconds=0.0,
        max_chars_per_second=0,
    )
    filtered, report = filter_cuts_for_training(cuts, cfg)
    assert len(filtered.to_eager()) == 2
    assert list(report.skipped) == ["too_few_frames"]


def test_encoder_cache_cut_without_features_is_a_bad_cut_in_decoding(good_cuts, tmp_path):
    cuts = [attach_encoder_cache(c, tmp_path / "enc", 10) for c in list(good_cuts)[:2]]
    cuts[1].features = None  # the cache tool keeps unreadable cuts without features
    batch = SlamAsrDataset("encoder_cache")[CutSet.from_cuts(cuts)]
    assert batch["cut_ids"] == [cuts[0].id] and batch["bad_cut_ids"] == [cuts[1].id]
    assert batch["encoder_frames"].shape == (1, 10, 8)


def test_training_with_no_usable_cut_is_a_clear_error() -> None:
    """Every cut filtered out: a ValueError naming why, not a sampler assertion."""
    from lhotse import CutSet
    from lhotse.testing.dummies import dummy_cut, dummy_supervision

    from slamasr.data.config import DataConfig
    from slamasr.data.dataset import build_dataloader

    cuts = CutSet.from_cuts(
        dummy_cut(i, duration=5.0, supervisions=[dummy_supervision(i, duration=5.0)])
        for i in range(3)
    )
    cfg = DataConfig(input_kind="audio", max_duration=10, num_buckets=2, max_audio_seconds=1.0)
    with pytest.raises(ValueError, match="no usable training cuts.*too_long=3"):
        build_dataloader(cuts, cfg, train=True)


def test_training_filter_drops_absurd_transcripts_and_counts_them(tmp_path: Path, caplog):
    """5,000 characters on 3 s of audio cannot be its transcript (and would make steps slow)."""

    def cut(name: str, text: str):
        return make_cut(write_audio(tmp_path / f"{name}.wav", 3.0), text, cut_id=name)

    cuts = CutSet.from_cuts(
        [
            cut("normal", "he hoped there would be stew for dinner turnips and carrots"),
            cut("absurd", "a" * 5000),
            cut("fast", "b" * 299),  # 99.7 characters per second: under the limit
        ]
    )
    cfg = DataConfig(input_kind="audio")
    assert cfg.max_chars_per_second == 100.0
    filtered, report = filter_cuts_for_training(cuts, cfg)
    with caplog.at_level(logging.WARNING):
        assert sorted(filtered.ids) == ["fast", "normal"]
    assert (
        "skipping cut absurd for training: too_many_chars_per_second (3.00 s, 5000" in caplog.text
    )
    assert report.summary() == "skipped 1 of 3 cuts seen: too_many_chars_per_second=1"
    off, _ = filter_cuts_for_training(cuts, DataConfig(input_kind="audio", max_chars_per_second=0))
    assert sorted(off.ids) == ["absurd", "fast", "normal"]
