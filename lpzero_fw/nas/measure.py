"""Cost of a real model on this device: forward latency and peak memory for one batch."""
from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn


def latency_ms(model: nn.Module, batch: dict, repeats: int = 3) -> float:
    """Median wall time of ``model(**batch)`` without gradients, after one warm-up call."""
    model.eval()
    with torch.no_grad():
        model(**batch)
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            model(**batch)
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def peak_memory_mb(model: nn.Module, batch: dict) -> float:
    """Peak tensor memory of one forward without gradients: parameters and buffers plus the
    largest amount of live activation memory, from the torch profiler's allocation events
    (CPU has no allocator peak counter)."""
    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # else kineto prints profiler_start/stop lines per call
    model.eval()
    resident = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(**batch)
    allocations = sorted(
        (event.time_range.start, event.cpu_memory_usage)
        for event in prof.events()
        if event.name == "[memory]"
    )
    live = peak = 0
    for _, change in allocations:
        live += change
        peak = max(peak, live)
    return (resident + peak) / 2**20
