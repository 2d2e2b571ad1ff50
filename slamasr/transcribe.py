"""Transcribe arbitrary audio files with a trained experiment, long files included.

Each file is read with Lhotse (any format it knows), resampled to 16 kHz and down-mixed to
mono. Then, in order:

1. **Speech gate.** Silero VAD (``slamasr.data.segment.SpeechDetector``) finds the speech
   regions; silence and noise between and around them are not decoded (a model shown 20 s
   of silence or noise invents text). A file without speech gets an empty transcript,
   flagged ``no speech detected``. ``speech_gate=False`` (CLI ``--no-vad``) decodes all.
2. **Chunks of trained length.** Each region longer than ``max_chunk_seconds`` is cut at
   pauses (``slamasr.data.segment.split_waveform``). The default is what the experiment
   trained on (:func:`trained_max_seconds`: ``data.max_audio_seconds``, or the shorter
   Whisper padding window, 10 s in the CPU recipe), capped by the encoder's 30-s window.
3. **Decoding.** Chunks get the encoder inputs the data layer would give them
   (``slamasr.data.features`` extractors, the dataset's Whisper frame count) and are
   decoded in batches with ``slamasr.decoding`` (a failing batch is retried chunk by chunk).
4. **Loops cut.** A chunk's text in which an n-gram repeats back to back (the scorer's
   ``slamasr.scoring.find_loop``) keeps one copy; the file is flagged ``loop cut: ...``.

The chunks' texts of each file are joined with spaces.

Example::

    transcriber = load_transcriber(Path("exp/whisper_tiny"), checkpoint="best")
    for result in transcriber.transcribe([AudioSource("a", "a.flac")]):
        print(result.name, result.text, result.flags)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from slamasr.checkpoints import load_trainable_weights
from slamasr.data.dataset import pad_stack, whisper_num_frames
from slamasr.data.features import make_extractor
from slamasr.data.manifests import SAMPLE_RATE
from slamasr.data.segment import SpeechDetector, split_waveform
from slamasr.decoding import DecodeConfig, decode_loader
from slamasr.scoring import find_loop

NO_SPEECH = "no speech detected"


class AudioReadError(OSError):
    """An input file could not be read; the message names the file."""


@dataclass
class AudioSource:
    """One input: the name printed with its transcript and the file to read."""

    name: str
    path: str


@dataclass
class Transcript:
    """Result for one input: ``text`` (None on failure), ``error``, chunk count and flags
    (``no speech detected``, ``loop cut: 'the' x90``)."""

    name: str
    text: Optional[str]
    error: Optional[str] = None
    num_chunks: int = 0
    flags: list[str] = field(default_factory=list)


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
    if path.is_dir():
        raise AudioReadError(
            f"{path}: is a directory, not an audio file; pass the files in it "
            f"(e.g. {path}/*.wav) or list them in a --list file"
        )
    if not path.is_file():
        raise AudioReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: the file is empty (0 bytes); nothing to transcribe")
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


# --------------------------------------------------------------------------- loops


def _run_start(words: list[str], gram: tuple[str, ...], repeats: int) -> int:
    """Index of the first place ``gram`` repeats ``repeats`` times back to back."""
    run = list(gram) * repeats
    for i in range(len(words) - len(run) + 1):
        if words[i : i + len(run)] == run:
            return i
    raise ValueError(f"no run of {gram} x{repeats}")  # find_loop found one: a bug


def cut_loops(text: str) -> tuple[str, list[str]]:
    """Keep one copy of each n-gram the model repeated back to back (a decoding loop).

    Loops are what ``slamasr.scoring.find_loop`` flags when scoring (same thresholds).

    Returns:
        (the text without the repeats, one ``loop cut: 'gram' xN`` note per loop).
    """
    words, notes = text.split(), []
    while (loop := find_loop(words)) is not None:
        gram, repeats = loop
        start = _run_start(words, gram, repeats) + len(gram)
        words = words[:start] + words[start + len(gram) * (repeats - 1) :]
        notes.append(f"loop cut: {' '.join(gram)!r} x{repeats}")
    return " ".join(words), notes


def trained_max_seconds(cfg: Any) -> float:
    """Longest audio an experiment trained on, from its config.

    ``data.max_audio_seconds`` (training drops longer cuts), or for a Whisper encoder
    padded to a shorter window than 30 s (``model.encoder.whisper_pad_window_s``, 10 s in
    the CPU recipe) that window: its model has seen little audio longer than that.
    """
    limit = cfg.data.max_audio_seconds
    enc = cfg.model.encoder
    if enc.name == "whisper" and enc.whisper_pad_to_30s and enc.whisper_pad_window_s < 30:
        limit = min(limit, enc.whisper_pad_window_s)
    return float(limit)


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
    """A loaded model plus speech gate, chunking and decoding settings."""

    def __init__(
        self,
        model: Any,
        decode_cfg: DecodeConfig,
        device: torch.device,
        max_chunk_seconds: Optional[float] = None,
        batch_size: int = 8,
        n_mels: Optional[int] = None,
        speech_gate: bool = True,
        loop_cutting: bool = True,
    ) -> None:
        """Set up the transcriber.

        Args:
            model: a SlamASR (``generate``, ``encoder.input_kind``).
            decode_cfg: beam search settings.
            device: where the model runs.
            max_chunk_seconds: longest chunk; capped by the encoder's window; None = window
                (required for encoders without one).
            batch_size: chunks decoded together.
            n_mels: whisper log-mel bins (default: the encoder's).
            speech_gate: decode only what Silero VAD calls speech.
            loop_cutting: cut repeated n-grams out of each chunk's text (and flag them).
        """
        window = encoder_window_seconds(model.encoder)
        limits = [s for s in (max_chunk_seconds, window) if s]
        if not limits:
            raise ValueError(f"give max_chunk_seconds for a {type(model.encoder).__name__}")
        self.max_chunk_seconds = min(limits)
        if self.max_chunk_seconds <= 0:
            raise ValueError(f"max_chunk_seconds must be > 0, got {self.max_chunk_seconds}")
        self.model, self.decode_cfg, self.device = model, decode_cfg, device
        self.batch_size = max(1, batch_size)
        n_mels = n_mels or getattr(model.encoder, "n_mels", 80)
        self.inputs = InputMaker(model.encoder.input_kind, n_mels)
        self.detector = SpeechDetector() if speech_gate else None
        self.loop_cutting = loop_cutting

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

    def speech_regions(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Sample ranges to decode: the speech gate's regions, or everything."""
        if self.detector is None:
            return [(0, samples.shape[0])]
        return self.detector.regions(samples)

    def chunk_bounds(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Sample ranges of the chunks to decode: speech regions cut at pauses to at most
        ``max_chunk_seconds`` (empty when there is no speech)."""
        bounds = []
        for start, end in self.speech_regions(samples):
            pieces = split_waveform(samples[start:end], self.max_chunk_seconds)
            bounds += [(start + a, start + b) for a, b in pieces]
        return bounds

    def _chunk(self, source: AudioSource, slot: int, result: Transcript) -> list[_Piece]:
        """Read, gate and split one source; a read error is recorded in ``result``."""
        try:
            samples = load_audio(source.path)
        except AudioReadError as e:
            logging.info("skipping %s: %s", source.name, e)
            result.error = str(e)
            return []
        bounds = self.chunk_bounds(samples)
        result.num_chunks = len(bounds)
        if not bounds:
            result.flags.append(NO_SPEECH)
        seconds = len(samples) / SAMPLE_RATE
        kept = sum(b - a for a, b in bounds) / SAMPLE_RATE
        logging.info(
            "%s: %.1f s, %.1f s of speech in %d chunk(s)", source.name, seconds, kept, len(bounds)
        )
        return [_Piece(slot, k, samples[a:b]) for k, (a, b) in enumerate(bounds)]

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
                result.text = " ".join(
                    t for t in (self._clean(texts[k], result) for k in keys) if t
                )
            yield result

    def _clean(self, text: str, result: Transcript) -> str:
        """One chunk's text, loops cut (noted in ``result.flags``) when enabled."""
        if not self.loop_cutting:
            return text.strip()
        text, notes = cut_loops(text)
        result.flags += notes
        return text

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
        **options: passed to :class:`Transcriber` (max_chunk_seconds, batch_size, ...);
            ``max_chunk_seconds`` defaults to :func:`trained_max_seconds` of the config.

    Returns:
        A ready Transcriber.
    """
    from slamasr.config import load_config
    from slamasr.models import build_model
    from slamasr.utils import resolve_device

    pairs = {"checkpoint": checkpoint, "avg": avg, "num_beams": num_beams}
    cli = [f"decode.{k}={v}" for k, v in pairs.items() if v is not None]
    cfg = load_config(Path(exp_dir) / "config.yaml", list(overrides) + cli, recorded=True)
    device = device or resolve_device(0, cfg.train.device)
    model = build_model(cfg.model, device=device)
    weights, _ = load_trainable_weights(Path(exp_dir), cfg.decode.checkpoint, cfg.decode.avg)
    model.load_trainable_state_dict({k: v.to(device) for k, v in weights.items()})
    trained = trained_max_seconds(cfg)
    if options.get("max_chunk_seconds") is None:
        options["max_chunk_seconds"] = trained
    elif options["max_chunk_seconds"] > trained:
        logging.warning(
            "chunks of up to %.1f s: longer than the %.1f s this experiment trained on",
            options["max_chunk_seconds"],
            trained,
        )
    return Transcriber(model, cfg.decode, device, **options)
