"""Data parallelism over the trainable parameters (torchrun env, gloo on CPU, nccl on GPU).

The frozen encoder and LLM are replicated on every rank and never communicated. Only the
trainable parameters (the projector) are synchronised: broadcast from rank 0 once, then their
gradients are averaged with one flat all-reduce per optimizer step. This is what DDP does for
those parameters, without DDP registering (and broadcasting) billions of frozen weights.

NCCL takes CUDA tensors only: every collective below first moves its tensors to
:func:`collective_device` (this rank's GPU under nccl, the CPU under gloo), so callers may
build small host-side tensors (training statistics) wherever is convenient.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# Declared by init_distributed: where collectives' tensors live (see collective_device()).
_COLLECTIVE_DEVICE = torch.device("cpu")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that logs to console, writes plots and TensorBoard)."""
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """Read RANK, WORLD_SIZE, LOCAL_RANK as set by torchrun (defaults: single process)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when WORLD_SIZE > 1 (idempotent) and declare the collective device.

    Args:
        device: this rank's device; CUDA selects nccl (bound to that device), CPU gloo.

    Returns:
        The rank/world description.
    """
    global _COLLECTIVE_DEVICE
    info = dist_info_from_env()
    if info.world_size > 1 and not dist.is_initialized():
        timeout = datetime.timedelta(minutes=30)
        if device.type == "cuda":
            dist.init_process_group("nccl", timeout=timeout, device_id=device)
        else:
            dist.init_process_group("gloo", timeout=timeout)
    _COLLECTIVE_DEVICE = device if device.type == "cuda" else torch.device("cpu")
    return info


def collective_device() -> torch.device:
    """The device every collective's tensors must live on: this rank's CUDA device under
    nccl (which takes CUDA tensors only), the CPU under gloo. Declared by
    :func:`init_distributed`."""
    return _COLLECTIVE_DEVICE


def _move(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy ``tensor`` to ``device`` (the one place tensors change device for a collective)."""
    return tensor.to(device)


def to_collective_device(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on :func:`collective_device` (a copy if it lives elsewhere)."""
    return _move(tensor, collective_device())


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True when a process group with more than one rank is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# --------------------------------------------------------------------------- the collectives
# Every collective the trainer uses is one of the functions below; each moves its tensors to
# collective_device() first. Nothing else in the training code calls torch.distributed's
# collectives (checkpoint.py's barrier carries no tensor).


def barrier() -> None:
    """Synchronise all ranks (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def broadcast_parameters(params: list[torch.nn.Parameter]) -> None:
    """Copy rank 0's values of ``params`` to every rank."""
    if not is_distributed():
        return
    with torch.no_grad():
        for p in params:
            buf = to_collective_device(p.data)
            dist.broadcast(buf, src=0)
            if buf is not p.data:
                p.data.copy_(buf)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average ``.grad`` of ``params`` over ranks with a single flat all-reduce.

    Parameters without a gradient take part with zeros so every rank sends the same layout.
    """
    if not is_distributed():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).to(torch.float32) for g in grads])  # (N,)
    flat = to_collective_device(flat)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.device, p.dtype).clone()
        offset += n


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks.

    Returns:
        The sum, on ``values``' device (``values`` itself is left alone when it had to be
        copied to the collective device).
    """
    if not is_distributed():
        return values
    buf = to_collective_device(values)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(values.device)


def broadcast_object(obj: Any) -> Any:
    """Return rank 0's ``obj`` (any picklable object) on every rank."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0, device=collective_device())
    return holder[0]
