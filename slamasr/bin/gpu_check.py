"""One-GPU check of SLAM-ASR at real size with random weights (no network, no downloads):
training steps, decoding, collectives and the tiny recipe, printed as JSON.

On CPU (or with ``--tiny``) the same parts run with tiny shapes. ``--encoder-precision``
instead compares HuBERT X-Large outputs between fp32, bf16 and autocast variants on CPU.
Exit status 0 when every part is ok, 1 otherwise (the JSON says which). With ``--out`` the
report so far is saved after each part (``"partial": true`` until the run ends), so a run cut
short by a timeout keeps what it finished.

Usage:
    python -m slamasr.bin.gpu_check --out gpu_check.json            # on one 80-141 GB GPU
    python -m slamasr.bin.gpu_check --tiny --parts collectives recipe
    python -m slamasr.bin.gpu_check --encoder-precision --seconds 8 --out precision.json
    python -m slamasr.bin.gpu_check --estimate --estimate-seconds 12.3 --estimate-tokens 76
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional

from slamasr.gpu_check import (
    PARTS,
    CheckOptions,
    encoder_precision,
    estimate_table,
    estimates,
    precision_table,
    run_check,
)
from slamasr.logging_setup import setup_logging
from slamasr.utils import print_and_save_json


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (implied without CUDA)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, metavar="PART",
                   help=f"parts to run (default all: {' '.join(PARTS)})")  # fmt: skip
    p.add_argument("--work-dir", default="", help="scratch dir (default: temporary, removed)")
    p.add_argument("--train-steps", type=int, default=None, help="default 3")
    p.add_argument("--short-utts", type=int, default=None, help="default 128 (tiny: 8)")
    p.add_argument("--long-utts", type=int, default=None, help="default 6 (tiny: 2)")
    p.add_argument("--recipe-timeout", type=float, default=600.0, help="seconds (recipe part)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--encoder-precision", action="store_true",
                   help="compare HuBERT X-Large precision variants on CPU instead")  # fmt: skip
    p.add_argument("--seconds", type=float, default=8.0, help="audio for --encoder-precision")
    p.add_argument("--estimate", action="store_true",
                   help="print memory/FLOP estimates from shapes alone (nothing runs)")  # fmt: skip
    p.add_argument("--estimate-seconds", type=float, default=30.0, help="utterance length")
    p.add_argument("--estimate-tokens", type=int, default=300, help="target tokens/utt")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    setup_logging(None, 0, logging.INFO)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    for name in ("train_steps", "short_utts", "long_utts"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.estimate:
        result = estimates(args.estimate_seconds, args.estimate_tokens)
        print_and_save_json(result, args.out)
        print(estimate_table(result))
        return 0
    if args.encoder_precision:
        result = encoder_precision(args.seconds, tiny=args.tiny)
        print_and_save_json(result, args.out)
        print(precision_table(result))
        return 0
    opts = CheckOptions(
        tiny=args.tiny,
        device=args.device,
        parts=tuple(args.parts),
        work_dir=args.work_dir,
        train_steps=args.train_steps,
        short_utts=args.short_utts,
        long_utts=args.long_utts,
        recipe_timeout=args.recipe_timeout,
    )

    def save_partial(partial: dict) -> None:
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({**partial, "partial": True}, indent=1) + "\n")

    try:
        result = run_check(opts, on_part=save_partial)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_and_save_json(result, args.out)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
