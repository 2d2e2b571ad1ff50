"""Run an experiment's frozen encoder once over cut manifests and cache its outputs.

Writes ``<out-dir>/<name>_enc.jsonl.gz`` per input manifest: the same cuts with the encoder
frames attached as features, for ``data.input_kind=encoder_cache``.

Usage:
    python -m slamasr.bin.compute_encoder_cache --config conf/X.yaml \
        --cuts data/whisper_mel/espeak_cuts_train_whisper_mel80.jsonl.gz --out-dir data/enc
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from slamasr.config import ConfigError, load_config
from slamasr.data.manifests import UnsafeManifestError
from slamasr.encoder_cache import compute_encoder_cache
from slamasr.logging_setup import setup_logging

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML (its model.encoder)")
    parser.add_argument(
        "--cuts", action="append", required=True, help="manifest with encoder inputs (repeatable)"
    )
    parser.add_argument("--out-dir", required=True, help="where cached manifests go")
    parser.add_argument("--input-kind", default="whisper_mel", help="what the input manifests hold")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds per batch")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--num-jobs", type=int, default=1, help="encoder processes, sharing the threads"
    )
    parser.add_argument(
        "--allow-command-sources",
        action="store_true",
        help="read recordings whose audio comes from a shell command or a URL "
        "(= data.allow_command_sources=true)",
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    overrides = [f"data.input_kind={args.input_kind}", *args.overrides]
    if args.allow_command_sources:
        overrides.append("data.allow_command_sources=true")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    for cuts in args.cuts:
        try:
            compute_encoder_cache(
                cuts,
                args.out_dir,
                cfg.model.encoder,
                cfg.data,
                args.max_duration,
                not args.fp32,
                num_jobs=args.num_jobs,
            )
        except (FileNotFoundError, UnsafeManifestError) as e:
            log.error("%s", e)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
