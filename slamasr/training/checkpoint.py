"""Crash-safe checkpoints: trainable weights (safetensors) + the state that resumes a run.

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

A checkpoint is written into ``.tmp-<name>`` (every file fsync'ed, the manifest last) and
renamed into place, so a crash leaves either the old or the new checkpoint, never half of one.
A checkpoint whose manifest is missing or whose files do not match it is reported and skipped.
A write that fails (disk full, no permission) removes its ``.tmp-<name>`` and raises
:class:`CheckpointWriteError` with one line naming the path; nothing is published.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
MANIFEST = "manifest.json"
STEP_RE = re.compile(r"^step-(\d+)$")
# Below this many free bytes after a failed write, the failure is taken for a full disk
# (torch.save reports a short write as "unexpected pos", not as ENOSPC).
FULL_DISK_BYTES = 16 << 20


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); none was published."""


# --------------------------------------------------------------------------- file primitives


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON and fsync it."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


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


# --------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """Return the Python, NumPy, torch (and CUDA) RNG states as JSON-safe values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_json(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *[_to_json(x) for x in np_state[2:]]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_to_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _to_json(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_to_json(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _to_tuple(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_to_tuple(v) for v in x)
    return x


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


def resumable_checkpoint(ckpt_dir: Path) -> Optional[Path]:
    """The checkpoint ``--resume`` would continue from, found without changing anything.

    The newest valid ``step-N``; failing that, the newest ``step-N`` whose publish was cut
    short between its two renames and which :func:`remove_stale_temporaries` would recover
    (its verified ``.tmp-``/``.old-`` copy is returned).
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


# --------------------------------------------------------------------------- saving


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _write_manifest(tmp: Path) -> None:
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)}
        for p in sorted(tmp.iterdir())
        if p.name != MANIFEST
    }
    write_json(tmp / MANIFEST, {"files": files})


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, replacing an older ``final`` (e.g. ``best``)."""
    old = final.with_name(f".old-{final.name}")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    _fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)


def save_checkpoint(
    ckpt_dir: Path,
    name: str,
    trainable: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
    rank_state: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically; call on every rank (collective under torchrun).

    Args:
        ckpt_dir: ``exp/<name>/checkpoints``.
        name: ``step-N`` or ``best``.
        trainable: the model's trainable state dict (rank 0's is written).
        optimizer_state: optimizer.state_dict() (rank 0's is written).
        state: JSON-safe loop state (rank 0's is written).
        rank_state: this rank's JSON-safe RNG and sampler state.

    Returns:
        The final checkpoint directory.
    """
    rank, _ = _rank_world()
    tmp, final = ckpt_dir / f".tmp-{name}", ckpt_dir / name
    problem = None
    if rank == 0:
        problem = _attempt(tmp, final, lambda: _make_empty_dir(tmp))
    _raise_if_any_failed(problem, tmp, rank)
    problem = _attempt(tmp, final, lambda: write_json(tmp / f"rank-{rank}.json", rank_state))
    if rank == 0 and problem is None:
        problem = _attempt(
            tmp, final, lambda: _write_rank0_files(tmp, trainable, optimizer_state, state)
        )
    _raise_if_any_failed(problem, tmp, rank)
    if rank == 0:
        problem = _attempt(tmp, final, lambda: _write_manifest(tmp))
    _raise_if_any_failed(problem, tmp, rank)
    if rank == 0:
        _publish(tmp, final)
    _barrier()
    return final


def _make_empty_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _write_rank0_files(
    tmp: Path,
    trainable: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """Write the weights, optimizer and loop state into ``tmp`` (each fsync'ed)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in trainable.items()}
    save_file(tensors, str(tmp / WEIGHTS))
    _fsync_file(tmp / WEIGHTS)
    torch.save(optimizer_state, tmp / OPTIMIZER)
    _fsync_file(tmp / OPTIMIZER)
    write_json(tmp / STATE, state)


def _attempt(tmp: Path, final: Path, write: Any) -> Optional[str]:
    """Run ``write()``; return None, or one line saying why writing ``final`` failed.

    Only storage failures (full disk, no permission, read-only file system) become a
    message; any other exception is a bug and propagates with its traceback.
    """
    try:
        write()
    except (OSError, RuntimeError, SafetensorError) as e:
        problem = describe_write_failure(e, tmp.parent)
        if problem is None:
            raise
        return f"{problem}: cannot write checkpoint {final} ({tmp} removed, nothing published)"
    return None


def describe_write_failure(error: BaseException, where: Path) -> Optional[str]:
    """Name the storage problem behind a failed write under ``where``, or None if not one.

    ``torch.save`` reports a full disk as ``unexpected pos ...`` and safetensors as an I/O
    error; both are recognised, as is any write failure with (almost) no space left.
    """
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error):
        return f"no space left on device: {_free_space(where)}"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{os.strerror(code).lower()}: {getattr(error, 'filename', None) or where}"
    if isinstance(error, (RuntimeError, SafetensorError)) and _free_bytes(where) < FULL_DISK_BYTES:
        return f"no space left on device: {_free_space(where)}"
    return None


def _free_bytes(where: Path) -> int:
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return 1 << 62


def _free_space(where: Path) -> str:
    return f"{_free_bytes(where) / 2**20:.1f} MiB free on {where}"


def _raise_if_any_failed(problem: Optional[str], tmp: Path, rank: int) -> None:
    """Exchange write failures between ranks; on any, rank 0 removes ``tmp`` and all raise.

    Replaces a plain barrier, so a rank whose write failed cannot leave the others waiting.
    """
    problems = [problem]
    if dist.is_available() and dist.is_initialized():
        problems = [None] * dist.get_world_size()
        dist.all_gather_object(problems, problem)
    first = next((p for p in problems if p is not None), None)
    if first is None:
        return
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    raise CheckpointWriteError(first)


def prune_checkpoints(ckpt_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (``best`` is separate)."""
    for _, path in list_step_checkpoints(ckpt_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def interrupted_publish(ckpt_dir: Path, name: str) -> Optional[Path]:
    """The verified leftover of a publish of ``name`` killed between its two renames.

    ``_publish`` renames ``name`` to ``.old-<name>`` and then ``.tmp-<name>`` to ``name``;
    a kill in between leaves no ``name``.  The new copy (complete: its manifest was written
    before publishing) is preferred, else the old one.

    Returns:
        ``.tmp-<name>`` or ``.old-<name>`` when it passes verification, else None.
    """
    for candidate in (ckpt_dir / f".tmp-{name}", ckpt_dir / f".old-{name}"):
        if candidate.is_dir() and verify_checkpoint(candidate) is None:
            return candidate
    return None


def _recover_interrupted_publishes(ckpt_dir: Path) -> None:
    """Give back the name of every checkpoint whose publish was cut short (warns)."""
    names = {c.name.split("-", 1)[1] for c in ckpt_dir.iterdir() if c.name.startswith(".old-")}
    for name in sorted(names):
        leftover = interrupted_publish(ckpt_dir, name)
        if not (ckpt_dir / name).exists() and leftover is not None:
            logging.warning("Recovering checkpoint %s from interrupted write %s", name, leftover)
            leftover.rename(ckpt_dir / name)


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """Delete ``.tmp-*``/``.old-*`` leftovers of a write that was interrupted.

    A checkpoint left without its name by a kill inside ``_publish`` is first restored.
    """
    if not ckpt_dir.is_dir():
        return
    _recover_interrupted_publishes(ckpt_dir)
    for child in ckpt_dir.iterdir():
        if child.name.startswith((".tmp-", ".old-")):
            shutil.rmtree(child, ignore_errors=True)


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
