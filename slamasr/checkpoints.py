"""Reading checkpoints: list, verify, resolve ``best|last|step-N``, load and average.

Training writes checkpoints (:mod:`slamasr.training.checkpoint`, the write side); decoding,
transcription, averaging and the checks read them through this module, which imports
nothing of ``slamasr.training``.

On-disk layout (one directory per checkpoint)::

    exp/<name>/checkpoints/
        step-1000/
            trainable.safetensors   only what trains (projector, + encoder when fine-tuned)
            optimizer.pt            optimizer.state_dict(); read with torch.load(weights_only=True)
            state.json              step, epoch, batches done in the epoch, scheduler state,
                                    best dev loss, early-stop counter, NaN counters, history
            rank-0.json ...         per rank: RNG states (python, numpy, torch, cuda), sampler
            manifest.json           {"files": {name: {"size": int, "sha256": hex}}}; written last
        step-2000/ ...
        best/                       same layout, the step with the lowest dev loss so far

A checkpoint whose manifest is missing or whose files do not match it is reported and skipped.
A publish killed between its two renames leaves ``.tmp-<name>``/``.old-<name>`` and no
``<name>``; readers use the verified leftover (:func:`interrupted_publish`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file

WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
MANIFEST = "manifest.json"
STEP_RE = re.compile(r"^step-(\d+)$")


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- listing


def list_step_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Return ``[(step, path), ...]`` for every ``step-N`` directory, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = []
    for child in ckpt_dir.iterdir():
        match = STEP_RE.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def verify_checkpoint(path: Path) -> Optional[str]:
    """Check a checkpoint directory against its manifest.

    Returns:
        None when every listed file exists with the recorded size and SHA-256, else a
        sentence saying what is wrong.
    """
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return f"{path}: no {MANIFEST} (incomplete write)"
    try:
        files = read_json(manifest_path)["files"]
    except (ValueError, KeyError) as e:
        return f"{path}: unreadable {MANIFEST}: {e}"
    for name, info in files.items():
        file = path / name
        if not file.is_file():
            return f"{path}: {name} is missing"
        if file.stat().st_size != info["size"]:
            return f"{path}: {name} has {file.stat().st_size} bytes, manifest says {info['size']}"
        if sha256_of(file) != info["sha256"]:
            return f"{path}: {name} fails its SHA-256 check (corrupt)"
    return None


def latest_valid_checkpoint(ckpt_dir: Path) -> Optional[Path]:
    """Return the newest ``step-N`` checkpoint that passes verification (warn on bad ones)."""
    for _, path in reversed(list_step_checkpoints(ckpt_dir)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        logging.warning("Skipping bad checkpoint, using an earlier one: %s", problem)
    return None


def interrupted_publish(ckpt_dir: Path, name: str) -> Optional[Path]:
    """The verified leftover of a publish of ``name`` killed between its two renames.

    Publishing renames ``name`` to ``.old-<name>`` and then ``.tmp-<name>`` to ``name``;
    a kill in between leaves no ``name``.  The new copy (complete: its manifest was written
    before publishing) is preferred, else the old one.

    Returns:
        ``.tmp-<name>`` or ``.old-<name>`` when it passes verification, else None.
    """
    for candidate in (ckpt_dir / f".tmp-{name}", ckpt_dir / f".old-{name}"):
        if candidate.is_dir() and verify_checkpoint(candidate) is None:
            return candidate
    return None


def resumable_checkpoint(ckpt_dir: Path) -> Optional[Path]:
    """The checkpoint ``--resume`` would continue from, found without changing anything.

    The newest valid ``step-N``; failing that, the newest ``step-N`` whose publish was cut
    short between its two renames and which training's ``remove_stale_temporaries`` would
    recover (its verified ``.tmp-``/``.old-`` copy is returned).
    """
    path = latest_valid_checkpoint(ckpt_dir)
    if path is not None or not ckpt_dir.is_dir():
        return path
    names = {c.name.split("-", 1)[1] for c in ckpt_dir.iterdir() if c.name.startswith(".old-")}
    steps = sorted(
        (int(m.group(1)), n)
        for n in names
        if (m := STEP_RE.match(n)) and not (ckpt_dir / n).exists()
    )
    for _, name in reversed(steps):
        leftover = interrupted_publish(ckpt_dir, name)
        if leftover is not None:
            return leftover
    return None


def describe_checkpoints(ckpt_dir: Path) -> list[str]:
    """One short phrase per ``step-N``/``best`` directory: ``valid`` (with its step) or why not."""
    named = [p for _, p in list_step_checkpoints(ckpt_dir)]
    if (ckpt_dir / "best").is_dir():
        named.append(ckpt_dir / "best")
    phrases = []
    for path in named:
        problem = verify_checkpoint(path)
        if problem is None:
            step = read_json(path / STATE).get("step", "?")
            phrases.append(f"{path.name} (valid, step {step})")
        else:
            phrases.append(f"{path.name} ({problem.removeprefix(f'{path}: ')})")
    return phrases


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every trainable tensor in a checkpoint, read from the file's header."""
    with safe_open(str(path / WEIGHTS), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}


# --------------------------------------------------------------------------- choosing


def resolve_checkpoint(ckpt_dir: Path, spec: str) -> Path:
    """Map ``best`` | ``last`` | ``step-N`` to a verified checkpoint directory.

    Raises:
        FileNotFoundError: nothing usable matches ``spec``.
    """
    if spec == "last":
        path = latest_valid_checkpoint(ckpt_dir)
        if path is None:
            raise FileNotFoundError(f"no valid step-N checkpoint in {ckpt_dir}")
        return path
    if spec != "best" and not STEP_RE.match(spec):
        raise ValueError(f"checkpoint {spec!r}: use best, last or step-N")
    path = ckpt_dir / spec
    if not path.is_dir():
        leftover = interrupted_publish(ckpt_dir, spec)
        if leftover is None:
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        logging.warning("checkpoint %s was cut off mid-write; using %s", path, leftover)
        path = leftover
    problem = verify_checkpoint(path)
    if problem is not None:
        raise FileNotFoundError(f"checkpoint {spec} is unusable: {problem}")
    return path


def checkpoints_for_average(ckpt_dir: Path, spec: str, avg: int) -> list[Path]:
    """Pick ``avg`` valid step checkpoints ending at ``spec`` (icefall's ``--avg``).

    ``best`` and ``last`` end at the best/last checkpoint's step; ``step-N`` at step N.
    """
    if avg == 1:
        return [resolve_checkpoint(ckpt_dir, spec)]
    end_step = read_json(resolve_checkpoint(ckpt_dir, spec) / STATE)["step"]
    candidates = [
        p for s, p in list_step_checkpoints(ckpt_dir) if s <= end_step and not verify_checkpoint(p)
    ]
    if len(candidates) < avg:
        raise FileNotFoundError(
            f"--avg {avg} needs {avg} valid step checkpoints up to step {end_step} in "
            f"{ckpt_dir}; found {len(candidates)}"
        )
    return candidates[-avg:]


# --------------------------------------------------------------------------- loading


def load_trainable(path: Path) -> dict[str, torch.Tensor]:
    """Read the trainable weights of a checkpoint directory (safetensors)."""
    return load_file(str(path / WEIGHTS))


def load_optimizer_state(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read the optimizer state with ``torch.load(weights_only=True)``."""
    return torch.load(path / OPTIMIZER, map_location=map_location, weights_only=True)


def load_state(path: Path) -> dict[str, Any]:
    """Read the loop state (``state.json``)."""
    return read_json(path / STATE)


def load_rank_state(path: Path, rank: int) -> Optional[dict[str, Any]]:
    """Read this rank's RNG/sampler state, or None if the checkpoint has none for it."""
    file = path / f"rank-{rank}.json"
    return read_json(file) if file.is_file() else None


def average_trainable(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Average the trainable weights of several checkpoints (in float64, cast back)."""
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        for key, value in load_trainable(path).items():
            dtypes[key] = value.dtype
            total[key] = total.get(key, 0) + value.to(torch.float64)
    return {k: (v / len(paths)).to(dtypes[k]) for k, v in total.items()}


def load_trainable_weights(
    exp_dir: Path, checkpoint: str, avg: int
) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """Trainable weights from ``exp_dir/checkpoints``, averaged over ``avg`` step checkpoints.

    Args:
        exp_dir: experiment directory.
        checkpoint: ``best`` | ``last`` | ``step-N``.
        avg: how many step checkpoints, ending at ``checkpoint``, to average (1: none).

    Returns:
        (state dict, the checkpoint directories used).
    """
    paths = checkpoints_for_average(Path(exp_dir) / "checkpoints", checkpoint, avg)
    weights = average_trainable(paths) if len(paths) > 1 else load_trainable(paths[0])
    logging.info("Decoding with weights of %s", ", ".join(str(p) for p in paths))
    return weights, paths
