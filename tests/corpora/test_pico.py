"""Pico synthesis: 16-kHz mono speech of plausible length, unclipped; clear errors."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from slamasr.corpora import pico


@pytest.fixture(scope="module")
def installed() -> None:
    pytest.importorskip("ttspico", reason="pip install ttspico")


@pytest.mark.parametrize("voice", pico.VOICES)
def test_sentence_is_16k_mono_speech_of_plausible_length(installed, voice, tmp_path):
    wav = tmp_path / "a.wav"
    pico.synthesize("Please put the green cups on the shelf.", voice, wav)
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == 16000 and sf.info(wav).channels == 1
    seconds = audio.shape[0] / rate
    assert 0.15 * 8 <= seconds <= 0.8 * 8 + 1.0
    frames = audio[: audio.shape[0] // 400 * 400].reshape(-1, 400)
    assert (np.sqrt((frames**2).mean(axis=1)) > 0.02).mean() > 0.4
    assert np.mean(np.abs(audio) > 0.999) == 0.0  # no clipped samples


def test_two_voices_differ_and_rate_slows(installed):
    text = "The train leaves at seven thirty."
    us = pico.synthesize_array(text, "en-US")
    gb = pico.synthesize_array(text, "en-GB")
    slow = pico.synthesize_array(text, "en-US", rate=70)
    assert us.shape != gb.shape or not np.allclose(us, gb)
    assert slow.shape[0] > 1.2 * us.shape[0]


def test_other_sample_rate_is_resampled(installed):
    at_8k = pico.synthesize_array("Good morning.", "en-GB", sample_rate=8000)
    at_16k = pico.synthesize_array("Good morning.", "en-GB")
    assert abs(at_16k.shape[0] - 2 * at_8k.shape[0]) <= 2


def test_unknown_voice_names_the_choices():
    with pytest.raises(ValueError, match="en-GB"):
        pico.synthesize_array("Hello.", "fr-FR")


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ttspico", None)
    with pytest.raises(ImportError, match="pip install ttspico"):
        pico.synthesize_array("Hello.", "en-US")


def test_a_sentence_sounds_the_same_whatever_was_spoken_before(installed):
    text = "Carry our prune to the muddy cave as soon as you can."
    first = pico.synthesize_array(text, "en-US")
    pico.synthesize_array("Something else entirely, with many unvoiced sounds.", "en-US")
    assert np.array_equal(first, pico.synthesize_array(text, "en-US"))


def test_spoken_audio_does_not_stay_in_memory(installed):
    text = "Please put the green cups on the shelf before the guests arrive tonight."
    pico.synthesize_array(text, "en-GB")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            pico.synthesize_array(text, "en-GB")  # ~4 s each: 130 kB of samples
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000
