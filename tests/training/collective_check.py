"""Fail a training process whose collectives get a tensor off the declared collective device.

NCCL takes CUDA tensors only; on a CPU-only machine the 2-process tests use gloo, which takes
anything, so a statistics vector left on the CPU would pass there and crash on GPUs. This
module closes that gap for subprocess tests: with ``SLAMASR_TEST_COLLECTIVE_DEVICE=meta`` the
training process declares ``meta`` as its collective device, ``distributed._move`` emulates a
copy to it (a CPU copy tagged with the device, so gloo can still move the data), and every
``torch.distributed`` collective checks that each tensor it is given is on (or tagged with)
the declared device; any other tensor ends the process with exit status 3. At exit the
number of checked calls per collective is printed to stderr (``collectives checked: {...}``).
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

ENV = "SLAMASR_TEST_COLLECTIVE_DEVICE"
EXIT_STATUS = 3
TENSOR_COLLECTIVES = (
    "all_reduce",
    "broadcast",
    "reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "gather",
    "scatter",
    "all_to_all",
    "all_to_all_single",
    "send",
    "recv",
    "isend",
    "irecv",
)
# object collectives that pickle into tensors on a device they are given
OBJECT_COLLECTIVES = ("broadcast_object_list",)


def _device_of(tensor: torch.Tensor) -> torch.device:
    return getattr(tensor, "_emulated_device", tensor.device)


def _tensors_in(values: Any) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for v in values:
        if torch.is_tensor(v):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(t for t in v if torch.is_tensor(t))
    return out


def _fail(message: str) -> None:
    print(f"collective device check failed: {message}", file=sys.stderr, flush=True)
    os._exit(EXIT_STATUS)


def _wrap_tensor_collective(name: str, fn: Callable, declared: torch.device, counts: Counter):
    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for t in _tensors_in([*args, *kwargs.values()]):
            if _device_of(t) != declared:
                _fail(f"dist.{name} got a tensor on {_device_of(t)}, declared {declared}")
        counts[name] += 1
        return fn(*args, **kwargs)

    return checked


def _wrap_object_collective(name: str, fn: Callable, declared: torch.device, counts: Counter):
    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        device = kwargs.pop("device", None)
        if device is None or torch.device(device) != declared:
            _fail(f"dist.{name} called with device={device}, declared {declared}")
        counts[name] += 1
        return fn(*args, **kwargs)  # the emulated device's data lives on the CPU

    return checked


def install(declared_name: str) -> Counter:
    """Declare ``declared_name`` the collective device and check every collective against it.

    Returns:
        Calls checked per collective (also printed at exit).
    """
    from slamasr import distributed
    from slamasr.training import loop

    declared = torch.device(declared_name)
    counts: Counter = Counter()

    def move(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        if torch.device(device) != declared:
            return tensor.to(device)
        copy = tensor.detach().to("cpu", copy=True)
        copy._emulated_device = declared
        return copy

    distributed.collective_device = lambda: declared
    loop.collective_device = distributed.collective_device
    distributed._move = move
    for name in TENSOR_COLLECTIVES:
        if hasattr(dist, name):
            fn = getattr(dist, name)
            setattr(dist, name, _wrap_tensor_collective(name, fn, declared, counts))
    for name in OBJECT_COLLECTIVES:
        fn = getattr(dist, name)
        setattr(dist, name, _wrap_object_collective(name, fn, declared, counts))
    atexit.register(lambda: print(f"collectives checked: {dict(counts)}", file=sys.stderr))
    return counts


def install_from_env() -> None:
    """:func:`install` when ``SLAMASR_TEST_COLLECTIVE_DEVICE`` is set."""
    if os.environ.get(ENV):
        install(os.environ[ENV])
