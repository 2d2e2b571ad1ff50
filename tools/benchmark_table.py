#!/usr/bin/env python3
"""Render a benchmark JSON (``python -m slamasr.bin.benchmark --output``) as markdown tables.

Prints the tables, or with ``--update FILE`` replaces what lies between the lines
``<!-- benchmark-table:start -->`` and ``<!-- benchmark-table:end -->`` of FILE, so the
numbers in docs/benchmark.md are generated, never typed.

Usage:
    python tools/benchmark_table.py exp/bench/bench.json [--update docs/benchmark.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from slamasr.benchmark import render_markdown

START = "<!-- benchmark-table:start -->"
END = "<!-- benchmark-table:end -->"


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("result", type=Path, help="benchmark JSON")
    parser.add_argument("--update", type=Path, default=None, help="markdown file to update")
    return parser


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with the part between START and END replaced by ``table``."""
    if START not in text or END not in text:
        raise ValueError(f"the file needs the lines {START} and {END}")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table.rstrip()}\n{END}{after}"


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    table = render_markdown(json.loads(args.result.read_text(encoding="utf-8")))
    if args.update is None:
        print(table, end="")
        return 0
    try:
        updated = replace_between_markers(args.update.read_text(encoding="utf-8"), table)
    except ValueError as e:
        print(f"error: {args.update}: {e}", file=sys.stderr)
        return 1
    args.update.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
