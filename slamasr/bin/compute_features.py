"""Compute encoder input features with Lhotse (Whisper log-mel or Kaldi fbank), stored once.

Usage:
    python -m slamasr.bin.compute_features \
        --cuts data/manifests/librispeech_cuts_dev-clean.jsonl.gz \
        --out-dir data/fbank --kind whisper_mel --n-mels 80 --num-jobs 4
"""

from __future__ import annotations

import argparse
import logging
import sys

from slamasr.data.features import FEATURE_KINDS, compute_features
from slamasr.data.manifests import UnsafeManifestError
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuts", nargs="+", required=True, help="input cut manifest(s)")
    parser.add_argument("--out-dir", default="data/fbank", help="feature dir")
    parser.add_argument("--kind", choices=FEATURE_KINDS, default="whisper_mel")
    parser.add_argument("--n-mels", type=int, choices=(80, 128), default=80)
    parser.add_argument("--num-jobs", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--allow-command-sources",
        action="store_true",
        help="read recordings whose audio comes from a shell command or a URL (trusted input)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    for cuts in args.cuts:
        try:
            out = compute_features(
                cuts,
                args.out_dir,
                args.kind,
                args.n_mels,
                args.num_jobs,
                allow_command_sources=args.allow_command_sources,
            )
        except (FileNotFoundError, UnsafeManifestError) as e:
            print(f"compute_features: {e}", file=sys.stderr)
            return 1
        logging.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
