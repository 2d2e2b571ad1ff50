"""Benchmark training and decoding: slamasr's fast path vs a reference-like path, side by side.

Prints a markdown table and writes the JSON result (``--output``); see docs/benchmark.md.
``--cuts``/``--dev-cuts``/``--decode-cuts`` are manifests with the encoder's *input* features
(whisper_mel); the encoder cache of ours is built from ``--cuts`` inside the run.

Usage:
    python -m slamasr.bin.benchmark --config conf/proto.yaml \
        --cuts data/mel/espeak_cuts_train_whisper_mel80.jsonl.gz \
        --dev-cuts data/mel/espeak_cuts_dev_whisper_mel80.jsonl.gz \
        --decode-cuts data/mel/espeak_cuts_test_whisper_mel80.jsonl.gz \
        [--steps 8] [--batch-sizes 1,4,8] [--beams 4,1] [--output bench.json] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

from slamasr.benchmark import BenchmarkOptions, render_markdown, run_benchmark
from slamasr.config import ConfigError, load_config
from slamasr.logging_setup import setup_logging
from slamasr.utils import print_and_save_json


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,4,8"`` -> ``(1, 4, 8)``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (defaults documented in ``BenchmarkOptions``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="experiment YAML (model, data, train)")
    p.add_argument("--cuts", required=True, help="training cuts (encoder-input features)")
    p.add_argument("--dev-cuts", default="", help="dev cuts (default data.dev_cuts)")
    p.add_argument("--decode-cuts", default="", help="cuts to decode (none: no decoding)")
    p.add_argument("--steps", type=int, default=8, help="reference steps (sets the audio)")
    p.add_argument("--max-duration", type=float, default=0.0, help="ours' bucket seconds")
    p.add_argument("--dev-max-cuts", type=int, default=16)
    p.add_argument("--decode-max-cuts", type=int, default=16)
    p.add_argument("--batch-sizes", type=_int_list, default=(1, 4, 8))
    p.add_argument("--beams", type=_int_list, default=(4, 1))
    p.add_argument("--lr", type=float, default=0.0, help="constant lr (default train.lr)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--decode-dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    p.add_argument("--no-reference-decode", action="store_true")
    p.add_argument("--search", default="native", choices=("native", "hf"),
                   help="ours' beam search (the reference: transformers' generate)")  # fmt: skip
    p.add_argument("--decode-input", default="cache", choices=("cache", "features"))
    p.add_argument("--decode-checkpoint", default="", help="checkpoint dir to decode with")
    p.add_argument(
        "--joint-decode",
        action="store_true",
        help="also time the joint CTC/LLM search of the config's decode section",
    )
    p.add_argument("--work-dir", default="", help="subset + cache dir (default: temporary)")
    p.add_argument("--output", type=Path, default=None, help="write the JSON result here")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="config override, repeatable")  # fmt: skip
    return p


def options_from_args(args: argparse.Namespace) -> BenchmarkOptions:
    """Map parsed arguments to :class:`BenchmarkOptions`."""
    return BenchmarkOptions(
        cuts=args.cuts,
        dev_cuts=args.dev_cuts,
        decode_cuts=args.decode_cuts,
        steps=args.steps,
        max_duration=args.max_duration,
        dev_max_cuts=args.dev_max_cuts,
        decode_max_cuts=args.decode_max_cuts,
        batch_sizes=args.batch_sizes,
        beams=args.beams,
        lr=args.lr,
        device=args.device,
        threads=args.threads,
        work_dir=args.work_dir,
        decode_dtype=args.decode_dtype,
        reference_decode=not args.no_reference_decode,
        search=args.search,
        decode_checkpoint=args.decode_checkpoint,
        joint_decode=args.joint_decode,
        decode_input=args.decode_input,
    )


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    setup_logging(None, 0, logging.INFO)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        result = run_benchmark(cfg, options_from_args(args))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_and_save_json(result, args.output)
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
