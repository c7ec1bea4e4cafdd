"""One forward+backward pass per architecture → all six statistic inputs.

With a budget, every per-layer tensor is sampled where it appears (inside the hook,
or right after the backward for W and G): only ``budget`` values and the layer's
size leave the hook, so no activation, head output, attention map or gradient is
copied whole, and nothing but the model's own autograd state lives until the pass
ends. Without a budget (``cache=exact``) each layer is copied whole, once.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

import numpy as np
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.registry import STATS
from lpzero_fw.search_spaces.base import Batch, SearchSpace

#: bump when the meaning or the sampling of any extracted statistic changes (part of
#: the cache key). 2: samples drawn inside the hooks with the fast sampler below, their
#: extremes and mean pinned to the layer's, stored as float32.
EXTRACTOR_VERSION = 3  # 3: layers keep their first-dimension size (Values.lead)


@dataclass(frozen=True)
class LayerSample:
    """A uniform sample of one layer tensor's values (flattened) and the layer's size."""

    values: torch.Tensor  # (k,) float32
    numel: int
    lead: int = 1  # size of the layer tensor's first dimension (Values.lead)


Layer = torch.Tensor | LayerSample
RawStats = dict[str, list[Layer]]
ArchStats = dict[str, list[Values]]


def copier(tensor: torch.Tensor) -> torch.Tensor:
    """Exact mode: the whole layer, as a float32 CPU copy that outlives the model."""
    return tensor.detach().to("cpu", torch.float32, copy=True)


def sampler(budget: int, seed: int = 0) -> Callable[[torch.Tensor], LayerSample]:
    """Budget mode: ``budget`` values of a layer at :func:`sample_indices` (no copy of the layer)."""

    def keep(tensor: torch.Tensor) -> LayerSample:
        tensor = tensor.detach()
        n = tensor.numel()
        index = sample_indices(n, budget, seed).to(tensor.device)
        # take() reads row-major positions of non-contiguous tensors without a copy
        values = torch.take(tensor, index).to("cpu", torch.float64)
        if n > budget:
            values = _pin(values, tensor)
        return LayerSample(values.float(), n, int(tensor.shape[0]) if tensor.dim() else 1)

    return keep


def _pin(values: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """Give a sample the layer's exact extremes and exact mean.

    A sample misses the tails (``min_max_normalize`` needs the true min and max) and
    estimates a mean that cancels (gradients: mean << spread) with an error of about
    spread / sqrt(k). The sample's smallest and largest values become the layer's, and
    the other values move by one common shift so the sample's mean is the layer's
    (values the shift would carry past an extreme stop there, so that mean is then
    approximate).
    """
    lo, hi = tensor.aminmax()
    mean = float(torch.mean(tensor, dtype=torch.float64))
    out = values.clone()
    i_lo, i_hi = int(out.argmin()), int(out.argmax())
    rest = torch.ones_like(out, dtype=torch.bool)
    if i_lo != i_hi:
        out[i_lo], out[i_hi] = float(lo), float(hi)
        rest[i_lo] = rest[i_hi] = False
    out[rest] += (mean * out.numel() - float(out.sum())) / int(rest.sum())
    return out.clamp_(float(lo), float(hi))  # a shift must not carry values past the extremes


def extract_raw(
    space: SearchSpace,
    arch_id: str,
    batch: Batch,
    symbols: Iterable[str] | None = None,
    seed: int = 0,
    fabric=None,
    budget: int | None = None,
) -> RawStats:
    """Build ``arch_id``, run the loss forward and backward once, return every input.

    ``budget=None``: whole per-layer tensors; else :class:`LayerSample` per layer, the
    same values :func:`summarize` would draw from the whole tensors.
    """
    symbols = list(symbols) if symbols is not None else STATS.names()
    model = space.build_model(arch_id, seed=seed)
    device = fabric.device if fabric is not None else torch.device("cpu")
    model = model.to(device).eval()  # eval: no dropout, so statistics are deterministic
    batch = {key: value.to(device) for key, value in batch.items()}
    taps = space.taps(model)
    keep = copier if budget is None else sampler(budget, seed)
    extractors = [STATS.get(symbol)() for symbol in symbols]
    for extractor in extractors:
        extractor.keep = keep
    precision = fabric.autocast() if fabric is not None else contextlib.nullcontext()
    try:
        for extractor in extractors:
            extractor.attach(model, taps)
        with torch.enable_grad(), precision:
            loss = model(**batch)
        loss.backward()
        del loss
        return {extractor.symbol: [_cpu(t) for t in extractor.collect(model, taps)] for extractor in extractors}
    finally:
        for extractor in extractors:
            extractor.detach()
        del model


def _cpu(layer: Layer) -> Layer:
    return layer if isinstance(layer, LayerSample) else layer.to("cpu", torch.float32)


#: layers up to this many times the budget are sampled with a full random permutation
_PERMUTE_UP_TO = 64


@lru_cache(maxsize=4096)
def sample_indices(n: int, k: int, seed: int) -> torch.Tensor:
    """The same ``k`` sorted positions for every layer of ``n`` elements, so W and G align.

    ``k <= n``: a uniformly random ``k``-subset (without replacement). Small layers use
    a random permutation; large ones (a permutation of 10M positions costs ~0.7 s)
    keep the first ``k`` distinct values of a stream of random positions, which is the
    same distribution. ``k > n``: ``k`` positions drawn with replacement.
    """
    rng = np.random.Generator(np.random.PCG64([seed, n, k]))
    if n < k:
        index = rng.integers(n, size=k)
    elif n <= _PERMUTE_UP_TO * k:
        index = rng.permutation(n)[:k]
    else:
        index = np.empty(0, dtype=np.int64)
        while index.size < k:
            stream = np.concatenate([index, rng.integers(n, size=2 * k)])
            _, first = np.unique(stream, return_index=True)
            index = stream[np.sort(first)][:k]  # distinct values in draw order
    return torch.from_numpy(np.sort(index).astype(np.int64))


def summarize(raw: RawStats, budget: int | None, seed: int = 0) -> ArchStats:
    """Turn per-layer tensors (or samples taken in the hooks) into :class:`Values` chunks.

    ``budget=None`` (exact): one chunk per layer holding every value. Otherwise one
    chunk whose rows are uniform samples of ``budget`` values per layer (with
    replacement for layers smaller than the budget), plus each layer's size. Layers
    with no values are absent (they contribute no row).
    """
    stats: ArchStats = {}
    keep = sampler(budget, seed) if budget is not None else None
    for symbol, layers in raw.items():
        present = [t for t in layers if (t.numel if isinstance(t, LayerSample) else t.numel()) > 0]
        leads = [float(t.lead if isinstance(t, LayerSample) else (t.shape[0] if t.dim() else 1)) for t in present]
        if not present:
            stats[symbol] = []
        elif budget is None:
            if any(isinstance(t, LayerSample) for t in present):
                raise ValueError(f"input {symbol} was sampled in the hooks; exact statistics need whole layers")
            stats[symbol] = [
                Values(t.reshape(1, -1).float().clone(), torch.tensor([[float(t.numel())]]), torch.tensor([[lead]]))
                for t, lead in zip(present, leads)
            ]
        else:
            samples = [t if isinstance(t, LayerSample) else keep(t) for t in present]
            if any(s.values.numel() != budget for s in samples):
                raise ValueError(f"input {symbol} was sampled with another budget than {budget}")
            rows = torch.stack([s.values for s in samples])
            sizes = torch.tensor([[float(s.numel)] for s in samples])
            stats[symbol] = [Values(rows, sizes, torch.tensor([[lead] for lead in leads]))]
    return stats
