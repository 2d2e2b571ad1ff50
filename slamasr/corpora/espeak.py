"""Speech synthesis with eSpeak NG, in-process through ctypes or via the ``espeak-ng`` binary.

The preferred backend loads ``libespeak-ng.so`` shipped by the PyPI package ``espeakng-loader``
(no root needed) and runs it in synchronous mode, collecting 16-bit samples from the synth
callback. Where that package is missing, the ``espeak-ng`` binary is used instead. Audio comes out
at eSpeak's native rate (22050 Hz) and is resampled to the requested rate.

Example::

    synth = EspeakSynthesizer()
    audio = synth.synthesize("Good morning.", VoiceSetting("en-us+f2", rate=150, pitch=50))
    # audio: float32 numpy array, (num_samples,), at synth.sample_rate
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile as sf

NATIVE_SAMPLE_RATE = 22050
"""Sampling rate eSpeak NG synthesizes at."""

TRAIN_VOICES = (
    "en-us",
    "en-us+m1",
    "en-us+m3",
    "en-us+f2",
    "en-us+f4",
    "en-us+m6",
    "en-us+m7",
    "en-us+m8",
    "en-us+f5",
    "en-us+Mike",
    "en-us+Gene",
    "en-us+robert",
    "en-us+adam",
    "en-us+steph",
    "en-us+klatt4",
)
"""Voices of the training, dev and in-domain test sets: eSpeak's en-us voice and 14 of its
variants (formants, pitch range, breathiness). Beyond the first five, the variants Whisper
tiny.en transcribes best among eSpeak's 100-odd, leaving out the out-of-domain ones: more
speakers make the projector map sounds rather than five voices."""

OOD_VOICES = ("en-us+m2", "en-us+m5", "en-us+f3", "en-us+f1", "en-us+m4")
"""Voices of the out-of-domain test set; disjoint from :data:`TRAIN_VOICES`."""

DEV_OOD_VOICES = ("en-us+Andy", "en-us+Annie", "en-us+Denis", "en-us+Lee", "en-us+linda")
"""Voices of the out-of-domain dev set: in neither :data:`TRAIN_VOICES` nor
:data:`OOD_VOICES`."""

UNSEEN_VOICES = ("en-us+whisper", "en-us+whisperf", "en-us+croak", "en-us+grandpa", "en-us+aunty")
"""Voices of the never-trained-on test set (whispered, croaky, aged): in no other list."""

# espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE and flag values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class VoiceSetting:
    """One speaker configuration.

    Attributes:
        voice: eSpeak voice name with optional variant, e.g. ``"en-us+m3"``.
        rate: speaking rate in words per minute (eSpeak's default is 175).
        pitch: base pitch, 0-100 (eSpeak's default is 50).
        pitch_range: intonation range, 0 (monotone) to 100 (eSpeak's default is 50).
        volume: amplitude, 0-200 (eSpeak's default is 100).
    """

    voice: str
    rate: int = 160
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling of a mono signal by truncating or zero-padding its spectrum.

    Exact for a periodic signal; eSpeak's output starts and ends in silence, so the wrap-around
    is harmless. Needs only numpy; about 8 ms for a few seconds of audio here (two FFTs of
    awkward lengths): the larger part of the synthesis time of an utterance.

    Args:
        audio: float32 samples, shape (num_samples,).
        source_rate: rate of ``audio`` in Hz.
        target_rate: wanted rate in Hz.

    Returns:
        float32 samples at ``target_rate``, shape (round(num_samples * target / source),).
    """
    if source_rate == target_rate or audio.shape[0] == 0:
        return audio.astype(np.float32)
    num_in = audio.shape[0]
    num_out = max(1, round(num_in * target_rate / source_rate))
    spectrum = np.fft.rfft(audio.astype(np.float64))  # (num_in // 2 + 1,)
    bins = num_out // 2 + 1
    if spectrum.shape[0] >= bins:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.pad(spectrum, (0, bins - spectrum.shape[0]))
    out = np.fft.irfft(spectrum, n=num_out) * (num_out / num_in)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


class _LibraryBackend:
    """eSpeak NG loaded in-process with ctypes (one instance per process)."""

    def __init__(self, library_path: str, data_path: str, seed: int = 0) -> None:
        self._lib = ctypes.CDLL(library_path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed with data path {data_path}")
        self.native_rate = int(rate)
        # eSpeak's voices add noise from a random generator seeded from the clock: seeded here,
        # a fresh process speaking the same utterances in the same order writes the same samples
        # (not a process that has spoken before: more of its state carries over)
        set_seed = getattr(self._lib, "espeak_ng_SetRandSeed", None)
        if set_seed is not None:
            set_seed.argtypes = [ctypes.c_long]
            set_seed(seed)
        else:
            logging.warning(
                "%s has no espeak_ng_SetRandSeed: its voices' noise, so the audio, will "
                "differ from run to run",
                library_path,
            )
        self._variants = Path(data_path) / "voices" / "!v"
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: C holds it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, num_samples: int, events: Optional[int]) -> int:
        """Synth callback: copies one chunk of int16 samples (``wav`` is a short pointer)."""
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, setting: VoiceSetting) -> np.ndarray:
        """Returns float32 samples at :attr:`native_rate`."""
        variant = setting.voice.partition("+")[2]
        if variant and not (self._variants / variant).is_file():
            # eSpeak would not fail: it speaks some other voice instead
            raise ValueError(
                f"unknown eSpeak voice variant {variant!r} in {setting.voice!r}: no file "
                f"{self._variants / variant}; choose one of the files there"
            )
        if self._lib.espeak_SetVoiceByName(setting.voice.encode()) != 0:
            raise ValueError(f"unknown eSpeak voice {setting.voice!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, setting.rate, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, setting.pitch, 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, setting.pitch_range, 0)
        self._lib.espeak_SetParameter(_PARAM_VOLUME, setting.volume, 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        self._lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples.astype(np.float32) / 32768.0


class _BinaryBackend:
    """The ``espeak-ng`` command-line program, writing WAV to stdout."""

    def __init__(self, executable: str) -> None:
        self._executable = executable
        self.native_rate = NATIVE_SAMPLE_RATE
        self._warned = False

    def synthesize(self, text: str, setting: VoiceSetting) -> np.ndarray:
        """Returns float32 samples at :attr:`native_rate`."""
        cmd = [self._executable, "--stdout", "-v", setting.voice]
        cmd += ["-s", str(setting.rate), "-p", str(setting.pitch), "-a", str(setting.volume)]
        if setting.pitch_range != 50 and not self._warned:
            self._warned = True  # the command line has no pitch-range option
            logging.warning("the espeak-ng binary ignores pitch_range; install espeakng-loader")
        cmd.append(text)
        wav = subprocess.run(cmd, check=True, capture_output=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        self.native_rate = rate
        return audio


def _make_backend(prefer: str, seed: int = 0) -> _LibraryBackend | _BinaryBackend:
    """Builds the library backend, or the binary one where the library is unavailable."""
    if prefer in ("auto", "library"):
        try:
            import espeakng_loader

            lib_path = espeakng_loader.get_library_path()
            data_path = espeakng_loader.get_data_path()
            return _LibraryBackend(lib_path, data_path, seed)
        except (ImportError, OSError, RuntimeError) as err:
            if prefer == "library":
                raise
            logging.warning("eSpeak NG library unavailable (%s); trying the binary", err)
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise RuntimeError("No eSpeak NG: pip install espeakng-loader, or install espeak-ng")
    return _BinaryBackend(executable)


class EspeakSynthesizer:
    """Text to waveform with eSpeak NG.

    Args:
        sample_rate: output sampling rate in Hz (audio is resampled from 22050 Hz).
        backend: ``"auto"`` (library, else binary), ``"library"`` or ``"binary"``.
        seed: seed of eSpeak NG's random generator (library backend): the first synthesizer
            of a fresh process speaks a given sequence of utterances the same every time
            (:func:`synthesize_chunk`).
    """

    def __init__(self, sample_rate: int = 16000, backend: str = "auto", seed: int = 0) -> None:
        if backend not in ("auto", "library", "binary"):
            raise ValueError(f"backend must be auto, library or binary, got {backend!r}")
        self.sample_rate = sample_rate
        self._backend = _make_backend(backend, seed)

    @property
    def backend_name(self) -> str:
        """``"library"`` or ``"binary"``."""
        return "library" if isinstance(self._backend, _LibraryBackend) else "binary"

    def synthesize(self, text: str, setting: VoiceSetting) -> np.ndarray:
        """Synthesizes one utterance.

        Args:
            text: the text to speak (punctuation shapes the prosody).
            setting: voice, rate and pitch.

        Returns:
            float32 samples, shape (num_samples,), at :attr:`sample_rate`.
        """
        audio = self._backend.synthesize(text, setting)
        return resample(audio, self._backend.native_rate, self.sample_rate)


def synthesize_chunk(
    task: tuple[int, list[tuple[str, VoiceSetting, str, bool]]],
) -> list[tuple[str, int]]:
    """Pool task, one per fresh process: speaks a chunk of utterances in order with a new
    synthesizer and writes the flagged ones (format from each path's suffix).

    eSpeak NG keeps state from one utterance to the next (in the library, beyond its random
    generator), so an utterance's samples depend on what the process spoke before it; a
    chunk spoken in order by a fresh process (``multiprocessing`` "spawn", one task per
    child) comes out the same whichever worker runs it, and however many run. Utterances of a
    chunk that already have their file are spoken again, but not written.

    Args:
        task: ``(sample_rate, [(text, setting, path, write), ...])``.

    Returns:
        ``(path, num_samples)`` of each file written.
    """
    sample_rate, jobs = task
    synth = EspeakSynthesizer(sample_rate=sample_rate)
    written = []
    for text, setting, path, write in jobs:
        audio = synth.synthesize(text, setting)
        if write:  # beside it, then renamed: a killed run leaves no truncated file behind
            final = Path(path)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp")
            sf.write(tmp, audio, synth.sample_rate, format=final.suffix.lstrip(".").upper())
            os.replace(tmp, final)
            written.append((path, int(audio.shape[0])))
    return written
