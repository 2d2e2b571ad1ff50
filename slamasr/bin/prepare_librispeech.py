"""Download LibriSpeech (Lhotse's downloader) and write Lhotse manifests for its parts.

Parts already present under ``<dl-dir>/LibriSpeech`` (or ``--corpus-dir``) are not downloaded.
Without network the command fails fast with a message saying where to place the corpus.

Usage:
    python -m slamasr.bin.prepare_librispeech --dl-dir download --output-dir data/manifests \
        --parts dev-clean test-clean
    python -m slamasr.bin.prepare_librispeech --dl-dir download --download-only
"""

from __future__ import annotations

import argparse
import logging
import sys

from slamasr.data.manifests import (
    LIBRISPEECH_BASE_URL,
    LIBRISPEECH_PARTS,
    CorpusDownloadError,
    download_librispeech_parts,
    prepare_librispeech_manifests,
)
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dl-dir", default="download", help="download dir (gets LibriSpeech/)")
    parser.add_argument(
        "--corpus-dir", default=None, help="existing LibriSpeech dir; skips the download"
    )
    parser.add_argument("--output-dir", default="data/manifests", help="manifest dir")
    parser.add_argument(
        "--parts", nargs="+", default=list(LIBRISPEECH_PARTS), help="LibriSpeech parts"
    )
    parser.add_argument("--base-url", default=LIBRISPEECH_BASE_URL, help="OpenSLR resources URL")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout (s)")
    parser.add_argument("--num-jobs", type=int, default=1, help="threads for Lhotse's recipe")
    parser.add_argument(
        "--download-only", action="store_true", help="download missing parts, write no manifests"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    corpus_dir = args.corpus_dir
    if corpus_dir is None:
        try:
            corpus_dir = download_librispeech_parts(
                args.dl_dir, args.parts, base_url=args.base_url, timeout=args.timeout
            )
        except CorpusDownloadError as e:
            logging.error("%s", e)
            return 1
    if args.download_only:
        logging.info("LibriSpeech parts %s are in %s", " ".join(args.parts), corpus_dir)
        return 0
    try:
        prepare_librispeech_manifests(corpus_dir, args.output_dir, args.parts, args.num_jobs)
    except FileNotFoundError as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
