"""Dataset and DataLoader: a Lhotse CutSet batch -> the batch dict of docs/internals.md.

``SlamAsrDataset[cuts]`` returns::

    inputs                 (B, T, n_mels) whisper_mel | (B, T, 80) fbank | (B, S) audio
    input_lengths          (B,) valid frames / samples; padding value is 0.0.
                           whisper_mel: S // 160 frames (as HF's WhisperFeatureExtractor);
                           fbank: (S + 80) // 160 frames (Lhotse); audio: S samples
    encoder_frames         (B, T_enc, D)  \\ instead of inputs/input_lengths
    encoder_frame_lengths  (B,)           / for input_kind=encoder_cache
    texts                  list[str] normalized (slamasr.text.normalize_text)
    cut_ids                list[str]
    durations              (B,) seconds
    bad_cut_ids            list[str] cuts whose audio/features could not be read

A cut that cannot be read is logged (warning) and listed in ``bad_cut_ids``; it is not in
the tensors. If every cut is bad the batch has B=0 tensors. Features whose dimension
differs from the config (e.g. 80-d mels with n_mels=128) raise FeatureDimError. Audio is
resampled to 16 kHz and down-mixed to mono (channel mean) when needed.
"""

from __future__ import annotations

import logging

import torch
from lhotse import CutSet
from lhotse.utils import compute_num_samples
from torch.utils.data import DataLoader, Dataset

from slamasr.data.config import DataConfig
from slamasr.data.filters import cut_text, filter_cuts_for_training
from slamasr.data.manifests import SAMPLE_RATE, resample_cut
from slamasr.data.sampling import build_decode_sampler, build_train_sampler

PAD_VALUE = 0.0


class FeatureDimError(ValueError):
    """Stored features do not have the configured dimension (a config error, not bad data)."""


class NoUsableCutsError(ValueError):
    """Every training cut was skipped by the training filter (a data problem, not a bug)."""


def whisper_num_frames(duration: float) -> int:
    """Whisper/HF frame count for ``duration`` seconds at 16 kHz: ``S // 160``."""
    return compute_num_samples(duration, SAMPLE_RATE) // 160


def load_cut_input(cut, input_kind: str) -> torch.Tensor:
    """Load one cut's model input.

    whisper_mel features are cut to HF's ``S // 160`` frames: Lhotse's WhisperFbank may
    store one more, all-zero frame (see ``slamasr.data.features``), which is dropped here.

    Args:
        cut: A Lhotse cut.
        input_kind: whisper_mel | fbank | encoder_cache (stored features, (T, F)) or
            audio (16 kHz mono waveform, (S,)).

    Returns:
        Float tensor (T, F) or (S,).
    """
    if input_kind == "audio":
        audio = resample_cut(cut, SAMPLE_RATE).load_audio()  # (C, S)
        return torch.from_numpy(audio).float().mean(dim=0)  # (S,)
    feats = cut.load_features()  # (T, F)
    if feats is None:
        raise ValueError("cut has no features")
    if input_kind == "whisper_mel":
        feats = feats[: whisper_num_frames(cut.duration)]
    return torch.from_numpy(feats).float()


def _empty_inputs(cuts: CutSet, input_kind: str, feature_dim: int | None) -> torch.Tensor:
    """A B=0 input tensor with the right trailing shape: (0, 0) or (0, 0, F)."""
    if input_kind == "audio":
        return torch.zeros(0, 0)
    if feature_dim is None:  # encoder_cache: D from the manifest, if any cut has features
        dims = [c.num_features for c in cuts if c.has_features]
        feature_dim = dims[0] if dims else 0
    return torch.zeros(0, 0, feature_dim)


def pad_stack(items: list[torch.Tensor], pad_value: float = PAD_VALUE) -> torch.Tensor:
    """Right-pad tensors on dim 0 and stack: [(T_i, *F)] -> (B, max T_i, *F)."""
    return torch.nn.utils.rnn.pad_sequence(items, batch_first=True, padding_value=pad_value)


class SlamAsrDataset(Dataset):
    """Map-style dataset over Lhotse samplers: ``dataset[cuts] -> batch dict``."""

    def __init__(
        self, input_kind: str = "whisper_mel", text_norm: str = "upper", n_mels: int = 80
    ) -> None:
        """Build the dataset.

        Args:
            input_kind: whisper_mel | fbank | audio | encoder_cache.
            text_norm: upper | lower | none (applied to the transcripts).
            n_mels: Expected feature dimension of whisper_mel inputs (fbank: always 80).
        """
        self.input_kind = input_kind
        self.text_norm = text_norm
        self.feature_dim = {"whisper_mel": n_mels, "fbank": 80}.get(input_kind)

    def _check_dim(self, cut_id: str, x: torch.Tensor) -> None:
        """Raise FeatureDimError when features do not match the configured dimension."""
        if self.feature_dim is not None and x.shape[-1] != self.feature_dim:
            raise FeatureDimError(
                f"cut {cut_id}: {self.input_kind} features are {x.shape[-1]}-d, config expects "
                f"{self.feature_dim} (data.n_mels); recompute features or fix the config"
            )

    def _load_all(self, cuts: CutSet) -> tuple[list, list[torch.Tensor], list[str]]:
        """Load every cut; return (good cuts, their inputs, bad cut ids)."""
        good, inputs, bad = [], [], []
        for cut in cuts:
            try:
                x = load_cut_input(cut, self.input_kind)
            except Exception as e:
                logging.warning("cannot read cut %s: %s: %s", cut.id, type(e).__name__, e)
                bad.append(cut.id)
                continue
            self._check_dim(cut.id, x)
            inputs.append(x)
            good.append(cut)
        return good, inputs, bad

    def __getitem__(self, cuts: CutSet) -> dict:
        """Load, pad and collate one sampler batch.

        Args:
            cuts: The batch's cuts (from a Lhotse sampler).

        Returns:
            The batch dict (module docstring); unreadable cuts only in ``bad_cut_ids``.
        """
        good, inputs, bad = self._load_all(cuts)
        if inputs:
            padded = pad_stack(inputs)  # (B, T, F) or (B, S)
        else:
            padded = _empty_inputs(cuts, self.input_kind, self.feature_dim)
        lengths = torch.tensor([x.shape[0] for x in inputs], dtype=torch.long)  # (B,)
        names = (
            ("encoder_frames", "encoder_frame_lengths")
            if self.input_kind == "encoder_cache"
            else ("inputs", "input_lengths")
        )
        return {
            names[0]: padded,
            names[1]: lengths,
            "texts": [cut_text(c, self.text_norm) for c in good],
            "cut_ids": [c.id for c in good],
            "durations": torch.tensor([c.duration for c in good], dtype=torch.float32),
            "bad_cut_ids": bad,
        }


def build_dataloader(
    cuts: CutSet,
    cfg: DataConfig,
    train: bool,
    world_size: int = 1,
    rank: int = 0,
    num_workers: int | None = None,
) -> DataLoader:
    """DataLoader yielding batch dicts.

    Training filters unusable cuts lazily (``loader.filter_report`` holds the counts) and
    samples with ``build_train_sampler``; decoding keeps every cut (``build_decode_sampler``).
    The sampler is ``loader.sampler`` (``set_epoch``, ``state_dict``, ``load_state_dict``).

    Args:
        cuts: The cuts (lazy is fine for training).
        cfg: The data config.
        train: Training (filter, shuffle, bucket) or decoding (every cut, fixed order).
        world_size: DDP world size / number of decoding processes.
        rank: This process's rank.
        num_workers: DataLoader workers; default ``cfg.num_workers``.

    Returns:
        ``DataLoader(dataset, sampler=..., batch_size=None)``; for training it carries
        ``filter_report`` (a FilterReport, or None for decoding).
    """
    report = None
    if train:
        cuts, report = filter_cuts_for_training(cuts, cfg)
        if next(iter(cuts), None) is None:
            raise NoUsableCutsError(
                f"no usable training cuts: every cut was skipped ({report.summary()}). "
                "Check data.train_cuts, data.input_kind and the audio/feature files."
            )
        sampler = build_train_sampler(cuts, cfg, world_size=world_size, rank=rank)
    else:
        sampler = build_decode_sampler(cuts, cfg, world_size=world_size, rank=rank)
    workers = cfg.num_workers if num_workers is None else num_workers
    loader = DataLoader(
        SlamAsrDataset(cfg.input_kind, cfg.text_norm, cfg.n_mels),
        sampler=sampler,
        batch_size=None,
        num_workers=workers,
        persistent_workers=False,
    )
    loader.filter_report = report
    return loader
