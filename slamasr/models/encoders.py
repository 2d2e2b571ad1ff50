"""Speech encoders behind one interface: ``(inputs, input_lengths) -> (frames, frame_lengths)``.

Registry (``model.encoder.name``):

- ``whisper``: Hugging Face ``WhisperEncoder``; input is Whisper-normalized log-mel, time-major
  ``(B, T, n_mels)`` at 100 frames/s; output 50 frames/s.
- ``hubert`` | ``wavlm`` | ``wav2vec2``: raw 16 kHz waveform ``(B, S)``; output 50 frames/s.
- ``fbank``: no encoder; ``(B, T, feature_dim)`` features pass through unchanged.

Every wrapper exposes ``output_dim``, ``frame_rate_hz`` and ``input_kind``; a frozen wrapper
runs without grad and stays in eval mode whatever ``train()`` is called with.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from slamasr.models.config import EncoderConfig
from slamasr.models.hub import load_pretrained, resolve_dtype

logger = logging.getLogger(__name__)

WHISPER_LOG_FLOOR = -10.0  # log10 of Whisper's 1e-10 clamp: what digital silence gives
WHISPER_DYNAMIC_RANGE = 8.0  # log10 units kept below each utterance's max
_LONG_INPUT_WARNINGS = 10  # inputs over Whisper's window logged at WARNING; then DEBUG


def pad_frames(items: list[torch.Tensor]) -> torch.Tensor:
    """Right-pad ``[(T_i, D)]`` with zeros and stack: ``(B, max T_i, D)``."""
    return torch.nn.utils.rnn.pad_sequence(items, batch_first=True)


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class SpeechEncoder(nn.Module, abc.ABC):
    """Base class: freezing behaviour and the shared interface.

    Attributes:
        output_dim: width D of the output frames.
        frame_rate_hz: output frames per second.
        input_kind: whisper_mel | audio | fbank (what the data layer must provide).
        frozen: no grad, eval mode.
        autocast_dtype: run under this autocast dtype of its own (float32 = none), whatever
            the caller's; None = the caller's (``model.encoder.autocast``).
    """

    output_dim: int
    frame_rate_hz: float
    input_kind: str
    autocast_dtype: Optional[torch.dtype] = None

    def __init__(self, frozen: bool) -> None:
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> None:
        """Make every parameter non-trainable and switch to eval mode."""
        self.frozen = True
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> SpeechEncoder:
        """Switch train/eval; a frozen encoder always stays in eval mode."""
        return super().train(mode and not self.frozen)

    def forward(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Args:
            inputs: ``(B, T, F)`` features or ``(B, S)`` waveform, padded.
            input_lengths: ``(B,)`` valid frames or samples.

        Returns:
            frames ``(B, T_enc, D)`` and frame_lengths ``(B,)``.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            with self._own_autocast(inputs.device):
                return self.encode(inputs, input_lengths)

    def _own_autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The encoder's own autocast (``autocast_dtype``), or nothing to change."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        if self.autocast_dtype == torch.float32:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    @abc.abstractmethod
    def encode(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Subclass hook doing the work of :meth:`forward` (each encoder implements it)."""


# --------------------------------------------------------------------------- whisper


def whisper_pad_value(mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-utterance value Whisper's feature extractor gives zero-padded audio frames.

    WhisperFeatureExtractor computes ``L = log10(max(mel, 1e-10))``, floors it at
    ``max(L) - 8`` and normalizes ``(L + 4) / 4``.  Zero audio gives ``L = -10``, so after the
    floor and normalization a padded frame is ``max(-1.5, M - 2)`` where ``M`` is the maximum
    of the normalized log-mel over the utterance's real frames.

    Args:
        mel: ``(B, T, n_mels)`` Whisper-normalized log-mel.
        lengths: ``(B,)`` valid frames.

    Returns:
        ``(B,)`` pad values.
    """
    valid = lengths_to_mask(lengths, mel.shape[1])[:, :, None]  # (B, T, 1)
    top = mel.masked_fill(~valid, float("-inf")).amax(dim=(1, 2))  # (B,)
    floor = (WHISPER_LOG_FLOOR + 4.0) / 4.0
    return torch.clamp(top - WHISPER_DYNAMIC_RANGE / 4.0, min=floor)


def pad_whisper_mel(mel: torch.Tensor, lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Pad (or refill) each utterance's log-mel past its length with its Whisper pad value.

    Args:
        mel: ``(B, T, n_mels)`` with ``T <= num_frames``.
        lengths: ``(B,)`` valid frames.
        num_frames: output length (3000 for 30 s).

    Returns:
        ``(B, num_frames, n_mels)``.
    """
    batch, frames, n_mels = mel.shape
    pad = whisper_pad_value(mel, lengths)  # (B,)
    out = pad[:, None, None].to(mel.dtype).expand(batch, num_frames, n_mels).clone()
    out[:, :frames] = mel
    valid = lengths_to_mask(lengths, num_frames)[:, :, None]  # (B, num_frames, 1)
    return torch.where(valid, out, pad[:, None, None].to(mel.dtype))


class WhisperSpeechEncoder(SpeechEncoder):
    """Whisper's encoder, run layer by layer so inputs need not be exactly 3000 frames.

    Args:
        encoder: a Hugging Face ``WhisperEncoder``.
        pad_to_30s: pad the log-mel with Whisper's silence value (paper); else run on the
            batch's longest utterance with padded frames masked out of attention.
        trim_output: cut the output to ``ceil(T/2)`` frames per utterance; when false and
            padded to 30 s, all 1500 frames are kept for every utterance.
        frozen: freeze the encoder.
        window_frames: with ``pad_to_30s``, each utterance is padded to the next multiple of
            this many log-mel frames (3000 = 30 s, the paper), as if encoded alone.

    An utterance longer than Whisper's 30 s (a few LibriSpeech dev/test cuts, up to 35 s)
    is encoded in pieces cut at pauses and its frames joined (``_encode_long``); the
    official code trims such input to 30 s, which drops words.
    """

    input_kind = "whisper_mel"
    frame_rate_hz = 50.0

    def __init__(
        self,
        encoder: nn.Module,
        pad_to_30s: bool,
        trim_output: bool,
        frozen: bool,
        window_frames: int | None = None,
    ) -> None:
        super().__init__(frozen)
        self.encoder = encoder
        self.pad_to_30s = pad_to_30s
        self.trim_output = trim_output
        self.output_dim = encoder.config.d_model
        self.n_mels = encoder.config.num_mel_bins
        self.max_frames = encoder.config.max_source_positions * 2
        self.window_frames = min(window_frames or self.max_frames, self.max_frames)
        self.num_long_inputs = 0  # inputs longer than the window, encoded in pieces
        if frozen:
            self.freeze()

    def encode(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`SpeechEncoder.forward`; ``inputs`` is ``(B, T, n_mels)`` log-mel.

        Utterances longer than the window (30 s) are encoded in pieces cut at pauses
        (:meth:`_encode_long`).
        """
        self._check_input(inputs)
        if inputs.shape[1] > self.max_frames:
            return self._encode_long(inputs, input_lengths)
        return self._encode_window(inputs, input_lengths)

    def _encode_window(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch whose utterances fit the window (``T <= max_frames``)."""
        out_lengths = (input_lengths + 1) // 2  # ceil(T/2): the stride-2 conv
        if self.pad_to_30s and self.window_frames < self.max_frames and self.trim_output:
            # each utterance padded to the next multiple of the window, as if alone
            window = self.window_frames
            padded = torch.clamp(
                (input_lengths + window - 1) // window * window, max=self.max_frames
            )
            mel = pad_whisper_mel(inputs, input_lengths, int(padded.max()))  # (B, T_w, M)
            frames = self._run(mel, padded)  # (B, T_w/2, D)
        elif self.pad_to_30s:
            mel = pad_whisper_mel(inputs, input_lengths, self.max_frames)  # (B, 3000, M)
            frames = self._run(mel, None)  # (B, 1500, D)
            if not self.trim_output:
                full = torch.full_like(out_lengths, frames.shape[1])
                return frames, full
        else:
            # as if each utterance ran alone: the convs' own zero padding past its end
            valid = lengths_to_mask(input_lengths, inputs.shape[1])[:, :, None]
            mel = inputs * valid.to(inputs.dtype)  # (B, T, M)
            frames = self._run(mel, input_lengths)  # (B, ceil(T/2), D)
        return frames[:, : int(out_lengths.max())], out_lengths

    def _check_input(self, inputs: torch.Tensor) -> None:
        if inputs.dim() != 3 or inputs.shape[2] != self.n_mels:
            raise ValueError(
                f"whisper encoder expects time-major log-mel (B, T, {self.n_mels}); "
                f"got shape {tuple(inputs.shape)}"
            )

    def _encode_long(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch holding utterances longer than the window.

        Utterances that fit are encoded together as usual; each longer one is cut at pauses
        (``slamasr.data.segment.pause_bounds`` on its log-mel loudness) into pieces of at
        most ``max_frames`` (an even number of frames each but the last), each piece is
        encoded alone and the trimmed outputs are concatenated: ``ceil(T/2)`` frames, as
        one window would give. The LLM then sees the whole utterance, so decoding gives one
        hypothesis and the validation loss uses the full transcript.

        Returns:
            frames ``(B, T_enc, D)`` and frame_lengths ``(B,)``.
        """
        long = input_lengths > self.max_frames  # (B,)
        outputs: list[Optional[torch.Tensor]] = [None] * inputs.shape[0]
        lengths = torch.zeros_like(input_lengths)
        fit = torch.nonzero(~long).flatten()
        if fit.numel():
            frames, fit_lengths = self._encode_window(
                inputs[fit, : self.max_frames], input_lengths[fit]
            )
            for row, b in enumerate(fit.tolist()):
                outputs[b], lengths[b] = frames[row], fit_lengths[row]
        for b in torch.nonzero(long).flatten().tolist():
            outputs[b] = self._encode_in_pieces(inputs[b, : int(input_lengths[b])])
            lengths[b] = outputs[b].shape[0]
        return pad_frames(outputs), lengths

    def _encode_in_pieces(self, mel: torch.Tensor) -> torch.Tensor:
        """One ``(T, n_mels)`` log-mel longer than the window -> ``(ceil(T/2), D)`` frames."""
        from slamasr.data.segment import pause_bounds

        # Whisper-normalized log-mel x = (log10(mel) + 4) / 4, so 40 x is dB up to an offset
        loudness = 40.0 * mel.float().mean(dim=1).cpu().numpy()  # (T,)
        bounds = pause_bounds(loudness, self.max_frames, min_len=50, smooth=20, multiple=2)
        pieces = []
        for start, end in bounds:
            piece = mel[None, start:end]  # (1, t, n_mels)
            frames, _ = self._encode_window(piece, torch.tensor([end - start]))
            pieces.append(frames[0, : (end - start + 1) // 2])  # real frames, even untrimmed
        self.num_long_inputs += 1
        level = logging.WARNING if self.num_long_inputs <= _LONG_INPUT_WARNINGS else logging.DEBUG
        logger.log(
            level,
            "whisper input of %.2f s is longer than the %.0f-s window: encoded in %d pieces "
            "(%s s) cut at pauses; %d such inputs so far",
            mel.shape[0] / 100,
            self.max_frames / 100,
            len(bounds),
            " + ".join(f"{(end - start) / 100:.2f}" for start, end in bounds),
            self.num_long_inputs,
        )
        return torch.cat(pieces)  # (ceil(T/2), D)

    def _run(self, mel: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """Conv front-end, positions, layers, final norm; mask padding when lengths given."""
        enc = self.encoder
        x = mel.transpose(1, 2).to(enc.conv1.weight.dtype)  # (B, M, T)
        x = nn.functional.gelu(enc.conv1(x))  # (B, D, T)
        if lengths is not None:
            # zero conv1 outputs past each length: what a lone utterance's conv padding sees
            x = x * lengths_to_mask(lengths, x.shape[2])[:, None, :].to(x.dtype)
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)  # (B, T2, D)
        x = x + enc.embed_positions.weight[: x.shape[1]].to(x.dtype)
        x = nn.functional.dropout(x, p=enc.dropout, training=enc.training)
        mask = None
        if lengths is not None:
            valid = lengths_to_mask((lengths + 1) // 2, x.shape[1])  # (B, T2)
            mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~valid, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in enc.layers:
            x = layer(x, mask)
            x = x[0] if isinstance(x, tuple) else x
        return enc.layer_norm(x)  # (B, T2, D)


def load_whisper_encoder(cfg: EncoderConfig, device: str | torch.device) -> WhisperSpeechEncoder:
    """Load the encoder half of a Whisper checkpoint (the decoder is dropped)."""
    from transformers import WhisperModel

    dtype = resolve_dtype(cfg.dtype, device)
    model = load_pretrained(WhisperModel.from_pretrained, cfg.path, "whisper encoder", dtype=dtype)
    encoder = model.get_encoder()
    del model
    window = round(cfg.whisper_pad_window_s * 100)  # log-mel frames at 100 Hz
    return WhisperSpeechEncoder(
        encoder, cfg.whisper_pad_to_30s, cfg.whisper_trim_output, cfg.freeze, window
    ).to(device)


# --------------------------------------------------------------------------- SSL encoders


def normalize_waveforms(wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-variance each waveform over its valid samples; padding stays 0.

    Args:
        wav: ``(B, S)``.
        lengths: ``(B,)`` valid samples.

    Returns:
        ``(B, S)`` normalized waveforms.
    """
    valid = lengths_to_mask(lengths, wav.shape[1]).to(wav.dtype)  # (B, S)
    count = lengths.clamp(min=1).to(wav.dtype)[:, None]  # (B, 1)
    mean = (wav * valid).sum(1, keepdim=True) / count
    var = (((wav - mean) * valid) ** 2).sum(1, keepdim=True) / count
    return (wav - mean) / torch.sqrt(var + 1e-7) * valid


class SSLSpeechEncoder(SpeechEncoder):
    """HuBERT / WavLM / wav2vec 2.0 on raw 16 kHz audio.

    Args:
        model: a Hugging Face ``HubertModel``, ``WavLMModel`` or ``Wav2Vec2Model``.
        use_attention_mask: pass the padding mask (checkpoints with ``feat_extract_norm ==
            "layer"``); otherwise padding is zeros and unmasked, as those models were trained.
        normalize: zero-mean/unit-variance each waveform first.
        frozen: freeze the encoder.
    """

    input_kind = "audio"

    def __init__(
        self, model: nn.Module, use_attention_mask: bool, normalize: bool, frozen: bool
    ) -> None:
        super().__init__(frozen)
        self.model = model
        self.use_attention_mask = use_attention_mask
        self.normalize = normalize
        self.output_dim = model.config.hidden_size
        stride = 1
        for s in model.config.conv_stride:
            stride *= s
        self.frame_rate_hz = 16000.0 / stride
        if frozen:
            self.freeze()

    def encode(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`SpeechEncoder.forward`; ``inputs`` is ``(B, S)`` waveform."""
        if inputs.dim() != 2:
            raise ValueError(f"SSL encoder expects a (B, S) waveform; got {tuple(inputs.shape)}")
        valid = lengths_to_mask(input_lengths, inputs.shape[1])  # (B, S)
        wav = inputs.float() * valid
        if self.normalize:
            wav = normalize_waveforms(wav, input_lengths)
        wav = wav.to(next(self.model.parameters()).dtype)
        mask = valid.long() if self.use_attention_mask else None
        frames = self.model(wav, attention_mask=mask).last_hidden_state  # (B, T, D)
        out_lengths = self.model._get_feat_extract_output_lengths(input_lengths).long()
        out_lengths = out_lengths.clamp(max=frames.shape[1])
        return frames[:, : int(out_lengths.max())], out_lengths


SSL_CLASSES = {"hubert": "HubertModel", "wavlm": "WavLMModel", "wav2vec2": "Wav2Vec2Model"}


def _feature_extractor_normalize(path: str) -> Optional[bool]:
    """``do_normalize`` from a local dir's preprocessor_config.json, if present."""
    cfg_file = Path(path).expanduser() / "preprocessor_config.json"
    if not cfg_file.is_file():
        return None
    with open(cfg_file, encoding="utf-8") as f:
        value = json.load(f).get("do_normalize")
    return None if value is None else bool(value)


def load_ssl_encoder(cfg: EncoderConfig, device: str | torch.device) -> SSLSpeechEncoder:
    """Load a HuBERT / WavLM / wav2vec 2.0 checkpoint (fine-tuned CTC heads are dropped)."""
    import transformers

    model_cls = getattr(transformers, SSL_CLASSES[cfg.name])
    dtype = resolve_dtype(cfg.dtype, device)
    model = load_pretrained(model_cls.from_pretrained, cfg.path, f"{cfg.name} encoder", dtype=dtype)
    use_mask = model.config.feat_extract_norm == "layer"
    normalize = cfg.normalize_waveform
    if normalize is None:
        normalize = _feature_extractor_normalize(cfg.path)
    if normalize is None:
        normalize = use_mask
    logger.info(
        "%s encoder: attention mask %s, waveform normalization %s", cfg.name, use_mask, normalize
    )
    return SSLSpeechEncoder(model, use_mask, normalize, cfg.freeze).to(device)


# --------------------------------------------------------------------------- fbank


class FbankPassThrough(SpeechEncoder):
    """No encoder: Kaldi fbank features go straight to the downsampler (paper Table 4)."""

    input_kind = "fbank"
    frame_rate_hz = 100.0

    def __init__(self, feature_dim: int) -> None:
        super().__init__(frozen=True)
        self.output_dim = feature_dim

    def encode(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the features unchanged (padding zeroed), checking their width."""
        if inputs.dim() != 3 or inputs.shape[2] != self.output_dim:
            raise ValueError(
                f"fbank input must be (B, T, {self.output_dim}); got {tuple(inputs.shape)}"
            )
        valid = lengths_to_mask(input_lengths, inputs.shape[1])[:, :, None]  # (B, T, 1)
        return inputs * valid.to(inputs.dtype), input_lengths


def load_fbank(cfg: EncoderConfig, device: str | torch.device) -> FbankPassThrough:
    """Build the identity "encoder" for fbank features."""
    return FbankPassThrough(cfg.feature_dim).to(device)


ENCODER_REGISTRY: dict[str, Callable[[EncoderConfig, str | torch.device], SpeechEncoder]] = {
    "whisper": load_whisper_encoder,
    "hubert": load_ssl_encoder,
    "wavlm": load_ssl_encoder,
    "wav2vec2": load_ssl_encoder,
    "fbank": load_fbank,
}


def build_encoder(cfg: EncoderConfig, device: str | torch.device = "cpu") -> SpeechEncoder:
    """Build the encoder named by ``cfg.name`` from ``cfg.path``.

    Args:
        cfg: the ``model.encoder`` section.
        device: target device.

    Returns:
        A :class:`SpeechEncoder`, frozen unless ``cfg.freeze`` is false.
    """
    cfg.validate()
    encoder = ENCODER_REGISTRY[cfg.name](cfg, device)
    if cfg.autocast:
        encoder.autocast_dtype = resolve_dtype(cfg.autocast, device)
    if not cfg.freeze:
        encoder.frozen = False
        encoder.requires_grad_(True)
    return encoder
