"""eSpeak NG synthesis: audio of plausible length, and the voices the corpus relies on."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from slamasr.corpora import espeak
from slamasr.corpora.espeak import (
    DEV_OOD_VOICES,
    OOD_VOICES,
    TRAIN_VOICES,
    UNSEEN_VOICES,
    EspeakSynthesizer,
    VoiceSetting,
)


@pytest.fixture(scope="module")
def synth() -> EspeakSynthesizer:
    pytest.importorskip("espeakng_loader")
    return EspeakSynthesizer(sample_rate=16000, backend="library")


def _check_plausible(audio: np.ndarray, num_words: int) -> None:
    seconds = audio.shape[0] / 16000
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.15 * num_words <= seconds <= 0.8 * num_words + 1.0
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_two_sentences_have_plausible_duration(synth):
    short = synth.synthesize("Good morning.", VoiceSetting("en-us", rate=160, pitch=50))
    longer = synth.synthesize(
        "Please put the green cups on the shelf.", VoiceSetting("en-us+f2", 150, 45)
    )
    _check_plausible(short, 2)
    _check_plausible(longer, 8)
    assert longer.shape[0] > short.shape[0]


def test_slower_rate_gives_longer_audio(synth):
    text = "The train leaves at seven thirty."
    fast = synth.synthesize(text, VoiceSetting("en-us", rate=170))
    slow = synth.synthesize(text, VoiceSetting("en-us", rate=140))
    assert slow.shape[0] > fast.shape[0]


def test_all_corpus_voices_exist_and_test_voices_are_unseen(synth):
    lists = (TRAIN_VOICES, OOD_VOICES, DEV_OOD_VOICES, UNSEEN_VOICES)
    every = [voice for voices in lists for voice in voices]
    assert len(set(every)) == len(every)  # no voice in two lists
    for voice in every:
        assert synth.synthesize("Yes.", VoiceSetting(voice)).shape[0] > 1000


def test_pitch_range_and_volume_change_the_audio(synth):
    text = "Is the kettle on already?"
    plain = synth.synthesize(text, VoiceSetting("en-us", 160, 50))
    flat = synth.synthesize(text, VoiceSetting("en-us", 160, 50, pitch_range=5))
    quiet = synth.synthesize(text, VoiceSetting("en-us", 160, 50, volume=50))
    assert not (flat.shape == plain.shape and np.allclose(flat, plain))
    rms = lambda audio: float(np.sqrt(np.mean(audio**2)))  # noqa: E731
    assert rms(quiet) < 0.75 * rms(plain)


def test_unknown_voice_is_an_error(synth):
    with pytest.raises(ValueError, match="voice"):
        synth.synthesize("Hello.", VoiceSetting("xx-nonexistent"))
    if synth.backend_name == "library":  # eSpeak itself speaks on with some other voice
        with pytest.raises(ValueError, match="variant 'nonexistent'"):
            synth.synthesize("Hello.", VoiceSetting("en-us+nonexistent"))


def test_setting_defaults_are_espeaks_own(synth):
    """Test sets keep eSpeak's defaults of the new fields, so their audio stays as it was."""
    if synth.backend_name != "library":
        pytest.skip("needs the library backend")
    lib = synth._backend._lib
    default = VoiceSetting("en-us")
    assert lib.espeak_GetParameter(espeak._PARAM_RANGE, 0) == default.pitch_range == 50
    assert lib.espeak_GetParameter(espeak._PARAM_VOLUME, 0) == default.volume == 100


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng binary not installed")
def test_binary_backend():
    audio = EspeakSynthesizer(backend="binary").synthesize("Good morning.", VoiceSetting("en-us"))
    _check_plausible(audio, 2)


def test_resample_keeps_a_tone_and_sets_the_length():
    from slamasr.corpora.espeak import resample

    seconds = np.arange(22050 * 2) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)
    out = resample(tone, 22050, 16000)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
    assert out.shape == (32000,) and out.dtype == np.float32
    assert np.abs(out - expected).max() < 1e-3


def test_binary_fallback_command_and_parsing(tmp_path, monkeypatch):
    """A stand-in ``espeak-ng`` records its arguments and writes a 1-s WAV to stdout."""
    import sys

    fake = tmp_path / "espeak-ng"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import io, sys, numpy, soundfile\n"
        f"open({str(tmp_path / 'args.txt')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "buf = io.BytesIO()\n"
        "soundfile.write(buf, numpy.full(22050, 0.1, 'float32'), 22050, format='WAV')\n"
        "sys.stdout.buffer.write(buf.getvalue())\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    synth = EspeakSynthesizer(backend="binary")
    audio = synth.synthesize("Hello there.", VoiceSetting("en-us+m3", rate=150, pitch=42))
    assert synth.backend_name == "binary" and audio.shape == (16000,)
    args = (tmp_path / "args.txt").read_text()
    assert args == "--stdout -v en-us+m3 -s 150 -p 42 -a 100 Hello there."


def test_binary_backend_passes_volume_and_warns_about_pitch_range(tmp_path, monkeypatch, caplog):
    test_binary_fallback_command_and_parsing(tmp_path, monkeypatch)
    synth = EspeakSynthesizer(backend="binary")
    setting = VoiceSetting("en-us", rate=150, pitch=42, pitch_range=80, volume=70)
    with caplog.at_level("WARNING"):
        synth.synthesize("Hi.", setting)
        synth.synthesize("Hi.", setting)
    assert "-a 70" in (tmp_path / "args.txt").read_text()
    assert caplog.text.count("ignores pitch_range") == 1  # once, not per utterance
