"""Decoding a batch with ``decode.*`` settings written as ``--set`` strings."""

from __future__ import annotations

from typing import Any

from slamasr.config import load_config
from slamasr.decoding import DecodeConfig, generate_options
from slamasr.decoding.probe import ctc_probe_ids


def decode_config(*sets: str) -> DecodeConfig:
    """The ``decode:`` section of these overrides (e.g. ``decode.scorers.ctc.weight=0.5``),
    validated."""
    cfg = load_config(None, list(sets), validate=False).decode
    cfg.validate()
    return cfg


SHORT = ("decode.max_new_tokens_per_second=8", "decode.min_new_tokens_bound=16")
"""Bounds for tiny random models (they rarely stop): ``SlamASR.generate_ids``' defaults."""


def generate_ids(model: Any, batch: dict[str, Any], *sets: str, **kwargs: Any) -> list[list[int]]:
    """Token ids per utterance, as ``slamasr.decoding.decode_batch`` decodes them (with
    :data:`SHORT` bounds unless ``sets`` say otherwise)."""
    cfg = decode_config(*SHORT, *sets)
    if cfg.search == "ctc":
        return ctc_probe_ids(model, batch, cfg.scorers["ctc"].head)
    return model.generate_ids(batch, **generate_options(cfg, model), **kwargs)
