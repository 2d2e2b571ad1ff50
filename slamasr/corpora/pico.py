"""Speech synthesis with SVOX Pico (HMM-based), whose English voices install from PyPI.

A second English synthesizer beside eSpeak NG: Pico, Android's former built-in engine, renders
speech from hidden-Markov-model parameters with its own lexicon and text analysis, nothing of
eSpeak. The PyPI package ``ttspico`` is a source distribution holding Pico's C sources and
its language files (en-US and en-GB, one female speaker each; Apache-2.0); ``pip`` compiles it
(about a minute; needs a C compiler and Python's headers). Nothing is fetched at run time.

Install::

    pip install ttspico

Example::

    synthesize("Good morning.", "en-GB", Path("a.wav"))  # 16-kHz mono wav

Keyword settings (``rate``, ``pitch`` in percent of the voice's own, 100 = unchanged) vary the
delivery and the pitch of a voice: more material from the same two speakers.

Each utterance is spoken by a fresh engine (about 1 ms to create): an engine carries the index
of its noise table from one utterance to the next, so a reused one speaks a sentence
differently depending on what it spoke before; a fresh one always gives the same samples.
``ttspico`` 0.3.2 keeps one reference too many to every audio chunk it hands over (all the
audio ever spoken stays in memory, 32 kB per second); :func:`synthesize_array` drops it.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

from slamasr.corpora.espeak import resample
from slamasr.corpora.piper import write_wav

VOICES: list[str] = ["en-US", "en-GB"]
"""Pico's English voices (``ttspico`` language names)."""

NATIVE_SAMPLE_RATE = 16000
"""Pico synthesizes 16-bit mono at 16 kHz."""

INSTALL_HINT = "pip install ttspico  (compiles Pico's C sources: needs gcc and Python headers)"

VOLUME = 60
"""Output volume in percent of Pico's default: at 100 its loud vowels clip at full scale."""


def _ttspico() -> Any:
    """The ``ttspico`` module, or an ImportError that says what to install."""
    try:
        import ttspico
    except ImportError as err:
        raise ImportError(
            f"Pico synthesis needs the PyPI package 'ttspico' ({err}); run: {INSTALL_HINT}"
        ) from err
    return ttspico


LEAKY_VERSIONS = ("0.3.2",)
"""``ttspico`` releases whose speak callback leaks its audio argument (never decref'd)."""


def _engine(voice: str) -> Any:
    """A fresh Pico engine of one language at :data:`VOLUME`."""
    if voice not in VOICES:
        raise ValueError(f"unknown Pico voice {voice!r}; choose one of {VOICES}")
    engine = _ttspico().TtsEngine(voice)
    engine.volume = VOLUME
    return engine


def _chunk_release() -> Any:
    """What to call on each audio chunk: drops the reference a leaky ``ttspico`` keeps."""
    if importlib.metadata.version("ttspico") in LEAKY_VERSIONS:
        return ctypes.pythonapi.Py_DecRef
    return lambda chunk: None


def synthesize_array(
    text: str, voice: str, sample_rate: int = 16000, rate: int = 100, pitch: int = 100
) -> np.ndarray:
    """Speaks ``text`` and returns the samples.

    Args:
        text: text to speak.
        voice: one of :data:`VOICES`.
        sample_rate: output rate in Hz (resampled from 16 kHz where different).
        rate: speaking rate in percent (Pico accepts 20-500).
        pitch: pitch in percent (Pico accepts 50-200).

    Returns:
        float32 samples in [-1, 1], shape (num_samples,), at ``sample_rate``.
    """
    engine = _engine(voice)
    engine.rate = rate
    engine.pitch = pitch
    pieces: list[bytes] = []
    release = _chunk_release()

    def collect(fmt: tuple[int, int, int], audio: bytes, final: bool) -> bool:
        release(ctypes.py_object(audio))  # still alive: held by the call's arguments and here
        if fmt != (NATIVE_SAMPLE_RATE, 16, 1):
            raise RuntimeError(f"Pico gave audio as {fmt}, expected (16000, 16, 1)")
        pieces.append(audio)
        return True  # go on

    engine.speak(text, collect)
    samples = np.frombuffer(b"".join(pieces), dtype=np.int16)
    return resample(samples.astype(np.float32) / 32768.0, NATIVE_SAMPLE_RATE, sample_rate)


def synthesize(
    text: str, voice: str, wav_path: Path, sample_rate: int = 16000, **settings: Any
) -> None:
    """Speaks ``text`` with a Pico voice into a mono wav file.

    Args:
        text: text to speak.
        voice: one of :data:`VOICES`.
        wav_path: file to write (parents are created).
        sample_rate: rate of the file in Hz.
        **settings: ``rate`` / ``pitch`` of :func:`synthesize_array`.
    """
    audio = synthesize_array(text, voice, sample_rate, **settings)
    write_wav(audio, Path(wav_path), sample_rate)
