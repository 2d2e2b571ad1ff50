"""Score decoding results: errs/wer-summary files per test set and the experiment's wer file.

Usage:
    python -m slamasr.bin.score --exp-dir exp/X --decode-dir exp/X/<tag> \
        [--test-sets test-clean test-other] [--text-norm upper]

Reads ``<decode-dir>/recogs-<set>.txt`` (and ``bad-cuts-<set>.txt`` when present), writes
``<decode-dir>/errs-<set>.txt`` and ``wer-summary-<set>.txt``, and updates ``<exp-dir>/wer``
(one line per decode tag and test set; see ``slamasr.scoring.WER_FILE_COLUMNS``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional

from slamasr.scoring import score_decode_dir

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


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


def main(argv: Optional[list[str]] = None) -> None:
    """Score every requested test set and print its WER."""
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    args = get_parser().parse_args(argv)
    records = score_decode_dir(args.exp_dir, args.decode_dir, args.test_sets, args.text_norm)
    for r in records:
        print(
            f"{r.tag}\t{r.test_set}\tWER {r.wer:.2f}% [{r.errors} / {r.ref_words}, "
            f"{r.ins} ins, {r.dels} del, {r.subs} sub] utts {r.utterances} "
            f"bad_cuts {r.bad_cuts} hallucinations {r.hallucinations}"
        )
    logging.info("updated %s", args.exp_dir / "wer")


if __name__ == "__main__":
    main()
