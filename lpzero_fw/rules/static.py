"""Static pruning rules: reject a proxy from its formula alone, before scoring.

Each rule removes proxies that are invalid (undefined or constant on every
architecture) or exact duplicates of a simpler proxy of the same space (so scoring
them wastes an evaluation). Rules look only at the branches that are not removed by
an op with ``removes_branch`` (``prune``). They know nothing about operator names:
every fact they use is declared by the component itself, so a plugin operator or
input that declares its facts is pruned exactly like a built-in one:

* unary operators (:class:`~lpzero_fw.ops.base.UnaryOp`): ``output_sign``,
  ``output_mean``, ``sign_insensitive``, ``sign_only``, ``identity_on_nonneg``,
  ``clips_nonpositive``, ``idempotent``, ``whole_layer``, ``reduces``,
  ``inverse_of``, ``constant_after``, ``removes_branch``;
* binary operators (:class:`~lpzero_fw.ops.base.BinaryOp`): ``mean_kind``,
  ``mixes_shapes``, ``needs_matching_tensors``;
* statistic inputs (:class:`~lpzero_fw.stats.base.StatExtractor`): ``nonnegative``,
  ``shape_group``.

The rules (:class:`~lpzero_fw.rules.apply.RuleSet` tries them in name order):

``both_pruned``         both branches contain ``prune`` (nothing left to score).
``cancelling_pair``     an op right after one it is the ``inverse_of``: log∘exp,
                        abs_log∘exp (identity), exp∘log (max(x, eps): a duplicate
                        of relu up to eps), negate∘negate, invert∘invert.
``idempotent_repeat``   f∘f = f for an ``idempotent`` op: abs, relu, normalize,
                        min_max_normalize.
``redundant_sign``      an ``identity_on_nonneg`` op (abs, relu) of a non-negative
                        quantity, or a ``sign_insensitive`` op right after a
                        ``sign_only`` one (abs, negate), which changes nothing.
``domain_conflict``     a ``clips_nonpositive`` op (sqrt, log, relu) of a
                        non-positive quantity (negate of a non-negative one,
                        log_softmax): constant 0 / log(eps).
``scalar_reduction``    a reduction of a per-layer scalar (mean/normalized_sum:
                        identity, frobenius_norm/l1_norm: abs, std: constant 0).
``constant_output``     a ``whole_layer`` op (normalize, min_max_normalize, softmax,
                        log_softmax) of a per-layer scalar (constant 0 or 1), or
                        an op right after one of its ``constant_after`` ops:
                        mean/normalized_sum/std of normalize (constant 0, 0, 1),
                        l1_norm of softmax (constant 1).
``zero_mean_branch``    a branch whose layers have mean 0 (``output_mean="zero"``:
                        normalize) added to / subtracted from the other branch
                        (``mean_kind`` add/sub: adds nothing) or multiplied by a
                        per-layer scalar (``mean_kind`` mul: score 0).
``shape_group_mismatch`` a binary op (unless it ``mixes_shapes``) between two tensor
                        branches from different shape groups
                        (``StatExtractor.shape_group``: only W and G share one).
``scalar_matmul``       an op that ``needs_matching_tensors`` (matmul) with a
                        per-layer-scalar operand: scalar multiplication, a duplicate
                        of ``product``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from lpzero_fw.formula.genotype import Branch, Formula
from lpzero_fw.ops.base import BinaryOp, UnaryOp
from lpzero_fw.registry import BINARY_OPS, RULES, STATS, UNARY_OPS
from lpzero_fw.rules.base import PruningRule

_FLIPPED = {"nonneg": "nonpos", "nonpos": "nonneg"}


def _unary(name: str | None) -> type[UnaryOp] | None:
    """The registered op class (its facts); the base class, which claims nothing, if unknown."""
    if name is None:
        return None
    return UNARY_OPS.get(name) if name in UNARY_OPS else UnaryOp


def _binary(name: str) -> type[BinaryOp]:
    return BINARY_OPS.get(name) if name in BINARY_OPS else BinaryOp


@dataclass(frozen=True)
class Step:
    """One op of a branch and what is known about its operand."""

    op: type[UnaryOp]  # the op's class: its facts
    previous: type[UnaryOp] | None  # the op just before (None: applied to the input)
    sign: str  # operand sign: "nonneg", "nonpos" or "any"
    scalar: bool  # operand is a per-layer scalar

    @property
    def previous_name(self) -> str | None:
        return None if self.previous is None else getattr(self.previous, "name", None)


@dataclass(frozen=True)
class BranchInfo:
    pruned: bool
    steps: tuple[Step, ...]
    scalar: bool  # the branch's result is a per-layer scalar
    zero_mean: bool  # every layer of the result has mean 0


def _next_sign(op: type[UnaryOp], sign: str) -> str:
    declared = op.output_sign
    if declared in ("nonneg", "nonpos"):
        return declared
    if declared == "same":
        return sign
    if declared == "flipped":
        return _FLIPPED.get(sign, "any")
    return "any"


@lru_cache(maxsize=65536)
def analyze(branch: Branch) -> BranchInfo:
    """Sign, shape and zero-mean facts along a branch (cached per branch)."""
    sign = "nonneg" if branch.input in STATS and STATS.get(branch.input).nonnegative else "any"
    scalar = False
    zero_mean = False
    previous = None
    pruned = False
    steps = []
    for name in branch.ops:
        op = _unary(name)
        steps.append(Step(op, previous, sign, scalar))
        sign = _next_sign(op, sign)
        if op.output_mean == "zero" and not scalar:
            zero_mean = True
        elif op.output_mean != "kept":
            zero_mean = False
        scalar = scalar or op.reduces
        pruned = pruned or op.removes_branch
        previous = op
    return BranchInfo(pruned, tuple(steps), scalar, zero_mean)


def shape_group(symbol: str) -> str:
    """The input's shape group, as its extractor declares it (default: its own symbol)."""
    if symbol in STATS:
        return STATS.get(symbol).shape_group or symbol
    return symbol


def _live(proxy: Formula) -> list[BranchInfo]:
    return [info for info in (analyze(proxy.left), analyze(proxy.right)) if not info.pruned]


class _StepRule(PruningRule):
    """Rejects when some op of a live branch matches :meth:`bad`."""

    stage: ClassVar[str] = "static"

    def bad(self, step: Step) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def rejects(self, proxy: Formula) -> bool:
        return any(self.bad(step) for info in _live(proxy) for step in info.steps)


@RULES.register("both_pruned", description="both branches are removed by prune")
class BothPruned(PruningRule):
    """Both branches contain ``prune``: nothing is left to score."""

    stage = "static"
    example = "sum(prune(abs(W)), square(prune(G)))"
    near_miss = "sum(prune(abs(W)), square(abs(G)))"

    def rejects(self, proxy: Formula) -> bool:
        return analyze(proxy.left).pruned and analyze(proxy.right).pruned


@RULES.register("cancelling_pair", description="adjacent ops undo each other (log∘exp, negate∘negate, ...)")
class CancellingPair(_StepRule):
    """log∘exp, abs_log∘exp, exp∘log, negate∘negate, invert∘invert adjacent in a branch."""

    example = "sum(log(exp(W)), abs(G))"
    near_miss = "sum(log(abs(W)), exp(G))"

    def bad(self, step: Step) -> bool:
        return step.previous_name in step.op.inverse_of


@RULES.register("idempotent_repeat", description="an idempotent op applied twice (abs∘abs, relu∘relu, ...)")
class IdempotentRepeat(_StepRule):
    """f∘f with f in abs, relu, normalize, min_max_normalize."""

    example = "sum(relu(relu(A)), abs(G))"
    near_miss = "sum(relu(sqrt(A)), abs(G))"

    def bad(self, step: Step) -> bool:
        return step.op is step.previous and step.op.idempotent


@RULES.register("redundant_sign", description="abs/relu of a non-negative value, or a sign-insensitive op after abs/negate")
class RedundantSign(_StepRule):
    """abs/relu of a non-negative operand, or abs/square/abs_log/norms right after abs/negate."""

    example = "sum(square(negate(W)), mean(A))"
    near_miss = "sum(sqrt(negate(W)), mean(A))"

    def bad(self, step: Step) -> bool:
        if step.op.identity_on_nonneg and step.sign == "nonneg":
            return True
        return step.op.sign_insensitive and step.previous is not None and step.previous.sign_only


@RULES.register("domain_conflict", description="sqrt/log/relu of a non-positive value (constant output)")
class DomainConflict(_StepRule):
    """sqrt, log or relu of negate(non-negative) or of log_softmax: a constant."""

    example = "sum(sqrt(negate(S)), abs(W))"
    near_miss = "sum(sqrt(negate(A)), abs(W))"

    def bad(self, step: Step) -> bool:
        return step.op.clips_nonpositive and step.sign == "nonpos"


@RULES.register("scalar_reduction", description="a reduction of a per-layer scalar (identity, abs or constant)")
class ScalarReduction(_StepRule):
    """mean/normalized_sum/frobenius_norm/l1_norm/std applied to a per-layer scalar."""

    example = "sum(mean(l1_norm(W)), abs(G))"
    near_miss = "sum(mean(square(W)), abs(G))"

    def bad(self, step: Step) -> bool:
        return step.scalar and step.op.reduces


@RULES.register("constant_output", description="a branch that is constant (normaliser of a scalar, mean of normalize, ...)")
class ConstantOutput(_StepRule):
    """A whole-layer op of a scalar, mean/normalized_sum/std of normalize, l1_norm of softmax."""

    example = "sum(softmax(frobenius_norm(W)), abs(G))"
    near_miss = "sum(frobenius_norm(softmax(W)), abs(G))"

    def bad(self, step: Step) -> bool:
        if step.scalar and step.op.whole_layer:
            return True
        return step.previous_name in step.op.constant_after and not step.scalar


@RULES.register("zero_mean_branch", description="a normalize branch added to (adds 0) or scaled by a scalar (score 0)")
class ZeroMeanBranch(PruningRule):
    """A branch ending in normalize has layer means 0: it adds nothing or zeroes the score."""

    stage = "static"
    example = "sum(normalize(abs(W)), square(A))"
    near_miss = "product(normalize(abs(W)), normalize(G))"

    def rejects(self, proxy: Formula) -> bool:
        left, right = analyze(proxy.left), analyze(proxy.right)
        if left.pruned or right.pruned:
            live = right if left.pruned else left
            return live.zero_mean and not live.pruned
        kind = _binary(proxy.binary).mean_kind
        if kind in ("add", "sub"):
            return left.zero_mean or right.zero_mean
        if kind == "mul":
            return (left.zero_mean and right.scalar) or (right.zero_mean and left.scalar)
        return False


@RULES.register("shape_group_mismatch", description="binary op between tensors of different shape groups")
class ShapeGroupMismatch(PruningRule):
    """Two tensor branches whose inputs are in different shape groups (only W, G share one)."""

    stage = "static"
    example = "sum(square(W), abs(A))"
    near_miss = "sum(square(W), abs(G))"

    def rejects(self, proxy: Formula) -> bool:
        left, right = analyze(proxy.left), analyze(proxy.right)
        if left.pruned or right.pruned or left.scalar or right.scalar:
            return False
        if _binary(proxy.binary).mixes_shapes:
            return False
        return shape_group(proxy.left.input) != shape_group(proxy.right.input)


@RULES.register("scalar_matmul", description="matmul with a per-layer-scalar operand (a duplicate of product)")
class ScalarMatmul(PruningRule):
    """An op needing two tensors (matmul) given a per-layer scalar: plain scaling."""

    stage = "static"
    example = "matmul(l1_norm(W), abs(G))"
    near_miss = "matmul(square(W), abs(G))"

    def rejects(self, proxy: Formula) -> bool:
        left, right = analyze(proxy.left), analyze(proxy.right)
        if left.pruned or right.pruned:
            return False
        return _binary(proxy.binary).needs_matching_tensors and (left.scalar or right.scalar)
