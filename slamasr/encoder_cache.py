"""Frozen-encoder output cache: run the encoder once, store its frames as Lhotse features.

The encoder is frozen, so its output for an utterance never changes: computing it on every
training step (what the reference code does) repeats the most expensive part of a CPU step.
This module encodes a cut manifest once and writes a new manifest whose cuts carry the
encoder frames ``(T_enc, D)`` as their features (float16 ``.npy`` files through Lhotse's
``NumpyFilesWriter``); ``data.input_kind: encoder_cache`` then feeds them straight to the
projector.  Cuts whose audio or features cannot be read are kept in the output without
features, so decoding still reports them (as bad cuts) instead of silently losing them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, Features, load_manifest_lazy
from lhotse.features.io import NumpyFilesWriter
from lhotse.utils import fastcopy
from tqdm import tqdm

from slamasr.data.config import DataConfig
from slamasr.data.dataset import build_dataloader
from slamasr.models.config import EncoderConfig
from slamasr.models.encoders import build_encoder

logger = logging.getLogger(__name__)


def cache_manifest_path(out_dir: Path, cuts_path: Path) -> Path:
    """``data/x/name_whisper_mel80.jsonl.gz`` -> ``out_dir/name_whisper_mel80_enc.jsonl.gz``."""
    name = cuts_path.name.split(".")[0]
    return out_dir / f"{name}_enc.jsonl.gz"


def _features_for(cut, frames: np.ndarray, key: str, storage: NumpyFilesWriter, rate: float):
    """Lhotse Features describing stored encoder frames of ``cut``."""
    return Features(
        type="encoder_cache",
        num_frames=frames.shape[0],
        num_features=frames.shape[1],
        frame_shift=1.0 / rate,
        sampling_rate=cut.sampling_rate,
        start=cut.start,
        duration=cut.duration,
        storage_type=storage.name,
        storage_path=str(storage.storage_path),
        storage_key=key,
    )


@torch.inference_mode()
def encode_batches(encoder, loader, storage: NumpyFilesWriter, autocast: bool) -> dict:
    """Encode every batch of ``loader``; return ``cut_id -> Features`` (None for bad cuts)."""
    result: dict[str, Features | None] = {}
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)
    for batch in tqdm(loader, desc="encoder cache", unit="batch"):
        for cut_id in batch["bad_cut_ids"]:
            result[cut_id] = None
        if not batch["cut_ids"]:
            continue
        with ctx:
            frames, lengths = encoder(batch["inputs"], batch["input_lengths"])  # (B, T, D)
        frames = frames.float().cpu().numpy().astype(np.float16)
        for i, cut_id in enumerate(batch["cut_ids"]):
            arr = frames[i, : int(lengths[i])]  # (T_i, D)
            result[cut_id] = (arr, storage.write(cut_id, arr))
    return result


def compute_encoder_cache(
    cuts_path: str | Path,
    out_dir: str | Path,
    encoder_cfg: EncoderConfig,
    data_cfg: DataConfig,
    max_duration: float = 60.0,
    bf16: bool = True,
) -> Path:
    """Encode a feature manifest once and write a manifest of cached encoder outputs.

    Args:
        cuts_path: cuts with encoder input features (stage 2 output) or audio.
        out_dir: where ``<name>_enc.jsonl.gz`` and the ``<name>_enc/`` arrays go.
        encoder_cfg: the experiment's encoder (frozen).
        data_cfg: the experiment's data section; its ``input_kind`` must be the encoder's
            input (whisper_mel, fbank or audio), not encoder_cache.
        max_duration: seconds of audio per encoder batch.
        bf16: run the encoder under bfloat16 autocast (stored as float16 either way).

    Returns:
        The output manifest path (existing outputs are reused, never overwritten).
    """
    cuts_path, out_dir = Path(cuts_path), Path(out_dir)
    out_path = cache_manifest_path(out_dir, cuts_path)
    if out_path.is_file():
        logger.info("%s exists; reusing it", out_path)
        return out_path
    if data_cfg.input_kind == "encoder_cache":
        raise ValueError("compute_encoder_cache needs the encoder's input kind, not encoder_cache")
    out_dir.mkdir(parents=True, exist_ok=True)
    cuts = load_manifest_lazy(cuts_path)
    encoder = build_encoder(encoder_cfg)
    cfg = replace(data_cfg, max_duration=max_duration, decode_sort_by_duration=True)
    loader = build_dataloader(cuts, cfg, train=False)
    start = time.time()
    tmp_path = out_path.with_name(out_path.name + ".tmp.jsonl.gz")
    with NumpyFilesWriter(out_dir / out_path.name.replace(".jsonl.gz", "")) as storage:
        encoded = encode_batches(encoder, loader, storage, autocast=bf16)
        rate = float(encoder.frame_rate_hz)
        with CutSet.open_writer(tmp_path) as writer:
            for cut in cuts:
                item = encoded.get(cut.id)
                if item is None:
                    writer.write(fastcopy(cut, features=None, recording=cut.recording))
                    continue
                arr, key = item
                writer.write(fastcopy(cut, features=_features_for(cut, arr, key, storage, rate)))
    bad = sum(v is None for v in encoded.values())
    if encoded and bad == len(encoded):
        tmp_path.unlink()
        raise RuntimeError(
            f"none of the {bad} cuts of {cuts_path} could be read (missing audio or feature "
            "files?). Feature paths in a manifest are relative to the directory it was made "
            "in: run from there, or recompute the features."
        )
    tmp_path.rename(out_path)
    logger.info(
        "encoded %d cuts (%d unreadable, kept without features) in %.1f s -> %s",
        len(encoded),
        bad,
        time.time() - start,
        out_path,
    )
    return out_path
