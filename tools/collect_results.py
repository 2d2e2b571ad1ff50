#!/usr/bin/env python3
"""Collect ``exp/*/wer`` files into one markdown table of WER (%) (rows: experiment/tag).

Usage:
    python tools/collect_results.py exp/*/wer [--best] [--output RESULTS.md]

A malformed wer file is named (file:line) on stderr and left out; the table of the others is
still printed, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from slamasr.scoring import results_table


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wer_files", nargs="+", type=Path, help="exp/<name>/wer files")
    parser.add_argument("--best", action="store_true", help="keep each experiment's best tag")
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Print (and optionally write) the results table; returns the exit status."""
    args = get_parser().parse_args(argv)
    missing = [str(p) for p in args.wer_files if not p.is_file()]
    if missing:
        sys.exit(f"collect_results.py: no such wer file: {' '.join(missing)}")
    errors: list[str] = []
    table = results_table(args.wer_files, best=args.best, errors=errors)
    print(table, end="")
    if args.output is not None:
        args.output.write_text(table, encoding="utf-8")
    for error in errors:
        print(f"collect_results.py: skipped {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
