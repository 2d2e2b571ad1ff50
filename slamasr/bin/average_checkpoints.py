"""Average the trainable weights of the last K step checkpoints into one safetensors file.

Usage:
    python -m slamasr.bin.average_checkpoints --exp-dir exp/whisper_tiny --checkpoint last \
        --avg 5 --out exp/whisper_tiny/averaged-last-5.safetensors
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

from safetensors.torch import save_file

from slamasr import checkpoints as ckpt
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default="last", help="best | last | step-N (the end)")
    parser.add_argument("--avg", type=int, default=5, help="how many step checkpoints")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    setup_logging()
    try:
        paths = ckpt.checkpoints_for_average(
            args.exp_dir / "checkpoints", args.checkpoint, args.avg
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(ckpt.average_trainable(paths), str(args.out))
    logging.info("Averaged %s -> %s", [p.name for p in paths], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
