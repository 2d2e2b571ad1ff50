"""Batched beam-search decoding of test sets into recogs files (every cut exactly once).

For each test set::

    exp/<name>/<decode-tag>/recogs-<set>.txt     one ref/hyp block per cut (slamasr.scoring)
    exp/<name>/<decode-tag>/bad-cuts-<set>.txt   ids of cuts whose input could not be loaded
    exp/<name>/<decode-tag>/decode-info-<set>.json  the manifest decoded, its cut ids, the
                                                    token bound and the cuts that hit it

``<decode-tag>`` = ``decode-<checkpoint>-avg<K>-beam<N>``, e.g. ``decode-best-avg1-beam4``
(:func:`decode_tag`: scorers that are on add their part).
Under torchrun each rank decodes its shard (cut i -> rank i % world); rank 0 gathers the
results, checks that every cut of the manifest has exactly one result, and writes the files.
Bad cuts (listed in a batch's ``bad_cut_ids``) get ``hyp=[]`` so scoring counts them as errors.
A batch that fails in the model (e.g. out of memory, an input the encoder rejects) is retried
cut by cut; cuts that still fail become bad cuts too (an error when no cut decodes at all).
A hypothesis that reaches its new-token bound without EOS (``decode.max_new_tokens_per_second``,
``decode.min_new_tokens_bound``) is cut there: such cuts are logged and listed in the info file,
and scoring counts them (``bound_hits`` in ``exp/<name>/wer``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist

from slamasr.checkpoints import load_trainable_weights
from slamasr.decoding.config import DecodeConfig
from slamasr.decoding.probe import ctc_probe_ids
from slamasr.decoding.rescore import build_rescorers
from slamasr.decoding.scorers import build_scorers
from slamasr.models.slam import ids_to_texts
from slamasr.text import normalize_text

RecogResult = tuple[str, list[str], list[str]]


class DecodeOutputExistsError(RuntimeError):
    """Recogs that this command would overwrite already exist."""


def decode_tag(cfg: DecodeConfig) -> str:
    """``decode-<checkpoint>-avg<K>-beam<N>``, the name of a decoding's output directory;
    ``...-ctc-greedy`` / ``...-charctc-greedy`` for the CTC-head probe (``decode.search=ctc``);
    each scorer and rescorer that is on adds its part in registry order (``-ctc<w>`` or
    ``-charctc<w>``, ``-words<w>``, ``-lm<w>``), e.g.
    ``decode-best-avg1-beam4-charctc0.5-words0.5-lm0.3``. A search setting off its default
    adds its part too (``-hf``, ``-rep1.2``, ``-lp0.8``), so no two settings share a dir."""
    if cfg.search == "ctc":
        name = "charctc" if cfg.scorers["ctc"].head == "char" else "ctc"
        return f"decode-{cfg.checkpoint}-avg{cfg.avg}-{name}-greedy"
    tag = f"decode-{cfg.checkpoint}-avg{cfg.avg}-beam{cfg.num_beams}"
    if cfg.search != "native":
        tag += f"-{cfg.search}"
    if cfg.repetition_penalty != 1.0:
        tag += f"-rep{cfg.repetition_penalty:g}"
    if cfg.length_penalty != 1.0:
        tag += f"-lp{cfg.length_penalty:g}"
    for section in (cfg.scorers, cfg.rescorers):
        tag += "".join(f"-{c.tag(name)}" for name, c in section.items() if c.weight > 0)
    return tag


config_decode_tag = decode_tag


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def decode_batch(
    model: Any,
    batch: dict[str, Any],
    cfg: DecodeConfig,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    bound_hits: Optional[list[str]] = None,
) -> dict[str, str]:
    """Beam-search one batch; return ``{cut_id: hypothesis}`` for its good cuts.

    ``bound_hits``, when given, is extended with the ids of the cuts whose hypothesis ran
    into its new-token bound (as the model reports them through ``generate(bound_hits=)``).
    """
    if not batch["cut_ids"]:
        return {}
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    flags: list[bool] = []
    with torch.no_grad(), _autocast(device, dtype):
        if cfg.search == "ctc":
            ids = ctc_probe_ids(model, batch, cfg.scorers["ctc"].head)
            hyps = ids_to_texts(model.tokenizer, ids)
        else:
            hyps = model.generate(batch, **generate_options(cfg, model), bound_hits=flags)
    if len(hyps) != len(batch["cut_ids"]):
        raise RuntimeError(f"generate() gave {len(hyps)} hypotheses for {len(batch['cut_ids'])}")
    if flags and len(flags) != len(hyps):
        raise RuntimeError(f"generate() gave {len(flags)} bound flags for {len(hyps)} hypotheses")
    if bound_hits is not None:
        bound_hits.extend(c for c, hit in zip(batch["cut_ids"], flags) if hit)
    return dict(zip(batch["cut_ids"], hyps))


def generate_options(cfg: DecodeConfig, model: Any) -> dict[str, Any]:
    """Keyword arguments of ``SlamASR.generate`` for ``cfg``: the paper's settings + the
    scorers and rescorers that are on, built for ``model``."""
    return {
        "num_beams": cfg.num_beams,
        "max_new_tokens_per_second": cfg.max_new_tokens_per_second,
        "min_new_tokens_bound": cfg.min_new_tokens_bound,
        "length_penalty": cfg.length_penalty,
        "repetition_penalty": cfg.repetition_penalty,
        "search": cfg.search,
        "scorers": build_scorers(cfg.scorers, model),
        "rescorers": build_rescorers(cfg.rescorers, model),
    }


def decode_loader(
    model: Any,
    loader: Iterable[dict[str, Any]],
    cfg: DecodeConfig,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    bound_hits: Optional[list[str]] = None,
) -> tuple[dict[str, str], list[str]]:
    """Decode every batch of ``loader``.

    Args:
        bound_hits: when given, extended with the ids of the cuts whose hypothesis hit the
            new-token bound.

    Returns:
        (``{cut_id: hypothesis}`` for loadable cuts, ids of bad cuts).
    """
    model.eval()
    hyps: dict[str, str] = {}
    bad: list[str] = []
    hits: list[str] = [] if bound_hits is None else bound_hits
    failures: list[Exception] = []
    for batch in loader:
        bad.extend(batch.get("bad_cut_ids", []))
        batch_hits: list[str] = []
        try:
            hyps.update(decode_batch(model, batch, cfg, device, dtype, batch_hits))
        except (RuntimeError, ValueError) as e:  # incl. CUDA out-of-memory
            logging.warning("batch of %s failed (%s); decoding cut by cut", batch["cut_ids"], e)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            batch_hits = []
            good, failed = decode_one_by_one(model, batch, cfg, device, dtype, failures, batch_hits)
            hyps.update(good)
            bad.extend(failed)
        hits.extend(batch_hits)
    if failures and not hyps:
        raise RuntimeError(f"every cut failed to decode; the first error: {failures[0]}")
    return hyps, bad


def select_cuts(batch: dict[str, Any], index: list[int]) -> dict[str, Any]:
    """The sub-batch of ``batch`` holding its cuts at ``index`` (no bad cuts)."""
    count = len(batch["cut_ids"])
    out: dict[str, Any] = {"bad_cut_ids": []}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == count:
            out[key] = value[index]
        elif isinstance(value, list) and len(value) == count and key != "bad_cut_ids":
            out[key] = [value[i] for i in index]
    return out


def decode_one_by_one(
    model: Any,
    batch: dict[str, Any],
    cfg: DecodeConfig,
    device: torch.device,
    dtype: torch.dtype,
    failures: list[Exception],
    bound_hits: Optional[list[str]] = None,
) -> tuple[dict[str, str], list[str]]:
    """Decode each cut of a failed batch alone; a cut that still fails becomes a bad cut.

    Returns:
        (``{cut_id: hypothesis}`` of the cuts that decoded, ids of those that did not);
        their exceptions are appended to ``failures``, bound hits to ``bound_hits``.
    """
    hyps: dict[str, str] = {}
    failed: list[str] = []
    for i, cut_id in enumerate(batch["cut_ids"]):
        try:
            one = select_cuts(batch, [i])
            hyps.update(decode_batch(model, one, cfg, device, dtype, bound_hits))
        except (RuntimeError, ValueError) as e:
            logging.error("cut %s cannot be decoded (%s: %s); hyp=[]", cut_id, type(e).__name__, e)
            failures.append(e)
            failed.append(cut_id)
    return hyps, failed


def gather_to_rank0(
    hyps: dict[str, str], bad: list[str], hits: list[str]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Merge every rank's (hyps, bad ids, bound-hit ids) on rank 0 (other ranks get theirs
    back)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return hyps, bad, hits
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (hyps, bad, hits))
    merged: dict[str, str] = {}
    merged_bad: list[str] = []
    merged_hits: list[str] = []
    for part_hyps, part_bad, part_hits in parts:
        duplicates = merged.keys() & part_hyps.keys()
        if duplicates:
            raise RuntimeError(f"cuts decoded by two ranks: {sorted(duplicates)[:5]}")
        merged.update(part_hyps)
        merged_bad.extend(part_bad)
        merged_hits.extend(part_hits)
    return merged, merged_bad, merged_hits


def build_results(
    refs: dict[str, str], hyps: dict[str, str], bad: list[str], text_norm: str
) -> list[RecogResult]:
    """One (cut_id, ref words, hyp words) per manifest cut; bad cuts get ``hyp=[]``.

    Raises:
        RuntimeError: a cut of the manifest has no result, or a result is for an unknown cut,
            or a cut is both decoded and bad — the count must equal the manifest's.
    """
    bad_set = set(bad)
    got = set(hyps) | bad_set
    missing, extra = set(refs) - got, got - set(refs)
    if missing or extra or (set(hyps) & bad_set) or len(bad) != len(bad_set):
        raise RuntimeError(
            f"decoding produced {len(hyps)} hypotheses + {len(bad)} bad cuts for a manifest of "
            f"{len(refs)} cuts; missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}"
        )
    results = [
        (
            cut_id,
            ref.split(),
            [] if cut_id in bad_set else normalize_text(hyps[cut_id], text_norm).split(),
        )
        for cut_id, ref in refs.items()
    ]
    assert len(results) == len(refs)
    return results


def output_paths(out_dir: Path, test_set: str) -> tuple[Path, Path]:
    """(recogs file, bad-cuts file) of ``test_set`` in ``out_dir``."""
    return out_dir / f"recogs-{test_set}.txt", out_dir / f"bad-cuts-{test_set}.txt"


def log_bound_hits(test_set: str, hits: list[str], cfg: DecodeConfig) -> None:
    """Say how many hypotheses were cut at the new-token bound (a warning when any)."""
    bound = f"max({cfg.min_new_tokens_bound}, ceil({cfg.max_new_tokens_per_second:g} x seconds))"
    if not hits:
        logging.info("%s: no hypothesis hit the new-token bound %s", test_set, bound)
        return
    shown = " ".join(sorted(hits)[:20]) + (" ..." if len(hits) > 20 else "")
    logging.warning(
        "%s: %d hypotheses hit the new-token bound %s without EOS and were cut there "
        "(a loop, or a bound too small: raise decode.max_new_tokens_per_second / "
        "decode.min_new_tokens_bound): %s",
        test_set, len(hits), bound, shown,
    )  # fmt: skip


def check_overwrite(out_dir: Path, test_sets: Iterable[str], overwrite: bool) -> None:
    """Refuse to replace existing recogs unless ``overwrite``."""
    existing = [p for s in test_sets for p in output_paths(out_dir, s)[:1] if p.exists()]
    if existing and not overwrite:
        raise DecodeOutputExistsError(
            f"{', '.join(map(str, existing))} already exist; pass --overwrite to decode again"
        )


def write_outputs(
    out_dir: Path,
    test_set: str,
    results: list[RecogResult],
    bad: list[str],
    info: Optional[dict[str, Any]] = None,
) -> Path:
    """Write ``recogs-<set>.txt``, ``bad-cuts-<set>.txt`` and, with ``info``,
    ``decode-info-<set>.json`` (:func:`slamasr.scoring.write_decode_info`: the cut ids are
    those of ``results``); return the recogs path."""
    from slamasr.scoring import write_decode_info, write_recogs

    recogs, bad_file = output_paths(out_dir, test_set)
    write_recogs(recogs, results)
    bad_file.write_text("".join(f"{c}\n" for c in sorted(bad)), encoding="utf-8")
    if info is not None:
        write_decode_info(out_dir, test_set, [r[0] for r in results], **info)
    logging.info("Wrote %s (%d cuts, %d bad)", recogs, len(results), len(bad))
    return recogs


@dataclasses.dataclass
class DecodeSet:
    """A named test set: the cut ids and normalized references of its manifest, its loader."""

    name: str
    refs: dict[str, str]
    loader: Iterable[dict[str, Any]]
    manifest: str = ""


def decode_test_set(
    model: Any,
    test_set: DecodeSet,
    cfg: DecodeConfig,
    out_dir: Path,
    device: torch.device,
    text_norm: str = "upper",
    dtype: torch.dtype = torch.float32,
) -> Optional[Path]:
    """Decode this rank's shard, merge on rank 0, check completeness, write the files.

    Returns:
        The recogs path on rank 0, None on other ranks.
    """
    hits: list[str] = []
    hyps, bad = decode_loader(model, test_set.loader, cfg, device, dtype, hits)
    hyps, bad, hits = gather_to_rank0(hyps, bad, hits)
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None
    results = build_results(test_set.refs, hyps, bad, text_norm)
    log_bound_hits(test_set.name, hits, cfg)
    info = {
        "manifest": test_set.manifest,
        "bound": {
            "max_new_tokens_per_second": cfg.max_new_tokens_per_second,
            "min_new_tokens_bound": cfg.min_new_tokens_bound,
        },
        "bound_hits": sorted(hits),
    }
    return write_outputs(out_dir, test_set.name, results, bad, info)


# --------------------------------------------------------------------------- from an exp dir


def load_test_set(name: str, manifest: str, data_cfg: Any, rank: int, world_size: int) -> DecodeSet:
    """Read a CutSet manifest: references of every cut + this rank's decode loader.

    The loader comes from the data layer's decode sampler (keeps every cut, sorted by
    duration, cut i on rank i % world_size).
    """
    from slamasr.data import build_dataloader
    from slamasr.data.filters import cut_text
    from slamasr.data.ids import check_cut_id
    from slamasr.data.manifests import load_cuts

    cuts = load_cuts(manifest, data_cfg.allow_command_sources).to_eager()
    refs = {check_cut_id(cut.id, manifest): cut_text(cut, data_cfg.text_norm) for cut in cuts}
    if len(refs) != len(cuts):
        raise ValueError(f"{manifest}: duplicate cut ids")
    loader = build_dataloader(cuts, data_cfg, False, world_size, rank)
    return DecodeSet(name=name, refs=refs, loader=loader, manifest=str(Path(manifest).resolve()))


def decode_data_config(cfg: Any) -> Any:
    """``cfg.data`` with the batch size/duration of ``cfg.decode``."""
    return dataclasses.replace(
        cfg.data, max_duration=cfg.decode.max_duration, batch_size=cfg.decode.batch_size
    )


def run_decoding(
    cfg: Any,
    exp_dir: Path,
    test_sets: dict[str, str],
    overwrite: bool = False,
    device: Optional[torch.device] = None,
) -> list[Path]:
    """Decode ``test_sets`` with the model of ``exp_dir`` per ``cfg.decode``.

    Args:
        cfg: the experiment's ExperimentConfig (``exp_dir/config.yaml`` + overrides).
        exp_dir: experiment directory with ``checkpoints/``.
        test_sets: name -> CutSet manifest.
        overwrite: replace existing recogs.
        device: defaults to this rank's GPU, else CPU.

    Returns:
        Recogs paths (rank 0; empty on other ranks).
    """
    from slamasr.distributed import dist_info_from_env, init_distributed
    from slamasr.models import build_model
    from slamasr.utils import resolve_device

    dcfg = cfg.decode
    out_dir = Path(exp_dir) / config_decode_tag(dcfg)
    check_overwrite(out_dir, test_sets, overwrite)
    missing = [f"{name}={path}" for name, path in test_sets.items() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"no such test-set manifest: {', '.join(missing)}")
    # the checkpoint before the models: a wrong name or a broken checkpoint fails in seconds
    weights, _ = load_trainable_weights(Path(exp_dir), dcfg.checkpoint, dcfg.avg)
    device = device or resolve_device(dist_info_from_env().local_rank, cfg.train.device)
    info = init_distributed(device)
    model = build_model(cfg.model, device=device)
    model.load_trainable_state_dict({k: v.to(device) for k, v in weights.items()})
    data_cfg = decode_data_config(cfg)
    written = []
    for name, manifest in test_sets.items():
        test_set = load_test_set(name, manifest, data_cfg, info.rank, info.world_size)
        path = decode_test_set(model, test_set, dcfg, out_dir, device, data_cfg.text_norm)
        if path is not None:
            written.append(path)
    return written
