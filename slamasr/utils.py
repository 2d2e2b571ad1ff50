"""Small shared helpers: seeding, device/dtype resolution, run environment info."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import random
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

# The logging setup lives in slamasr.logging_setup (no torch); kept importable from here.
from slamasr.logging_setup import setup_logging as setup_logging

# Libraries whose versions are recorded in every exp dir.
TRACKED_LIBRARIES = (
    "torch",
    "transformers",
    "lhotse",
    "numpy",
    "safetensors",
    "sentencepiece",
    "kaldialign",
    "slamasr",
)


def time_tag() -> str:
    """Return a file-name-safe timestamp, e.g. ``2024-05-01-13-45-10``."""
    return datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")


def print_and_save_json(result: dict, output: Optional[Path]) -> None:
    """Print ``result`` as indented JSON; also write it to ``output`` (dirs made) if given."""
    text = json.dumps(result, indent=1)
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(local_rank: int = 0, device: str = "auto") -> torch.device:
    """Pick the compute device.

    Args:
        local_rank: this process's GPU index on its node (torchrun's LOCAL_RANK).
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.

    Returns:
        The torch device; on CUDA the current device is set to it.
    """
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    dev = torch.device("cuda", local_rank)
    torch.cuda.set_device(dev)
    return dev


def _cpu_bf16_autocast_works() -> bool:
    """Return True when a bf16 autocast matmul runs on this CPU."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = torch.ones(4, 4)
            out = a @ a  # (4, 4) computed in bf16
        return out.dtype == torch.bfloat16 and bool(torch.isfinite(out.float()).all())
    except (RuntimeError, TypeError):
        return False


def resolve_autocast_dtype(name: str, device: torch.device) -> torch.dtype:
    """Resolve ``train.dtype`` to the autocast dtype for ``device``.

    Args:
        name: ``auto`` (bf16 on GPU, and on CPU when bf16 autocast works there),
            ``float32`` or ``bfloat16``.
        device: where the model runs.

    Returns:
        ``torch.bfloat16`` or ``torch.float32`` (float32 = no autocast).
    """
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    if name != "auto":
        raise ValueError(f"unknown dtype {name!r}; choose auto|float32|bfloat16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if _cpu_bf16_autocast_works() else torch.float32


def git_sha(repo_dir: Optional[Path] = None) -> str:
    """Return the git commit of the slamasr source tree (``+dirty`` if modified), or ``unknown``."""
    repo_dir = repo_dir or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    """Return ``{library: version}`` for the libraries that shape results."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["cuda"] = torch.version.cuda or "none"
    return versions


def env_info() -> dict[str, object]:
    """Return what to record about the run's environment (git sha, versions, host)."""
    return {
        "git_sha": git_sha(),
        "versions": library_versions(),
        "hostname": platform.node(),
        "command": " ".join(sys.argv),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "time": time_tag(),
    }
