"""Minimal eSpeak NG synthesis for converter tests (the corpus module does the full job)."""

from __future__ import annotations

import ctypes
from fractions import Fraction

import numpy as np

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1


def synthesize(text: str, voice: str = "en-us", sample_rate: int = 16000) -> np.ndarray:
    """Speaks ``text`` with eSpeak NG (from ``espeakng-loader``).

    Args:
        text: English text.
        voice: eSpeak voice name.
        sample_rate: Output rate in Hz.

    Returns:
        Float32 mono samples in [-1, 1] at ``sample_rate``.
    """
    import espeakng_loader
    from scipy.signal import resample_poly

    lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(espeakng_loader.get_data_path()).encode(), 0
    )
    chunks: list[np.ndarray] = []

    def collect(wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    data = text.encode("utf-8") + b"\0"
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int]
    lib.espeak_Synth.argtypes += [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0
    ratio = Fraction(sample_rate, rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
