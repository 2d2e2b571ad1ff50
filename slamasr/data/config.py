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
    """

    train_cuts: str = ""
    dev_cuts: str = ""
    test_sets: dict[str, str] = field(default_factory=dict)
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

    def validate(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(
                f"data.input_kind={self.input_kind!r}; choose one of {list(INPUT_KINDS)}"
            )
        if self.text_norm not in ("upper", "lower", "none"):
            raise ValueError(f"data.text_norm={self.text_norm!r}; choose upper|lower|none")
        if self.max_duration <= 0 and self.batch_size <= 0:
            raise ValueError("set data.max_duration > 0 (bucketing) or data.batch_size > 0")
