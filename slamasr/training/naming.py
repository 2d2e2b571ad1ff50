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
_COSMETIC_DATA_KEYS = ("num_workers", "test_sets", "dev_sets", "allow_command_sources")


def _short(path: str, fallback: str) -> str:
    """``openai/whisper-large-v2`` -> ``whisper-large-v2``; empty -> ``fallback``."""
    name = PurePosixPath(path.rstrip("/")).name if path else ""
    name = re.sub(r"[^A-Za-z0-9.+-]+", "-", name).strip("-")
    return name or fallback


def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from ``defaults`` (nested dicts compared by key)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            value = _changed(value, default)
            if value:
                out[key] = value
        elif key not in defaults or value != default:
            out[key] = value
    return out


def _fingerprint(cfg: Any) -> str:
    """Six hex digits of a hash over the settings that shape the trained model.

    Only settings that differ from their dataclass defaults enter the hash, so a new option
    added with a default that keeps today's behaviour does not rename existing experiments.
    """
    sections = {}
    for name, cosmetic in (
        ("model", ()),
        ("data", _COSMETIC_DATA_KEYS),
        ("train", _COSMETIC_TRAIN_KEYS),
    ):
        section = getattr(cfg, name)
        values = {k: v for k, v in dataclasses.asdict(section).items() if k not in cosmetic}
        sections[name] = _changed(values, dataclasses.asdict(type(section)()))
    blob = json.dumps(sections, sort_keys=True, default=str)
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
