"""Fixtures for the data tests: generated audio (tones + noise), broken files, cut sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import MonoCut
from lhotse.features import Features
from lhotse.features.io import NumpyFilesWriter


def write_audio(path: Path, seconds: float, sr: int = 16000, freq: float = 440.0) -> Path:
    """Write a tone plus a little noise (WAV or FLAC by suffix); return the path."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(n)
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.03 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), sr)
    return path


def make_cut(path: Path, text: str, cut_id: str | None = None) -> MonoCut:
    """One cut covering a whole audio file, with one supervision."""
    cut_id = cut_id or path.stem
    rec = Recording.from_file(path, recording_id=cut_id)
    sup = SupervisionSegment(cut_id, cut_id, start=0.0, duration=rec.duration, text=text)
    return MonoCut(cut_id, start=0.0, duration=rec.duration, channel=0, recording=rec,
                   supervisions=[sup])  # fmt: skip


def corrupt(path: Path) -> None:
    """Overwrite a file with bytes that no audio decoder accepts."""
    path.write_bytes(b"RIFF\x00\x00garbage" * 8)


def attach_encoder_cache(cut: MonoCut, out_dir: Path, num_frames: int, dim: int = 8) -> MonoCut:
    """Attach random (T_enc, D) 'encoder outputs' as the cut's features (50 frames/s)."""
    writer = NumpyFilesWriter(out_dir)
    rng = np.random.default_rng(num_frames)
    arr = rng.standard_normal((num_frames, dim)).astype(np.float32)
    key = writer.write(cut.id, arr)
    cut.features = Features(
        type="encoder_cache",
        num_frames=num_frames,
        num_features=dim,
        frame_shift=0.02,
        sampling_rate=16000,
        start=0.0,
        duration=num_frames * 0.02,
        storage_type=writer.name,
        storage_path=str(out_dir),
        storage_key=key,
    )
    cut.duration = num_frames * 0.02
    cut.supervisions[0].duration = cut.duration
    return cut


@pytest.fixture
def good_cuts(tmp_path: Path) -> CutSet:
    """Six clean 16 kHz cuts of 0.5-2.0 s (one of 12888 samples: S % 160 = 88)."""
    cuts = []
    for i, sec in enumerate([0.5, 1.0, 1.5, 2.0, 0.8055, 1.2]):
        path = write_audio(tmp_path / "wav" / f"utt{i}.wav", sec, freq=200 + 100 * i)
        cuts.append(make_cut(path, f"hello world number {i}"))
    return CutSet.from_cuts(cuts)


@pytest.fixture
def fake_librispeech(tmp_path: Path) -> Path:
    """A tiny LibriSpeech tree: LibriSpeech/<part>/<spk>/<chapter>/*.flac + .trans.txt."""
    root = tmp_path / "dl" / "LibriSpeech"
    texts = ["HELLO WORLD", "IT'S A FINE DAY", "TESTING ONE TWO"]
    for part, spk, chapter in [("dev-clean", "1089", "134686"), ("test-other", "1688", "142285")]:
        chap_dir = root / part / spk / chapter
        lines = []
        for u, text in enumerate(texts):
            utt = f"{spk}-{chapter}-{u:04d}"
            write_audio(chap_dir / f"{utt}.flac", 0.5 + 0.25 * u)
            lines.append(f"{utt} {text}")
        (chap_dir / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root
