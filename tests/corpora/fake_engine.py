"""A stand-in second synthesizer for the engine registry's tests: a tone per word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

VOICES = ["low", "mid", "high"]
_PITCH = {"low": 120.0, "mid": 180.0, "high": 260.0}


def synthesize(text: str, voice: str, wav_path: Path, sample_rate: int = 16000) -> None:
    """Writes 0.25 s of the voice's tone per word of ``text`` as a WAV file."""
    t = np.arange(int(0.25 * sample_rate * len(text.split()))) / sample_rate
    sf.write(wav_path, 0.3 * np.sin(2 * np.pi * _PITCH[voice] * t), sample_rate, format="WAV")
