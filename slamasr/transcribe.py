"""Transcribe arbitrary audio files with a trained experiment, long files included.

Each file is read with Lhotse (any format it knows), resampled to 16 kHz and down-mixed to
mono.  A file longer than the encoder's window (30 s for Whisper; a configurable maximum for
the others) is split into chunks: each cut is placed at the quietest short frame within a
search window before the limit, so boundaries fall in pauses when the audio has any.  The
chunks get the encoder inputs the data layer would give them (``slamasr.data.features``
extractors, the dataset's Whisper frame count), are decoded in batches with
``slamasr.decoding`` (a failing batch is retried chunk by chunk), and the pieces of each
file are joined with spaces.

Example::

    transcriber = load_transcriber(Path("exp/whisper_tiny"), checkpoint="best")
    for result in transcriber.transcribe([AudioSource("a", "a.flac")]):
        print(result.name, result.text)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from slamasr.data.dataset import pad_stack, whisper_num_frames
from slamasr.data.features import make_extractor
from slamasr.data.manifests import SAMPLE_RATE
from slamasr.decoding import decode_loader, load_trainable_weights
from slamasr.decoding_config import DecodeConfig

DEFAULT_SEARCH_SECONDS = 5.0  # look this far back from the limit for a pause
ENERGY_FRAME_SECONDS = 0.025  # energy is measured on frames of this length
MIN_CHUNK_SECONDS = 0.5  # never leave a last chunk shorter than this


class AudioReadError(OSError):
    """An input file could not be read; the message names the file."""


@dataclass
class AudioSource:
    """One input: the name printed with its transcript and the file to read."""

    name: str
    path: str


@dataclass
class Transcript:
    """Result for one input: ``text`` (None on failure), ``error`` and chunk count."""

    name: str
    text: Optional[str]
    error: Optional[str] = None
    num_chunks: int = 0


# --------------------------------------------------------------------------- inputs


def sources_from_paths(paths: Sequence[str | Path]) -> list[AudioSource]:
    """Audio paths -> sources named by the path as given."""
    return [AudioSource(str(p), str(p)) for p in paths]


def read_path_list(list_file: str | Path) -> list[AudioSource]:
    """A text file with one audio path per line (blank lines and ``#`` comments skipped)."""
    lines = Path(list_file).read_text(encoding="utf-8").splitlines()
    return sources_from_paths([ln.strip() for ln in lines if ln.strip() and ln[0] != "#"])


def read_wav_scp(wav_scp: str | Path) -> list[AudioSource]:
    """Parse a Kaldi ``wav.scp``: ``<utt-id> <path>`` per line; the id names the output.

    Raises:
        ValueError: a line without a path, or a piped command (``... |``), which is not run.
    """
    sources = []
    for lineno, line in enumerate(Path(wav_scp).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or parts[1].rstrip().endswith("|"):
            raise ValueError(
                f"{wav_scp}:{lineno}: expected '<utt-id> <audio path>' (commands are not run)"
            )
        sources.append(AudioSource(parts[0], parts[1].strip()))
    return sources


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any Lhotse-readable file as a mono float32 waveform at ``sample_rate``.

    Raises:
        AudioReadError: the file is missing, unreadable or empty (message names it).
    """
    from lhotse import Recording

    path = Path(path)
    if not path.is_file():
        raise AudioReadError(f"{path}: no such file")
    try:
        recording = Recording.from_file(path)
        if recording.sampling_rate != sample_rate:
            recording = recording.resample(sample_rate)
        samples = recording.load_audio()  # (C, S)
    except Exception as e:  # any decoder failure: corrupt header, unknown format ...
        raise AudioReadError(f"{path}: cannot read audio ({type(e).__name__}: {e})") from e
    if samples.shape[-1] == 0:
        raise AudioReadError(f"{path}: the file holds no audio samples")
    return samples.mean(axis=0).astype(np.float32)  # (S,)


# --------------------------------------------------------------------------- chunking


def frame_energies(samples: np.ndarray, frame_len: int) -> np.ndarray:
    """Mean square of consecutive non-overlapping frames (a partial last frame is dropped)."""
    count = samples.shape[0] // frame_len
    frames = samples[: count * frame_len].reshape(count, frame_len).astype(np.float64)
    return (frames**2).mean(axis=1)  # (count,)


def quietest_point(samples: np.ndarray, lo: int, hi: int, frame_len: int) -> int:
    """Sample index in ``[lo, hi]`` at the middle of the lowest-energy frame there.

    Falls back to ``hi`` when the window holds less than one frame.
    """
    energies = frame_energies(samples[lo:hi], frame_len)
    if energies.size == 0:
        return hi
    return lo + int(np.argmin(energies)) * frame_len + frame_len // 2


def split_points(
    samples: np.ndarray,
    max_len: int,
    search_len: int,
    frame_len: int,
    min_len: int = 0,
) -> list[tuple[int, int]]:
    """Chunk boundaries ``[(start, end), ...]`` covering ``samples``, each <= ``max_len``.

    Each cut is made at the quietest frame in ``[limit - search_len, limit]`` where ``limit``
    is ``start + max_len`` (moved earlier when the rest would be shorter than ``min_len``).

    Args:
        samples: (S,) waveform.
        max_len: longest chunk, in samples.
        search_len: how far before the limit a cut may go, in samples.
        frame_len: energy frame length, in samples.
        min_len: shortest allowed last chunk, in samples.

    Returns:
        Consecutive ``(start, end)`` pairs from 0 to ``len(samples)``.
    """
    if max_len < 1:
        raise ValueError(f"chunks must hold at least one sample, got max_len={max_len}")
    total, start, bounds = samples.shape[0], 0, []
    while total - start > max_len:
        limit = start + max_len
        if total - limit < min_len:
            limit = max(start + max_len // 2, total - min_len)
        lo = max(start + 1, limit - search_len)
        end = min(quietest_point(samples, lo, limit, frame_len), limit)
        bounds.append((start, end))
        start = end
    bounds.append((start, total))
    return bounds


def split_on_silence(
    samples: np.ndarray,
    max_seconds: float,
    search_seconds: float = DEFAULT_SEARCH_SECONDS,
    sample_rate: int = SAMPLE_RATE,
) -> list[np.ndarray]:
    """Cut a waveform into pieces of at most ``max_seconds``, in pauses where possible.

    Args:
        samples: (S,) waveform.
        max_seconds: longest piece.
        search_seconds: how far before each limit to look for the quietest frame.
        sample_rate: of ``samples``.

    Returns:
        The pieces, in order; concatenated they give ``samples`` back.
    """
    max_len = int(max_seconds * sample_rate)
    search_len = min(int(search_seconds * sample_rate), max_len // 2)
    min_len = min(int(MIN_CHUNK_SECONDS * sample_rate), max_len // 4)
    frame_len = max(1, int(ENERGY_FRAME_SECONDS * sample_rate))
    bounds = split_points(samples, max_len, search_len, frame_len, min_len)
    return [samples[a:b] for a, b in bounds]


# --------------------------------------------------------------------------- encoder inputs


def encoder_window_seconds(encoder: Any) -> Optional[float]:
    """Longest input the encoder takes, in seconds (Whisper: 30), or None if unbounded."""
    max_frames = getattr(encoder, "max_frames", None)
    if getattr(encoder, "input_kind", "") == "whisper_mel" and max_frames:
        return max_frames * 0.01  # 100 log-mel frames per second
    return None


class InputMaker:
    """Waveform -> one utterance's encoder input, as ``slamasr.data`` computes it."""

    def __init__(self, input_kind: str, n_mels: int = 80) -> None:
        """Build the feature extractor for ``input_kind`` (whisper_mel | fbank | audio)."""
        if input_kind not in ("whisper_mel", "fbank", "audio"):
            raise ValueError(f"cannot compute encoder inputs of kind {input_kind!r}")
        self.input_kind = input_kind
        self.extractor = None if input_kind == "audio" else make_extractor(input_kind, n_mels)

    def __call__(self, samples: np.ndarray) -> torch.Tensor:
        """(S,) 16 kHz waveform -> (T, F) features or (S,) audio."""
        if self.extractor is None:
            return torch.from_numpy(samples).float()  # (S,)
        feats = self.extractor.extract(samples, SAMPLE_RATE)  # (T, F)
        if self.input_kind == "whisper_mel":  # drop Lhotse's extra frame, as the dataset does
            feats = feats[: whisper_num_frames(samples.shape[0] / SAMPLE_RATE)]
        return torch.from_numpy(np.ascontiguousarray(feats)).float()

    def batch(self, pieces: Sequence[np.ndarray], ids: Sequence[str]) -> dict[str, Any]:
        """A batch dict (docs/internals.md) of waveform pieces named ``ids``."""
        inputs = [self(p) for p in pieces]
        return {
            "inputs": pad_stack(inputs),  # (B, T, F) or (B, S)
            "input_lengths": torch.tensor([x.shape[0] for x in inputs], dtype=torch.long),
            "cut_ids": list(ids),
            "durations": torch.tensor([p.shape[0] / SAMPLE_RATE for p in pieces]),
            "bad_cut_ids": [],
        }


# --------------------------------------------------------------------------- transcription


@dataclass
class _Piece:
    """One chunk of one input file (``source``: the file's slot in its group)."""

    source: int
    index: int
    samples: np.ndarray


def _batches(items: list[_Piece], size: int) -> Iterator[list[_Piece]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Transcriber:
    """A loaded model plus chunking and decoding settings."""

    def __init__(
        self,
        model: Any,
        decode_cfg: DecodeConfig,
        device: torch.device,
        max_chunk_seconds: Optional[float] = None,
        search_seconds: float = DEFAULT_SEARCH_SECONDS,
        batch_size: int = 8,
        n_mels: Optional[int] = None,
    ) -> None:
        """Set up the transcriber.

        Args:
            model: a SlamASR (``generate``, ``encoder.input_kind``).
            decode_cfg: beam search settings.
            device: where the model runs.
            max_chunk_seconds: longest chunk; capped by the encoder's window; None = window
                (required for encoders without one).
            search_seconds: look this far back from each limit for a pause.
            batch_size: chunks decoded together.
            n_mels: whisper log-mel bins (default: the encoder's).
        """
        window = encoder_window_seconds(model.encoder)
        limits = [s for s in (max_chunk_seconds, window) if s]
        if not limits:
            raise ValueError(f"give max_chunk_seconds for a {type(model.encoder).__name__}")
        self.max_chunk_seconds = min(limits)
        self.model, self.decode_cfg, self.device = model, decode_cfg, device
        self.search_seconds, self.batch_size = search_seconds, max(1, batch_size)
        n_mels = n_mels or getattr(model.encoder, "n_mels", 80)
        self.inputs = InputMaker(model.encoder.input_kind, n_mels)

    def transcribe(self, sources: Sequence[AudioSource]) -> list[Transcript]:
        """Transcribe every source; unreadable ones get an error instead of text.

        Returns:
            One Transcript per source, in input order.
        """
        return list(self.transcribe_iter(sources))

    def transcribe_iter(self, sources: Sequence[AudioSource]) -> Iterator[Transcript]:
        """Like :meth:`transcribe`, yielding results in input order as they are done.

        Files are read a few at a time (about ``batch_size`` chunks), so memory stays
        bounded for long lists; the chunks of one file are decoded together where they fit.
        """
        self.model.eval()
        group: list[Transcript] = []
        pieces: list[_Piece] = []
        for source in sources:
            result = Transcript(source.name, None)
            pieces += self._chunk(source, len(group), result)
            group.append(result)
            if len(pieces) >= self.batch_size:
                yield from self._finish(group, pieces)
                group, pieces = [], []
        yield from self._finish(group, pieces)

    def _chunk(self, source: AudioSource, slot: int, result: Transcript) -> list[_Piece]:
        """Read and split one source; a read error is recorded in ``result``."""
        try:
            samples = load_audio(source.path)
        except AudioReadError as e:
            logging.info("skipping %s: %s", source.name, e)
            result.error = str(e)
            return []
        chunks = split_on_silence(samples, self.max_chunk_seconds, self.search_seconds)
        result.num_chunks = len(chunks)
        seconds = len(samples) / SAMPLE_RATE
        logging.info("%s: %.1f s in %d chunk(s)", source.name, seconds, len(chunks))
        return [_Piece(slot, k, c) for k, c in enumerate(chunks)]

    def _finish(self, group: list[Transcript], pieces: list[_Piece]) -> Iterator[Transcript]:
        """Decode a group's pieces, join each file's texts, yield the group's results."""
        texts: dict[tuple[int, int], str] = {}
        for batch in _batches(pieces, self.batch_size):
            texts.update(self._decode(batch))
        for slot, result in enumerate(group):
            keys = [(slot, k) for k in range(result.num_chunks)]
            if result.error is None and any(k not in texts for k in keys):
                result.error = "the model failed on part of this file (see the log)"
            if result.error is None:
                result.text = " ".join(t for t in (texts[k].strip() for k in keys) if t)
            yield result

    def _decode(self, batch: list[_Piece]) -> dict[tuple[int, int], str]:
        """Beam-search one batch of chunks; ``{(slot, index): text}`` of those that decoded.

        A failing batch is retried chunk by chunk (``slamasr.decoding.decode_loader``).
        """
        ids = [f"{p.source}#{p.index}" for p in batch]
        inputs = self.inputs.batch([p.samples for p in batch], ids)
        try:
            hyps, _ = decode_loader(self.model, [inputs], self.decode_cfg, self.device)
        except RuntimeError as e:  # every chunk of the batch failed
            logging.error("decoding failed for a batch of chunks: %s", e)
            return {}
        return {(p.source, p.index): hyps[cid] for p, cid in zip(batch, ids) if cid in hyps}


def load_transcriber(
    exp_dir: Path,
    checkpoint: Optional[str] = None,
    avg: Optional[int] = None,
    num_beams: Optional[int] = None,
    overrides: Sequence[str] = (),
    device: Optional[torch.device] = None,
    **options: Any,
) -> Transcriber:
    """Build the model of ``exp_dir`` (its ``config.yaml``) with trained weights loaded.

    Args:
        exp_dir: experiment directory with ``config.yaml`` and ``checkpoints/``.
        checkpoint: best | last | step-N (default ``decode.checkpoint``).
        avg: average this many step checkpoints (default ``decode.avg``).
        num_beams: beam size (default ``decode.num_beams``).
        overrides: extra ``section.key=value`` config overrides.
        device: default: ``train.device`` resolved (GPU when available).
        **options: passed to :class:`Transcriber` (max_chunk_seconds, batch_size, ...).

    Returns:
        A ready Transcriber.
    """
    from slamasr.config import load_config
    from slamasr.models import build_model
    from slamasr.utils import resolve_device

    pairs = {"checkpoint": checkpoint, "avg": avg, "num_beams": num_beams}
    cli = [f"decode.{k}={v}" for k, v in pairs.items() if v is not None]
    cfg = load_config(Path(exp_dir) / "config.yaml", list(overrides) + cli)
    device = device or resolve_device(0, cfg.train.device)
    model = build_model(cfg.model, device=device)
    weights, _ = load_trainable_weights(Path(exp_dir), cfg.decode.checkpoint, cfg.decode.avg)
    model.load_trainable_state_dict({k: v.to(device) for k, v in weights.items()})
    options.setdefault("max_chunk_seconds", cfg.data.max_audio_seconds)
    return Transcriber(model, cfg.decode, device, **options)
