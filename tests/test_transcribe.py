"""Transcribing your own audio: the speech gate, chunks of trained length cut at pauses,
loops cut, resampling, inputs as the data layer computes them, and the CLI's
one-line-per-file output with clear errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from lhotse import CutSet, Recording

from slamasr.bin import transcribe as transcribe_bin
from slamasr.data.config import DataConfig
from slamasr.data.dataset import load_cut_input
from slamasr.data.features import compute_features
from slamasr.models.config import EncoderConfig
from slamasr.transcribe import (
    NO_SPEECH,
    AudioReadError,
    AudioSource,
    InputMaker,
    Transcriber,
    cut_loops,
    load_audio,
    load_transcriber,
    read_wav_scp,
    trained_max_seconds,
)
from tests.test_reliability import make_tiny_exp

REPO = Path(__file__).resolve().parents[1]

SR = 16000


def speech_like(seconds: float, pauses: list[tuple[float, float]], rate: int = SR) -> np.ndarray:
    """Loud noise everywhere except near-silent ``pauses`` [(start s, end s)]."""
    rng = np.random.default_rng(0)
    samples = 0.3 * rng.standard_normal(int(seconds * rate)).astype(np.float32)
    for start, end in pauses:
        samples[int(start * rate) : int(end * rate)] *= 0.001
    return samples


@pytest.fixture(scope="module")
def whisper_exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Whisper + Llama experiment dir (config.yaml + checkpoints/best)."""
    return make_tiny_exp(tmp_path_factory.mktemp("whisper"), "whisper")


@pytest.fixture(scope="module")
def transcriber(whisper_exp: Path) -> Transcriber:
    """Gate off: these tests feed noise as stand-in speech."""
    return load_transcriber(whisper_exp, device=torch.device("cpu"), speech_gate=False)


@pytest.fixture(scope="module")
def gated(whisper_exp: Path) -> Transcriber:
    """As the CLI runs it: speech gate on; trained on a 10-s Whisper window."""
    overrides = ["model.encoder.whisper_pad_window_s=10"]
    return load_transcriber(whisper_exp, overrides=overrides, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def utterances() -> list[np.ndarray]:
    """Eight real-ish utterances (2-4 s) synthesized with eSpeak NG."""
    pytest.importorskip("espeakng_loader", reason="eSpeak NG synthesizes the test speech")
    from slamasr.corpora.espeak import EspeakSynthesizer, VoiceSetting

    synth = EspeakSynthesizer(sample_rate=SR)
    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "She sells sea shells by the sea shore.",
        "A journey of a thousand miles begins with a single step.",
        "Please call me back before noon tomorrow.",
        "The weather was cold and windy all week.",
        "He parked the red car near the old station.",
        "Music filled the room until midnight.",
        "Nobody knew the answer to the last question.",
    ]
    return [synth.synthesize(t, VoiceSetting("en-us", rate=160, pitch=50)) for t in texts]


def join_with_pauses(parts: list[np.ndarray], pause: float) -> tuple[np.ndarray, list]:
    """Concatenate with silent pauses; return the audio and each part's (start, end)."""
    out, spans, pos = [], [], 0
    for part in parts:
        out += [part, np.zeros(int(pause * SR), dtype=np.float32)]
        spans.append((pos, pos + part.shape[0]))
        pos += part.shape[0] + int(pause * SR)
    return np.concatenate(out), spans


def _config(encoder: EncoderConfig, data: DataConfig) -> SimpleNamespace:
    return SimpleNamespace(model=SimpleNamespace(encoder=encoder), data=data)


# --------------------------------------------------------------------------- chunking


def test_chunk_length_comes_from_what_the_experiment_trained_on() -> None:
    """The CPU recipe pads Whisper to a 10-s window: 10-s chunks; otherwise the longest
    training audio (data.max_audio_seconds: 30 s for LibriSpeech)."""
    conf = REPO / "egs/espeak_en/slam_asr/conf/whisper_tiny_en-smollm2_135m.yaml"
    raw = yaml.safe_load(conf.read_text())
    encoder = EncoderConfig(**raw["model"]["encoder"])
    assert trained_max_seconds(_config(encoder, DataConfig())) == 10.0
    encoder.whisper_pad_window_s = 30.0
    assert trained_max_seconds(_config(encoder, DataConfig())) == 30.0
    hubert = EncoderConfig(name="hubert")
    assert trained_max_seconds(_config(hubert, DataConfig(max_audio_seconds=20.0))) == 20.0


def test_long_file_is_cut_between_utterances_within_the_trained_maximum(
    gated: Transcriber, utterances: list[np.ndarray]
) -> None:
    """Eight utterances with 0.7-s pauses (~33 s): every chunk <= 10 s (the trained
    window) and no utterance is cut (each lies inside one chunk, 50 ms tolerance); the same
    without the speech gate, where the pause splitter alone finds the pauses."""
    audio, spans = join_with_pauses(utterances, 0.7)
    tol = int(0.05 * SR)
    assert gated.max_chunk_seconds == 10.0
    detector = gated.detector
    for gate in (detector, None):
        gated.detector = gate
        try:
            bounds = gated.chunk_bounds(audio)
        finally:
            gated.detector = detector
        assert all(0 < b - a <= 10 * SR for a, b in bounds)
        for start, end in spans:
            inside = [(a, b) for a, b in bounds if a <= start + tol and end - tol <= b]
            assert len(inside) == 1, f"utterance {start / SR:.2f}-{end / SR:.2f} s was cut"


def test_whisper_inputs_match_the_data_layer(tmp_path: Path) -> None:
    """Log-mel equals what compute_features + the dataset give (lilcom tolerance); 22000
    samples: Lhotse stores 138 frames, the dataset and transcription keep 137."""
    path = tmp_path / "a.wav"
    sf.write(path, speech_like(1.375, [(0.5, 0.7)]), SR)
    cuts = CutSet.from_cuts([Recording.from_file(path, "a").to_cut()])
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    stored = CutSet.from_file(compute_features(tmp_path / "cuts.jsonl.gz", tmp_path, "whisper_mel"))
    expected = load_cut_input(stored[0], "whisper_mel")  # (T, 80)
    got = InputMaker("whisper_mel", 80)(load_audio(path))
    assert got.shape == expected.shape == (int(1.375 * SR) // 160, 80)
    assert torch.allclose(got, expected, atol=0.05)


# --------------------------------------------------------------------------- audio reading


def test_other_sample_rates_are_resampled(tmp_path: Path) -> None:
    """An 8 kHz stereo file comes back as 16 kHz mono with the same duration."""
    path = tmp_path / "low.wav"
    sf.write(path, np.stack([speech_like(2.0, [], 8000)] * 2, axis=1), 8000)
    samples = load_audio(path)
    assert samples.ndim == 1 and samples.shape[0] == 2 * SR


def test_unreadable_files_raise_errors_naming_them(tmp_path: Path) -> None:
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000 not audio at all" * 20)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioReadError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioReadError, match="junk.wav: cannot read audio"):
        load_audio(tmp_path / "junk.wav")
    with pytest.raises(AudioReadError, match=r"empty.wav: the file is empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioReadError, match="is a directory, not an audio file"):
        load_audio(tmp_path)


# --------------------------------------------------------------------------- loops


def test_loops_are_cut_to_one_copy_and_noted() -> None:
    """What the probes printed on silence and noise; ordinary text passes untouched."""
    text, notes = cut_loops("so " + "there were " * 37 + "gone")
    assert text == "so there were gone" and notes == ["loop cut: 'there were' x37"]
    text, notes = cut_loops("the sentence is " * 8 + "the " * 90)
    assert text == "the sentence is the"
    assert notes == ["loop cut: 'the' x90", "loop cut: 'the sentence is' x8"]
    plain = "he said that that was that and then that"
    assert cut_loops(plain) == (plain, [])


def test_wav_scp_ids_name_outputs_and_pipes_are_refused(tmp_path: Path) -> None:
    scp = tmp_path / "wav.scp"
    scp.write_text("utt1 /data/a.wav\n\nutt2 /data/my file.flac\n")
    assert [(s.name, s.path) for s in read_wav_scp(scp)] == [
        ("utt1", "/data/a.wav"),
        ("utt2", "/data/my file.flac"),
    ]
    scp.write_text("utt1 sox a.wav -t wav - |\n")
    with pytest.raises(ValueError, match="wav.scp:1"):
        read_wav_scp(scp)


# --------------------------------------------------------------------------- end to end


def test_a_70s_file_is_chunked_and_transcribed(
    transcriber: Transcriber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny Whisper exp: a 70 s file -> >= 3 chunks of <= 30 s, one joined transcript."""
    sf.write(tmp_path / "long.wav", speech_like(70.0, [(25.0, 25.5)]), SR)
    seen: list[int] = []
    decode = transcriber._decode

    def spy(batch: list) -> dict:
        seen.extend(len(p.samples) for p in batch)
        return decode(batch)

    monkeypatch.setattr(transcriber, "_decode", spy)
    (result,) = transcriber.transcribe([AudioSource("long", str(tmp_path / "long.wav"))])
    assert result.error is None and isinstance(result.text, str)
    assert result.num_chunks >= 3 and len(seen) == result.num_chunks
    assert max(seen) <= 30 * SR and sum(seen) == 70 * SR


def test_cli_prints_one_line_per_file_and_names_failures(
    whisper_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Good files (8 kHz wav, flac, via --list and --wav-scp) each get `name<TAB>text`;
    a missing file is reported by name on stderr and the exit status is 1."""
    sf.write(tmp_path / "a.wav", speech_like(1.5, [], 8000), 8000)
    sf.write(tmp_path / "b.flac", speech_like(2.0, []), SR)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'b.flac'}\n")
    (tmp_path / "wav.scp").write_text(f"utt-a {tmp_path / 'a.wav'}\n")
    missing = tmp_path / "missing.wav"
    argv = ["--exp-dir", str(whisper_exp), "--set", "train.device=cpu", "--no-vad"]
    files = [str(tmp_path / "a.wav"), str(missing), str(tmp_path / "b.flac")]
    rc = transcribe_bin.main(
        argv
        + files
        + ["--list", str(tmp_path / "list.txt")]
        + ["--wav-scp", str(tmp_path / "wav.scp")]
    )
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert rc == 1
    names = [line.split("\t")[0] for line in lines]
    assert names == [files[0], files[2], str(tmp_path / "b.flac"), "utt-a"]
    assert all(line.count("\t") == 1 for line in lines)
    assert "missing.wav" in err and "no such file" in err
    assert transcribe_bin.main(argv + [files[0]]) == 0


def test_ssl_encoders_need_and_use_a_chunk_limit(tmp_path: Path) -> None:
    """HuBERT reads raw audio; with max_chunk_seconds=4 a 10 s file gives 3 chunks."""
    exp = make_tiny_exp(tmp_path, "hubert")
    default = load_transcriber(exp, device=torch.device("cpu"), speech_gate=False)
    assert default.max_chunk_seconds == 30.0  # data.max_audio_seconds: what it trained on
    t = load_transcriber(exp, device=torch.device("cpu"), max_chunk_seconds=4.0, speech_gate=False)
    assert t.inputs.input_kind == "audio"
    sf.write(tmp_path / "x.wav", speech_like(10.0, [(3.5, 3.8), (7.2, 7.5)]), SR)
    (result,) = t.transcribe([AudioSource("x", str(tmp_path / "x.wav"))])
    assert result.error is None and result.num_chunks == 3


def test_model_failures_become_per_file_errors_in_order(
    transcriber: Transcriber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files go through in small groups, in order; a chunk the model cannot decode turns
    into an error for its file only, never a crash or a silently shortened transcript."""
    paths = []
    for i, seconds in enumerate((1.0, 2.0, 1.5)):
        paths.append(tmp_path / f"f{i}.wav")
        sf.write(paths[-1], speech_like(seconds, []), SR)
    generate = transcriber.model.generate

    def fragile(batch: dict, **kwargs: object) -> list[str]:
        if int(batch["inputs"].shape[1]) == 200:  # the 2 s file: 200 log-mel frames
            raise RuntimeError("simulated out of memory")
        return generate(batch, **kwargs)

    monkeypatch.setattr(transcriber.model, "generate", fragile)
    monkeypatch.setattr(transcriber, "batch_size", 1)
    results = transcriber.transcribe([AudioSource(p.stem, str(p)) for p in paths])
    assert [r.name for r in results] == ["f0", "f1", "f2"]
    assert results[1].text is None and "failed" in results[1].error
    assert results[0].error is None and results[2].error is None


# --------------------------------------------------------------------------- speech gate


def _messages(err: str) -> list[str]:
    """Our stderr lines (transformers' progress bars left out)."""
    return [line for line in err.splitlines() if line.startswith(("warning:", "error:"))]


def test_cli_gives_empty_flagged_lines_for_silence_and_noise_and_clear_errors(
    whisper_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """20 s of silence and of white noise: `name<TAB><TAB># no speech detected`, a warning
    on stderr, exit 0 (the model is never run on them); a directory and a 0-byte file:
    one clear line each, exit 1, no traceback."""
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "silence.wav", np.zeros(20 * SR, dtype=np.float32), SR)
    sf.write(tmp_path / "noise.wav", (0.1 * rng.standard_normal(20 * SR)).astype(np.float32), SR)
    argv = ["--exp-dir", str(whisper_exp), "--set", "train.device=cpu"]
    files = [str(tmp_path / "silence.wav"), str(tmp_path / "noise.wav")]
    assert transcribe_bin.main(argv + files) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{f}\t\t# {NO_SPEECH}" for f in files]
    assert _messages(err) == [f"warning: {f}: {NO_SPEECH}" for f in files]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    assert transcribe_bin.main(argv + [str(tmp_path / "empty.wav"), str(tmp_path / "adir")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert _messages(err) == [
        f"error: {tmp_path / 'empty.wav'}: the file is empty (0 bytes); nothing to transcribe",
        f"error: {tmp_path / 'adir'}: is a directory, not an audio file; pass the files in it "
        f"(e.g. {tmp_path / 'adir'}/*.wav) or list them in a --list file",
    ]


def test_utterance_then_20s_of_silence_decodes_only_the_speech(
    gated: Transcriber,
    utterances: list[np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The silent tail never reaches the model: what is decoded is the utterance (+ the
    gate's margins), and the result carries no flag."""
    audio = np.concatenate([utterances[0], np.zeros(20 * SR, dtype=np.float32)])
    sf.write(tmp_path / "tail.wav", audio, SR)
    seen: list[int] = []
    decode = gated._decode

    def spy(batch: list) -> dict:
        seen.extend(len(p.samples) for p in batch)
        return decode(batch)

    monkeypatch.setattr(gated, "_decode", spy)
    (result,) = gated.transcribe([AudioSource("tail", str(tmp_path / "tail.wav"))])
    assert result.error is None and NO_SPEECH not in result.flags
    assert len(seen) == 1 and abs(seen[0] - utterances[0].shape[0]) < 0.5 * SR


def test_loops_in_the_model_output_are_cut_and_flagged(
    transcriber: Transcriber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that loops: the transcript keeps one copy and the flag names the loop."""
    sf.write(tmp_path / "x.wav", speech_like(2.0, []), SR)
    monkeypatch.setattr(transcriber.model, "generate", lambda batch, **kw: ["hello " + "the " * 30])
    (result,) = transcriber.transcribe([AudioSource("x", str(tmp_path / "x.wav"))])
    assert result.text == "hello the" and result.flags == ["loop cut: 'the' x30"]
