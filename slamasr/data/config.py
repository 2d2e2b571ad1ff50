"""Data configuration: manifests, features, text normalization, sampling (``data:``)."""

from __future__ import annotations

from dataclasses import dataclass, field

INPUT_KINDS = ("whisper_mel", "fbank", "audio", "encoder_cache")


@dataclass
class DataConfig:
    """The ``data:`` section.

    Attributes:
        train_cuts: Lhotse CutSet manifest for training (jsonl.gz).
        dev_cuts: CutSet for validation (dev-other for LibriSpeech).
        test_sets: name -> CutSet manifest, decoded by stage 4.
        dev_sets: name -> CutSet manifest of further dev sets (the CPU recipe's dev_ood),
            for choosing settings by decoding them; not read by training.
        input_kind: what the dataset feeds the model: whisper_mel | fbank (precomputed
            features on the cuts) | audio (raw 16 kHz waveform, SSL encoders) |
            encoder_cache (precomputed frozen-encoder outputs stored as cut features).
        text_norm: text normalization applied to targets and, at scoring, hypotheses:
            upper (LibriSpeech style) | lower | none.
        max_duration: seconds of audio per batch (dynamic bucketing); 0 = use batch_size.
        batch_size: fixed number of utterances per batch (paper: 4 Whisper, 6 others).
        num_buckets: duration buckets for DynamicBucketingSampler.
        shuffle, seed: sampling order.
        num_workers: DataLoader workers.
        max_audio_seconds: longest allowed utterance (Whisper: 30 s).
        min_audio_seconds: shortest allowed (shorter than one projector frame is rejected).
        n_mels: mel bins of whisper_mel features (80 for Whisper up to large-v2, 128 for
            large-v3); checked against the stored features by the dataset.
        min_encoder_frames: for input_kind=encoder_cache, cuts with fewer cached encoder
            frames than this (the downsample factor k) give no projector frame and are skipped.
        decode_sort_by_duration: decoding batches are built from cuts sorted by duration
            (less padding); results are written sorted by cut id anyway.
        buffer_size: cuts held by DynamicBucketingSampler for bucketing/shuffling.
        max_chars_per_second: training cuts whose normalized transcript has more characters
            per second of audio are skipped (``too_many_chars_per_second``; 0 = no limit). LibriSpeech
            speaks ~2.7-2.85 words/s, i.e. ~15 chars/s at ~5.4 chars per word with its space;
            fast speech reaches ~25-30: 100 is ~4x the fastest realistic rate, so only
            transcripts that cannot belong to the audio (misaligned or absurd) are dropped.
        allow_command_sources: read manifests whose recordings have ``command`` (shell
            command run on read) or ``url`` audio sources; refused by default.
    """

    train_cuts: str = ""
    dev_cuts: str = ""
    test_sets: dict[str, str] = field(default_factory=dict)
    dev_sets: dict[str, str] = field(default_factory=dict)
    input_kind: str = "whisper_mel"
    text_norm: str = "upper"
    max_duration: float = 0.0
    batch_size: int = 4
    num_buckets: int = 30
    shuffle: bool = True
    seed: int = 42
    num_workers: int = 2
    max_audio_seconds: float = 30.0
    min_audio_seconds: float = 0.1
    n_mels: int = 80
    min_encoder_frames: int = 5
    decode_sort_by_duration: bool = True
    buffer_size: int = 20000
    max_chars_per_second: float = 100.0
    allow_command_sources: bool = False

    def validate(self) -> None:
        """Check values without touching any file."""
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(
                f"data.input_kind={self.input_kind!r}; choose one of {list(INPUT_KINDS)}"
            )
        if self.text_norm not in ("upper", "lower", "none"):
            raise ValueError(f"data.text_norm={self.text_norm!r}; choose upper|lower|none")
        if self.max_duration <= 0 and self.batch_size <= 0:
            raise ValueError("set data.max_duration > 0 (bucketing) or data.batch_size > 0")
        if self.n_mels not in (80, 128):
            raise ValueError(f"data.n_mels={self.n_mels}; Whisper uses 80 or 128")
        if self.num_workers < 0 or self.num_buckets < 1 or self.min_encoder_frames < 1:
            raise ValueError("data.num_workers >= 0, num_buckets >= 1, min_encoder_frames >= 1")
        if self.max_chars_per_second < 0:
            raise ValueError(
                f"data.max_chars_per_second={self.max_chars_per_second}: use > 0, or 0 for no limit"
            )
        if self.max_audio_seconds <= self.min_audio_seconds:
            raise ValueError(
                f"data.max_audio_seconds={self.max_audio_seconds} must exceed "
                f"data.min_audio_seconds={self.min_audio_seconds}"
            )
