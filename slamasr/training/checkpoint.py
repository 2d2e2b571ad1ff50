"""Writing crash-safe checkpoints: atomic save, publish, prune, recovery and RNG state.

The on-disk layout and everything that reads it (listing, verification, ``best|last|step-N``,
loading, averaging) live in :mod:`slamasr.checkpoints`, which decoding shares.

A checkpoint is written into ``.tmp-<name>`` (every file fsync'ed, the manifest last) and
renamed into place, so a crash leaves either the old or the new checkpoint, never half of one.
A write that fails (disk full, no permission) removes its ``.tmp-<name>`` and raises
:class:`CheckpointWriteError` with one line naming the path; nothing is published.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import save_file

from slamasr.checkpoints import (
    MANIFEST,
    OPTIMIZER,
    STATE,
    WEIGHTS,
    interrupted_publish,
    list_step_checkpoints,
    sha256_of,
)

# Read-side names the training loop (and its tests) reach through this module, beside the
# write side; everything else imports them from slamasr.checkpoints.
from slamasr.checkpoints import average_trainable as average_trainable
from slamasr.checkpoints import checkpoints_for_average as checkpoints_for_average
from slamasr.checkpoints import latest_valid_checkpoint as latest_valid_checkpoint
from slamasr.checkpoints import load_optimizer_state as load_optimizer_state
from slamasr.checkpoints import load_rank_state as load_rank_state
from slamasr.checkpoints import load_state as load_state
from slamasr.checkpoints import load_trainable as load_trainable
from slamasr.checkpoints import verify_checkpoint as verify_checkpoint

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
