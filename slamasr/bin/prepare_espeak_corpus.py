"""Synthesize the offline English corpus with eSpeak NG and write its Lhotse manifests.

Usage: python -m slamasr.bin.prepare_espeak_corpus --out-dir data/espeak --num-train 12000
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from slamasr.logging_setup import setup_logging


def _boolean(text: str) -> bool:
    """``true``/``false`` (as run.sh passes them)."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True, help="corpus root directory")
    parser.add_argument("--num-train", type=int, default=12000, help="training utterances")
    parser.add_argument("--num-dev", type=int, default=200, help="dev utterances")
    parser.add_argument("--num-test", type=int, default=200, help="in-domain test utterances")
    parser.add_argument("--num-ood", type=int, default=220, help="out-of-domain test utterances")
    parser.add_argument(
        "--num-dev-ood", type=int, default=150, help="out-of-domain dev utterances (dev_ood)"
    )
    parser.add_argument(
        "--num-unseen", type=int, default=200, help="never-trained-on test utterances (test_unseen)"
    )
    parser.add_argument(
        "--augment",
        type=_boolean,
        default=False,
        help="true: also write train_aug, each training utterance under a seeded condition "
        "(speed 0.9/1.1, synthetic room, noise at 10-20 dB SNR; a third stay clean)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of sentences and voices")
    parser.add_argument("--num-jobs", type=int, default=2, help="synthesis processes")
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    """Prepares the corpus and logs where its cuts manifests are."""
    # imported here, not at the top: every synthesis worker is a spawned process that
    # imports this module again, and lhotse alone takes ~1.5 s to import
    from slamasr.corpora.espeak_corpus import prepare_espeak_corpus

    args = get_parser().parse_args(argv)
    setup_logging()
    try:
        cuts = run(args, prepare_espeak_corpus)
    except ValueError as err:  # sizes beyond the hand-written sentences, an unknown voice
        print(f"prepare_espeak_corpus: {err}", file=sys.stderr)
        sys.exit(2)
    for split, path in cuts.items():
        logging.info("%s: %s", split, path)


def run(args: argparse.Namespace, prepare: Callable[..., dict[str, Path]]) -> dict[str, Path]:
    """Calls ``prepare`` (:func:`prepare_espeak_corpus`) with the command-line options."""
    return prepare(
        args.out_dir,
        num_train=args.num_train,
        num_dev=args.num_dev,
        num_test=args.num_test,
        num_ood=args.num_ood,
        seed=args.seed,
        num_jobs=args.num_jobs,
        num_dev_ood=args.num_dev_ood,
        num_unseen=args.num_unseen,
        augment=args.augment,
    )


if __name__ == "__main__":
    main()
