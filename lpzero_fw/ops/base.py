"""Operator contracts and the value type proxies compute on.

A statistic input is a list of per-layer tensors. Proxies see each layer as a
*population* of values: the statistics cache keeps a fixed-size uniform sample of
each layer (``k`` values) together with the population size ``n`` (the layer
tensor's ``numel``). Every operator is defined on the whole population and computed
by its sample estimator, e.g. ``frobenius_norm = sqrt(n * mean(x**2))`` and
``softmax(x)_i = exp(x_i) / (n * mean(exp(x)))``. In ``exact`` cache mode the
sample *is* the population (k == n), so the estimators are exact.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch

if TYPE_CHECKING:
    import numpy as np

EPS = 1e-9  # guards divisions and logs; documented per operator
#: a layer mean no larger than this share of the layer's mean |x| is 0 (:meth:`Values.row_means`):
#: eight float32 unit roundoffs. The means of Jacobians and gradients behind a LayerNorm are
#: structurally 0 and come out of float32 at 1e-12..3e-8 of their scale, with a sign that
#: depends on the CPU and the summation order; the smallest real layer means seen are 4e-6
CANCELLED = 8 * 2.0**-24


@dataclass(frozen=True)
class Values:
    """Rows of per-layer samples.

    ``x``: float tensor (rows, k), one layer per row, the budget's sample of that
    layer's values (all of them in exact mode). ``n``: float tensor (rows, 1), each
    layer's population size. A per-layer scalar has k == 1 and n == 1.
    ``lead``: float tensor (rows, 1), the size of each layer tensor's first dimension
    (``None``: a flat layer, dim 0 is all of it). Operators with the reference
    implementation's semantics (``ops/reference.py``: softmax over dim 0) need it.
    ``w``: float tensor (rows, k), each value's share of its layer (rows sum to 1): the
    statistics cache keeps each layer's tails exactly (share ``1/n`` each) beside a
    uniform sample (``stats/extract.py``); ``None``: every value has share ``1/k``
    (a uniform sample, or all values).

    Operators estimate population quantities with :meth:`mean_of` and keep ``n``,
    ``lead`` and ``w`` of a same-shape result with :meth:`like`, so a plugin op that
    uses the two is exact on exact statistics and weighted on sampled ones.
    """

    x: torch.Tensor
    n: torch.Tensor
    lead: torch.Tensor | None = None
    w: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    @property
    def is_scalar(self) -> bool:
        return self.x.shape[1] == 1 and bool(torch.all(self.n == 1))

    def like(self, x: torch.Tensor) -> Values:
        """Same-shape values ``x`` at this sample's positions (same ``n``, ``lead``, ``w``)."""
        return Values(x, self.n, self.lead, self.w)

    def mean_of(self, y: torch.Tensor | None = None) -> torch.Tensor:
        """Estimated population mean of each row of ``y`` (values at this sample's
        positions; default ``x``), shape (rows, 1)."""
        y = self.x if y is None else y
        if self.w is None:
            return y.mean(dim=1, keepdim=True)
        return torch.linalg.vecdot(y, self.w.to(y.dtype)).unsqueeze(1)

    def row_means(self) -> torch.Tensor:
        """Estimated mean of each layer's population, shape (rows,); a mean that cancels to
        within float32 rounding (:data:`CANCELLED` of the mean |x|) is exactly 0, so that
        ``invert(mean(J))`` is a function of the network, not of the CPU's rounding (and a
        sample, whose mean is pinned to the layer's, agrees with the whole layer)."""
        means = self.mean_of()
        cancelled = means.abs() <= CANCELLED * self.mean_of(self.x.abs())
        return means.masked_fill_(cancelled, 0.0).reshape(-1)

    def aligned(self, other: Values) -> bool:
        """Element-wise aligned with ``other``: same sample size, layer sizes and weights."""
        if self.x.shape != other.x.shape or not torch.equal(self.n, other.n):
            return False
        if self.w is None or other.w is None:
            return self.w is other.w
        return self.w is other.w or torch.equal(self.w, other.w)


def weighted_softmax(v: Values, size: torch.Tensor, log: bool = False) -> torch.Tensor:
    """(Log-)softmax of each row as a population of ``size`` values (a (rows, 1) tensor),
    from a weighted sample: ``exp(x_i - max) / (size * weighted mean of exp(x - max))``,
    stably. ``softmax`` (over the layer) and ``ref.softmax`` (over dim 0) share it."""
    shifted = v.x - v.x.amax(dim=1, keepdim=True)
    e = shifted.exp()
    scale = v.mean_of(e).mul_(size)
    return shifted.sub_(scale.log_()) if log else e.div_(scale)


#: what an op's output sign is: always >= 0, always <= 0, the operand's sign kept
#: ("same"), the operand's sign flipped ("flipped"), or unknown ("any")
Sign = Literal["nonneg", "nonpos", "same", "flipped", "any"]
#: how an op's per-layer output mean relates to its operand's: always 0 ("zero"),
#: 0 whenever the operand's is ("kept"), or unknown ("any")
MeanFact = Literal["zero", "kept", "any"]
#: how a binary op's result mean follows from the operands' per-layer means: their sum,
#: their difference, their product (only with a per-layer-scalar operand), or not at all
MeanKind = Literal["add", "sub", "mul"]


class UnaryOp(ABC):
    """A function of one layer population; never modifies its input tensors.

    ``name`` and ``description`` are set by registration (``@UNARY_OPS.register``).
    The other class attributes are facts the op declares about itself; pruning rules
    and the evaluator read them, so a plugin op that declares them is pruned and
    scored exactly like a built-in one. The defaults claim nothing.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: the output is one scalar per layer (tensor -> scalar)
    reduces: ClassVar[bool] = False
    #: each value is mapped on its own (tensor -> same-shape tensor)
    elementwise: ClassVar[bool] = True
    #: uses per-layer statistics of the whole population (tensor -> same-shape
    #: tensor); constant on a per-layer scalar
    whole_layer: ClassVar[bool] = False
    #: the output's sign (see :data:`Sign`)
    output_sign: ClassVar[Sign] = "any"
    #: the output's per-layer mean (see :data:`MeanFact`)
    output_mean: ClassVar[MeanFact] = "any"
    #: f(-x) == f(x): a sign-only op (``abs``, ``negate``) just before it changes nothing
    sign_insensitive: ClassVar[bool] = False
    #: changes only signs of values (|x|, -x)
    sign_only: ClassVar[bool] = False
    #: f(x) == x for x >= 0 (abs, relu): redundant on a non-negative operand
    identity_on_nonneg: ClassVar[bool] = False
    #: maps every value <= 0 to one constant (sqrt, log, relu): constant on a
    #: non-positive operand
    clips_nonpositive: ClassVar[bool] = False
    #: f(f(x)) == f(x)
    idempotent: ClassVar[bool] = False
    #: ops this op undoes when applied right after them (log: ``("exp",)``)
    inverse_of: ClassVar[tuple[str, ...]] = ()
    #: ops whose output makes this op constant (mean after normalize: 0)
    constant_after: ClassVar[tuple[str, ...]] = ()
    #: the evaluator drops a branch that contains this op (``prune``)
    removes_branch: ClassVar[bool] = False
    #: the operator set this op belongs to (``search.ops``); see ``ops/reference.py``
    op_set: ClassVar[str] = "lpzero_fw"
    #: in a set other than ``lpzero_fw``: the name of the ``lpzero_fw`` op it stands in for
    replaces: ClassVar[str | None] = None

    @abstractmethod
    def __call__(self, v: Values) -> Values:
        """Apply to every row of ``v`` and return new Values."""


class OperandMismatch(ValueError):
    """The operands' shapes do not allow this binary op (the proxy is invalid).

    Binary ops raise it; the evaluator turns it into the ``shape_mismatch`` verdict.
    """


class BinaryOp(ABC):
    """Joins two branch values row by row (same rows; scalars broadcast).

    ``name`` and ``description`` are set by registration (``@BINARY_OPS.register``);
    the other class attributes are facts read by pruning rules and the evaluator.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: how the result's mean follows from the operands' means (see :data:`MeanKind`);
    #: ``None``: it does not, the evaluator needs the whole branch tensors
    mean_kind: ClassVar[MeanKind | None] = None
    #: defined between tensors of different shape groups (W with A, ...); False: two
    #: tensor operands must be element-wise aligned (same shape group)
    mixes_shapes: ClassVar[bool] = False
    #: both operands must be tensors: with a per-layer-scalar operand the op is plain
    #: scaling, a duplicate of ``product`` (matmul)
    needs_matching_tensors: ClassVar[bool] = False
    #: joins the operands' per-layer means, not their elements (the reference code's
    #: ops): both operands act as per-layer scalars, whatever their shapes
    means_first: ClassVar[bool] = False
    #: the operator set this op belongs to and the ``lpzero_fw`` op it stands in for (see UnaryOp)
    op_set: ClassVar[str] = "lpzero_fw"
    replaces: ClassVar[str | None] = None

    @abstractmethod
    def __call__(self, a: Values, b: Values) -> Values:
        """Combine ``a`` and ``b``."""

    @staticmethod
    def row_means(
        a_means: np.ndarray, b_means: np.ndarray, a_scalar: bool, b_scalar: bool
    ) -> np.ndarray | None:
        """The result's per-layer means from the operands' (``None``: not possible).

        An optional fast path of the evaluator; the default declines.
        """
        return None


class LayerReduction(ABC):
    """How a proxy's per-layer values become one score (formula ``layer_<name>(...)``;
    ``mean`` is the default and prints bare).

    Both evaluators compute the mean over the result's layers and count those layers,
    so a reduction is a function of the two: ``mean`` keeps the paper's rule, ``sum``
    keeps depth (a 16-layer model adds up 16 layers' values).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def reduce(self, mean: float, layers: int) -> float:
        """The score from the mean over ``layers`` result layers."""

