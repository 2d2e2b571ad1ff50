"""Transcribing your own audio: chunking on silence, resampling, inputs as the data layer
computes them, and the CLI's one-line-per-file output with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording

from slamasr.bin import transcribe as transcribe_bin
from slamasr.data.dataset import load_cut_input
from slamasr.data.features import compute_features
from slamasr.transcribe import (
    AudioReadError,
    AudioSource,
    InputMaker,
    Transcriber,
    load_audio,
    load_transcriber,
    read_wav_scp,
    split_on_silence,
)
from tests.test_reliability import make_tiny_exp

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
    return load_transcriber(whisper_exp, device=torch.device("cpu"))


# --------------------------------------------------------------------------- chunking


def test_long_audio_is_cut_in_its_pauses() -> None:
    """70 s with pauses at 22-23 s and 47-48 s: 3 chunks <= 30 s, each cut inside a pause."""
    samples = speech_like(70.0, [(22.0, 23.0), (47.0, 48.0)])
    chunks = split_on_silence(samples, max_seconds=30.0, search_seconds=10.0)
    assert len(chunks) == 3
    assert all(len(c) <= 30 * SR for c in chunks)
    assert np.array_equal(np.concatenate(chunks), samples)
    cuts = np.cumsum([len(c) for c in chunks])[:-1] / SR
    assert 22.0 < cuts[0] < 23.0 and 47.0 < cuts[1] < 48.0


def test_audio_without_pauses_is_cut_at_the_limit_and_nothing_is_lost() -> None:
    """No silence: chunks stay within the limit, cover every sample, none is tiny."""
    samples = speech_like(70.0, [])
    chunks = split_on_silence(samples, max_seconds=30.0)
    assert len(chunks) == 3 and all(SR * 0.5 <= len(c) <= 30 * SR for c in chunks)
    assert np.array_equal(np.concatenate(chunks), samples)
    assert split_on_silence(samples[: 10 * SR], 30.0)[0].shape == (10 * SR,)


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
    with pytest.raises(AudioReadError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioReadError, match="junk.wav: cannot read audio"):
        load_audio(tmp_path / "junk.wav")


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
    argv = ["--exp-dir", str(whisper_exp), "--set", "train.device=cpu"]
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
    with pytest.raises(ValueError, match="max_chunk_seconds"):
        load_transcriber(exp, device=torch.device("cpu"), max_chunk_seconds=None)
    t = load_transcriber(exp, device=torch.device("cpu"), max_chunk_seconds=4.0)
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
