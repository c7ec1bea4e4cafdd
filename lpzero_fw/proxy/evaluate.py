"""Score a proxy on one architecture's statistics.

Statistics are ``Mapping[str, list[Values]]``: input symbol -> chunks. The rows of
all chunks, in order, are the layers of that input (budget mode: one chunk with one
row per layer; exact mode: one chunk per layer, since layer sizes differ).

Semantics of ``binary(left, right)`` on one architecture:

1. **Branches.** Each branch applies its unary ops (innermost first) to every chunk
   of its input. A branch containing ``prune`` (any op whose class sets
   ``removes_branch``) is removed: the proxy is the other branch alone; both
   branches removed is invalid (``both_pruned``). An input with no layers is invalid
   (``empty_input``). A branch whose every row is a single value with population 1
   is a *per-layer scalar*; otherwise it is a *tensor* branch.
2. **Combination, row by row.**
   * A per-layer scalar broadcasts over the other operand's row. If the two
     branches have different layer counts, each per-layer-scalar branch is first
     collapsed to its mean over layers (one scalar, broadcast to every layer).
   * Two tensor branches must have the same layer count and, row by row, the same
     sample size and population size ``n`` (same shape group, aligned samples);
     otherwise the proxy is invalid (``shape_mismatch``). Chunks are paired in
     order, so both must have the same chunk structure.
3. **Score.** The mean over layers of each result layer's (estimated) mean value:
   ``score = mean_l mean_i result[l, i]`` (the reference implementation's
   ``convert_to_float``: mean of per-layer means). A layer mean that cancels to within
   float32 rounding is 0 here too (:meth:`~lpzero_fw.ops.base.Values.row_means`).

**Absent inputs.** A search space's taps list each input only where a layer has it
(a FlexiBERT LT block has no attention softmax, so no S row).

* *Per layer*: a layer without the input contributes no row; the layer reduction
  (mean, or ``layer_sum``) runs over the layers that have it, and a tensor branch
  meets another input's tensor branch only when both have the same rows (else
  ``shape_mismatch``, as for any other shape difference).
* *Per architecture*: an architecture with no layer of an input that a non-pruned
  branch reads has no score for that proxy (``InvalidProxy("empty_input")``, see
  :data:`ABSENT_INPUT`). This is not a verdict on the proxy: the search's fitness and
  ``task=rank`` leave such architectures out of that proxy's correlation (its
  ``n_archs`` says on how many it was computed) and report how many architectures
  lacked each input; :func:`absent_input` tells which input is missing. A proxy
  defined on fewer than half of the architectures it is scored on is rejected
  (``empty_input``): it cannot rank the benchmark.

:func:`evaluate` is the plain, uncached definition. The semantics are written once:
``_pairing`` decides how two branches meet (rule 2), ``_layers_after`` how many layers the
result has, ``_join`` the score from whole branch tensors; :func:`evaluate` and every slow
path of :class:`Evaluator` call them. :class:`Evaluator`
computes the same numbers fast, taking shortcuts only where a binary op declares how its
result's mean follows from the operands' (``mean_kind``, ``row_means``; tested against
the definition in ``tests/test_proxy.py``), which the search needs (tens of thousands of proxy×architecture
evaluations): the mean is linear, so for ``sum``/``difference`` and for
``product``/``matmul`` with a per-layer-scalar operand only each branch's per-layer
means are needed. Those are cached per (architecture, branch) - a branch is an
input symbol plus an op chain, so the cache is small and shared by every proxy
containing that branch - and a score is then a few numpy operations on vectors of
length L. Only tensor×tensor ``product``/``matmul`` (and plugin binary ops without
``row_means``) need whole branch tensors: those, and every intermediate op-chain
prefix, live in a byte-bounded LRU.

Scores may be ``nan`` or ``±inf`` (overflowing ops are not clamped); the dynamic
pruning rules decide what to do with them. Structural problems raise
:class:`InvalidProxy` carrying a rule name; no torch exception escapes (anything
unexpected becomes ``InvalidProxy("evaluation_error")``).
"""
from __future__ import annotations

import operator
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.ops.binary import OperandMismatch
from lpzero_fw.formula.genotype import Branch, Formula
from lpzero_fw.registry import BINARY_OPS, LAYER_REDUCTIONS, UNARY_OPS, LPZeroError

ArchStats = Mapping[str, Sequence[Values]]


#: the rule of :class:`InvalidProxy` for an input with no layers on one architecture
ABSENT_INPUT = "empty_input"


class InvalidProxy(Exception):
    """The proxy cannot be scored on this architecture; ``rule`` says why."""

    def __init__(self, rule: str, detail: str = "") -> None:
        self.rule = rule
        self.detail = detail
        super().__init__(f"{rule}: {detail}" if detail else rule)

    def __reduce__(self):
        return (InvalidProxy, (self.rule, self.detail))


# -- shared helpers ----------------------------------------------------------------
def _unary(name: str):
    return UNARY_OPS.get(name)()


def _carried(out: Values, *operands: Values) -> Values:
    """``out`` with the sample weights (and ``lead``) of an operand of its shape, when the
    op dropped them: a plugin op that builds ``Values(x, v.n)`` instead of ``v.like(x)``
    would otherwise weigh a cached sample's exact tails like its uniform values."""
    if out.w is None:
        for v in operands:
            if v.w is not None and v.x.shape == out.x.shape:
                return replace(out, w=v.w, lead=v.lead if out.lead is None else out.lead)
    return out


def _removes(ops: Iterable[str]) -> bool:
    return any(UNARY_OPS.get(op).removes_branch for op in ops)


def _chunks(stats: ArchStats, symbol: str) -> Sequence[Values]:
    try:
        chunks = stats[symbol]
    except KeyError:
        raise LPZeroError(
            f"the statistics have no input {symbol!r}; available: {', '.join(sorted(stats))}"
        ) from None
    if not chunks or sum(c.rows for c in chunks) == 0:
        raise InvalidProxy(ABSENT_INPUT, f"input {symbol} has no layers")
    return chunks


def absent_input(proxy: Formula, stats: ArchStats) -> str | None:
    """The first input a non-pruned branch of ``proxy`` reads that has no layers here, else None."""
    for branch in (proxy.left, proxy.right):
        if not _removes(branch.ops) and _layers(stats.get(branch.input) or ()) == 0:
            return branch.input
    return None


def absent_counts(stats: Mapping[Any, ArchStats]) -> dict[str, int]:
    """How many architectures have no layer of each input (inputs every arch has: 0)."""
    counts: dict[str, int] = {}
    for arch_stats in stats.values():
        for symbol, chunks in arch_stats.items():
            counts[symbol] = counts.get(symbol, 0) + (_layers(chunks) == 0)
    return dict(sorted(counts.items()))


def _is_scalar(chunks: Sequence[Values]) -> bool:
    return all(c.is_scalar for c in chunks)


def _row_means(chunks: Sequence[Values]) -> np.ndarray:
    """Per-layer means (float32 accumulation, like the cached evaluator), as float64."""
    return torch.cat([c.row_means() for c in chunks]).double().numpy()


def _layers(chunks: Sequence[Values]) -> int:
    return sum(c.rows for c in chunks)


def _structure(chunks: Sequence[Values]) -> tuple[int, ...]:
    return tuple(c.rows for c in chunks)


def _scalar_column(chunks: Sequence[Values]) -> torch.Tensor:
    return torch.cat([c.x.reshape(-1) for c in chunks])


def _broadcast_scalar(values: torch.Tensor, like: Sequence[Values]) -> list[Values]:
    """Split a (L,) or (1,) column of scalars into chunks shaped like ``like``'s rows."""
    out, start = [], 0
    for chunk in like:
        rows = chunk.rows
        part = values.expand(rows) if values.numel() == 1 else values[start : start + rows]
        start += rows
        col = part.reshape(-1, 1).to(chunk.x.dtype)
        out.append(Values(col, torch.ones_like(col)))
    return out


def _join(op, left: Sequence[Values] | None, right: Sequence[Values] | None) -> float:
    """The definition of ``op(left, right)``'s score from whole branch tensors (``None``:
    a pruned branch); :func:`evaluate` and every slow path of :class:`Evaluator` use it."""
    if left is None and right is None:
        raise InvalidProxy("both_pruned")
    if left is None or right is None:
        return _score_of(left if right is None else right)
    if op.means_first:
        left, right = [_stack_scalars([_means_of(c) for c in left])], [_stack_scalars([_means_of(c) for c in right])]
    return _score_of(_combine(op, left, right))


def _pairing(left_scalar: bool, right_scalar: bool, left_layers: int, right_layers: int,
             aligned: bool) -> tuple[bool, bool]:
    """How two branches meet (rule 2 of the module docstring), from their shapes alone:
    ``(collapse left, collapse right)`` to one scalar each; raises ``shape_mismatch``.

    The one statement of the rule: :func:`_combine` applies it to tensors and the fast
    paths of :class:`Evaluator` to per-layer means. ``aligned``: two tensor branches
    have row by row the same sample and population sizes.
    """
    if left_scalar or right_scalar:
        differ = left_layers != right_layers  # per-layer scalars collapse to their mean over layers
        return differ and left_scalar, differ and right_scalar
    if left_layers != right_layers:
        raise InvalidProxy("shape_mismatch", f"tensor branches have {left_layers} and {right_layers} layers")
    if not aligned:
        raise InvalidProxy("shape_mismatch", "tensor branches are not element-wise aligned")
    return False, False


def _combine(op, left: Sequence[Values], right: Sequence[Values]) -> list[Values]:
    """Row-by-row ``op(left, right)`` following :func:`_pairing`."""
    ls, rs = _is_scalar(left), _is_scalar(right)
    collapse_left, collapse_right = _pairing(ls, rs, _layers(left), _layers(right),
                                             _structure(left) == _structure(right))
    if collapse_left:
        left = [_collapse(left)]
    if collapse_right:
        right = [_collapse(right)]
    if ls and not rs:
        left = _broadcast_scalar(_scalar_column(left), right)
    elif rs and not ls:
        right = _broadcast_scalar(_scalar_column(right), left)
    elif ls and rs and _structure(left) != _structure(right):
        left = [_stack_scalars(left)]
        right = [_stack_scalars(right)]
    try:
        return [_carried(op(a, b), a, b) for a, b in zip(left, right)]
    except OperandMismatch as exc:
        raise InvalidProxy("shape_mismatch", str(exc)) from None


def _collapse(chunks: Sequence[Values]) -> Values:
    mean = _scalar_column(chunks).to(torch.float64).mean().to(chunks[0].x.dtype).reshape(1, 1)
    return Values(mean, torch.ones_like(mean))


def _means_of(chunk: Values) -> Values:
    col = chunk.row_means().reshape(-1, 1)
    return Values(col, torch.ones_like(col))


def _stack_scalars(chunks: Sequence[Values]) -> Values:
    col = _scalar_column(chunks).reshape(-1, 1)
    return Values(col, torch.ones_like(col))


def _score_of(chunks: Sequence[Values]) -> float:
    with np.errstate(all="ignore"):
        return float(np.mean(_row_means(chunks)))


def result_layers(proxy: Formula, stats: ArchStats) -> int:
    """How many layer rows the combined result of ``proxy`` has (for ``layer_sum``).

    The remaining branch's when one is pruned; the shared count when both branches
    have it; the tensor branch's when a per-layer scalar was collapsed onto it; 1
    when two scalar branches of different depths were both collapsed.
    """
    infos = []
    for branch in (proxy.left, proxy.right):
        if _removes(branch.ops):
            infos.append(None)
            continue
        rows = _layers(_chunks(stats, branch.input))
        scalar = any(UNARY_OPS.get(name).reduces for name in branch.ops)
        infos.append((rows, scalar))
    return _layers_after(*infos)


def _layers_after(left: tuple[int, bool] | None, right: tuple[int, bool] | None) -> int:
    """The rule of :func:`result_layers`; each side is ``(rows, reduced)`` or ``None`` if pruned."""
    if left is None or right is None:
        return (right if left is None else left)[0]
    if left[0] == right[0]:
        return left[0]
    if left[1] and right[1]:
        return 1
    return right[0] if left[1] else left[0]


def evaluate(proxy: Formula, stats: ArchStats) -> float:
    """The proxy's score on one architecture (plain definition, no caching).

    Raises :class:`InvalidProxy`; may return ``nan``/``inf``.
    """
    value = _evaluate_mean(proxy, stats)
    return LAYER_REDUCTIONS.get(proxy.layers)().reduce(value, result_layers(proxy, stats))


def _evaluate_mean(proxy: Formula, stats: ArchStats) -> float:
    try:
        with torch.inference_mode():
            branches = []
            for branch in (proxy.left, proxy.right):
                if _removes(branch.ops):
                    branches.append(None)
                    continue
                chunks = list(_chunks(stats, branch.input))
                for name in branch.ops:
                    op = _unary(name)
                    chunks = [_carried(op(c), c) for c in chunks]
                branches.append(chunks)
            return _join(BINARY_OPS.get(proxy.binary)(), *branches)
    except (InvalidProxy, LPZeroError):
        raise
    except Exception as exc:  # a torch error must not crash the search
        raise InvalidProxy("evaluation_error", f"{type(exc).__name__}: {exc}") from None


class _BranchResult:
    """What a score needs from one branch on one architecture.

    Means are Python floats (float64): arithmetic on them never warns, and for the
    short per-layer vectors involved it is faster than numpy or torch.
    """

    __slots__ = ("means", "mean", "scalar", "layers", "shape", "reduced")

    def __init__(self, means: list[float], scalar: bool, shape: int, reduced: bool) -> None:
        self.means = means  # per-layer means
        self.layers = len(means)
        self.mean = sum(means) / self.layers  # mean over layers
        self.scalar = scalar
        self.shape = shape  # interned (chunk shapes, n) signature; equal => aligned tensors
        self.reduced = reduced  # the op chain contains a reduction (see result_layers)


def _result_layers(left: Any, right: Any) -> int:
    """:func:`result_layers` from two branch summaries (``_PRUNED`` or ``_BranchResult``)."""
    return _layers_after(None if left is _PRUNED else (left.layers, left.reduced),
                         None if right is _PRUNED else (right.layers, right.reduced))


_PRUNED = object()  # summary-cache marker of a branch removed by prune


@dataclass
class BatchScores:
    """Scores of many proxies on many architectures.

    ``scores[i, j]``: proxy ``i`` on architecture ``arch_keys[j]`` (``nan`` where
    invalid); ``invalid[i]``: the rule of the first architecture on which proxy ``i``
    was invalid, or ``None``.
    """

    scores: np.ndarray
    invalid: list[str | None]
    arch_keys: list[Any]


class Evaluator:
    """Scores proxies with per-(architecture, branch) caches; see the module docstring.

    ``max_branches``: cached branch summaries (a few floats per layer each) before
    that cache is cleared; ``max_tensor_bytes``: size of the LRU of op-chain prefix
    tensors (and of whole branches needed by tensor×tensor product/matmul); larger
    results are recomputed when needed; ``max_pairs``: memoised tensor×tensor scores.

    The cache trusts ``arch_key``: the same key must come with the same statistics.
    A different statistics object for a known key (checked by identity of its chunk
    tensors) drops that architecture's cached results.
    """

    def __init__(
        self,
        max_branches: int = 2_000_000,
        max_tensor_bytes: int = 512 * 2**20,
        max_pairs: int = 1_000_000,
        threads: int | None = 1,
    ) -> None:
        self.threads = threads
        self.max_branches = max_branches
        self.max_tensor_bytes = max_tensor_bytes
        self.max_pairs = max_pairs
        self._summaries: dict[Any, dict[Branch, Any]] = {}
        self._n_summaries = 0
        self._pairs: dict[tuple, float | InvalidProxy] = {}
        self._tensors: OrderedDict[tuple, list[Values]] = OrderedDict()
        self._tensor_bytes = 0
        self._stats: dict[Any, ArchStats] = {}
        self._inputs: dict[Any, dict[str, list[Values]]] = {}  # validated input chunks per arch
        self._signatures: dict[tuple, int] = {}
        self._shape_by_identity: dict[tuple, tuple[int, list]] = {}
        self._unary: dict[str, Any] = {}
        self._prunes: dict[str, bool] = {}
        self._reduces: dict[tuple[str, ...], bool] = {}
        self._binary: dict[str, tuple[Any, str | None, Any]] = {}
        self._reductions: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0

    # -- public API -----------------------------------------------------------------
    def score(self, proxy: Formula, arch_key: Any, stats: ArchStats) -> float:
        """The proxy's score on one architecture; raises :class:`InvalidProxy`."""
        summaries = self._summaries.get(arch_key)
        if summaries is None or self._stats[arch_key] is not stats:
            summaries = self._arch(arch_key, stats)
        left = summaries.get(proxy.left)
        if left is None:
            left = self._summary(summaries, arch_key, proxy.left, stats)
        else:
            self.hits += 1
        right = summaries.get(proxy.right)
        if right is None:
            right = self._summary(summaries, arch_key, proxy.right, stats)
        else:
            self.hits += 1
        if left.__class__ is not _BranchResult or right.__class__ is not _BranchResult:
            value = self._special(left, right)
        else:
            value = self._mean_score(proxy, arch_key, stats, left, right)
        reduction = self._reductions.get(proxy.layers)
        if reduction is None:
            reduction = self._reductions[proxy.layers] = LAYER_REDUCTIONS.get(proxy.layers)()
        return reduction.reduce(value, _result_layers(left, right))

    def _mean_score(self, proxy: Formula, arch_key: Any, stats: ArchStats,
                    left: _BranchResult, right: _BranchResult) -> float:
        binary = self._binary.get(proxy.binary) or self._binary_op(proxy.binary)
        kind = binary[1]
        ls, rs = left.scalar, right.scalar
        if binary[0].means_first:
            ls = rs = True  # joins per-layer means: both branches act as per-layer scalars
        collapse = _pairing(ls, rs, left.layers, right.layers, left.shape == right.shape)
        # the mean is linear: a sum's or difference's mean is the operands' (collapsed or not)
        if kind == "add":
            return left.mean + right.mean
        if kind == "sub":
            return left.mean - right.mean
        if kind == "mul" and (ls or rs):  # scaling: row l's mean is a_l * mean(b_l)
            if collapse[0] or collapse[1]:
                return left.mean * right.mean
            return sum(map(operator.mul, left.means, right.means)) / left.layers
        return self._generic(binary, arch_key, proxy, stats, left, right, ls, rs, collapse)

    def score_many(self, proxies: Sequence[Formula], stats: Mapping[Any, ArchStats]) -> BatchScores:
        """Score every proxy on every architecture of ``stats`` (arch key -> statistics)."""
        keys = list(stats)
        scores = np.full((len(proxies), len(keys)), np.nan)
        invalid: list[str | None] = [None] * len(proxies)
        for j, key in enumerate(keys):  # architecture-major: one arch's branches stay hot
            arch_stats = stats[key]
            for i, proxy in enumerate(proxies):
                try:
                    scores[i, j] = self.score(proxy, key, arch_stats)
                except InvalidProxy as exc:
                    if invalid[i] is None:
                        invalid[i] = exc.rule
        return BatchScores(scores, invalid, keys)

    def clear(self) -> None:
        """Drop every cached result."""
        self._summaries.clear()
        self._n_summaries = 0
        self._pairs.clear()
        self._tensors.clear()
        self._tensor_bytes = 0
        self._stats.clear()
        self._inputs.clear()
        self._shape_by_identity.clear()

    def cache_info(self) -> dict[str, int]:
        """Cache counters, for profiling and logs."""
        return {
            "branch_hits": self.hits,
            "branch_misses": self.misses,
            "branches_cached": self._n_summaries,
            "pairs_cached": len(self._pairs),
            "tensor_entries": len(self._tensors),
            "tensor_bytes": self._tensor_bytes,
        }

    # -- the less common cases --------------------------------------------------------
    @staticmethod
    def _special(left: Any, right: Any) -> float:
        """At least one branch is pruned or invalid."""
        for side in (left, right):
            if isinstance(side, InvalidProxy):
                raise InvalidProxy(side.rule, side.detail)  # fresh: no traceback build-up
        if left is _PRUNED and right is _PRUNED:
            raise InvalidProxy("both_pruned")
        return (right if left is _PRUNED else left).mean

    def _generic(self, binary: tuple, arch_key: Any, proxy: Formula, stats: ArchStats,
                 left: _BranchResult, right: _BranchResult, ls: bool, rs: bool,
                 collapse: tuple[bool, bool]) -> float:
        op, _, row_means = binary
        if row_means is not None:
            lm = np.array([left.mean]) if collapse[0] else np.asarray(left.means)
            rm = np.array([right.mean]) if collapse[1] else np.asarray(right.means)
            with np.errstate(all="ignore"):
                means = row_means(lm, rm, ls, rs)
                if means is not None:
                    return float(np.mean(means))
        key = (arch_key, proxy)
        cached = self._pairs.get(key)
        if cached is None:
            previous = self._enter()
            try:
                cached = self._slow(op, arch_key, proxy, stats)
            except InvalidProxy as invalid:
                cached = invalid
            finally:
                self._exit(previous)
            if len(self._pairs) >= self.max_pairs:
                self._pairs.clear()
            self._pairs[key] = cached
        if isinstance(cached, InvalidProxy):
            raise InvalidProxy(cached.rule, cached.detail)
        return cached

    def _slow(self, op, arch_key: Any, proxy: Formula, stats: ArchStats) -> float:
        """Score from whole branch tensors (tensor×tensor product/matmul, plugin ops)."""
        try:
            with torch.inference_mode():
                left = self._branch_tensors(arch_key, proxy.left.input, proxy.left.ops, stats, keep=True)
                right = self._branch_tensors(arch_key, proxy.right.input, proxy.right.ops, stats, keep=True)
                return _join(op, left, right)
        except (InvalidProxy, LPZeroError):
            raise
        except Exception as exc:
            raise InvalidProxy("evaluation_error", f"{type(exc).__name__}: {exc}") from None

    def _enter(self) -> int | None:
        """Switch torch to ``self.threads`` intra-op threads; returns what to restore."""
        if self.threads is None:
            return None
        previous = torch.get_num_threads()
        if previous == self.threads:
            return None
        torch.set_num_threads(self.threads)
        return previous

    @staticmethod
    def _exit(previous: int | None) -> None:
        if previous is not None:
            torch.set_num_threads(previous)

    def _removes(self, ops: tuple[str, ...]) -> bool:
        for op in ops:
            flag = self._prunes.get(op)
            if flag is None:
                flag = self._prunes[op] = bool(UNARY_OPS.get(op).removes_branch)
            if flag:
                return True
        return False

    # -- caches -------------------------------------------------------------------------
    def _arch(self, arch_key: Any, stats: ArchStats) -> dict:
        known = self._stats.get(arch_key)
        if known is not stats:
            if known is not None and not _same_stats(known, stats):
                self._forget(arch_key)
            self._stats[arch_key] = stats
        summaries = self._summaries.get(arch_key)
        if summaries is None:
            summaries = self._summaries[arch_key] = {}
        return summaries

    def _forget(self, arch_key: Any) -> None:
        self._n_summaries -= len(self._summaries.pop(arch_key, {}))
        self._inputs.pop(arch_key, None)
        for key in [k for k in self._tensors if k[0] == arch_key]:
            self._tensor_bytes -= _nbytes(self._tensors.pop(key))
        for key in [k for k in self._pairs if k[0] == arch_key]:
            del self._pairs[key]

    def _binary_op(self, name: str) -> tuple:
        op = BINARY_OPS.get(name)()
        entry = self._binary[name] = (op, op.mean_kind, op.row_means)
        return entry

    def _unary_op(self, name: str):
        op = self._unary.get(name)
        if op is None:
            op = self._unary[name] = UNARY_OPS.get(name)()
        return op

    def _summary(self, summaries: dict, arch_key: Any, branch: Branch, stats: ArchStats) -> Any:
        self.misses += 1
        if self._removes(branch.ops):
            result: Any = _PRUNED
        else:
            previous = self._enter()
            try:
                with torch.inference_mode():
                    result = self._compute_summary(arch_key, branch, stats)
            finally:
                self._exit(previous)
        if self._n_summaries >= self.max_branches:
            for cached in self._summaries.values():
                cached.clear()
            self._n_summaries = 0
        summaries[branch] = result
        self._n_summaries += 1
        return result

    def _compute_summary(self, arch_key: Any, branch: Branch, stats: ArchStats) -> _BranchResult | InvalidProxy:
        try:
            chunks = self._branch_tensors(arch_key, branch.input, branch.ops, stats, keep=False)
            scalar = _is_scalar(chunks)
            if len(chunks) == 1:
                means = chunks[0].row_means().tolist()
            else:
                means = torch.cat([c.row_means() for c in chunks]).tolist()
            reduced = self._reduces.get(branch.ops)
            if reduced is None:
                reduced = self._reduces[branch.ops] = any(self._unary_op(op).reduces for op in branch.ops)
            return _BranchResult(means, scalar, -1 if scalar else self._shape_id(chunks), reduced)
        except InvalidProxy as invalid:
            return invalid
        except LPZeroError:
            raise
        except Exception as exc:
            return InvalidProxy("evaluation_error", f"{type(exc).__name__}: {exc}")

    def _shape_id(self, chunks: Sequence[Values]) -> int:
        # unary ops keep the n tensor of their input, so identity usually finds it
        quick = tuple((id(c.n), id(c.w), tuple(c.x.shape)) for c in chunks)
        found = self._shape_by_identity.get(quick)
        if found is not None:
            return found[0]
        signature = (
            tuple(tuple(c.x.shape) for c in chunks),
            torch.cat([c.n.reshape(-1) for c in chunks]).double().numpy().tobytes(),
            tuple(None if c.w is None else c.w.numpy().tobytes() for c in chunks),
        )
        ident = self._signatures.get(signature)
        if ident is None:
            ident = self._signatures[signature] = len(self._signatures)
        # keep the n and w tensors alive so their ids cannot be reused while cached
        self._shape_by_identity[quick] = (ident, [(c.n, c.w) for c in chunks])
        return ident

    def _branch_tensors(
        self, arch_key: Any, symbol: str, ops: tuple[str, ...], stats: ArchStats, keep: bool
    ) -> list[Values]:
        """Chunks of ``ops`` applied to ``symbol``; prefixes (and ``keep`` results) go to the LRU.

        Callers hold ``torch.inference_mode``.
        """
        if not ops:
            inputs = self._inputs.get(arch_key)
            if inputs is None:
                inputs = self._inputs[arch_key] = {}
            chunks = inputs.get(symbol)
            if chunks is None:
                chunks = inputs[symbol] = list(_chunks(stats, symbol))
            return chunks
        key = (arch_key, symbol, ops)
        cached = self._tensors.get(key)
        if cached is not None:
            self._tensors.move_to_end(key)
            return cached
        inner = self._branch_tensors(arch_key, symbol, ops[:-1], stats, keep=True)
        op = self._unary_op(ops[-1])
        result = [_carried(op(c), c) for c in inner]
        if keep:
            size = _nbytes(result)
            if size <= self.max_tensor_bytes:
                self._tensors[key] = result
                self._tensor_bytes += size
                while self._tensor_bytes > self.max_tensor_bytes:
                    _, old = self._tensors.popitem(last=False)
                    self._tensor_bytes -= _nbytes(old)
        return result


def _nbytes(chunks: Sequence[Values]) -> int:
    return sum(c.x.element_size() * c.x.nelement() + c.n.element_size() * c.n.nelement() for c in chunks)


def _same_stats(a: ArchStats, b: ArchStats) -> bool:
    """True when ``a`` and ``b`` hold the very same chunk tensors."""
    if a.keys() != b.keys():
        return False
    for symbol in a:
        ca, cb = a[symbol], b[symbol]
        if ca is cb:
            continue
        if len(ca) != len(cb) or any(x.x is not y.x or x.n is not y.n or x.w is not y.w for x, y in zip(ca, cb)):
            return False
    return True
