"""Pause splitting (shared by transcription and the Whisper encoder) and the speech gate."""

from __future__ import annotations

import numpy as np
import pytest

from slamasr.data.segment import SpeechDetector, pause_bounds, split_waveform

SR = 16000


def _check_cover(bounds: list[tuple[int, int]], total: int, max_len: int) -> None:
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    assert all(a < b <= a + max_len for a, b in bounds)
    assert all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))


def test_cut_goes_to_the_pause_not_the_limit() -> None:
    """3516 frames, max 3000, a pause at 1600-1640: one cut, inside the pause."""
    loudness = np.zeros(3516)
    loudness[1600:1640] = -60.0
    bounds = pause_bounds(loudness, 3000, min_len=50, smooth=20, multiple=2)
    _check_cover(bounds, 3516, 3000)
    assert len(bounds) == 2 and 1600 <= bounds[0][1] <= 1640 and bounds[0][1] % 2 == 0


def test_without_pauses_the_cuts_balance_the_pieces() -> None:
    """Flat loudness (or digital silence): 6100 frames, max 3000 -> ~2033 each, not
    3000 + 3000 + 100."""
    for level in (0.0, -100.0):
        bounds = pause_bounds(np.full(6100, level), 3000, min_len=50, multiple=2)
        _check_cover(bounds, 6100, 3000)
        assert [b - a for a, b in bounds] == pytest.approx([2033, 2033, 2033], abs=2)


def test_the_deepest_pause_in_range_wins_over_the_even_split() -> None:
    """Pauses at 500 (-80 dB) and 800 (-30 dB), 1700 frames, max 1000: the cut goes to the
    deeper one, though the even split is at 850 and it costs a third piece."""
    loudness = np.zeros(1700)
    loudness[495:505] = -80.0
    loudness[795:805] = -30.0
    bounds = pause_bounds(loudness, 1000, min_len=10)
    _check_cover(bounds, 1700, 1000)
    assert 495 <= bounds[0][1] <= 505 and len(bounds) == 3


def _utterances_with_pauses(seconds: list[float], pause: float) -> tuple[np.ndarray, list]:
    """Loud noise 'utterances' separated by silent pauses; returns audio and pause spans (s)."""
    rng = np.random.default_rng(0)
    parts, spans, t = [], [], 0.0
    for s in seconds:
        parts += [0.3 * rng.standard_normal(int(s * SR)), np.zeros(int(pause * SR))]
        t += s
        spans.append((t, t + pause))
        t += pause
    return np.concatenate(parts).astype(np.float32), spans[:-1]


def test_waveform_is_split_in_the_pauses_between_utterances() -> None:
    """Eight 3-s utterances with 0.6-s pauses, max 10 s: each cut lies in a pause."""
    audio, pauses = _utterances_with_pauses([3.0, 2.5, 3.5, 2.0, 3.0, 4.0, 2.5, 3.0], 0.6)
    bounds = split_waveform(audio, max_seconds=10.0)
    _check_cover(bounds, audio.shape[0], 10 * SR)
    assert len(bounds) >= 3
    for _, end in bounds[:-1]:
        assert any(a <= end / SR <= b for a, b in pauses), f"cut at {end / SR:.2f} s"


def test_short_waveform_is_one_piece() -> None:
    assert split_waveform(np.ones(5 * SR, dtype=np.float32), 10.0) == [(0, 5 * SR)]


# --------------------------------------------------------------------------- speech gate


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector()


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    """A real-ish utterance synthesized with eSpeak NG (~4 s)."""
    pytest.importorskip("espeakng_loader", reason="eSpeak NG synthesizes the test speech")
    from slamasr.corpora.espeak import EspeakSynthesizer, VoiceSetting

    synth = EspeakSynthesizer(sample_rate=SR)
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    return synth.synthesize(text, VoiceSetting("en-us", rate=160, pitch=50))


def test_gate_finds_no_speech_in_silence_or_white_noise(detector: SpeechDetector) -> None:
    rng = np.random.default_rng(0)
    assert detector.regions(np.zeros(20 * SR, dtype=np.float32)) == []
    for level in (0.05, 0.3):
        noise = np.clip(level * rng.standard_normal(20 * SR), -1, 1).astype(np.float32)
        assert detector.regions(noise) == []


def test_gate_keeps_the_utterance_and_drops_20s_of_silence_after_it(
    detector: SpeechDetector, utterance: np.ndarray
) -> None:
    audio = np.concatenate([utterance, np.zeros(20 * SR, dtype=np.float32)])
    regions = detector.regions(audio)
    assert len(regions) == 1
    start, end = regions[0]
    assert start < 0.3 * SR and abs(end - utterance.shape[0]) < 0.5 * SR
