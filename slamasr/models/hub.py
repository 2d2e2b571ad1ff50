"""Load Hugging Face checkpoints from a local directory or a hub id, failing fast offline."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ModelLoadError(OSError):
    """A checkpoint could not be found or loaded; the message says what to pass instead."""


def hub_offline() -> bool:
    """Return True when the environment asks Hugging Face libraries to stay offline."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


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
    if path.startswith(("/", "./", "../", "~")):
        raise ModelLoadError(f"the {what} path {path} is not a directory")
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
