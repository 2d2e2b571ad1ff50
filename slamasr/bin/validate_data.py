"""Report every problem of a cut manifest (reads each audio file's header); exit 1 if any.

Checks run in ``--num-jobs`` processes over chunks of the manifest; the report is the same
for any number of jobs. An empty manifest is a problem. Manifests whose recordings would
run a shell command or fetch a URL when read are refused unless ``--allow-command-sources``.

Usage:
    python -m slamasr.bin.validate_data --cuts data/manifests/librispeech_cuts_train-clean-100.jsonl.gz --max-audio-seconds 30 --num-jobs 8
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import sys

from slamasr.data.config import INPUT_KINDS, DataConfig
from slamasr.data.manifests import UnsafeManifestError
from slamasr.data.validate import validate_manifest
from slamasr.logging_setup import setup_logging

DEFAULT_NUM_JOBS = min(8, os.cpu_count() or 1)


def get_parser() -> argparse.ArgumentParser:
    defaults = DataConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuts", nargs="+", required=True, help="cut manifest(s)")
    parser.add_argument("--max-audio-seconds", type=float, default=defaults.max_audio_seconds)
    parser.add_argument("--min-audio-seconds", type=float, default=defaults.min_audio_seconds)
    parser.add_argument(
        "--max-chars-per-second",
        type=float,
        default=defaults.max_chars_per_second,
        help="transcript characters per second of audio above which a cut is a problem (0: off)",
    )
    parser.add_argument(
        "--input-kind",
        choices=INPUT_KINDS,
        default="audio",
        help="what training will read (audio: raw manifests; others need features)",
    )
    parser.add_argument("--min-encoder-frames", type=int, default=defaults.min_encoder_frames)
    parser.add_argument("--text-norm", choices=("upper", "lower", "none"), default="upper")
    parser.add_argument("--max-ids", type=int, default=20, help="cut ids listed per kind")
    parser.add_argument(
        "--num-jobs",
        type=int,
        default=DEFAULT_NUM_JOBS,
        help=f"worker processes (default: min(8, CPUs) = {DEFAULT_NUM_JOBS})",
    )
    parser.add_argument(
        "--allow-command-sources",
        action="store_true",
        help="read recordings whose audio comes from a shell command or a URL (trusted input)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    if args.num_jobs < 1:
        print(f"validate_data: --num-jobs {args.num_jobs}: use 1 or more", file=sys.stderr)
        return 2
    cfg = DataConfig(
        input_kind=args.input_kind,
        text_norm=args.text_norm,
        max_audio_seconds=args.max_audio_seconds,
        min_audio_seconds=args.min_audio_seconds,
        min_encoder_frames=args.min_encoder_frames,
        max_chars_per_second=args.max_chars_per_second,
        allow_command_sources=args.allow_command_sources,
    )
    all_ok = True
    for path in args.cuts:
        try:
            report = validate_manifest(path, cfg, num_jobs=args.num_jobs)
        except (FileNotFoundError, UnsafeManifestError) as e:
            print(f"validate_data: {e}", file=sys.stderr)
            all_ok = False
            continue
        print(f"{path}: {report.format(args.max_ids)}")
        all_ok = all_ok and report.ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
