"""Features: Lhotse WhisperFbank equals HF WhisperFeatureExtractor; stored features load back."""

import json
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet
from transformers import WhisperFeatureExtractor

from slamasr.bin import compute_features as compute_features_cli
from slamasr.data.features import compute_features, make_extractor, num_frames
from slamasr.data.manifests import load_cuts
from tests.data.conftest import corrupt, make_cut, write_audio


def _audio(num_samples: int) -> np.ndarray:
    t = np.arange(num_samples) / 16000
    rng = np.random.default_rng(num_samples)
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(num_samples)).astype(
        np.float32
    )


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("num_samples", [16000, 16079, 16080, 24567])
def test_whisper_mel_matches_hf_on_unpadded_audio(n_mels: int, num_samples: int) -> None:
    audio = _audio(num_samples)
    ours = make_extractor("whisper_mel", n_mels).extract(audio, 16000)  # (T, n_mels)
    hf = (
        WhisperFeatureExtractor(feature_size=n_mels)(
            audio, sampling_rate=16000, padding="longest", return_tensors="np"
        )
        .input_features[0]
        .T
    )  # (S // 160, n_mels)
    # Frame count: Lhotse round(S / 160) (halves up); HF floor(S / 160).
    assert ours.shape == (num_frames(num_samples), n_mels)
    assert hf.shape == (num_samples // 160, n_mels)
    np.testing.assert_allclose(ours[: len(hf)], hf, atol=1e-5)
    # The boundary frame Lhotse adds when S % 160 >= 80 is all zeros.
    assert np.all(ours[len(hf) :] == 0.0)


def test_whisper_mel_equals_hf_30s_padded_features_before_the_last_frame() -> None:
    audio = _audio(20000)
    ours = make_extractor("whisper_mel", 80).extract(audio, 16000)
    hf_padded = (
        WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np")
        .input_features[0]
        .T
    )  # (3000, 80)
    n = 20000 // 160
    np.testing.assert_allclose(ours[: n - 1], hf_padded[: n - 1], atol=1e-5)


def test_fbank_is_80_dim_kaldi_fbank_at_100_hz() -> None:
    feats = make_extractor("fbank").extract(_audio(16000), 16000)
    assert feats.shape == (100, 80)


@pytest.mark.parametrize(("kind", "num_jobs"), [("whisper_mel", 1), ("fbank", 2)])
def test_compute_features_stores_lilcom_and_loads_time_major(
    tmp_path: Path, kind: str, num_jobs: int
) -> None:
    cuts = CutSet.from_cuts(
        make_cut(write_audio(tmp_path / f"u{i}.wav", sec), "hi")
        for i, sec in enumerate([0.5, 1.23])
    )
    manifest = tmp_path / "mini_cuts_dev.jsonl.gz"
    cuts.to_file(manifest)
    out = compute_features(manifest, tmp_path / "fbank", kind, n_mels=80, num_jobs=num_jobs)
    assert out.is_file() and list((tmp_path / "fbank").rglob("*.lca"))
    for cut in load_cuts(out):
        feats = cut.load_features()
        assert feats.shape == (num_frames(round(cut.duration * 16000)), 80)
        direct = make_extractor(kind).extract(cut.load_audio(), 16000)
        np.testing.assert_allclose(feats, direct, atol=0.05)  # lilcom is lossy
    # A second run reuses the stored output.
    mtime = out.stat().st_mtime_ns
    assert (
        compute_features_cli.main(
            ["--cuts", str(manifest), "--out-dir", str(tmp_path / "fbank"), "--kind", kind]
        )
        == 0
    )
    assert out.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("num_jobs", [1, 2])
def test_compute_features_refuses_to_drop_a_cut_whose_audio_fails(
    tmp_path: Path, num_jobs: int
) -> None:
    # Lhotse skips a cut whose audio cannot be loaded (with a warning); we must not.
    paths = [write_audio(tmp_path / f"u{i}.wav", 0.5) for i in range(3)]
    cuts = CutSet.from_cuts(make_cut(p, "hi", cut_id=f"utt{i}") for i, p in enumerate(paths))
    manifest = tmp_path / "mini_cuts_dev.jsonl.gz"
    cuts.to_file(manifest)
    corrupt(paths[1])
    with pytest.raises(RuntimeError, match=r"1 cut\(s\) of .*mini_cuts_dev.*: utt1\. Fix"):
        compute_features(manifest, tmp_path / "fbank", "whisper_mel", num_jobs=num_jobs)
    assert not (tmp_path / "fbank" / "mini_cuts_dev_whisper_mel80.jsonl.gz").exists()


def test_compute_features_rejects_negative_worker_threads(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="worker_threads=-1"):
        compute_features(tmp_path / "x.jsonl.gz", tmp_path / "out", "fbank", worker_threads=-1)


def test_benchmark_features_times_every_variant_on_the_same_features(tmp_path: Path) -> None:
    from slamasr.bin import benchmark_features

    cuts = CutSet.from_cuts(
        make_cut(write_audio(tmp_path / f"u{i}.wav", sec), "hi")
        for i, sec in enumerate([0.5, 1.23, 0.8])
    )
    manifest = tmp_path / "mini_cuts_train.jsonl.gz"
    cuts.to_file(manifest)
    out = tmp_path / "bench.json"
    argv = ["--cuts", str(manifest), "--max-cuts", "2", "--output", str(out)]
    assert benchmark_features.main([*argv, "--work-dir", str(tmp_path / "w")]) == 0
    result = json.loads(out.read_text())
    assert result["cuts"] == 2 and result["num_jobs"] == 2
    variants = result["variants"]
    assert [(v["num_jobs"], v["worker_threads"]) for v in variants.values()] == [
        (2, 1),
        (2, "default"),
        (1, "default"),
    ]
    assert all(v["seconds"] > 0 for v in variants.values())
    assert result["one_process_over_workers_one_thread"] == round(
        variants["one_process"]["seconds"] / variants["workers_one_thread"]["seconds"], 2
    )
    assert result["identical_features"] is True
    # bad input: fewer than 2 workers, or a work dir that holds something
    assert benchmark_features.main([*argv, "--num-jobs", "1"]) == 1
    assert benchmark_features.main([*argv, "--work-dir", str(tmp_path / "w")]) == 1
