"""The paper's 21 unary operators, defined on layer populations.

Every operator maps :class:`~lpzero_fw.ops.base.Values` to new ``Values``, row by
row (one row = one layer), without touching its input tensors. Shape contracts:

* element-wise ops (``elementwise=True``): tensor -> same-shape tensor, each value
  mapped on its own, so the population semantics need no estimator;
* whole-layer ops (``normalize``, ``min_max_normalize``, ``softmax``,
  ``log_softmax``): tensor -> same-shape tensor, using per-row statistics of the
  population (estimated from the sample);
* reductions (``reduces=True``): tensor -> one scalar per layer (k == 1, n == 1).

Estimators (``x`` is a row's sample of ``k`` values, ``n`` the population size;
exact when ``k == n``):

* ``frobenius_norm = sqrt(n * mean(x**2))``, ``l1_norm = n * mean(|x|)``.
  NOTE: ``l1_norm`` is the true L1 norm (a sum); the reference implementation's
  ``l1_norm`` is the mean absolute value (``sum|x| / numel``). Both rank the same
  architecture only up to a factor ``n`` per layer, so searched formulas are not
  numerically interchangeable.
* ``normalized_sum = mean(x)`` (the reference's ``sum / numel``), ``mean = mean(x)``:
  the two are the same function, kept because the paper lists both. A mean within
  float32 rounding of zero (``|mean| <= CANCELLED * mean(|x|)``, ~4.8e-7: the mean of a
  LayerNorm's Jacobian) is exactly 0 (:meth:`~lpzero_fw.ops.base.Values.row_means`).
* ``std``: population standard deviation estimate. With ``m2 = mean((x - mean)**2)``
  the variance estimate is ``m2 * k/(k-1) * (n-1)/n`` for a sample drawn without
  replacement (``k <= n``; exact when ``k == n``) and ``m2 * k/(k-1)`` for a sample
  drawn with replacement (``k > n``); a single value has std 0.
* ``normalize = (x - mean) / (std + EPS)`` with the ``std`` estimate above.
* ``min_max_normalize = (x - min) / (max - min + EPS)`` with the sample's min/max.
* ``softmax`` over the whole layer ``exp(x_i) / (n * mean(exp(x)))`` and
  ``log_softmax = x_i - log(n * mean(exp(x)))``, both computed stably (torch's
  fused row softmax over the sample, rescaled by ``k / n``).

``EPS`` (1e-9, from :mod:`lpzero_fw.ops.base`) guards ``log`` (``log(max(x, EPS))``:
non-positive inputs map to ``log(EPS)`` ≈ -20.7), ``abs_log`` (``log(|x| + EPS)``),
``invert`` (``1 / (x + copysign(EPS, x))``: the guard keeps the sign, so ``+0`` maps
to ``+1e9`` and ``-0`` to ``-1e9``) and the normalisers' denominators.

Implementation note: ops may work in place on temporaries they allocated
themselves (fewer allocations matter for the search's throughput), never on their
input.

Each operator declares what pruning rules need to know about it (output sign,
idempotence, which op it inverts, ...) as class attributes of
:class:`~lpzero_fw.ops.base.UnaryOp`; its name and description come from its
registration.

Overflow is not clamped: ``exp`` of a large value and ``square`` of a huge one are
``inf``, and non-finite values propagate to the score, where the dynamic pruning
rule ``non_finite_score`` rejects the proxy. Only ``prune`` is special: it removes
its whole branch (the evaluator then returns the other branch unchanged); called
directly it is the identity.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from lpzero_fw.ops.base import EPS, UnaryOp, Values, weighted_softmax
from lpzero_fw.registry import UNARY_OPS

_EPS_T = torch.tensor(EPS)


def _numpy_ok(x: torch.Tensor) -> bool:
    """CPU float tensors may take a numpy kernel where torch's is slow on special values."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _same_n(v: Values, x: torch.Tensor) -> Values:
    return v.like(x)


def _scalar(x: torch.Tensor) -> Values:
    """Per-layer scalars (rows,) -> Values with k == 1 and n == 1."""
    col = x.reshape(-1, 1)
    return Values(col, torch.ones_like(col))


def _population_var(v: Values) -> torch.Tensor:
    """Population variance estimate per row, shape (rows, 1)."""
    return _var_mean(v)[0]


def _var_mean(v: Values) -> tuple[torch.Tensor, torch.Tensor]:
    """(population variance estimate, mean) per row, each (rows, 1)."""
    x = v.x
    k = x.shape[1]
    if v.w is not None:  # weighted sample: the plug-in estimate (exact on a whole layer)
        mean = v.mean_of()
        return v.mean_of((x - mean).square_()), mean
    mean = x.mean(dim=1, keepdim=True)
    m2 = (x - mean).square_().mean(dim=1, keepdim=True)  # (torch.var_mean is slower here)
    if k < 2:
        return torch.zeros_like(m2), mean
    n = v.n.to(x.dtype)
    finite_pop = torch.where(n >= k, (n - 1) / n.clamp(min=1.0), torch.ones_like(n))
    return m2 * (k / (k - 1)) * finite_pop, mean


class _Elementwise(UnaryOp):
    reduces: ClassVar[bool] = False
    elementwise: ClassVar[bool] = True

    @staticmethod
    def fn(x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, v: Values) -> Values:
        return _same_n(v, self.fn(v.x))


class _Reduction(UnaryOp):
    reduces: ClassVar[bool] = True
    elementwise: ClassVar[bool] = False


@UNARY_OPS.register("log", description="element-wise natural log of max(x, 1e-9) (the reference maps x <= 0 to 0: ref.log); tensor -> tensor")
class Log(_Elementwise):
    """log(max(x, EPS)): non-positive values map to log(EPS) ≈ -20.7."""

    clips_nonpositive = True
    inverse_of = ("exp",)

    @staticmethod
    def fn(x):
        return torch.clamp(x, min=EPS).log_()  # in place on our own temporary only


@UNARY_OPS.register("abs_log", description="element-wise log(|x| + 1e-9) (the reference maps 0 to 0: ref.abs_log); tensor -> tensor")
class AbsLog(_Elementwise):
    """log(|x| + EPS)."""

    sign_insensitive = True
    inverse_of = ("exp",)

    @staticmethod
    def fn(x):
        return torch.abs(x).add_(EPS).log_()


@UNARY_OPS.register("abs", description="element-wise absolute value; tensor -> tensor")
class Abs(_Elementwise):
    """|x|."""

    output_sign = "nonneg"
    sign_insensitive = True
    sign_only = True
    identity_on_nonneg = True
    idempotent = True

    @staticmethod
    def fn(x):
        return torch.abs(x)


@UNARY_OPS.register("square", description="element-wise x**2; tensor -> tensor")
class Square(_Elementwise):
    """x**2 (the reference's element_wise_pow)."""

    output_sign = "nonneg"
    sign_insensitive = True

    @staticmethod
    def fn(x):
        return torch.square(x)


@UNARY_OPS.register("exp", description="element-wise exp(x), no clamping (overflow -> inf); tensor -> tensor")
class Exp(_Elementwise):
    """exp(x); overflows to inf, which the dynamic rules reject."""

    output_sign = "nonneg"
    inverse_of = ("log",)

    @staticmethod
    def fn(x):
        if _numpy_ok(x):
            # torch's CPU exp is ~15x slower than numpy's when results over/underflow
            # (exp of inverted or squared statistics); same IEEE results otherwise
            with np.errstate(over="ignore", under="ignore"):
                return torch.from_numpy(np.exp(x.detach().numpy()))
        return torch.exp(x)


@UNARY_OPS.register("normalize", description="per-layer standardisation (x - mean) / (std + 1e-9); tensor -> tensor")
class Normalize(UnaryOp):
    """(x - mean) / (std + EPS) with the layer's population mean/std estimates."""

    reduces = False
    elementwise = False
    whole_layer = True
    output_mean = "zero"
    idempotent = True

    def __call__(self, v):
        var, mean = _var_mean(v)
        return _same_n(v, (v.x - mean).div_(var.sqrt_().add_(EPS)))


@UNARY_OPS.register("relu", description="element-wise max(x, 0); tensor -> tensor")
class Relu(_Elementwise):
    """max(x, 0)."""

    output_sign = "nonneg"
    identity_on_nonneg = True
    clips_nonpositive = True
    idempotent = True

    @staticmethod
    def fn(x):
        return torch.relu(x)


@UNARY_OPS.register("invert", description="element-wise 1 / (x + copysign(1e-9, x)); tensor -> tensor")
class Invert(_Elementwise):
    """1 / (x + copysign(EPS, x)): sign-preserving guard, 0 -> 1e9."""

    output_sign = "same"
    inverse_of = ("invert",)

    @staticmethod
    def fn(x):
        return torch.copysign(_EPS_T.to(x.dtype), x).add_(x).reciprocal_()


@UNARY_OPS.register("frobenius_norm", description="per-layer sqrt(sum x**2); tensor -> scalar")
class FrobeniusNorm(_Reduction):
    """sqrt(n * mean(x**2)) per layer."""

    output_sign = "nonneg"
    sign_insensitive = True

    def __call__(self, v):
        if v.w is not None:
            return _scalar(torch.sqrt(v.mean_of(v.x.square()) * v.n.to(v.x.dtype)).reshape(-1))
        k = v.x.shape[1]
        norm = torch.linalg.vector_norm(v.x, ord=2, dim=1)  # sqrt(sum over the sample)
        return _scalar(norm * torch.sqrt(v.n.to(v.x.dtype).reshape(-1) / k))


@UNARY_OPS.register("normalized_sum", description="per-layer sum / numel (= mean); tensor -> scalar")
class NormalizedSum(_Reduction):
    """sum(x) / n, estimated by mean(x) (same function as ``mean``)."""

    output_sign = "same"
    constant_after = ("normalize",)

    def __call__(self, v):
        return _scalar(v.row_means())


@UNARY_OPS.register("l1_norm", description="per-layer sum |x| (true L1 norm, not the reference's mean |x|: ref.l1_norm); tensor -> scalar")
class L1Norm(_Reduction):
    """n * mean(|x|) per layer: the true L1 norm (the reference uses mean |x|)."""

    output_sign = "nonneg"
    sign_insensitive = True
    constant_after = ("softmax",)

    def __call__(self, v):
        return _scalar((v.mean_of(v.x.abs()) * v.n.to(v.x.dtype)).reshape(-1))


@UNARY_OPS.register("softmax", description="softmax over each whole layer (the reference's runs over dim 0: ref.softmax); tensor -> tensor")
class Softmax(UnaryOp):
    """exp(x_i) / (n * mean(exp(x))), computed after subtracting the row max."""

    reduces = False
    elementwise = False
    whole_layer = True
    output_sign = "nonneg"

    def __call__(self, v):
        if v.w is not None:
            return _same_n(v, weighted_softmax(v, v.n.to(v.x.dtype)))
        # = softmax over the k samples * k / n; torch's fused kernel is ~5x faster than
        # separate ops when many exponentials underflow
        return _same_n(v, torch.softmax(v.x, dim=1).mul_(v.x.shape[1] / v.n.to(v.x.dtype)))


@UNARY_OPS.register("sigmoid", description="element-wise 1 / (1 + exp(-x)); tensor -> tensor")
class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    output_sign = "nonneg"

    @staticmethod
    def fn(x):
        return torch.sigmoid(x)


@UNARY_OPS.register("log_softmax", description="log of the softmax over each whole layer (the reference's runs over dim 0: ref.log_softmax); tensor -> tensor")
class LogSoftmax(UnaryOp):
    """x_i - max - log(n * mean(exp(x - max)))."""

    reduces = False
    elementwise = False
    whole_layer = True
    output_sign = "nonpos"

    def __call__(self, v):
        if v.w is not None:
            return _same_n(v, weighted_softmax(v, v.n.to(v.x.dtype), log=True))
        # = log_softmax over the k samples - log(n / k) (fused kernel, see Softmax)
        return _same_n(v, torch.log_softmax(v.x, dim=1).sub_((v.n.to(v.x.dtype) / v.x.shape[1]).log_()))


@UNARY_OPS.register("sqrt", description="element-wise sqrt(max(x, 0)); tensor -> tensor")
class Sqrt(_Elementwise):
    """sqrt(max(x, 0)): negative values map to 0."""

    output_sign = "nonneg"
    clips_nonpositive = True

    @staticmethod
    def fn(x):
        if _numpy_ok(x):
            # torch's CPU sqrt takes a ~20x slower path on zeros (every relu'd value);
            # numpy's does not. Same IEEE results.
            return torch.from_numpy(np.sqrt(np.maximum(x.detach().numpy(), 0.0)))
        return torch.clamp(x, min=0.0).sqrt_()


@UNARY_OPS.register("negate", description="element-wise -x; tensor -> tensor")
class Negate(_Elementwise):
    """-x (the reference's element_wise_revert)."""

    output_sign = "flipped"
    output_mean = "kept"
    sign_only = True
    inverse_of = ("negate",)

    @staticmethod
    def fn(x):
        return torch.neg(x)


@UNARY_OPS.register("min_max_normalize", description="per-layer (x - min) / (max - min + 1e-9); tensor -> tensor")
class MinMaxNormalize(UnaryOp):
    """(x - min) / (max - min + EPS) with the sample's row min and max."""

    reduces = False
    elementwise = False
    whole_layer = True
    output_sign = "nonneg"
    idempotent = True

    def __call__(self, v):
        lo = v.x.amin(dim=1, keepdim=True)  # (torch.aminmax is slower here)
        hi = v.x.amax(dim=1, keepdim=True)
        return _same_n(v, (v.x - lo).div_((hi - lo).add_(EPS)))


@UNARY_OPS.register("mean", description="per-layer mean; tensor -> scalar")
class Mean(_Reduction):
    """mean(x) per layer (the reference's to_mean_scalar)."""

    output_sign = "same"
    constant_after = ("normalize",)

    def __call__(self, v):
        return _scalar(v.row_means())


@UNARY_OPS.register("std", description="per-layer population standard deviation estimate; tensor -> scalar")
class Std(_Reduction):
    """Population std estimate per layer (see the module docstring)."""

    output_sign = "nonneg"
    constant_after = ("normalize",)

    def __call__(self, v):
        return _scalar(torch.sqrt(_population_var(v)))


@UNARY_OPS.register("no_op", description="identity; tensor -> tensor")
class NoOp(_Elementwise):
    """x (returns new Values sharing nothing mutable with the caller's)."""

    output_sign = "same"
    output_mean = "kept"

    @staticmethod
    def fn(x):
        return x


@UNARY_OPS.register("prune", description="removes its branch: the binary op returns the other branch")
class Prune(UnaryOp):
    """Marks the branch as removed (the reference's ``disconnect``).

    The evaluator drops any branch containing ``prune`` and scores the other branch
    alone; both branches pruned is invalid. Called directly it is the identity.
    """

    output_sign = "same"
    output_mean = "kept"
    removes_branch = True

    def __call__(self, v):
        return v.like(v.x)
