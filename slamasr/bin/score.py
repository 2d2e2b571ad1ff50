"""Score decoding results: errs/wer-summary files per test set and the experiment's wer file.

Usage:
    python -m slamasr.bin.score --exp-dir exp/X --decode-dir exp/X/<tag> \
        [--test-sets test-clean test-other] [--text-norm upper]

Reads ``<decode-dir>/recogs-<set>.txt`` (and ``bad-cuts-<set>.txt`` when present), writes
``<decode-dir>/errs-<set>.txt`` and ``wer-summary-<set>.txt``, and updates ``<exp-dir>/wer``
(one line per decode tag and test set; see ``slamasr.scoring.WER_FILE_COLUMNS``). Recogs
whose cuts differ from those decoding read (``decode-info-<set>.json``), or a damaged recogs
file, are refused with one line naming the file, and ``exp/X/wer`` is left as it was.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

from slamasr.logging_setup import setup_logging
from slamasr.scoring import ScoringInputError, score_decode_dir


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exp-dir", type=Path, required=True, help="experiment dir (its wer)")
    parser.add_argument(
        "--decode-dir", type=Path, required=True, help="dir with recogs-<set>.txt files"
    )
    parser.add_argument(
        "--test-sets", nargs="+", default=None, help="sets to score (default: all recogs found)"
    )
    parser.add_argument(
        "--text-norm",
        choices=("upper", "lower", "none"),
        default=None,
        help="normalize ref and hyp with slamasr.text.normalize_text (default: as written)",
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Score every requested test set and print its WER; returns the exit status."""
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        records = score_decode_dir(args.exp_dir, args.decode_dir, args.test_sets, args.text_norm)
    except (ScoringInputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for r in records:
        hits = "unknown" if r.bound_hits is None else r.bound_hits
        print(
            f"{r.tag}\t{r.test_set}\tWER {r.wer:.2f}% [{r.errors} / {r.ref_words}, "
            f"{r.ins} ins, {r.dels} del, {r.subs} sub] utts {r.utterances} "
            f"bad_cuts {r.bad_cuts} hallucinations {r.hallucinations} bound_hits {hits}"
        )
    logging.info("updated %s", args.exp_dir / "wer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
