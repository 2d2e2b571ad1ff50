"""Benchmark stage 2's feature extraction: worker processes with one torch thread each vs
torch's default threads, and one process; the features of all variants compared.

Prints (and with ``--output`` writes) JSON: seconds and cuts/s per variant, the ratios to
the one-thread workers, and whether every variant stored the same features.

Usage:
    python -m slamasr.bin.benchmark_features \
        --cuts data/manifests/espeak_cuts_train.jsonl.gz [--max-cuts 8000] [--num-jobs 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
from lhotse import CutSet

from slamasr.data.features import FEATURE_KINDS, compute_features
from slamasr.logging_setup import setup_logging
from slamasr.utils import print_and_save_json

# name -> (num_jobs or None for --num-jobs, torch threads per worker; 0: torch's default)
VARIANTS = {
    "workers_one_thread": (None, 1),
    "workers_default_threads": (None, 0),
    "one_process": (1, 0),
}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cuts", required=True, help="cut manifest with audio")
    p.add_argument("--max-cuts", type=int, default=8000, help="first N cuts (0: all)")
    p.add_argument("--num-jobs", type=int, default=2, help="worker processes")
    p.add_argument("--kind", choices=FEATURE_KINDS, default="whisper_mel")
    p.add_argument("--work-dir", default="", help="where features go (default: temporary)")
    p.add_argument("--output", type=Path, default=None, help="write the JSON result here")
    return p


def _features(manifest: Path) -> dict[str, np.ndarray]:
    return {cut.id: cut.load_features() for cut in CutSet.from_file(manifest)}


def run(cuts: Path, work: Path, max_cuts: int, num_jobs: int, kind: str) -> dict:
    """Time each variant on the same subset; see the module docstring."""
    if num_jobs < 2:
        raise ValueError(f"--num-jobs {num_jobs}: the comparison needs at least 2 workers")
    subset = CutSet.from_file(cuts)
    subset = subset.subset(first=max_cuts) if max_cuts > 0 else subset
    subset = subset.to_eager()
    manifest = work / "bench_cuts.jsonl.gz"
    subset.to_file(manifest)
    audio_s = sum(c.duration for c in subset)
    result: dict = {"cuts": len(subset), "audio_seconds": round(audio_s, 1),
                    "num_jobs": num_jobs, "kind": kind, "variants": {}}  # fmt: skip
    stored = {}
    for name, (jobs, threads) in VARIANTS.items():
        start = time.perf_counter()
        out = compute_features(manifest, work / name, kind, num_jobs=jobs or num_jobs,
                               worker_threads=threads)  # fmt: skip
        seconds = time.perf_counter() - start
        result["variants"][name] = {
            "num_jobs": jobs or num_jobs,
            "worker_threads": threads or "default",
            "seconds": round(seconds, 2),
            "cuts_per_second": round(len(subset) / seconds, 1),
        }
        stored[name] = _features(out)
    base = result["variants"]["workers_one_thread"]["seconds"]
    for name in list(VARIANTS)[1:]:
        result[f"{name}_over_workers_one_thread"] = round(
            result["variants"][name]["seconds"] / base, 2
        )
    first = stored["workers_one_thread"]
    result["identical_features"] = all(
        other.keys() == first.keys() and all(np.array_equal(first[k], other[k]) for k in first)
        for other in stored.values()
    )
    return result


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    setup_logging(level=logging.WARNING)
    try:
        if args.work_dir:
            work = Path(args.work_dir)
            work.mkdir(parents=True, exist_ok=True)
            if any(work.iterdir()):
                raise ValueError(f"--work-dir {work} is not empty: name a new or empty dir")
            result = run(Path(args.cuts), work, args.max_cuts, args.num_jobs, args.kind)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result = run(Path(args.cuts), Path(tmp), args.max_cuts, args.num_jobs, args.kind)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_and_save_json(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
