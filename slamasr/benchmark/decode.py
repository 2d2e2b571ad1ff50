"""Timed decoding: ours at every (beam, batch size), the reference at batch 1, beam 4.

Ours decodes with ``slamasr.decoding.decode_batch`` (the recipe's decoding) and every batched
run is compared hypothesis by hypothesis with ours at batch 1; the reference decodes one
utterance at a time with transformers' ``generate`` from the encoder's input features.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from slamasr.benchmark.data import build_cache, decode_loader_for
from slamasr.benchmark.modes import ModeSetup
from slamasr.benchmark.options import BenchmarkOptions
from slamasr.benchmark.peaks import DTYPES, dtype_name, synchronize
from slamasr.benchmark.report import ratio
from slamasr.models.slam import SlamASR

logger = logging.getLogger(__name__)

Batch = dict[str, Any]
# (cuts, data config, cache build seconds) that ours decodes from
Source = tuple[Any, Any, float]


@dataclass
class DecodeRun:
    """One decoding configuration over the decode cuts."""

    mode: str
    num_beams: int
    batch_size: int
    wall_seconds: float
    audio_seconds: float
    hyps: dict[str, str]
    search: str = "native"
    joint: str = ""  # joint CTC/LLM search, e.g. "char ctc 0.5"; "" = the LLM alone

    def summary(self, reference_hyps: Optional[dict[str, str]]) -> dict[str, Any]:
        """JSON-ready figures; mismatches are counted against ``reference_hyps`` if given."""
        mismatches = None
        if reference_hyps is not None:
            mismatches = sum(self.hyps.get(k) != v for k, v in reference_hyps.items())
        return {
            "mode": self.mode,
            "num_beams": self.num_beams,
            "batch_size": self.batch_size,
            "search": self.search + (f" + {self.joint}" if self.joint else ""),
            "utterances": len(self.hyps),
            "wall_seconds": self.wall_seconds,
            "audio_seconds": self.audio_seconds,
            "rtf": self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0,
            "mismatches_vs_batch1": mismatches,
        }


def decode_settings(num_beams: int, search: str, joint: Optional[Any]) -> tuple[Any, str]:
    """The ``DecodeConfig`` of a run and its label ("" = the LLM alone).

    ``joint``: a ``DecodeConfig`` whose CTC settings (``scorers['ctc']``: weight, head, ...) to
    decode with (joint CTC/LLM search); None = the LLM alone.
    """
    from slamasr.decoding_config import DecodeConfig

    if joint is None:
        return DecodeConfig(num_beams=num_beams, search=search), ""
    ctc, lm = joint.scorers["ctc"], joint.rescorers["lm"]
    label = f"{ctc.head} ctc {ctc.weight:g}"
    if lm.weight > 0:
        label += f" + lm rescore {lm.weight:g}"
    return dataclasses.replace(joint, num_beams=num_beams, search=search), label


def decode_timed(
    setup: ModeSetup,
    loader: Iterable[Batch],
    num_beams: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    search: str = "native",
    joint: Optional[Any] = None,
) -> DecodeRun:
    """Decode every batch of ``loader`` (encoder included) and time it.

    ``search``: native (slamasr's batched beam search) | hf (transformers' generate).
    ``joint``: see :func:`decode_settings`.
    """
    from slamasr.decoding import decode_batch

    cfg, label = decode_settings(num_beams, search, joint)
    setup.model.eval()
    hyps: dict[str, str] = {}
    audio = 0.0
    synchronize(device)
    start = time.perf_counter()
    for batch in loader:
        hyps.update(decode_batch(setup.model, batch, cfg, device, dtype))
        audio += float(batch["durations"].sum())
    synchronize(device)
    wall = time.perf_counter() - start
    return DecodeRun(setup.name, num_beams, batch_size, wall, audio, hyps, search, label)


def hypothesis_mismatches(batched: dict[str, str], single: dict[str, str]) -> list[str]:
    """Cut ids whose batched hypothesis differs from (or is missing in) the batch-1 one."""
    return sorted(k for k in single.keys() | batched.keys() if batched.get(k) != single.get(k))


def load_decode_projectors(modes: dict[str, ModeSetup], checkpoint: str) -> None:
    """Load a checkpoint's trainable weights into both modes (identical projectors); a
    mode gets the parts it has (the reference has no character CTC head)."""
    from slamasr.checkpoints import load_trainable

    weights = load_trainable(Path(checkpoint))
    for setup in modes.values():
        device = setup.model.device
        wanted = setup.model.trainable_state_dict().keys()
        state = {k: v.to(device) for k, v in weights.items() if k in wanted}
        setup.model.load_trainable_state_dict(state)  # a missing key still raises


def decode_dtype(name: str, model: SlamASR) -> torch.dtype:
    """Ours' decoding autocast dtype; ``auto`` = bf16 when the LLM weights are bf16, else fp32.

    (bf16 weights without autocast run CPU kernels far slower than either choice.)
    """
    if name != "auto":
        return DTYPES[name]
    weights = next(model.llm.parameters()).dtype
    return torch.bfloat16 if weights == torch.bfloat16 else torch.float32


def ours_decode_source(
    cfg: Any, cuts: Any, data_cfg: Any, opts: BenchmarkOptions, work_dir: Path, bf16: bool
) -> Source:
    """Cuts and data config ours decodes from, and the cache build seconds (0 for features).

    ``decode_input=cache`` encodes the decode cuts once (timed), as the recipe's encoder-cache
    stage does for its test sets (under bf16 autocast when ``bf16``, like the training
    cache); ``features`` runs the encoder inside decoding.
    """
    if opts.decode_input == "features":
        return cuts, data_cfg, 0.0
    from lhotse import load_manifest

    path = work_dir / "decode_cuts.jsonl.gz"
    cuts.to_file(path)
    cache_path, seconds = build_cache(cfg, path, data_cfg, work_dir, bf16)
    cache_cfg = dataclasses.replace(data_cfg, input_kind="encoder_cache")
    return load_manifest(cache_path), cache_cfg, seconds


def _batch_sizes(opts: BenchmarkOptions) -> list[int]:
    return sorted(set(opts.batch_sizes) | {1})


def _ours_grid(
    setup: ModeSetup, source: Source, opts: BenchmarkOptions, device: torch.device, dtype: Any
) -> list[dict[str, Any]]:
    """Ours at every beam size and batch size, each compared with its batch-1 run."""
    cuts, data_cfg, _ = source
    sizes, rows = _batch_sizes(opts), []
    for beams in opts.beams:
        runs = {}
        for size in sizes:
            logger.info("decoding: ours, beam %d, batch %d", beams, size)
            loader = decode_loader_for(cuts, data_cfg, size)
            runs[size] = decode_timed(setup, loader, beams, size, device, dtype, opts.search)
        rows += [runs[s].summary(runs[1].hyps) for s in sizes]
    return rows


def joint_variants(joint: Optional[Any]) -> list[tuple[str, Any]]:
    """``ours_joint`` with ``joint``'s settings and, where it rescores its n-best with the
    LLM (``decode.rescorers.lm``), ``ours_joint_no_rescore`` without the rescoring."""
    if joint is None:
        return []
    variants = [("ours_joint", joint)]
    if joint.rescorers["lm"].weight > 0:
        variants.append(("ours_joint_no_rescore", dataclasses.replace(joint, rescorers={})))
    return variants


def _joint_rows(
    setup: ModeSetup,
    source: Source,
    opts: BenchmarkOptions,
    device: torch.device,
    dtype: Any,
    joint: Optional[Any],
) -> dict[str, dict[str, Any]]:
    """The joint CTC/LLM search variants at the first beam size and the largest batch."""
    cuts, data_cfg, _ = source
    beams, size = opts.beams[0], _batch_sizes(opts)[-1]
    rows = {}
    for key, settings in joint_variants(joint):
        logger.info("decoding: %s, beam %d, batch %d", key, beams, size)
        loader = decode_loader_for(cuts, data_cfg, size)
        run = decode_timed(setup, loader, beams, size, device, dtype, "native", settings)
        rows[key] = run.summary(None)
    return rows


def _reference_row(
    setup: ModeSetup, cuts: Any, data_cfg: Any, device: torch.device
) -> dict[str, Any]:
    """The reference-like decode: batch 1, beam 4, transformers' generate, fp32."""
    logger.info("decoding: reference-like, beam 4, batch 1")
    loader = decode_loader_for(cuts, data_cfg, 1)
    return decode_timed(setup, loader, 4, 1, device, torch.float32, "hf").summary(None)


def run_decoding_modes(
    modes: dict[str, ModeSetup],
    cuts: Any,
    data_cfg: Any,
    opts: BenchmarkOptions,
    device: torch.device,
    ours_source: Source,
    joint: Optional[Any] = None,
) -> dict[str, Any]:
    """Ours at every (beam, batch size); the reference at batch 1, beam 4 from features;
    with ``joint`` (a ``DecodeConfig`` with ``scorers['ctc'].weight`` > 0) also
    :func:`joint_variants`.

    Args:
        modes: both modes.
        cuts: decode cuts with encoder-input features (the reference decodes these).
        data_cfg: data config for ``cuts``.
        opts: options (beams, batch sizes, dtype, checkpoint).
        device: compute device.
        ours_source: (cuts, data config, cache build seconds) ours decodes from.
        joint: the decode settings of the joint search, or None.
    """
    dtype = decode_dtype(opts.decode_dtype, modes["ours"].model)
    if opts.decode_checkpoint:
        load_decode_projectors(modes, opts.decode_checkpoint)
    ours = _ours_grid(modes["ours"], ours_source, opts, device, dtype)
    joint_rows = _joint_rows(modes["ours"], ours_source, opts, device, dtype, joint)
    cache_seconds = ours_source[2]
    for row in ours + list(joint_rows.values()):
        row["rtf_incl_cache_build"] = ratio(
            row["wall_seconds"] + cache_seconds, row["audio_seconds"]
        )
    out: dict[str, Any] = {
        "ours": ours,
        "decode_dtype": dtype_name(dtype),
        "ours_input": opts.decode_input,
        "ours_cache_build_seconds": cache_seconds,
        "projector": opts.decode_checkpoint or "trained in this run",
    }
    out.update(joint_rows)
    if opts.reference_decode:
        out["reference"] = _reference_row(modes["reference"], cuts, data_cfg, device)
    return out
