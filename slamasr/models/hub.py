"""Load Hugging Face checkpoints from a local directory or a hub id, failing fast offline."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")

# the directories a recipe keeps next to run.sh (stage 0 writes models/ and download/)
RECIPE_DIRS = ("models", "download", "data", "exp")
# a Hugging Face repo id: "name" or "org/name" of letters, digits, "-", "_", "."
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


class ModelLoadError(OSError):
    """A checkpoint could not be found or loaded; the message says what to pass instead."""


def hub_offline() -> bool:
    """Return True when the environment asks Hugging Face libraries to stay offline."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def is_path_shaped(value: str) -> bool:
    """True when a model path can only mean a local directory, never a hub id.

    Hub ids are ``name`` or ``org/name`` (one ``/`` at most), so a value is path-shaped when
    it starts with ``/``, ``.``, ``~`` or one of the recipe's own directories (``models/``,
    ``download/``, ``data/``, ``exp/``: the recipe's stage 0 writes models there), has more
    than one ``/``, a backslash, a trailing ``/``, or any character a hub id cannot hold.
    """
    if value.startswith(("/", ".", "~")) or "\\" in value or value.endswith("/"):
        return True
    if value.count("/") > 1 or value.split("/", 1)[0] in RECIPE_DIRS and "/" in value:
        return True
    return not HUB_ID.match(value) or "--" in value or ".." in value


def missing_dir_message(what: str, path: str) -> str:
    """One line: a path-shaped model path does not exist (relative to the working dir)."""
    return (
        f"the {what} path '{path}' is not a directory (relative paths are taken from the "
        f"working directory {Path.cwd()}); create it (recipe stage 0) or fix the path"
    )


def load_pretrained(loader: Callable[..., T], path: str, what: str, **kwargs: Any) -> T:
    """Call ``loader(path, **kwargs)`` (a ``from_pretrained``) with a clear failure message.

    A local directory is loaded as is.  A hub id is first looked up in the local cache
    (``local_files_only=True``); only when that misses and the hub is not marked offline is a
    download tried.  Any failure raises :class:`ModelLoadError` naming ``path`` and telling the
    user to pass a local directory.

    Args:
        loader: e.g. ``AutoModelForCausalLM.from_pretrained``.
        path: local directory or Hugging Face id.
        what: a short noun for messages ("LLM", "whisper encoder").
        **kwargs: passed to the loader.

    Returns:
        Whatever the loader returns.
    """
    local = Path(path).expanduser()
    if local.is_dir():
        try:
            return loader(str(local), **kwargs)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load the {what} from local dir {local}: {e}") from e
    if is_path_shaped(path):
        raise ModelLoadError(missing_dir_message(what, path))
    try:
        return loader(path, local_files_only=True, **kwargs)
    except (OSError, ValueError) as cache_miss:
        if hub_offline():
            raise ModelLoadError(
                f"the {what} '{path}' is not a local directory and not in the Hugging Face "
                f"cache, and the hub is offline (HF_HUB_OFFLINE); pass a local directory "
                f"holding the checkpoint instead"
            ) from cache_miss
    logger.info("downloading the %s '%s' from the Hugging Face hub", what, path)
    try:
        return loader(path, **kwargs)
    except Exception as e:  # network, auth and missing-repo errors all end here
        raise ModelLoadError(
            f"cannot reach or load the {what} '{path}' from the Hugging Face hub ({e}); "
            f"download it elsewhere and pass a local directory instead"
        ) from e


def resolve_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """Map a config dtype name to a torch dtype; ``auto`` = bf16 on GPU, fp32 on CPU.

    Args:
        name: auto|float32|bfloat16|float16.
        device: where the module will run.

    Returns:
        The torch dtype.
    """
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if name not in table:
        raise ValueError(f"dtype {name!r} is not one of auto|{'|'.join(table)}")
    return table[name]
