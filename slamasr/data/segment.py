"""Cut long audio at pauses, and find where there is speech.

Shared by transcription (``slamasr.transcribe``) and the Whisper encoder, whose 30-s window
a few LibriSpeech dev/test cuts exceed (``slamasr.models.encoders``).

- :func:`pause_bounds` cuts any per-frame loudness curve (dB) into pieces of at most
  ``max_len`` frames. Each cut goes where the smoothed loudness is lowest (a pause), with a
  mild pull towards the even split (e.g. the middle of a 35-s cut split in two), so audio
  without pauses gets pieces of about equal length.
- :func:`split_waveform` does this for a waveform (25-ms frames, 10-ms hop).
- :class:`SpeechDetector` finds speech regions with Silero VAD (the PyPI package
  ``silero-vad``, MIT, which ships its model weights; it runs on torch alone), so that
  silence and noise are not sent to a model that would invent text for them.

Example::

    bounds = split_waveform(samples, max_seconds=10.0)      # [(0, 150880), (150880, ...)]
    regions = SpeechDetector().regions(samples)             # [(4480, 61920), ...] samples
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.025  # loudness frames of a waveform
HOP_SECONDS = 0.010
SMOOTH_SECONDS = 0.2  # a pause is a quiet stretch, not one quiet frame (a stop closure)
MIN_PIECE_SECONDS = 0.5  # no piece shorter than this where the limit allows
TIE_DB = 1.0  # points this close to the quietest count as equally quiet
DISTANCE_DB = 20.0  # pull towards the even split: dB per max_len away from it
LOG_FLOOR_DB = -100.0  # loudness of digital silence


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` points (edges average what they have)."""
    if width <= 1 or values.size == 0:
        return values.astype(np.float64)
    kernel = np.ones(width)
    sums = np.convolve(values.astype(np.float64), kernel, mode="same")
    counts = np.convolve(np.ones(values.shape[0]), kernel, mode="same")
    return sums / counts


def _quietest(
    curve: np.ndarray, lo: int, hi: int, target: float, scale: float, multiple: int
) -> int:
    """Index in ``[lo, hi]`` (a multiple of ``multiple``) minimizing ``curve`` plus
    ``DISTANCE_DB`` per ``scale`` frames away from ``target``; ties go nearest ``target``."""
    points = np.arange(lo, hi + 1, multiple)
    distance = np.abs(points - target)
    score = curve[np.minimum(points, curve.shape[0] - 1)] + DISTANCE_DB * distance / scale
    quiet = np.flatnonzero(score <= score.min() + TIE_DB)
    return int(points[quiet[np.argmin(distance[quiet])]])


def pause_bounds(
    loudness_db: np.ndarray,
    max_len: int,
    min_len: int = 1,
    smooth: int = 1,
    multiple: int = 1,
) -> list[tuple[int, int]]:
    """Cut ``len(loudness_db)`` frames into pieces of at most ``max_len``, at pauses.

    A piece starting at ``start`` ends in ``[start + min_len, start + max_len]`` where the
    smoothed loudness plus a small pull towards the even split is lowest: the rest needs
    ``n = ceil(rest / max_len)`` pieces, the even split is ``start + rest / n``, and each
    ``max_len`` away from it costs ``DISTANCE_DB``. A pause (tens of dB below speech) wins
    anywhere in range; without pauses the pieces come out about equal.

    Args:
        loudness_db: (T,) loudness per frame, dB (any offset).
        max_len: longest piece, frames.
        min_len: shortest piece where the range allows (at most ``max_len // 2``).
        smooth: moving-average width (frames) applied before looking for minima.
        multiple: every cut lies on a multiple of this (2 for Whisper's stride-2 conv).

    Returns:
        Consecutive ``(start, end)`` frame ranges from 0 to ``T``.
    """
    if max_len < max(1, multiple):
        raise ValueError(f"pieces must hold at least {max(1, multiple)} frames, got {max_len}")
    total = loudness_db.shape[0]
    curve = moving_average(loudness_db, smooth)
    min_len = max(1, min(min_len, max_len // 2))
    start, bounds = 0, []
    while total - start > max_len:
        pieces = math.ceil((total - start) / max_len)
        lo = math.ceil((start + min_len) / multiple) * multiple
        hi = (start + max_len) // multiple * multiple
        lo = min(lo, hi)
        target = start + (total - start) / pieces
        end = _quietest(curve, lo, hi, target, max_len, multiple)
        bounds.append((start, end))
        start = end
    bounds.append((start, total))
    return bounds


def waveform_loudness_db(
    samples: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    frame_seconds: float = FRAME_SECONDS,
    hop_seconds: float = HOP_SECONDS,
) -> tuple[np.ndarray, int]:
    """Loudness (dB of mean square) of frames every ``hop_seconds``; returns it and the hop.

    Frame ``i`` covers ``samples[i*hop : i*hop + frame]`` (zero-padded at the end).
    """
    hop = max(1, int(round(hop_seconds * sample_rate)))
    frame = max(hop, int(round(frame_seconds * sample_rate)))
    count = max(1, math.ceil(samples.shape[0] / hop))
    padded = np.zeros(count * hop + frame, dtype=np.float64)
    padded[: samples.shape[0]] = samples
    power = np.convolve(padded**2, np.ones(frame) / frame, mode="valid")[::hop][:count]
    return 10.0 * np.log10(np.maximum(power, 10 ** (LOG_FLOOR_DB / 10))), hop


def split_waveform(
    samples: np.ndarray, max_seconds: float, sample_rate: int = SAMPLE_RATE
) -> list[tuple[int, int]]:
    """Sample ranges of pieces of at most ``max_seconds``, cut at pauses.

    Args:
        samples: (S,) waveform.
        max_seconds: longest piece.
        sample_rate: of ``samples``.

    Returns:
        Consecutive ``(start, end)`` sample ranges covering ``samples``.
    """
    max_samples = int(max_seconds * sample_rate)
    if samples.shape[0] <= max_samples:
        return [(0, samples.shape[0])]
    loudness, hop = waveform_loudness_db(samples, sample_rate)
    max_len = max_samples // hop
    min_len = int(MIN_PIECE_SECONDS * sample_rate) // hop
    smooth = max(1, int(SMOOTH_SECONDS * sample_rate) // hop)
    frames = pause_bounds(loudness, max_len, min_len, smooth)
    cuts = [min(end * hop, samples.shape[0]) for _, end in frames[:-1]]
    edges = [0] + cuts + [samples.shape[0]]
    return list(zip(edges[:-1], edges[1:]))


# --------------------------------------------------------------------------- speech detection


@dataclass
class SpeechGateConfig:
    """Settings of :class:`SpeechDetector` (Silero VAD's ``get_speech_timestamps``).

    Attributes:
        threshold: speech probability above which a 32-ms window is speech.
        min_speech_seconds: shorter speech bursts are dropped.
        min_silence_seconds: shorter pauses do not end a region (a sentence stays whole).
        pad_seconds: kept on each side of a region (onsets and releases are quiet).
    """

    threshold: float = 0.5
    min_speech_seconds: float = 0.25
    min_silence_seconds: float = 0.3
    pad_seconds: float = 0.2


class SpeechDetector:
    """Speech regions of a 16-kHz waveform, by Silero VAD (weights ship in its package)."""

    def __init__(self, cfg: Optional[SpeechGateConfig] = None) -> None:
        """Load the VAD model (``pip install silero-vad``; no network needed)."""
        try:
            from silero_vad import load_silero_vad
        except ImportError as e:
            raise ImportError(
                "the speech gate needs the silero-vad package: pip install silero-vad "
                "(or transcribe with --no-vad)"
            ) from e
        self.cfg = cfg or SpeechGateConfig()
        self.model: Any = load_silero_vad()

    def regions(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
        """``[(start, end), ...]`` sample ranges holding speech (empty: no speech at all)."""
        import torch
        from silero_vad import get_speech_timestamps

        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the speech detector takes {SAMPLE_RATE} Hz audio, not {sample_rate}")
        cfg = self.cfg
        found = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
            self.model,
            threshold=cfg.threshold,
            sampling_rate=sample_rate,
            min_speech_duration_ms=int(cfg.min_speech_seconds * 1000),
            min_silence_duration_ms=int(cfg.min_silence_seconds * 1000),
            speech_pad_ms=int(cfg.pad_seconds * 1000),
        )
        self.model.reset_states()
        return [(int(r["start"]), int(r["end"])) for r in found]
