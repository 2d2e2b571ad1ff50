#!/usr/bin/env python3
"""Add a dated section (command, commit, configs, WER table) to a recipe's RESULTS.md.

Usage:
    python tools/results_md.py --results RESULTS.md --command "./run.sh" exp/*/wer \
        [--wall-time "26 min 42 s"] [--with-plot] [--replace | --keep-existing]

The section is generated from the ``exp/*/wer`` files (every decode tag x test set, every
column), each experiment's ``config.yaml`` and training log; ``--with-plot`` also copies each
``exp/X/train-accuracy.png`` to ``results/<date>-<exp>.png`` beside RESULTS.md and links it.
A section of the same date and commit is refused (exit 1) unless ``--replace``;
``--keep-existing`` keeps it and exits 0 (for scripts that may run twice).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Optional

from slamasr.results import ResultsError, SectionExistsError, update_results_md
from slamasr.scoring import ScoringInputError

PROG = "results_md.py"


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("wer_files", nargs="+", type=Path, help="exp/<name>/wer files")
    parser.add_argument("--results", type=Path, required=True, help="the RESULTS.md to update")
    parser.add_argument("--command", required=True, help="the command that gave the results")
    parser.add_argument("--wall-time", default=None, help='e.g. "26 min 42 s"')
    parser.add_argument("--with-plot", action="store_true", help="copy and link the curves")
    parser.add_argument(
        "--date", default=None, help="YYYY-MM-DD of the section (default: today, UTC)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--replace", action="store_true", help="replace a same date+commit section")
    mode.add_argument(
        "--keep-existing", action="store_true", help="a same date+commit section: keep it, exit 0"
    )
    return parser


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def main(argv: Optional[list[str]] = None) -> int:
    """Write the section; returns the exit status (user errors: one line on stderr)."""
    args = get_parser().parse_args(argv)
    date = args.date or _today()
    try:
        datetime.date.fromisoformat(date)
        update_results_md(
            args.results, args.wer_files, args.command, date, args.wall_time,
            args.with_plot, args.replace,
        )  # fmt: skip
    except ValueError as e:  # ResultsError, ScoringInputError, a bad --date
        if isinstance(e, SectionExistsError) and args.keep_existing:
            print(f"{PROG}: {args.results} kept as it is: {e}", file=sys.stderr)
            return 0
        kind = "" if isinstance(e, (ResultsError, ScoringInputError)) else "--date: "
        print(f"{PROG}: {kind}{e}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote a section for {date} to {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
