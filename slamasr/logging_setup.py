"""The one logging setup of every entry point (``slamasr.bin.*`` and the training run).

Standard library only, so a light command (``score``, ``show_config``) does not pay for
importing torch to log.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"
_OURS = "_slamasr"  # attribute that marks the handlers this module added


def setup_logging(
    log_file: Optional[Path] = None, rank: int = 0, level: int = logging.INFO
) -> None:
    """Configure the root logger with the project format, to stderr and optionally a file.

    Calling it again replaces the handlers of the earlier call (others' are kept). Non-zero
    ranks log warnings and errors only to the console (their full log goes to their own
    file), so a multi-process run prints one stream of progress.

    Args:
        log_file: file to append to (its parent is created), or None.
        rank: process rank under torchrun.
        level: level for the file and (on rank 0) the console.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level if rank == 0 else logging.WARNING)
    _add(root, console)
    if log_file is not None:
        log_file = Path(log_file)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(level)
        _add(root, file_handler)


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    setattr(handler, _OURS, True)
    root.addHandler(handler)
