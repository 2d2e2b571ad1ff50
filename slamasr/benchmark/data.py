"""The benchmark's cuts, loaders and ours' encoder cache (in-process loading, no workers)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from slamasr.models.slam import SlamASR


def first_cuts(path: str, count: int, data_cfg: Any, train: bool) -> Any:
    """The first ``count`` usable cuts of a manifest, eager (training filter when ``train``)."""
    from lhotse import load_manifest_lazy

    from slamasr.data.filters import filter_cuts_for_training

    cuts = load_manifest_lazy(path)
    if train:
        cuts, _ = filter_cuts_for_training(cuts, data_cfg)
    subset = cuts.subset(first=count).to_eager()
    if len(subset) == 0:
        raise ValueError(f"{path}: no usable cuts")
    cached = subset[0].has_features and subset[0].features.type == "encoder_cache"
    if cached or (not subset[0].has_features and data_cfg.input_kind != "audio"):
        raise ValueError(
            f"{path}: cuts carry no {data_cfg.input_kind} features (raw audio or an encoder "
            f"cache); give the manifest with the encoder's input features"
        )
    return subset


def encoder_input_data_config(cfg: Any, model: SlamASR) -> Any:
    """``cfg.data`` reading the encoder's own inputs, in-process loading (no workers)."""
    return dataclasses.replace(cfg.data, input_kind=model.encoder.input_kind, num_workers=0)


def build_cache(
    cfg: Any, cuts_path: Path, data_cfg: Any, work_dir: Path, bf16: bool
) -> tuple[Path, float]:
    """Build the frozen-encoder cache of ``cuts_path``; return (manifest, seconds)."""
    from slamasr.encoder_cache import compute_encoder_cache

    enc_cfg = dataclasses.replace(cfg.model.encoder, whisper_trim_output=True)
    start = time.perf_counter()
    path = compute_encoder_cache(cuts_path, work_dir / "cache", enc_cfg, data_cfg, bf16=bf16)
    return path, time.perf_counter() - start


def training_loaders(
    data_cfg: Any, max_duration: float, cache_path: Path, train_path: Path, count: int
) -> dict[str, Any]:
    """Ours: cached frames with bucketing; reference: encoder inputs, fixed batch size.

    Ours uses ``count // 4`` duration buckets (at least 2, at most ``data.num_buckets``).
    """
    from lhotse import load_manifest_lazy

    from slamasr.data import build_dataloader

    buckets = max(2, min(data_cfg.num_buckets, count // 4))
    ours_cfg = dataclasses.replace(
        data_cfg, input_kind="encoder_cache", max_duration=max_duration, num_buckets=buckets
    )
    ref_cfg = dataclasses.replace(data_cfg, max_duration=0.0)
    return {
        "ours": build_dataloader(load_manifest_lazy(cache_path), ours_cfg, train=True),
        "reference": build_dataloader(load_manifest_lazy(train_path), ref_cfg, train=True),
    }


def decode_loader_for(cuts: Any, data_cfg: Any, batch_size: int) -> Any:
    """Decoding loader with a fixed batch size (cuts sorted by duration)."""
    from slamasr.data import build_dataloader

    cfg = dataclasses.replace(data_cfg, max_duration=0.0, batch_size=batch_size)
    return build_dataloader(cuts, cfg, train=False, num_workers=0)
