"""One forward+backward pass per architecture → all six statistic inputs."""
from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Iterable

import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.registry import STATS
from lpzero_fw.search_spaces.base import Batch, SearchSpace

#: bump when the meaning of any extracted statistic changes (part of the cache key)
EXTRACTOR_VERSION = 1

RawStats = dict[str, list[torch.Tensor]]
ArchStats = dict[str, list[Values]]


def extract_raw(
    space: SearchSpace,
    arch_id: str,
    batch: Batch,
    symbols: Iterable[str] | None = None,
    seed: int = 0,
    fabric=None,
) -> RawStats:
    """Build ``arch_id``, run the loss forward and backward once, return every input."""
    symbols = list(symbols) if symbols is not None else STATS.names()
    model = space.build_model(arch_id, seed=seed)
    device = fabric.device if fabric is not None else torch.device("cpu")
    model = model.to(device).eval()  # eval: no dropout, so statistics are deterministic
    batch = {key: value.to(device) for key, value in batch.items()}
    taps = space.taps(model)
    extractors = [STATS.get(symbol)() for symbol in symbols]
    precision = fabric.autocast() if fabric is not None else contextlib.nullcontext()
    try:
        for extractor in extractors:
            extractor.attach(model, taps)
        with torch.enable_grad(), precision:
            loss = model(**batch)
        loss.backward()
        return {
            extractor.symbol: [t.float().cpu() for t in extractor.collect(model, taps)]
            for extractor in extractors
        }
    finally:
        for extractor in extractors:
            extractor.detach()
        del model


@lru_cache(maxsize=4096)
def _sample_indices(n: int, k: int, seed: int) -> torch.Tensor:
    """The same ``k`` positions for every layer of ``n`` elements, so W and G align."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + n)
    if n >= k:
        return torch.randperm(n, generator=generator)[:k].sort().values
    return torch.randint(n, (k,), generator=generator).sort().values


def summarize(raw: RawStats, budget: int | None, seed: int = 0) -> ArchStats:
    """Turn raw per-layer tensors into :class:`Values` chunks.

    ``budget=None`` (exact): one chunk per layer holding every value. Otherwise one
    chunk whose rows are uniform samples of ``budget`` values per layer (with
    replacement for layers smaller than the budget), plus each layer's size.
    """
    stats: ArchStats = {}
    for symbol, layers in raw.items():
        flat = [t.reshape(-1).float() for t in layers if t.numel() > 0]
        if not flat:
            stats[symbol] = []
        elif budget is None:
            stats[symbol] = [
                Values(t.unsqueeze(0).clone(), torch.tensor([[float(t.numel())]])) for t in flat
            ]
        else:
            rows = torch.stack([t[_sample_indices(t.numel(), budget, seed)] for t in flat])
            sizes = torch.tensor([[float(t.numel())] for t in flat])
            stats[symbol] = [Values(rows, sizes)]
    return stats
