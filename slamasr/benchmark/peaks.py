"""Peak measurement: complete GPU timings, memory peaks and the measured matmul peak.

MFU divides counted FLOPs (:mod:`slamasr.benchmark.flops`) by step time and by the matmul
peak of the dtype the LLM computes in (bf16 for ours, fp32 for the reference), measured in the
same run by :func:`measure_matmul_peak`. Also the two device helpers ``slamasr.gpu_check``
shares (:func:`autocast_context`, :func:`move_batch`).
"""

from __future__ import annotations

import contextlib
import resource
import time
from typing import Any, Optional

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (the keys of :data:`DTYPES`)."""
    return str(dtype).replace("torch.", "")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are complete (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``; ``getrusage`` as a fallback)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:  123 kB"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_memory(device: torch.device) -> bool:
    """Reset the peak-RSS mark (Linux ``clear_refs``) and CUDA peak stats.

    Returns:
        True when the RSS mark was reset (else peaks are cumulative over the process).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def gpu_max_allocated_bytes(device: torch.device) -> Optional[int]:
    """``torch.cuda.max_memory_allocated`` on a GPU, None on CPU."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def measure_matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int = 2048, seconds: float = 1.5
) -> float:
    """Measured matmul throughput (FLOP/s) of ``size x size`` products in ``dtype``.

    Args:
        device: where to multiply.
        dtype: torch.float32 or torch.bfloat16.
        size: matrix side (large enough to reach the device's sustained peak).
        seconds: how long to keep multiplying after two warm-up products.

    Returns:
        ``2 * size**3 * count / elapsed``.
    """
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    for _ in range(2):
        torch.matmul(a, b)
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
        if device.type == "cuda" and count % 16:
            continue
        synchronize(device)
    synchronize(device)
    return 2.0 * size**3 * count / (time.perf_counter() - start)


def measure_peaks(device: torch.device, seconds: float) -> dict[str, float]:
    """Matmul peak FLOP/s for fp32 and bf16 on ``device``."""
    return {name: measure_matmul_peak(device, dt, seconds=seconds) for name, dt in DTYPES.items()}


def autocast_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for bf16/fp16, nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``batch`` with its tensors on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
