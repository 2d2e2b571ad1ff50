"""Train the SLAM-ASR projector (frozen encoder + frozen LLM); one process per GPU under torchrun.

Writes ``<exp-dir>/checkpoints/{step-N,best}/``, ``log/log-train-*``, ``tensorboard/``,
``config.yaml``, ``env.json`` and ``train-accuracy.png``. ``--resume`` continues exactly where
the newest valid checkpoint left off (step 0 in an exp dir without checkpoints; refused when
its checkpoints are all unusable or do not fit the configured model). An exp dir with
checkpoints is never silently reused: ``--start-over`` moves the old run into
``old-<time>/``, ``--overwrite`` deletes its checkpoints (its decode results are moved there).
A refused or failed start changes nothing in the exp dir. User errors print one line.

Usage:
    python -m slamasr.bin.train --config conf/whisper_tiny.yaml --exp-dir exp/whisper_tiny \
        [--resume | --start-over | --overwrite] [train.lr=5e-4 ...]
    torchrun --nproc_per_node=4 -m slamasr.bin.train --config conf/slam_asr.yaml --exp-dir exp/x
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Optional

from slamasr.config import ConfigError, load_config
from slamasr.data.dataset import NoUsableCutsError
from slamasr.models.hub import ModelLoadError
from slamasr.training.checkpoint import CheckpointWriteError
from slamasr.training.loop import TooManyBadStepsError
from slamasr.training.naming import experiment_name
from slamasr.training.run import TrainingUserError, train_from_config

# Storage errors that are the user's to fix (not bugs): reported in one line.
USER_ERRNOS = {
    errno.EACCES: "choose a writable --exp-dir or fix its permissions",
    errno.EPERM: "choose a writable --exp-dir or fix its permissions",
    errno.EROFS: "choose an --exp-dir on a writable file system",
    errno.ENOSPC: "free some space (or lower train.keep_last), then rerun with --resume",
    errno.EDQUOT: "free some space (or lower train.keep_last), then rerun with --resume",
}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML (conf/*.yaml)")
    parser.add_argument(
        "--exp-dir", type=Path, default=None, help="default: exp/<name derived from settings>"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--start-over",
        action="store_true",
        help="move the exp dir's checkpoints and results into old-<time>/ and start again",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete existing checkpoints (results are moved into old-<time>/) and start again",
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value (win over the file)")
    return parser


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(message).split())


def storage_error_line(e: OSError) -> Optional[str]:
    """One line for a full disk / permission / read-only error, None for any other OSError."""
    hint = USER_ERRNOS.get(e.errno) if e.errno is not None else None
    if hint is None:
        return None
    where = f": {e.filename}" if e.filename else ""
    return f"error: {(e.strerror or str(e)).lower()}{where}; {hint}"


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    if sum((args.resume, args.overwrite, args.start_over)) > 1:
        print("error: --resume, --start-over and --overwrite exclude each other", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {one_line(e)}", file=sys.stderr)
        return 2
    exp_dir = args.exp_dir or Path("exp") / experiment_name(cfg)
    try:
        train_from_config(cfg, exp_dir, args.resume, args.overwrite, args.start_over)
    except (
        ConfigError,
        TrainingUserError,
        TooManyBadStepsError,
        ModelLoadError,
        CheckpointWriteError,
        NoUsableCutsError,
    ) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:
        line = storage_error_line(e)
        if line is None:
            raise
        print(one_line(line), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
