"""Report every problem of a cut manifest (reads each audio file's header); exit 1 if any.

Usage:
    python -m slamasr.bin.validate_data --cuts data/manifests/librispeech_cuts_train-clean-100.jsonl.gz --max-audio-seconds 30
"""  # noqa: E501

from __future__ import annotations

import argparse
import logging
import sys

from slamasr.data.config import INPUT_KINDS, DataConfig
from slamasr.data.manifests import load_cuts
from slamasr.data.validate import validate_cuts

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


def get_parser() -> argparse.ArgumentParser:
    defaults = DataConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuts", nargs="+", required=True, help="cut manifest(s)")
    parser.add_argument("--max-audio-seconds", type=float, default=defaults.max_audio_seconds)
    parser.add_argument("--min-audio-seconds", type=float, default=defaults.min_audio_seconds)
    parser.add_argument(
        "--input-kind",
        choices=INPUT_KINDS,
        default="audio",
        help="what training will read (audio: raw manifests; others need features)",
    )
    parser.add_argument("--min-encoder-frames", type=int, default=defaults.min_encoder_frames)
    parser.add_argument("--text-norm", choices=("upper", "lower", "none"), default="upper")
    parser.add_argument("--max-ids", type=int, default=20, help="cut ids listed per kind")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    args = get_parser().parse_args(argv)
    cfg = DataConfig(
        input_kind=args.input_kind,
        text_norm=args.text_norm,
        max_audio_seconds=args.max_audio_seconds,
        min_audio_seconds=args.min_audio_seconds,
        min_encoder_frames=args.min_encoder_frames,
    )
    all_ok = True
    for path in args.cuts:
        report = validate_cuts(load_cuts(path), cfg)
        print(f"{path}: {report.format(args.max_ids)}")
        all_ok = all_ok and report.ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
