"""Encoder wrappers: Whisper padding/trimming, SSL masks and lengths, fbank, freezing, loading."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from slamasr.models.config import EncoderConfig
from slamasr.models.encoders import build_encoder, pad_whisper_mel, whisper_pad_value
from slamasr.models.hub import ModelLoadError
from tests.helpers import dump_json, make_tiny_encoder


def _fading_tone(seconds: float) -> np.ndarray:
    """A chirp loudest mid-way and fading out, so the log-mel max is far from the end."""
    t = np.arange(int(seconds * 16000)) / 16000.0
    env = np.sin(np.pi * t / seconds) ** 2
    return (0.5 * env * np.sin(2 * np.pi * (200 + 800 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("seconds", [1.37, 4.0])
def test_whisper_pad_value_matches_feature_extractor(seconds: float) -> None:
    """Padding the unpadded log-mel reproduces WhisperFeatureExtractor on zero-padded audio."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=80)
    audio = _fading_tone(seconds)
    real = fe(audio, sampling_rate=16000, padding="longest", return_tensors="np")
    real = torch.from_numpy(real["input_features"][0].T)  # (T, 80) on unpadded audio
    padded_ref = fe(audio, sampling_rate=16000, return_tensors="np")["input_features"][0].T
    padded_ref = torch.from_numpy(padded_ref)  # (3000, 80) on zero-padded audio
    frames = real.shape[0]
    ours = pad_whisper_mel(real[None], torch.tensor([frames]), 3000)[0]  # (3000, 80)
    away = torch.ones(3000, dtype=torch.bool)
    away[frames - 3 : frames + 3] = False  # STFT windows straddling the audio's end differ
    torch.testing.assert_close(ours[away], padded_ref[away], atol=2e-4, rtol=0)
    pad = whisper_pad_value(real[None], torch.tensor([frames]))
    assert torch.allclose(padded_ref[-1], pad.expand(80), atol=2e-4)


def test_whisper_pad_value_ignores_padding_and_floors_silence() -> None:
    """The pad value depends only on the real frames; silence gives the -1.5 floor."""
    mel = torch.full((2, 10, 80), -1.5)
    mel[0, :4] = 0.7
    mel[0, 6:] = 5.0  # past length 5: must not count
    pad = whisper_pad_value(mel, torch.tensor([5, 10]))
    assert torch.allclose(pad, torch.tensor([0.7 - 2.0, -1.5]))


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_encoder("whisper", tmp_path_factory.mktemp("whisper"))


def _whisper(path: Path, **kwargs: bool) -> torch.nn.Module:
    return build_encoder(EncoderConfig(name="whisper", path=str(path), **kwargs))


def _mel_batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    mel = (0.3 * torch.randn(len(lengths), max(lengths), 80, generator=gen)).clamp(-1, 1.5)
    lens = torch.tensor(lengths)
    mel = mel * (torch.arange(max(lengths))[None, :, None] < lens[:, None, None])
    return mel, lens


@pytest.mark.parametrize("pad_to_30s", [True, False])
def test_whisper_lengths_and_batch_invariance(whisper_dir: Path, pad_to_30s: bool) -> None:
    """Output lengths are ceil(T/2); an utterance's real frames do not depend on the batch."""
    enc = _whisper(whisper_dir, whisper_pad_to_30s=pad_to_30s)
    mel, lens = _mel_batch([101, 64, 37])
    mel[1, 64:] = 9.0  # garbage past the length must not matter
    frames, out_lens = enc(mel, lens)
    assert out_lens.tolist() == [51, 32, 19]
    assert frames.shape == (3, 51, enc.output_dim)
    for i, n in enumerate(lens.tolist()):
        alone, _ = enc(mel[i : i + 1, :n], lens[i : i + 1])
        torch.testing.assert_close(frames[i, : out_lens[i]], alone[0], atol=1e-5, rtol=1e-5)


def test_whisper_pad_window_pads_each_utterance_alone_to_window_multiples(
    whisper_dir: Path,
) -> None:
    """A short window pads every utterance to the next window multiple, batch-invariantly."""
    from slamasr.models.encoders import pad_whisper_mel

    enc = _whisper(whisper_dir, whisper_pad_window_s=0.5)  # 50 log-mel frames
    assert enc.window_frames == 50
    mel, lens = _mel_batch([101, 64, 37])
    mel[1, 64:] = 9.0  # garbage past the length must not matter
    frames, out_lens = enc(mel, lens)
    assert out_lens.tolist() == [51, 32, 19]
    for i, (n, window) in enumerate(zip(lens.tolist(), [150, 100, 50])):
        alone = pad_whisper_mel(mel[i : i + 1, :n], lens[i : i + 1], window)  # (1, W, 80)
        expected = enc._run(alone, None)[0, : out_lens[i]]
        torch.testing.assert_close(frames[i, : out_lens[i]], expected, atol=1e-4, rtol=1e-4)
    full = _whisper(whisper_dir)(mel, lens)[0]
    assert not torch.allclose(frames[2, :19], full[2, :19], atol=1e-3)
    assert torch.equal(_whisper(whisper_dir, whisper_pad_window_s=30.0)(mel, lens)[0], full)


def test_whisper_untrimmed_keeps_1500_frames(whisper_dir: Path) -> None:
    enc = _whisper(whisper_dir, whisper_trim_output=False)
    mel, lens = _mel_batch([50, 20])
    frames, out_lens = enc(mel, lens)
    assert frames.shape[1] == 1500 and out_lens.tolist() == [1500, 1500]
    trimmed, _ = _whisper(whisper_dir)(mel, lens)
    torch.testing.assert_close(frames[:, :25], trimmed, atol=1e-5, rtol=1e-5)


def _long_mel_with_pause(frames: int, pause: tuple[int, int]) -> torch.Tensor:
    """(frames, 80) speech-like log-mel with Whisper's silence value inside ``pause``."""
    gen = torch.Generator().manual_seed(1)
    mel = (0.3 * torch.randn(frames, 80, generator=gen)).clamp(-1, 1.5)
    mel[pause[0] : pause[1]] = -1.5
    return mel


@pytest.mark.parametrize("trim", [True, False])
def test_whisper_encodes_inputs_over_30s_in_pieces_cut_at_a_pause(
    whisper_dir: Path, trim: bool, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """A 35.16-s input (dev-other's longest cut) beside a 4-s one: the long one is encoded
    in two pieces of <= 30 s cut inside its pause at 16.0-16.4 s, its frames joined to
    ceil(T/2); the short one is encoded as usual; the event is counted and logged."""
    enc = _whisper(whisper_dir, whisper_trim_output=trim)
    long = _long_mel_with_pause(3516, (1600, 1640))
    mel = torch.zeros(2, 3516, 80)
    mel[0], mel[1, :400] = long, long[:400]
    lens = torch.tensor([3516, 400])
    pieces: list[int] = []
    encode_window = enc._encode_window

    def spy(inputs: torch.Tensor, lengths: torch.Tensor) -> tuple:
        pieces.extend(lengths.tolist())
        return encode_window(inputs, lengths)

    monkeypatch.setattr(enc, "_encode_window", spy)
    with caplog.at_level("WARNING"):
        frames, out_lens = enc(mel, lens)
    short_len = 200 if trim else 1500
    assert out_lens.tolist() == [1758, short_len]
    assert frames.shape == (2, 1758, enc.output_dim)
    assert pieces[0] == 400 and len(pieces) == 3  # the short one, then the two pieces
    cut = pieces[1]
    assert 1600 <= cut <= 1640 and cut % 2 == 0 and cut + pieces[2] == 3516
    assert max(pieces) <= 3000
    monkeypatch.setattr(enc, "_encode_window", encode_window)
    first, _ = enc(long[None, :cut], torch.tensor([cut]))
    second, _ = enc(long[None, cut:], torch.tensor([3516 - cut]))
    joined = torch.cat([first[0, : cut // 2], second[0, : (3516 - cut + 1) // 2]])
    torch.testing.assert_close(frames[0], joined, atol=1e-5, rtol=1e-5)
    alone, _ = enc(mel[1:, :400], lens[1:])
    torch.testing.assert_close(frames[1, :short_len], alone[0], atol=1e-5, rtol=1e-5)
    assert enc.num_long_inputs == 1
    assert "35.16 s is longer than the 30-s window: encoded in 2 pieces" in caplog.text


@pytest.mark.parametrize("name", ["hubert", "wavlm", "wav2vec2"])
def test_ssl_masked_padding_invariance(tmp_path: Path, name: str) -> None:
    """Layer-norm checkpoints get a mask: padding changes neither lengths nor real frames."""
    path = make_tiny_encoder(name, tmp_path / name, feat_extract_norm="layer")
    enc = build_encoder(EncoderConfig(name=name, path=str(path)))
    assert enc.use_attention_mask and enc.normalize
    gen = torch.Generator().manual_seed(1)
    lens = torch.tensor([8000, 5000])
    wav = 0.1 * torch.randn(2, 8000, generator=gen)  # (B, S); [1, 5000:] is junk padding
    frames, out_lens = enc(wav, lens)
    expected = [math.floor(n / 320) if n % 320 >= 80 else n // 320 for n in lens.tolist()]
    assert out_lens.tolist() == enc.model._get_feat_extract_output_lengths(lens).tolist()
    assert abs(out_lens[0] - expected[0]) <= 1 and frames.shape[1] == int(out_lens.max())
    alone, alone_len = enc(wav[1:, :5000], lens[1:])
    assert alone_len.tolist() == out_lens[1:].tolist()
    torch.testing.assert_close(frames[1, : out_lens[1]], alone[0], atol=1e-4, rtol=1e-4)


def test_ssl_group_norm_has_no_mask_and_zero_padding(tmp_path: Path) -> None:
    """Group-norm checkpoints run unmasked on zero padding; normalization follows the dir."""
    path = make_tiny_encoder("hubert", tmp_path / "h")
    enc = build_encoder(EncoderConfig(name="hubert", path=str(path)))
    assert not enc.use_attention_mask and not enc.normalize
    dump_json({"do_normalize": True}, path / "preprocessor_config.json")
    enc = build_encoder(EncoderConfig(name="hubert", path=str(path)))
    assert enc.normalize
    wav = torch.randn(2, 4000)
    frames, lens = enc(wav, torch.tensor([4000, 3200]))
    zeroed = wav.clone()
    zeroed[1, 3200:] = 0.0
    same, _ = enc(zeroed, torch.tensor([4000, 3200]))
    torch.testing.assert_close(frames, same)  # junk past the length is replaced by zeros
    assert lens.tolist() == [12, 9] and enc.frame_rate_hz == 50.0


def test_fbank_pass_through() -> None:
    enc = build_encoder(EncoderConfig(name="fbank", feature_dim=80))
    x = torch.randn(2, 9, 80)
    frames, lens = enc(x, torch.tensor([9, 4]))
    assert torch.equal(frames[0], x[0]) and frames[1, 4:].abs().sum() == 0
    assert lens.tolist() == [9, 4] and enc.output_dim == 80
    with pytest.raises(ValueError, match="80"):
        enc(torch.randn(1, 9, 40), torch.tensor([9]))


def test_frozen_encoder_stays_eval_without_grad(whisper_dir: Path) -> None:
    enc = _whisper(whisper_dir)
    enc.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    frames, _ = enc(*_mel_batch([20]))
    assert not frames.requires_grad
    tuned = _whisper(whisper_dir, freeze=False)
    tuned.train()
    assert tuned.training and tuned(*_mel_batch([20]))[0].requires_grad


def test_unreachable_hub_id_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """An uncached hub id offline fails at once, naming the path and asking for a local dir."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-whisper.*local dir"):
        build_encoder(EncoderConfig(name="whisper", path="no-such-org/no-such-whisper"))
    assert time.time() - start < 10
    with pytest.raises(ModelLoadError, match="not a directory"):
        build_encoder(EncoderConfig(name="hubert", path="/nonexistent/hubert"))
