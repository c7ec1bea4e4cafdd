"""The reference implementation's operator semantics, as a selectable operator set.

LPZero's reference code (``lpzero/operators/unary_ops.py``, ``binary_ops.py``) defines
some operators differently from this package's (``ops/unary.py``, ``ops/binary.py``).
Its searched formulas only reproduce its scores under its own semantics, so those
operators exist here under their own names, prefixed ``ref.``; formula strings stay
self-describing (``ref.sum(ref.l1_norm(square(W)), square(ref.softmax(G)))`` parses back
to exactly this proxy with no extra setting).

Operator sets (``search.ops``): every op declares ``op_set`` (default ``lpzero_fw``)
and, in another set, ``replaces`` (the ``lpzero_fw`` op it stands in for). The set
``reference`` is every ``lpzero_fw`` op that no ``ref.`` op replaces, plus the
``ref.`` ops; :func:`op_names` computes it from those attributes, :func:`translate`
rewrites a formula into a set (used for the named formulas ``lpzero_gpt2`` /
``lpzero_flexibert``).

Reference semantics (``n`` = layer size, ``d0`` = size of the layer tensor's first
dimension, :attr:`~lpzero_fw.ops.base.Values.lead`):

* ``ref.l1_norm = mean |x|`` (``sum |x| / numel``), not the L1 norm;
* ``ref.softmax`` / ``ref.log_softmax`` run over dim 0 of the layer tensor (for
  GPT-2's Conv1D weights and gradients, stored (in, out): over the input features;
  for activations (batch, tokens, features): over the batch); on a per-layer scalar
  (a 0-d tensor) softmax is 1 and log-softmax 0;
* ``ref.log``: ``log(x)`` with ``x <= 0`` mapped to 0 (``log 1``);
* ``ref.abs_log``: ``log |x|`` with ``x == 0`` mapped to 0;
* ``ref.invert``: ``1 / x``; a zero anywhere in the layer makes the reference raise,
  so here the layer becomes ``nan`` and the dynamic rules reject the proxy;
* ``ref.std`` / ``ref.normalize``: torch's default (Bessel-corrected) standard
  deviation of the whole layer, ``normalize = (x - mean) / (std + 1e-9)``;
* binary ops: the reference reduces each branch's layer to its mean before the binary
  op (``TreeStructure.forward_tree`` calls ``convert_to_float`` on both operands), so
  ``ref.sum`` / ``ref.difference`` give the same scores as ours but accept any two
  inputs (W with A, ...), ``ref.product`` is ``mean(a) * mean(b)`` (ours: ``mean(a *
  b)``) and ``ref.matmul`` is the same product (its ``A @ B`` falls back to ``A * B``
  on floats). When the two branches have different layer counts the reference zips
  the lists (truncating to the shorter one, by position); here each branch keeps all
  its layers and is averaged over them (the evaluator's rule for per-layer scalars).

The remaining unary ops (square, abs, exp, relu, sigmoid, sqrt, negate,
frobenius_norm, normalized_sum, mean, min_max_normalize, no_op, prune) mean the same in
both codes and are shared, but for one thing: a layer mean cancelled to float32 rounding is
exactly 0 here (``ops/base.py``, ``CANCELLED``), where the reference keeps the rounding
residual (its sign depends on the device and the summation order).

Sampled statistics: the dim-0 softmax needs each column's sum. In exact mode (the
row holds the whole layer, ``k == n``) it is computed exactly from the layer's
shape ``(d0, n / d0)``; from a uniform sample of ``k < n`` values it is estimated as
``exp(x_ij) / (d0 * mean(exp(x)))``, i.e. every column's sum by the layer-wide mean
(exact when the columns are alike, as for an untrained model's gradients).
"""
from __future__ import annotations

from typing import ClassVar

import torch

from lpzero_fw.ops.base import EPS, BinaryOp, UnaryOp, Values, weighted_softmax
from lpzero_fw.ops.binary import _check_rows
from lpzero_fw.registry import BINARY_OPS, UNARY_OPS, LPZeroError, Registry

DEFAULT_SET = "lpzero_fw"
REFERENCE_SET = "reference"
OP_SETS = (DEFAULT_SET, REFERENCE_SET)


# -- operator sets --------------------------------------------------------------------
def _check_set(op_set: str) -> None:
    known = sorted({getattr(e.obj, "op_set", DEFAULT_SET) for r in (UNARY_OPS, BINARY_OPS) for e in r.entries()})
    if op_set not in known:
        raise LPZeroError(f"unknown search.ops {op_set!r}; choose one of: {', '.join(known)}")


def op_names(registry: Registry, op_set: str = DEFAULT_SET) -> tuple[str, ...]:
    """Names of ``registry``'s ops in ``op_set`` (read from each op's ``op_set`` / ``replaces``)."""
    _check_set(op_set)
    entries = registry.entries()
    own = [e for e in entries if getattr(e.obj, "op_set", DEFAULT_SET) == op_set]
    if op_set == DEFAULT_SET:
        return tuple(e.name for e in own)
    replaced = {e.obj.replaces for e in own if getattr(e.obj, "replaces", None)}
    shared = [e for e in entries if getattr(e.obj, "op_set", DEFAULT_SET) == DEFAULT_SET and e.name not in replaced]
    return tuple(sorted([e.name for e in shared] + [e.name for e in own]))


def _stand_in(registry: Registry, name: str, op_set: str) -> str:
    if op_set == DEFAULT_SET:
        return name
    for entry in registry.entries():
        if getattr(entry.obj, "op_set", DEFAULT_SET) == op_set and getattr(entry.obj, "replaces", None) == name:
            return entry.name
    return name


def translate(formula: str, op_set: str) -> str:
    """``formula`` (in ``lpzero_fw`` op names) with every op replaced by ``op_set``'s stand-in."""
    from lpzero_fw.formula.genotype import Branch, Formula
    from lpzero_fw.formula.parse import parse

    _check_set(op_set)
    proxy = parse(formula)

    def branch(b: Branch) -> Branch:
        return Branch(b.input, tuple(_stand_in(UNARY_OPS, op, op_set) for op in b.ops))

    return str(Formula(branch(proxy.left), branch(proxy.right), _stand_in(BINARY_OPS, proxy.binary, op_set),
                     proxy.layers))


# -- helpers -----------------------------------------------------------------------------
def _scalar(x: torch.Tensor) -> Values:
    col = x.reshape(-1, 1)
    return Values(col, torch.ones_like(col))


def _lead(v: Values) -> torch.Tensor:
    """Each row's first-dimension size; Values without shapes are flat layers (1-D: all of n)."""
    return (v.n if v.lead is None else v.lead).to(v.x.dtype)


def _unbiased_var(v: Values) -> torch.Tensor:
    """torch.std's (Bessel-corrected) variance of each whole layer, from its sample; (rows, 1)."""
    x = v.x
    k = x.shape[1]
    n = v.n.to(x.dtype)
    m2 = v.mean_of((x - v.mean_of()).square())
    if v.w is not None:  # weighted sample: the plug-in population variance (ops/unary.py)
        pop = m2
    elif k < 2:
        pop = torch.zeros_like(m2)
    else:  # population variance estimate (see ops/unary.py), then n / (n - 1)
        pop = m2 * (k / (k - 1)) * torch.where(n >= k, (n - 1) / n.clamp(min=1.0), torch.ones_like(n))
    return torch.where(n > 1, pop * n / (n - 1).clamp(min=1.0), torch.full_like(pop, float("nan")))


def _dim0(v: Values, log: bool) -> torch.Tensor:
    """(log-)softmax over dim 0 of each layer tensor: exact rows where k == n, else estimated."""
    x, k = v.x, v.x.shape[1]
    lead = _lead(v)
    if v.w is not None:
        out = weighted_softmax(v, lead, log)
    elif log:
        out = torch.log_softmax(x, dim=1).add_((k / lead).log())
    else:
        out = torch.softmax(x, dim=1).mul_(k / lead)
    exact = (v.n.reshape(-1) == k).nonzero().reshape(-1).tolist()
    for row in exact:
        d0 = int(lead[row, 0])
        if d0 > 0 and k % d0 == 0:
            grid = x[row].reshape(d0, k // d0)
            out[row] = (torch.log_softmax(grid, dim=0) if log else torch.softmax(grid, dim=0)).reshape(-1)
    return out


class _Reference(UnaryOp):
    """Facts the pruning rules read are declared per op (``ops/base.py`` attributes)."""

    op_set: ClassVar[str] = REFERENCE_SET


# -- unary ---------------------------------------------------------------------------------
@UNARY_OPS.register("ref.l1_norm", description="reference l1_norm: per-layer mean |x| (sum |x| / numel); tensor -> scalar")
class RefL1Norm(_Reference):
    """mean |x| per layer (the reference's ``l1_norm``)."""

    replaces = "l1_norm"
    reduces = True
    elementwise = False
    output_sign = "nonneg"
    sign_insensitive = True

    def __call__(self, v):
        return _scalar(v.mean_of(v.x.abs()).reshape(-1))


@UNARY_OPS.register("ref.softmax", description="reference softmax: over dim 0 of each layer tensor; tensor -> tensor")
class RefSoftmax(_Reference):
    """softmax over the layer tensor's first dimension (the reference's ``softmax``)."""

    replaces = "softmax"
    elementwise = False
    whole_layer = True
    output_sign = "nonneg"

    def __call__(self, v):
        return v.like(_dim0(v, log=False))


@UNARY_OPS.register("ref.log_softmax", description="reference logsoftmax: over dim 0 of each layer tensor; tensor -> tensor")
class RefLogSoftmax(_Reference):
    """log-softmax over the layer tensor's first dimension (the reference's ``logsoftmax``)."""

    replaces = "log_softmax"
    elementwise = False
    whole_layer = True
    output_sign = "nonpos"

    def __call__(self, v):
        return v.like(_dim0(v, log=True))


@UNARY_OPS.register("ref.log", description="reference element_wise_log: log(x), x <= 0 -> 0; tensor -> tensor")
class RefLog(_Reference):
    """log(x) with non-positive values mapped to 0 (the reference sets them to 1 first)."""

    replaces = "log"
    clips_nonpositive = True  # every x <= 0 -> 0
    inverse_of = ("exp",)

    def __call__(self, v):
        x = v.x
        return v.like(torch.where(x > 0, x, torch.ones_like(x)).log_())


@UNARY_OPS.register("ref.abs_log", description="reference element_wise_abslog: log|x|, x == 0 -> 0; tensor -> tensor")
class RefAbsLog(_Reference):
    """log |x| with zeros mapped to 0."""

    replaces = "abs_log"
    sign_insensitive = True
    inverse_of = ("exp",)

    def __call__(self, v):
        x = v.x.abs()
        return v.like(torch.where(x == 0, torch.ones_like(x), x).log_())


@UNARY_OPS.register("ref.invert", description="reference element_wise_invert: 1/x, a zero in the layer -> nan; tensor -> tensor")
class RefInvert(_Reference):
    """1 / x; a layer containing a zero becomes nan (the reference raises ZeroDivisionError)."""

    replaces = "invert"
    output_sign = "same"
    inverse_of = ("ref.invert",)

    def __call__(self, v):
        out = v.x.reciprocal()
        zero_rows = (v.x == 0).any(dim=1)
        if bool(zero_rows.any()):
            out[zero_rows] = float("nan")
        return v.like(out)


@UNARY_OPS.register("ref.std", description="reference to_std_scalar: per-layer Bessel-corrected std; tensor -> scalar")
class RefStd(_Reference):
    """torch.std of the whole layer (n - 1 in the denominator; nan for a single value)."""

    replaces = "std"
    reduces = True
    elementwise = False
    output_sign = "nonneg"
    constant_after = ("ref.normalize",)  # std of a standardised layer: 1

    def __call__(self, v):
        return _scalar(_unbiased_var(v).sqrt())


@UNARY_OPS.register("ref.normalize", description="reference normalize: (x - mean) / (Bessel std + 1e-9); tensor -> tensor")
class RefNormalize(_Reference):
    """(x - mean) / (std + 1e-9) with torch.std's Bessel-corrected std of the layer."""

    replaces = "normalize"
    elementwise = False
    whole_layer = True
    output_mean = "zero"
    idempotent = True

    def __call__(self, v):
        return v.like((v.x - v.mean_of()) / (_unbiased_var(v).sqrt() + EPS))


# -- binary ----------------------------------------------------------------------------------
class _MeansFirst(BinaryOp):
    """The reference reduces each branch's layer to its mean (``convert_to_float``) before
    the binary op, so every op joins two per-layer numbers: any two inputs combine."""

    op_set = REFERENCE_SET
    means_first = True
    #: tensors of different shape groups combine (rule shape_group_mismatch does not apply)
    mixes_shapes: ClassVar[bool] = True

    @staticmethod
    def fn(a, b):  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, a: Values, b: Values) -> Values:
        _check_rows(a, b)
        return _scalar(self.fn(a.row_means(), b.row_means()))

    @classmethod
    def row_means(cls, am, bm, a_scalar, b_scalar):
        return cls.fn(am, bm)


@BINARY_OPS.register("ref.sum", description="reference element_wise_sum of the two branches' per-layer means")
class RefSum(_MeansFirst):
    """mean(a) + mean(b) per layer (the same score as ``sum``, for any two inputs)."""

    replaces = "sum"
    mean_kind = "add"

    @staticmethod
    def fn(a, b):
        return a + b


@BINARY_OPS.register("ref.difference", description="reference element_wise_difference of the per-layer means")
class RefDifference(_MeansFirst):
    """mean(a) - mean(b) per layer."""

    replaces = "difference"
    mean_kind = "sub"

    @staticmethod
    def fn(a, b):
        return a - b


@BINARY_OPS.register("ref.product", description="reference element_wise_product of the per-layer means: mean(a) * mean(b)")
class RefProduct(_MeansFirst):
    """mean(a) * mean(b) per layer (not mean(a * b))."""

    replaces = "product"
    mean_kind = "mul"

    @staticmethod
    def fn(a, b):
        return a * b


@BINARY_OPS.register("ref.matmul", description="reference matrix_multiplication of the per-layer means (floats): mean(a) * mean(b)")
class RefMatmul(RefProduct):
    """The reference's ``A @ B`` falls back to ``A * B`` for the floats it is given: ref.product."""

    replaces = "matmul"
