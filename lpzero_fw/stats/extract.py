"""One forward+backward pass per architecture → all six statistic inputs.

With a budget, every per-layer tensor is sampled where it appears (inside the hook,
or right after the backward for W and G): only ``budget`` values and the layer's
size leave the hook, so no activation, head output, attention map or gradient is
copied whole, and nothing but the model's own autograd state lives until the pass
ends. Without a budget (``cache=exact``) each layer is copied whole, once.
"""
from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

import numpy as np
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.registry import STATS, LPZeroError
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
            lo, hi = tensor.aminmax()
            values = _pin(values, float(lo), float(hi), float(torch.mean(tensor, dtype=torch.float64)))
        return LayerSample(values.float(), n, int(tensor.shape[0]) if tensor.dim() else 1)

    return keep


class _Parts:
    """One per-sample layer seen in ``parts`` equal micro-batches (batch dimension first):
    each part's tensor is the next ``1/parts`` of the whole layer's row-major positions.
    Budget mode keeps the whole layer's sample positions that fall in each part, and the
    layer's extremes and sum, so :meth:`result` is :func:`sampler`'s sample of the whole
    layer; exact mode keeps each part whole and concatenates them."""

    def __init__(self, budget: int | None, seed: int, parts: int) -> None:
        self.budget, self.seed, self.parts = budget, seed, parts
        self.pieces: list[torch.Tensor] = []
        self.numel, self.lead, self.total = 0, 0, 0.0
        self.lo, self.hi = float("inf"), float("-inf")

    def add(self, tensor: torch.Tensor, part: int, rows: int) -> None:
        tensor = tensor.detach()
        size = tensor.numel()
        if len(self.pieces) != part or (part and size * part != self.numel):
            raise RuntimeError(f"micro-batch {part} does not see this layer as the others do")
        if tensor.dim() == 0 or tensor.shape[0] != rows:
            raise RuntimeError(f"a per-sample input of shape {tuple(tensor.shape)} does not lead with "
                               f"the micro-batch's {rows} rows")
        self.numel += size
        self.lead += rows
        if self.budget is None:
            self.pieces.append(copier(tensor))
            return
        index = sample_indices(size * self.parts, self.budget, self.seed)
        start = part * size
        lo, hi = int(torch.searchsorted(index, start)), int(torch.searchsorted(index, start + size))
        self.pieces.append(torch.take(tensor, (index[lo:hi] - start).to(tensor.device)).to("cpu", torch.float64))
        if size:
            low, high = tensor.aminmax()
            self.lo, self.hi = min(self.lo, float(low)), max(self.hi, float(high))
            self.total += float(torch.sum(tensor, dtype=torch.float64))

    def result(self) -> Layer:
        if self.budget is None:
            return torch.cat(self.pieces)
        values = torch.cat(self.pieces)
        if self.numel > self.budget:
            values = _pin(values, self.lo, self.hi, self.total / self.numel)
        return LayerSample(values.float(), self.numel, self.lead)


class _PartKeeper:
    """``keep`` of a per-sample input over micro-batches: the i-th call of each part goes
    to the i-th layer (hooks fire in the same order in every part)."""

    def __init__(self, budget: int | None, seed: int, parts: int) -> None:
        self.budget, self.seed, self.parts = budget, seed, parts
        self.layers: list[_Parts] = []
        self.part, self.rows, self.calls = 0, 0, 0

    def start(self, part: int, rows: int) -> None:
        self.part, self.rows, self.calls = part, rows, 0

    def __call__(self, tensor: torch.Tensor) -> _Parts:
        if self.part == 0:
            self.layers.append(_Parts(self.budget, self.seed, self.parts))
        if self.calls >= len(self.layers):
            raise RuntimeError(f"micro-batch {self.part} sees more layers than the first")
        layer = self.layers[self.calls]
        self.calls += 1
        layer.add(tensor, self.part, self.rows)
        return layer


def _pin(values: torch.Tensor, lo: float, hi: float, mean: float) -> torch.Tensor:
    """Give a sample the layer's exact extremes and exact mean.

    A sample misses the tails (``min_max_normalize`` needs the true min and max) and
    estimates a mean that cancels (gradients: mean << spread) with an error of about
    spread / sqrt(k). The sample's smallest and largest values become the layer's, and
    the other values move by one common shift so the sample's mean is the layer's
    (values the shift would carry past an extreme stop there, so that mean is then
    approximate).
    """
    out = values.clone()
    i_lo, i_hi = int(out.argmin()), int(out.argmax())
    rest = torch.ones_like(out, dtype=torch.bool)
    if i_lo != i_hi:
        out[i_lo], out[i_hi] = lo, hi
        rest[i_lo] = rest[i_hi] = False
    out[rest] += (mean * out.numel() - float(out.sum())) / int(rest.sum())
    return out.clamp_(lo, hi)  # a shift must not carry values past the extremes


@dataclass(frozen=True)
class ExtractionPlan:
    """What a pass extracts: the inputs (``None``: every registered one), the budget
    (``None``: whole layers) and the sampling seed. Plain values, so a pass in a worker
    process (``task=rank`` baselines, ``rank.workers``) can extract for the store."""

    symbols: tuple[str, ...] | None = None
    budget: int | None = None
    seed: int = 0


class Extraction:
    """The statistic extractors of one pass: :meth:`attach` before the forward,
    :meth:`collect` after the backward, :meth:`detach` always. Any pass of the LM loss
    can carry them (:func:`extract_raw`'s own, or the shared pass of the baselines).

    ``parts > 1``: the pass runs as that many equal micro-batches (:meth:`start_part`
    before each, each loss scaled by ``SearchSpace.loss_weights``), and per-sample
    inputs (``per_sample``) are gathered across them, sampled as the whole layer would
    be; the others are read once, after the last part, from the accumulated gradients.
    """

    def __init__(self, plan: ExtractionPlan, parts: int = 1) -> None:
        keep = copier if plan.budget is None else sampler(plan.budget, plan.seed)
        symbols = plan.symbols if plan.symbols is not None else STATS.names()
        self.extractors = [STATS.get(symbol)() for symbol in symbols]
        self.keepers: list[_PartKeeper] = []
        for extractor in self.extractors:
            if parts > 1 and extractor.per_sample:
                extractor.keep = _PartKeeper(plan.budget, plan.seed, parts)
                self.keepers.append(extractor.keep)
            else:
                extractor.keep = keep

    def start_part(self, part: int, rows: int) -> None:
        for keeper in self.keepers:
            keeper.start(part, rows)

    def attach(self, model: torch.nn.Module, taps) -> None:
        for extractor in self.extractors:
            extractor.attach(model, taps)

    def collect(self, model: torch.nn.Module, taps) -> RawStats:
        return {e.symbol: [_cpu(t.result() if isinstance(t, _Parts) else t) for t in e.collect(model, taps)]
                for e in self.extractors}

    def detach(self) -> None:
        for extractor in self.extractors:
            extractor.detach()


def extract_raw(
    space: SearchSpace,
    arch_id: str,
    batch: Batch,
    symbols: Iterable[str] | None = None,
    seed: int = 0,
    fabric=None,
    budget: int | None = None,
    micro_batches: int = 1,
) -> RawStats:
    """Build ``arch_id``, run the loss forward and backward once, return every input.

    ``budget=None``: whole per-layer tensors; else :class:`LayerSample` per layer, the
    same values :func:`summarize` would draw from the whole tensors. ``micro_batches``:
    the pass in that many equal pieces of the batch, for a ``1/micro_batches`` share of
    the activation memory; the statistics are the whole batch's (per-sample inputs as
    computed; gradients accumulated in another order, so equal to float rounding), each
    piece's loss weighted by :meth:`SearchSpace.loss_weights`.
    """
    plan = ExtractionPlan(None if symbols is None else tuple(symbols), budget, seed)
    parts = split_batch(batch, micro_batches)
    model = space.build_model(arch_id, seed=seed)
    device = fabric.device if fabric is not None else torch.device("cpu")
    model = model.to(device).eval()  # eval: no dropout, so statistics are deterministic
    taps = space.taps(model)
    weights = space.loss_weights(parts) if len(parts) > 1 else None
    extraction = Extraction(plan, len(parts))
    precision = fabric.autocast() if fabric is not None else contextlib.nullcontext()
    try:
        extraction.attach(model, taps)
        for index, part in enumerate(parts):
            extraction.start_part(index, next(iter(part.values())).shape[0])
            part = {key: value.to(device) for key, value in part.items()}
            with torch.enable_grad(), precision:
                loss = model(**part)
            if weights is not None:
                loss = loss * weights[index]
            loss.backward()
            del loss
        return extraction.collect(model, taps)
    finally:
        extraction.detach()
        del model, taps
        release_freed_memory()


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` where the C library is not glibc."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Give the heap a finished model freed back to the OS. glibc keeps it otherwise, so
    every later, smaller model would sit on top of the largest one's peak (measured at
    16x192: 1.93 GB resident after small models that follow a 59M one, 0.72 GB with this)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    """``batch`` in ``parts`` equal pieces along the batch dimension (1: the batch itself)."""
    rows = next(iter(batch.values())).shape[0]
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1 or rows % parts:
        raise LPZeroError(f"cache.micro_batches={parts!r} must be a positive integer that divides "
                          f"the batch size {rows}")
    if parts == 1:
        return [batch]
    size = rows // parts
    return [{key: value[i * size:(i + 1) * size] for key, value in batch.items()} for i in range(parts)]


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
