"""Turn your own corpus into a Lhotse cut manifest (16 kHz; other rates are resampled).

Input is either a Kaldi data dir (``wav.scp`` + ``text`` [+ ``segments``]) or a TSV list
whose lines are ``audio_path<TAB>transcript`` (relative paths are relative to the list).

Usage:
    python -m slamasr.bin.prepare_data_dir --kaldi-dir data/local/dev --output data/manifests/mycorpus_cuts_dev.jsonl.gz
    python -m slamasr.bin.prepare_data_dir --tsv dev.tsv --output data/manifests/mycorpus_cuts_dev.jsonl.gz
"""  # noqa: E501

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from slamasr.data.manifests import cuts_from_kaldi_dir, cuts_from_tsv
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kaldi-dir", default=None, help="Kaldi data dir (wav.scp, text)")
    source.add_argument("--tsv", default=None, help="list of audio_path<TAB>transcript")
    parser.add_argument("--output", required=True, help="cut manifest to write (.jsonl.gz)")
    parser.add_argument(
        "--sampling-rate", type=int, default=16000, help="sample rate of a Kaldi dir's audio"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    bad: list[str] = []
    if args.kaldi_dir:
        cuts = cuts_from_kaldi_dir(args.kaldi_dir, sampling_rate=args.sampling_rate)
    else:
        cuts, bad = cuts_from_tsv(args.tsv)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    cuts.to_file(args.output)
    logging.info("wrote %d cuts to %s", len(cuts), args.output)
    if bad:
        logging.warning("skipped %d unreadable audio file(s): %s", len(bad), " ".join(bad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
