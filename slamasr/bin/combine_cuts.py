"""Combine cut manifests into one, in a seeded random order (icefall's train-all-shuf).

LibriSpeech's train-960 concatenated part by part is clean-100, clean-360, then other-500;
a sampler that shuffles within a 20k-cut buffer would then train half of every epoch on
clean speech and the other half on other. Shuffling once here mixes them.

Usage:
    python -m slamasr.bin.combine_cuts --seed 42 --output data/manifests/librispeech_cuts_train-960.jsonl.gz \
        data/manifests/librispeech_cuts_train-clean-100.jsonl.gz \
        data/manifests/librispeech_cuts_train-clean-360.jsonl.gz \
        data/manifests/librispeech_cuts_train-other-500.jsonl.gz
"""  # noqa: E501

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from slamasr.data.manifests import shuffle_combine
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="cut manifests (jsonl/jsonl.gz)")
    parser.add_argument("--output", required=True, help="combined manifest to write")
    parser.add_argument("--seed", type=int, default=42, help="seed of the random order")
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    missing = [p for p in args.inputs if not Path(p).is_file()]
    if missing:
        print(f"combine_cuts: no such manifest: {' '.join(missing)}", file=sys.stderr)
        return 1
    count = shuffle_combine(args.inputs, args.output, args.seed)
    logging.info("wrote %d cuts of %d manifest(s) in random order (seed %d) to %s",
                 count, len(args.inputs), args.seed, args.output)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
