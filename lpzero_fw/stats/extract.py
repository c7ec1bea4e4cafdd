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
from functools import lru_cache, reduce
from typing import Callable, Iterable

import numpy as np
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.registry import STATS, LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace

#: bump when the meaning or the sampling of any extracted statistic changes (part of
#: the cache key). 2: samples drawn inside the hooks with the fast sampler below, their
#: extremes and mean pinned to the layer's, stored as float32. 3: layers keep their
#: first-dimension size (Values.lead).
EXTRACTOR_VERSION = 6  # 4: each layer's tails kept exactly, values weighted (Values.w).
# 5: each pattern of exact zeros weighs its exact share of the layer. 6: W and G stratified
# by value too (one block of the uniform slots per input)

#: values kept exactly per tail (largest, smallest, nearest zero) and per input of a
#: sampling group, as a share of the budget: 1/32 is 64 of 2048
TAIL_SHARE = 1 / 32
#: a layer's sample draws this many times its uniform slots and keeps their evenly
#: spaced order statistics (:meth:`_LayerSampler._drawn`)
OVERSAMPLE = 64


@dataclass(frozen=True)
class LayerSample:
    """The budget's sample of one layer tensor's values (flattened), their weights and
    the layer's size.

    ``values[:tail]`` are the layer's tails, kept exactly (the largest and the smallest
    values and those nearest zero: what ``exp``, ``invert`` and ``log`` make dominant);
    the rest is a sample of the layer stratified by value. ``weights`` (summing to 1) is each value's
    share of the layer: ``1/numel`` for a tail value, the other layer values' share split
    over the uniform ones so that exact zeros weigh their exact share (evenly within the
    zeros and within the rest), 0 for a value that another slot already holds. A layer
    no larger than the budget is kept whole (weights ``1/numel``, padding 0)."""

    values: torch.Tensor  # (k,) float32
    weights: torch.Tensor  # (k,) float32, sums to 1
    numel: int
    lead: int = 1  # size of the layer tensor's first dimension (Values.lead)


Layer = torch.Tensor | LayerSample
RawStats = dict[str, list[Layer]]
ArchStats = dict[str, list[Values]]


def copier(tensor: torch.Tensor) -> torch.Tensor:
    """Exact mode: the whole layer, as a float32 CPU copy that outlives the model."""
    return tensor.detach().to("cpu", torch.float32, copy=True)


def tail_size(budget: int) -> int:
    """Values kept exactly per tail and input (:data:`TAIL_SHARE` of the budget)."""
    return int(budget * TAIL_SHARE)


class _LayerSampler:
    """The budget's sample of one layer, seen whole or as row-major pieces (the
    micro-batches of a per-sample input), of one or several inputs whose samples must
    sit at the same positions (W and G: element-wise ops pair them).

    Each piece gives its candidates for every tail of every input (positions and all
    inputs' values there), the values at its share of the uniform positions and its
    sum and exact count of zeros; :meth:`result` keeps each tail's best candidates, weighs
    the uniform values that no tail holds, and shifts the non-zero ones so each input's
    sample mean is the layer's exact mean (the tails, and so the extremes, stay exact; so
    does the share of zeros).
    """

    def __init__(self, budget: int, seed: int, inputs: int = 1) -> None:
        self.budget, self.seed, self.inputs = budget, seed, inputs
        self.tail = tail_size(budget)
        self.slots = 3 * self.tail * inputs  # tail slots of the row; the rest is uniform
        self.numel, self.lead = 0, 0
        self.uniform: list[torch.Tensor] = []  # (inputs, j) values at uniform positions
        self.whole: list[torch.Tensor] = []  # (inputs, size): a layer no larger than the budget
        self.candidates: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # keys, positions, values
        self.total = [0.0] * inputs
        self.patterns = torch.zeros(2**inputs, dtype=torch.int64)  # exact count per zero pattern

    def add(self, pieces: list[torch.Tensor], start: int, total: int, rows: int) -> None:
        """One piece of the layer (of every input, equally sized) at row-major offset ``start``
        of a layer of ``total`` values."""
        size = pieces[0].numel()
        if any(p.numel() != size for p in pieces):
            raise RuntimeError("inputs sampled at the same positions have layers of different sizes")
        self.numel += size
        self.lead += rows
        if not size:
            return
        if total <= self.budget:
            self.whole.append(torch.stack([p.detach().reshape(-1).to("cpu", torch.float64) for p in pieces]))
            return
        index = sample_indices(total, self._drawn(total), self.seed)
        lo, hi = int(torch.searchsorted(index, start)), int(torch.searchsorted(index, start + size))
        local = (index[lo:hi] - start).to(pieces[0].device)
        # take() reads row-major positions of non-contiguous tensors without a copy
        self.uniform.append(torch.stack([torch.take(p.detach(), local).to("cpu", torch.float32) for p in pieces]))
        self.patterns += _zero_patterns(pieces)
        t = min(self.tail, size)
        for i, piece in enumerate(pieces):
            flat = piece.detach().reshape(-1)
            self.total[i] += _total(flat)
            for kind in _KINDS:  # the tails, each as positions and every input's values there
                index = _tail(flat, t, kind)
                values = torch.stack([torch.take(p.detach(), index).to("cpu", torch.float64) for p in pieces])
                self.candidates.append((kind.key(values[i]), index.cpu() + start, values))

    def result(self) -> list[LayerSample]:
        """The layer's sample of every input (the same positions and weights)."""
        if self.whole or not self.numel:
            return [self._whole(row) for row in (torch.cat(self.whole, dim=1) if self.whole
                                                  else torch.zeros(self.inputs, 0, dtype=torch.float64))]
        kinds = 3 * self.inputs  # candidates arrive per piece in this order of tails
        positions, values = [], []
        for kind in range(kinds):
            found = self.candidates[kind::kinds]
            key, where = torch.cat([c[0] for c in found]), torch.cat([c[1] for c in found])
            by_position = torch.argsort(where, stable=True)  # ties: the lower position, as in _extreme
            best = by_position[torch.sort(key[by_position], descending=True, stable=True).indices[: self.tail]]
            positions.append(where[best])
            values.append(torch.cat([c[2] for c in found], dim=1)[:, best])
        positions, tails = torch.cat(positions), torch.cat(values, dim=1)
        first = _first_occurrence(positions)
        uniform = torch.cat(self.uniform, dim=1)
        index = sample_indices(self.numel, self._drawn(self.numel), self.seed)
        at = torch.searchsorted(index, positions).clamp_(max=max(0, index.numel() - 1))
        held = at[index[at] == positions]  # uniform positions that a tail holds
        m = self.budget - self.slots  # the layer is larger than the budget: more than m drawn
        uniform = self._stratified(uniform, held, m).double()  # no tail holds these positions
        uniform_code = _pattern_of(uniform)  # which inputs are 0 at each uniform slot
        weights = self._weights(first, _pattern_of(tails), uniform_code)
        out = []
        for i in range(self.inputs):
            row = torch.cat([tails[i], uniform[i]])
            moved = uniform_code >> i & 1 == 0  # zeros stay zeros: their share is exact
            if bool(moved.any()):  # the uniform values' common shift that makes the mean exact
                exact = self.total[i] / self.numel
                row[self.slots:][moved] += (exact - float(weights @ row)) / float(weights[self.slots:][moved].sum())
                known = tails[i] if tails.shape[1] else uniform[i]  # the layer's extremes (no tails: the sample's)
                row.clamp_(float(known.min()), float(known.max()))
            out.append(LayerSample(row.float(), weights.float(), self.numel, self.lead))
        return out

    def _weights(self, first: torch.Tensor, tail_code: torch.Tensor, uniform_code: torch.Tensor) -> torch.Tensor:
        """``1/numel`` per tail value; the rest of the layer split over the uniform values
        per zero pattern (which inputs are exactly 0 there), each pattern weighing its exact
        count. So a layer's share of exact zeros (the gradients of embedding rows no token
        used, masked attention) is exact, not a sample's guess: ``invert``, ``log`` and
        ``std`` amplify it. A pattern no uniform value shows rests on the tail values that
        show it, else on all uniform values."""
        n, patterns = self.numel, self.patterns.numel()
        in_tails = torch.bincount(tail_code[first], minlength=patterns)
        in_uniform = torch.bincount(uniform_code, minlength=patterns)
        rest = (self.patterns - in_tails).double()  # each pattern's values the tails do not hold
        shown, held = in_uniform > 0, (in_uniform == 0) & (in_tails > 0)
        per_uniform = torch.where(shown, rest / in_uniform.clamp(min=1), 0.0)
        per_tail = torch.where(held, rest / in_tails.clamp(min=1), 0.0)
        spread = float(rest[~shown & ~held].sum())  # patterns no slot shows
        tail_w = first.double() * (1 + per_tail[tail_code]) / n
        uniform_w = per_uniform[uniform_code] / n + spread / max(uniform_code.numel(), 1) / n
        return torch.cat([tail_w, uniform_w])

    def _stratified(self, drawn: torch.Tensor, held: torch.Tensor, m: int) -> torch.Tensor:
        """``m`` columns of the drawn values (inputs, k) that no tail holds, a sample stratified
        by value: the slots split into one block per input, block ``i`` the evenly spaced order
        statistics of input ``i`` (each column carries every input's value at that position,
        so W and G stay paired)."""
        free = np.ones(drawn.shape[1], dtype=bool)
        free[held.numpy()] = False
        count = int(free.sum())
        values = drawn.numpy()
        if self.inputs == 1:  # the row needs only its values: numpy's value sort, 25x torch.sort here
            values = np.sort(np.where(free, values[0], np.nan))  # NaN sorts last: the others' order statistics
            return torch.from_numpy(values[_even_ranks(m, count)])[None]
        blocks = np.array_split(np.arange(m), self.inputs)
        columns = [_value_order(values[i], free)[_even_ranks(block.size, count)] for i, block in enumerate(blocks)]
        return drawn[:, torch.from_numpy(np.concatenate(columns))]

    def _drawn(self, total: int) -> int:
        """Uniform positions drawn from a layer of ``total`` values: :data:`OVERSAMPLE` times
        the slots of one input's block (at most every position), of which the row keeps evenly
        spaced order statistics (:meth:`_stratified`: its estimates vary far less between
        layers of different sizes, whose positions differ)."""
        m = self.budget - self.slots
        return min(total, OVERSAMPLE * -(-m // self.inputs))

    def _whole(self, row: torch.Tensor) -> LayerSample:
        """Every value of a layer no larger than the budget, padded with weightless copies."""
        n = row.numel()
        pad = self.budget - n
        weights = torch.cat([torch.full((n,), 1.0 / max(n, 1)), torch.zeros(pad)])
        values = torch.cat([row, row[torch.arange(pad) % n]]) if n else torch.zeros(self.budget)
        return LayerSample(values.float(), weights.float(), self.numel, self.lead)


@dataclass(frozen=True)
class _Kind:
    """A tail: which values it keeps, as a key whose largest values are the tail's, and the
    same key's best value per row of a block view (:func:`_tail`)."""

    key: Callable[[torch.Tensor], torch.Tensor]
    best: Callable[[torch.Tensor], torch.Tensor]


_LARGEST = _Kind(lambda x: x, lambda blocks: blocks.amax(dim=1))
_SMALLEST = _Kind(lambda x: -x, lambda blocks: -blocks.amin(dim=1))
_NEAREST_ZERO = _Kind(lambda x: -x.abs(), lambda blocks: -blocks.abs().amin(dim=1))
_KINDS = (_LARGEST, _SMALLEST, _NEAREST_ZERO)

#: values per block of the tails' pre-selection (:func:`_tail`)
_BLOCK = 64


def _tail(flat: torch.Tensor, t: int, kind: _Kind) -> torch.Tensor:
    """Positions of the ``t`` values of a contiguous ``flat`` with the largest ``kind.key``,
    ties resolved towards the lower position: deterministic, so micro-batches pick the tails
    the whole layer does (S holds thousands of exact zeros).

    Exact, for one block reduction of the layer instead of a ``topk`` over it (4x cheaper on
    a 25M-value embedding): the ``t`` best values lie in the ``t`` blocks of :data:`_BLOCK`
    whose best values are best (ties: the lower block), since any other block ranks behind
    ``t`` blocks that each hold a better value.
    """
    full = flat.numel() - flat.numel() % _BLOCK
    if full // _BLOCK <= t:
        return _extreme(kind.key(flat), t)
    blocks = _extreme(kind.best(flat[:full].view(-1, _BLOCK)), t).sort().values
    near = torch.cat([(blocks[:, None] * _BLOCK + torch.arange(_BLOCK, device=flat.device)).reshape(-1),
                      torch.arange(full, flat.numel(), device=flat.device)])  # ascending positions
    return near[_extreme(kind.key(flat[near]), t)]


def _total(flat: torch.Tensor) -> float:
    """The sum of a contiguous ``flat`` to float64 precision, without a float64 copy of it:
    float32 sums of 256 values, added in float64."""
    full = flat.numel() - flat.numel() % 256
    return float(flat[:full].view(-1, 256).sum(dim=1).sum(dtype=torch.float64)
                 + flat[full:].sum(dtype=torch.float64))


def _extreme(key: torch.Tensor, t: int) -> torch.Tensor:
    """Positions of the ``t`` largest keys, ties resolved towards the lower position."""
    if t == 0:
        return torch.zeros(0, dtype=torch.int64, device=key.device)
    best, index = torch.topk(key, t, sorted=False)
    edge = best.min()
    if int((key == edge).sum()) == int((best == edge).sum()):
        return index  # no value ties with the t-th best outside the t best
    beyond = (key > edge).nonzero().reshape(-1)
    ties = (key == edge).nonzero().reshape(-1)[: t - beyond.numel()]
    return torch.cat([beyond, ties])


def _zero_patterns(pieces: list[torch.Tensor]) -> torch.Tensor:
    """Exact count of each zero pattern over the pieces' positions: entry ``p`` counts the
    positions where exactly the inputs in bit set ``p`` are 0. From the counts of positions
    where at least a set's inputs are 0 (``count_nonzero`` of their union: 10x cheaper than
    ``(x == 0).sum()``), by inclusion-exclusion."""
    k, size = len(pieces), pieces[0].numel()
    at_least = [size]  # by bit set; the empty set: every position
    for members in range(1, 2**k):
        union = reduce(torch.logical_or, [p for i, p in enumerate(pieces) if members >> i & 1])
        at_least.append(size - int(torch.count_nonzero(union)))
    exactly = [sum((-1) ** (t ^ s).bit_count() * at_least[t] for t in range(2**k) if t & s == s)
               for s in range(2**k)]
    return torch.tensor(exactly, dtype=torch.int64)


def _pattern_of(values: torch.Tensor) -> torch.Tensor:
    """The zero pattern of each column of ``values`` (inputs, k): bit ``i`` set where input
    ``i`` is 0."""
    code = torch.zeros(values.shape[1], dtype=torch.int64)
    for i, row in enumerate(values):
        code |= (row == 0).long() << i
    return code


def _even_ranks(size: int, count: int) -> np.ndarray:
    """``size`` evenly spaced ranks among ``count`` ordered values (stratum midpoints)."""
    return ((torch.arange(size) + 0.5) * count / size).long().numpy()


def _value_order(values: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Positions of the free float32 ``values`` in ascending order (ties: the lower
    position), the others last. One int64 sort of (order-preserving value bits, position):
    3x cheaper than ``argsort``, which slows on ties and NaN (a gradient's zeros)."""
    bits = values.astype(np.float32, copy=False).view(np.int32)
    key = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).astype(np.int64)  # signed order of the floats
    key[~free] = np.iinfo(np.int32).max
    return (np.sort((key << 32) | np.arange(values.size, dtype=np.int64)) & 0xFFFFFFFF).astype(np.int64)


def _first_occurrence(positions: torch.Tensor) -> torch.Tensor:
    """True at the first slot holding each position (a later copy carries no weight)."""
    order = torch.argsort(positions, stable=True)
    ordered = positions[order]
    first_sorted = torch.ones_like(ordered, dtype=torch.bool)
    first_sorted[1:] = ordered[1:] != ordered[:-1]
    first = torch.empty_like(first_sorted)
    first[order] = first_sorted
    return first


def sample_layers(tensors: list[torch.Tensor], budget: int, seed: int = 0) -> list[LayerSample]:
    """The budget's samples of one whole layer of one or several inputs, at shared positions."""
    sampler = _LayerSampler(budget, seed, len(tensors))
    first = tensors[0]
    sampler.add(tensors, 0, first.numel(), int(first.shape[0]) if first.dim() else 1)
    return sampler.result()


def sampler(budget: int, seed: int = 0) -> Callable[[torch.Tensor], LayerSample]:
    """Budget mode ``keep``: the layer's :class:`LayerSample` (no copy of the layer)."""

    def keep(tensor: torch.Tensor) -> LayerSample:
        return sample_layers([tensor], budget, seed)[0]

    return keep


class _Parts:
    """One per-sample layer seen in ``parts`` equal micro-batches (batch dimension first):
    each part's tensor is the next ``1/parts`` of the whole layer's row-major positions.
    Budget mode hands each part to one :class:`_LayerSampler` of the whole layer, so
    :meth:`result` is :func:`sampler`'s sample of the whole layer; exact mode keeps each
    part whole and concatenates them."""

    def __init__(self, budget: int | None, seed: int, parts: int) -> None:
        self.parts = parts
        self.sampler = None if budget is None else _LayerSampler(budget, seed)
        self.pieces: list[torch.Tensor] = []
        self.seen, self.size = 0, 0

    def add(self, tensor: torch.Tensor, part: int, rows: int) -> None:
        tensor = tensor.detach()
        size = tensor.numel()
        if self.seen != part or (part and size != self.size):
            raise RuntimeError(f"micro-batch {part} does not see this layer as the others do")
        if tensor.dim() == 0 or tensor.shape[0] != rows:
            raise RuntimeError(f"a per-sample input of shape {tuple(tensor.shape)} does not lead with "
                               f"the micro-batch's {rows} rows")
        self.seen, self.size = self.seen + 1, size
        if self.sampler is None:
            self.pieces.append(copier(tensor))
        else:
            self.sampler.add([tensor], part * size, size * self.parts, rows)

    def result(self) -> Layer:
        return torch.cat(self.pieces) if self.sampler is None else self.sampler.result()[0]


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


class _Deferred:
    """``keep`` of an input read after the backward (``per_sample = False``: W, G) in
    budget mode: holds each layer tensor (a parameter or its gradient, alive anyway)
    until every input of its shape group has given its own, so that the group is
    sampled at shared positions (:meth:`Extraction.collect`)."""

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []

    def __call__(self, tensor: torch.Tensor) -> int:
        self.tensors.append(tensor.detach())
        return len(self.tensors) - 1


def group_of(symbol: str) -> str:
    """The sampling group of an input: inputs read after the backward that share a shape
    group (W and G) are sampled at the same positions; every other input alone."""
    try:
        extractor = STATS.get(symbol)
    except LPZeroError:
        return symbol
    return (extractor.shape_group or symbol) if not extractor.per_sample else symbol


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
        self.plan = plan
        symbols = plan.symbols if plan.symbols is not None else STATS.names()
        self.extractors = [STATS.get(symbol)() for symbol in symbols]
        self.keepers: list[_PartKeeper] = []
        for extractor in self.extractors:
            if parts > 1 and extractor.per_sample:
                extractor.keep = _PartKeeper(plan.budget, plan.seed, parts)
                self.keepers.append(extractor.keep)
            elif plan.budget is None:
                extractor.keep = copier
            elif extractor.per_sample:
                extractor.keep = sampler(plan.budget, plan.seed)
            else:
                extractor.keep = _Deferred()

    def start_part(self, part: int, rows: int) -> None:
        for keeper in self.keepers:
            keeper.start(part, rows)

    def attach(self, model: torch.nn.Module, taps) -> None:
        for extractor in self.extractors:
            extractor.attach(model, taps)

    def collect(self, model: torch.nn.Module, taps) -> RawStats:
        raw = {e.symbol: [t.result() if isinstance(t, _Parts) else t for t in e.collect(model, taps)]
               for e in self.extractors}
        groups: dict[str, list] = {}
        for e in self.extractors:
            if isinstance(e.keep, _Deferred) and e.keep.tensors:  # (a collect may return whole
                groups.setdefault(group_of(e.symbol), []).append(e)  # tensors: summarize samples them)
        for members in groups.values():
            layers = {len(e.keep.tensors) for e in members}
            if len(layers) != 1:
                raise RuntimeError(f"inputs {', '.join(e.symbol for e in members)} share a shape group "
                                   f"but have {sorted(layers)} layers")
            samples = [sample_layers([e.keep.tensors[i] for e in members], self.plan.budget, self.plan.seed)
                       for i in range(layers.pop())]
            for j, e in enumerate(members):
                raw[e.symbol] = [samples[t][j] if isinstance(t, int) else t for t in raw[e.symbol]]
                e.keep.tensors.clear()
        return {symbol: [_cpu(t) for t in layers] for symbol, layers in raw.items()}

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


def sample_indices(n: int, k: int, seed: int) -> torch.Tensor:
    """The same ``k`` sorted positions for every layer of ``n`` elements, so W and G align
    (int64, as ``torch.take`` wants them; see :func:`_positions`)."""
    return torch.from_numpy(_positions(n, k, seed)).long()


@lru_cache(maxsize=512)
def _positions(n: int, k: int, seed: int) -> np.ndarray:
    """:func:`sample_indices`, kept as int32 for the sizes seen last: a stratified draw holds
    118,784 positions, and a 200-arch search meets a few thousand layer sizes (4,096 int64
    entries held up to 3.9 GB; 512 int32 entries hold at most 243 MB).

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
    return np.sort(index).astype(np.int32 if n < 2**31 else np.int64)


def summarize(raw: RawStats, budget: int | None, seed: int = 0) -> ArchStats:
    """Turn per-layer tensors (or samples taken in the hooks) into :class:`Values` chunks.

    ``budget=None`` (exact): one chunk per layer holding every value. Otherwise one
    chunk whose rows are the budget's weighted samples of the layers (:class:`LayerSample`,
    the inputs of a :func:`group_of` at shared positions), plus each layer's size. Layers
    with no values are absent (they contribute no row).
    """
    samples: dict[str, list[Layer]] = {symbol: list(layers) for symbol, layers in raw.items()}
    if budget is not None:
        groups: dict[str, list[str]] = {}
        for symbol in raw:
            groups.setdefault(group_of(symbol), []).append(symbol)
        for members in groups.values():
            for i in range(min(len(raw[s]) for s in members)):
                whole = [s for s in members if not isinstance(raw[s][i], LayerSample)]
                if whole:
                    for s, sample in zip(whole, sample_layers([raw[s][i] for s in whole], budget, seed)):
                        samples[s][i] = sample
    stats: ArchStats = {}
    for symbol, layers in samples.items():
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
            if any(s.values.numel() != budget for s in present):
                raise ValueError(f"input {symbol} was sampled with another budget than {budget}")
            stats[symbol] = [Values(torch.stack([s.values for s in present]),
                                    torch.tensor([[float(s.numel)] for s in present]),
                                    torch.tensor([[lead] for lead in leads]),
                                    torch.stack([s.weights for s in present]))]
    return stats
