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
from slamasr.data.ids import storage_key
from slamasr.data.manifests import load_cuts
from slamasr.models.config import EncoderConfig
from slamasr.models.encoders import build_encoder

logger = logging.getLogger(__name__)


def cache_manifest_path(out_dir: Path, cuts_path: Path) -> Path:
    """``data/x/name_whisper_mel80.jsonl.gz`` -> ``out_dir/name_whisper_mel80_enc.jsonl.gz``."""
    name = cuts_path.name.split(".")[0]
    return out_dir / f"{name}_enc.jsonl.gz"


def _features_for(cut, shape: tuple, key: str, storage: NumpyFilesWriter, rate: float):
    """Lhotse Features describing stored encoder frames ``(T, D)`` of ``cut``."""
    return Features(
        type="encoder_cache",
        num_frames=int(shape[0]),
        num_features=int(shape[1]),
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
    """Encode and store every batch of ``loader``.

    Returns ``cut_id -> ((T, D), storage key)``, None for cuts that could not be read.
    """
    result: dict[str, tuple | None] = {}
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
            # the file is named by a safe key, never by the id (ids are data, not paths)
            result[cut_id] = (arr.shape, storage.write(storage_key(cut_id), arr))
    return result


def _encode_shard(
    cuts_path: str,
    cut_ids: list[str],
    storage_dir: str,
    encoder_cfg: EncoderConfig,
    data_cfg: DataConfig,
    bf16: bool,
    threads: int,
) -> tuple[dict, float]:
    """One worker of a parallel cache build: encode ``cut_ids`` of the manifest.

    Returns what :func:`encode_batches` returns and the encoder's frame rate.
    """
    torch.set_num_threads(threads)
    wanted = set(cut_ids)
    # the parent checked the manifest's audio sources (load_cuts) before starting workers
    cuts = CutSet.from_cuts(c for c in load_manifest_lazy(cuts_path) if c.id in wanted)
    encoder = build_encoder(encoder_cfg)
    loader = build_dataloader(cuts, data_cfg, train=False)
    with NumpyFilesWriter(storage_dir) as storage:
        encoded = encode_batches(encoder, loader, storage, autocast=bf16)
    return encoded, float(encoder.frame_rate_hz)


def _encode_parallel(
    cuts, cuts_path, storage_dir, encoder_cfg, cfg, bf16, num_jobs
) -> tuple[dict, float]:
    """Split the cuts over ``num_jobs`` processes (balanced by duration), one thread each
    (or the cores shared out), all writing into ``storage_dir``; the encoder is loaded in
    the workers only. Returns the merged results and the frame rate."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ordered = sorted(cuts, key=lambda c: -c.duration)
    shards = [[c.id for c in ordered[i::num_jobs]] for i in range(num_jobs)]
    threads = max(1, torch.get_num_threads() // num_jobs)
    result: dict = {}
    rate = 0.0
    ctx = multiprocessing.get_context("spawn")  # no forked OpenMP/torch state
    with ProcessPoolExecutor(max_workers=num_jobs, mp_context=ctx) as pool:
        futures = [
            pool.submit(
                _encode_shard,
                str(cuts_path),
                ids,
                str(storage_dir),
                encoder_cfg,
                cfg,
                bf16,
                threads,
            )
            for ids in shards
            if ids
        ]
        for future in futures:
            encoded, rate = future.result()
            result.update(encoded)
    return result, rate


def compute_encoder_cache(
    cuts_path: str | Path,
    out_dir: str | Path,
    encoder_cfg: EncoderConfig,
    data_cfg: DataConfig,
    max_duration: float = 60.0,
    bf16: bool = True,
    num_jobs: int = 1,
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
        num_jobs: encoder processes (each gets ``torch.get_num_threads() // num_jobs``
            threads); on CPU, 2 one-thread processes encode faster than one 2-thread one.

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
    if num_jobs < 1:
        raise ValueError(f"num_jobs={num_jobs} must be >= 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    cuts = load_cuts(cuts_path, allow_command_sources=data_cfg.allow_command_sources)
    cfg = replace(data_cfg, max_duration=max_duration, decode_sort_by_duration=True)
    start = time.time()
    tmp_path = out_path.with_name(out_path.name + ".tmp.jsonl.gz")
    storage_dir = out_dir / out_path.name.replace(".jsonl.gz", "")
    with NumpyFilesWriter(storage_dir) as storage:
        if num_jobs == 1:
            encoder = build_encoder(encoder_cfg)
            loader = build_dataloader(cuts, cfg, train=False)
            encoded = encode_batches(encoder, loader, storage, autocast=bf16)
            rate = float(encoder.frame_rate_hz)
        else:  # the encoder is loaded in the workers only
            encoded, rate = _encode_parallel(
                cuts, cuts_path, storage_dir, encoder_cfg, cfg, bf16, num_jobs
            )
        with CutSet.open_writer(tmp_path) as writer:
            for cut in cuts:
                item = encoded.get(cut.id)
                if item is None:
                    writer.write(fastcopy(cut, features=None, recording=cut.recording))
                    continue
                shape, key = item
                feats = _features_for(cut, shape, key, storage, rate)
                writer.write(fastcopy(cut, features=feats))
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
