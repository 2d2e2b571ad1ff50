"""Train the SLAM-ASR projector (frozen encoder + frozen LLM); one process per GPU under torchrun.

Writes ``<exp-dir>/checkpoints/{step-N,best}/``, ``log/log-train-*``, ``tensorboard/``,
``config.yaml``, ``env.json`` and ``train-accuracy.png``. ``--resume`` continues exactly where
the newest valid checkpoint left off; an exp dir with checkpoints is never silently reused.

Usage:
    python -m slamasr.bin.train --config conf/whisper_tiny.yaml --exp-dir exp/whisper_tiny \
        [--resume] [--overwrite] [train.lr=5e-4 ...]
    torchrun --nproc_per_node=4 -m slamasr.bin.train --config conf/slam_asr.yaml --exp-dir exp/x
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from slamasr.config import ConfigError, load_config
from slamasr.training.loop import TooManyBadStepsError
from slamasr.training.naming import experiment_name
from slamasr.training.run import ExpDirError, train_from_config


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML (conf/*.yaml)")
    parser.add_argument(
        "--exp-dir", type=Path, default=None, help="default: exp/<name derived from settings>"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--overwrite", action="store_true", help="delete existing checkpoints and start again"
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value (win over the file)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    if args.resume and args.overwrite:
        print("error: --resume and --overwrite exclude each other", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    exp_dir = args.exp_dir or Path("exp") / experiment_name(cfg)
    try:
        train_from_config(cfg, exp_dir, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, ExpDirError, TooManyBadStepsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
