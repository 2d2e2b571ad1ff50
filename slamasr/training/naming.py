"""Experiment names derived from settings: same settings -> same name."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Any

# Keys that do not change what is trained (how it is shown, how fast data is read).
_COSMETIC_TRAIN_KEYS = ("log_interval", "tensorboard", "progress_bar", "device")
_COSMETIC_DATA_KEYS = ("num_workers", "test_sets")


def _short(path: str, fallback: str) -> str:
    """``openai/whisper-large-v2`` -> ``whisper-large-v2``; empty -> ``fallback``."""
    name = PurePosixPath(path.rstrip("/")).name if path else ""
    name = re.sub(r"[^A-Za-z0-9.+-]+", "-", name).strip("-")
    return name or fallback


def _fingerprint(cfg: Any) -> str:
    """Six hex digits of a hash over the settings that shape the trained model."""
    model = dataclasses.asdict(cfg.model)
    data = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in _COSMETIC_DATA_KEYS}
    train = {
        k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in _COSMETIC_TRAIN_KEYS
    }
    blob = json.dumps({"model": model, "data": data, "train": train}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:6]


def experiment_name(cfg: Any) -> str:
    """Name an experiment from its ``ExperimentConfig``.

    Format: ``<encoder>_<llm>_<projector>_prompt-<mode>_lr<lr>_<hash>``, e.g.
    ``whisper-large-v2_vicuna-7b-v1.5_mlp_prompt-short_lr0.0001_3fa9c1``. The hash covers the
    model, data and training settings, so two configs differing anywhere else (batch size,
    schedule, projector width ...) still get different names.

    Args:
        cfg: a ``slamasr.config.ExperimentConfig``.

    Returns:
        A file-name-safe string.
    """
    m = cfg.model
    encoder = "fbank" if m.encoder.name == "fbank" else _short(m.encoder.path, m.encoder.name)
    if not m.encoder.freeze:
        encoder += "-ft"
    llm = _short(m.llm.path, "llm")
    projector = f"{m.projector.name}{m.projector.downsample_rate}"
    lr = f"{cfg.train.lr:g}"
    return f"{encoder}_{llm}_{projector}_prompt-{m.prompt.mode}_lr{lr}_{_fingerprint(cfg)}"
