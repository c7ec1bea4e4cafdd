"""Static pruning rules: reject a proxy from its formula alone, before scoring.

Each rule removes proxies that are invalid (undefined or constant on every
architecture) or exact duplicates of a simpler proxy of the same space (so scoring
them wastes an evaluation). Rules look only at the branches that are not removed by
``prune``. Operator facts the rules rely on (built-in operators only; a plugin
operator is treated as "unknown sign, shape by its ``reduces`` flag"):

* non-negative outputs: abs, square, exp, sqrt, relu, sigmoid, softmax,
  min_max_normalize, frobenius_norm, l1_norm, std; non-positive: log_softmax;
  sign kept: no_op, invert, mean, normalized_sum; flipped: negate.
* input S (attention probabilities) is non-negative.
* sign-insensitive (f(-x) = f(x) = f(|x|)): abs, square, abs_log, frobenius_norm, l1_norm.

The rules (:class:`~lpzero_fw.rules.apply.RuleSet` tries them in name order):

``both_pruned``         both branches contain ``prune`` (nothing left to score).
``cancelling_pair``     adjacent ops that undo each other: log∘exp, abs_log∘exp
                        (identity), exp∘log (max(x, eps): a duplicate of relu up to
                        eps), negate∘negate, invert∘invert (identity up to eps).
``idempotent_repeat``   f∘f = f: abs, relu, normalize, min_max_normalize.
``redundant_sign``      abs/relu of a non-negative quantity (identity), or a
                        sign-insensitive op right after abs/negate (the abs/negate
                        changes nothing).
``domain_conflict``     sqrt, log or relu of a non-positive quantity (negate of a
                        non-negative one, log_softmax): constant 0 / log(eps).
``scalar_reduction``    a reduction of a per-layer scalar (mean/normalized_sum:
                        identity, frobenius_norm/l1_norm: abs, std: constant 0).
``constant_output``     a whole-layer op (normalize, min_max_normalize, softmax,
                        log_softmax) of a per-layer scalar (constant 0 or 1), or
                        mean/normalized_sum/std of normalize (constant 0, 0, 1),
                        or l1_norm of softmax (constant 1).
``zero_mean_branch``    a branch ending in normalize (every layer has mean 0) added
                        to / subtracted from the other branch (adds nothing) or
                        multiplied by a per-layer scalar (score 0).
``shape_group_mismatch`` a binary op between two tensor branches from different
                        shape groups (``StatExtractor.shape_group``: only W and G
                        share one), which are not element-wise aligned.
``scalar_matmul``       matmul with a per-layer-scalar operand: scalar
                        multiplication, a duplicate of ``product``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from lpzero_fw.proxy.formula import Branch, Proxy
from lpzero_fw.registry import BINARY_OPS, RULES, STATS, UNARY_OPS
from lpzero_fw.rules.base import PruningRule

NONNEG_OUT = frozenset(
    {"abs", "square", "exp", "sqrt", "relu", "sigmoid", "softmax", "min_max_normalize",
     "frobenius_norm", "l1_norm", "std"}
)
NONPOS_OUT = frozenset({"log_softmax"})
SIGN_KEPT = frozenset({"no_op", "invert", "mean", "normalized_sum", "prune"})
SIGN_INSENSITIVE = frozenset({"abs", "square", "abs_log", "frobenius_norm", "l1_norm"})
NONNEGATIVE_INPUTS = frozenset({"S"})
#: used only if the statistic-input registry cannot be read
FALLBACK_SHAPE_GROUPS = {"W": "weight", "G": "weight"}

CANCELLING = frozenset(
    {("exp", "log"), ("exp", "abs_log"), ("log", "exp"), ("negate", "negate"), ("invert", "invert")}
)  # (inner, outer)
IDEMPOTENT = frozenset({"abs", "relu", "normalize", "min_max_normalize"})
DOMAIN_LIMITED = frozenset({"sqrt", "log", "relu"})
CONSTANT_AFTER = frozenset(
    {("normalize", "mean"), ("normalize", "normalized_sum"), ("normalize", "std"), ("softmax", "l1_norm")}
)  # (inner, outer)
WHOLE_LAYER = frozenset({"normalize", "min_max_normalize", "softmax", "log_softmax"})
LINEAR_BINARY = frozenset({"sum", "difference"})
SCALING_BINARY = frozenset({"product", "matmul"})


@dataclass(frozen=True)
class Step:
    """One op of a branch and what is known about its operand."""

    op: str
    previous: str | None  # the op just before (None: applied to the input)
    sign: str  # operand sign: "nonneg", "nonpos" or "any"
    scalar: bool  # operand is a per-layer scalar


@dataclass(frozen=True)
class BranchInfo:
    pruned: bool
    steps: tuple[Step, ...]
    scalar: bool  # the branch's result is a per-layer scalar
    zero_mean: bool  # every layer of the result has mean 0


def _reduces(op: str) -> bool:
    cls = UNARY_OPS.get(op) if op in UNARY_OPS else None
    return bool(getattr(cls, "reduces", False))


def _removes(op: str) -> bool:
    cls = UNARY_OPS.get(op) if op in UNARY_OPS else None
    return bool(getattr(cls, "removes_branch", False))


def _next_sign(op: str, sign: str) -> str:
    if op in NONNEG_OUT:
        return "nonneg"
    if op in NONPOS_OUT:
        return "nonpos"
    if op in SIGN_KEPT:
        return sign
    if op == "negate":
        return {"nonneg": "nonpos", "nonpos": "nonneg"}.get(sign, "any")
    return "any"


@lru_cache(maxsize=65536)
def analyze(branch: Branch) -> BranchInfo:
    """Sign, shape and zero-mean facts along a branch (cached per branch)."""
    sign = "nonneg" if branch.input in NONNEGATIVE_INPUTS else "any"
    scalar = False
    zero_mean = False
    previous = None
    steps = []
    for op in branch.ops:
        steps.append(Step(op, previous, sign, scalar))
        sign = _next_sign(op, sign)
        if op == "normalize" and not scalar:
            zero_mean = True
        elif op not in ("negate", "no_op", "prune"):
            zero_mean = False
        scalar = scalar or _reduces(op)
        previous = op
    return BranchInfo(any(_removes(op) for op in branch.ops), tuple(steps), scalar, zero_mean)


def shape_group(symbol: str) -> str:
    """The input's shape group from the statistic-input registry."""
    try:
        if symbol in STATS:
            group = getattr(STATS.get(symbol), "shape_group", "")
            return group or symbol
    except Exception:  # registry unavailable: small built-in mapping
        pass
    return FALLBACK_SHAPE_GROUPS.get(symbol, symbol)


def _live(proxy: Proxy) -> list[BranchInfo]:
    return [info for info in (analyze(proxy.left), analyze(proxy.right)) if not info.pruned]


class _StepRule(PruningRule):
    """Rejects when some op of a live branch matches :meth:`bad`."""

    stage: ClassVar[str] = "static"

    def bad(self, step: Step) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def rejects(self, proxy: Proxy) -> bool:
        return any(self.bad(step) for info in _live(proxy) for step in info.steps)


@RULES.register("both_pruned", description="both branches are removed by prune")
class BothPruned(PruningRule):
    """Both branches contain ``prune``: nothing is left to score."""

    name = "both_pruned"
    description = "both branches are removed by prune"
    stage = "static"
    example = "sum(prune(abs(W)), square(prune(G)))"
    near_miss = "sum(prune(abs(W)), square(abs(G)))"

    def rejects(self, proxy: Proxy) -> bool:
        return analyze(proxy.left).pruned and analyze(proxy.right).pruned


@RULES.register("cancelling_pair", description="adjacent ops undo each other (log∘exp, negate∘negate, ...)")
class CancellingPair(_StepRule):
    """log∘exp, abs_log∘exp, exp∘log, negate∘negate, invert∘invert adjacent in a branch."""

    name = "cancelling_pair"
    description = "adjacent ops undo each other (log∘exp, exp∘log, negate∘negate, invert∘invert)"
    example = "sum(log(exp(W)), abs(G))"
    near_miss = "sum(log(abs(W)), exp(G))"

    def bad(self, step: Step) -> bool:
        return (step.previous, step.op) in CANCELLING


@RULES.register("idempotent_repeat", description="an idempotent op applied twice (abs∘abs, relu∘relu, ...)")
class IdempotentRepeat(_StepRule):
    """f∘f with f in abs, relu, normalize, min_max_normalize."""

    name = "idempotent_repeat"
    description = "an idempotent op applied twice (abs, relu, normalize, min_max_normalize)"
    example = "sum(relu(relu(A)), abs(G))"
    near_miss = "sum(relu(sqrt(A)), abs(G))"

    def bad(self, step: Step) -> bool:
        return step.op == step.previous and step.op in IDEMPOTENT


@RULES.register("redundant_sign", description="abs/relu of a non-negative value, or a sign-insensitive op after abs/negate")
class RedundantSign(_StepRule):
    """abs/relu of a non-negative operand, or abs/square/abs_log/norms right after abs/negate."""

    name = "redundant_sign"
    description = "abs/relu of a non-negative value, or a sign-insensitive op right after abs/negate"
    example = "sum(square(negate(W)), mean(A))"
    near_miss = "sum(sqrt(negate(W)), mean(A))"

    def bad(self, step: Step) -> bool:
        if step.op in ("abs", "relu") and step.sign == "nonneg":
            return True
        return step.op in SIGN_INSENSITIVE and step.previous in ("abs", "negate")


@RULES.register("domain_conflict", description="sqrt/log/relu of a non-positive value (constant output)")
class DomainConflict(_StepRule):
    """sqrt, log or relu of negate(non-negative) or of log_softmax: a constant."""

    name = "domain_conflict"
    description = "sqrt, log or relu of a non-positive value (constant output)"
    example = "sum(sqrt(negate(S)), abs(W))"
    near_miss = "sum(sqrt(negate(A)), abs(W))"

    def bad(self, step: Step) -> bool:
        return step.op in DOMAIN_LIMITED and step.sign == "nonpos"


@RULES.register("scalar_reduction", description="a reduction of a per-layer scalar (identity, abs or constant)")
class ScalarReduction(_StepRule):
    """mean/normalized_sum/frobenius_norm/l1_norm/std applied to a per-layer scalar."""

    name = "scalar_reduction"
    description = "a reduction applied to a per-layer scalar (identity, abs or constant)"
    example = "sum(mean(l1_norm(W)), abs(G))"
    near_miss = "sum(mean(square(W)), abs(G))"

    def bad(self, step: Step) -> bool:
        return step.scalar and _reduces(step.op)


@RULES.register("constant_output", description="a branch that is constant (normaliser of a scalar, mean of normalize, ...)")
class ConstantOutput(_StepRule):
    """A whole-layer op of a scalar, mean/normalized_sum/std of normalize, l1_norm of softmax."""

    name = "constant_output"
    description = "a constant branch: whole-layer op of a scalar, mean/std of normalize, l1_norm of softmax"
    example = "sum(softmax(frobenius_norm(W)), abs(G))"
    near_miss = "sum(frobenius_norm(softmax(W)), abs(G))"

    def bad(self, step: Step) -> bool:
        if step.scalar and step.op in WHOLE_LAYER:
            return True
        return (step.previous, step.op) in CONSTANT_AFTER and not step.scalar


@RULES.register("zero_mean_branch", description="a normalize branch added to (adds 0) or scaled by a scalar (score 0)")
class ZeroMeanBranch(PruningRule):
    """A branch ending in normalize has layer means 0: it adds nothing or zeroes the score."""

    name = "zero_mean_branch"
    description = "a branch ending in normalize (mean 0) summed (adds nothing) or scaled by a scalar (score 0)"
    stage = "static"
    example = "sum(normalize(abs(W)), square(A))"
    near_miss = "product(normalize(abs(W)), normalize(G))"

    def rejects(self, proxy: Proxy) -> bool:
        left, right = analyze(proxy.left), analyze(proxy.right)
        if left.pruned or right.pruned:
            live = right if left.pruned else left
            return live.zero_mean and not live.pruned
        if proxy.binary in LINEAR_BINARY:
            return left.zero_mean or right.zero_mean
        if proxy.binary in SCALING_BINARY:
            return (left.zero_mean and right.scalar) or (right.zero_mean and left.scalar)
        return False


@RULES.register("shape_group_mismatch", description="binary op between tensors of different shape groups")
class ShapeGroupMismatch(PruningRule):
    """Two tensor branches whose inputs are in different shape groups (only W, G share one)."""

    name = "shape_group_mismatch"
    description = "binary op between two tensors of different shape groups (not element-wise aligned)"
    stage = "static"
    example = "sum(square(W), abs(A))"
    near_miss = "sum(square(W), abs(G))"

    def rejects(self, proxy: Proxy) -> bool:
        left, right = analyze(proxy.left), analyze(proxy.right)
        if left.pruned or right.pruned or left.scalar or right.scalar:
            return False
        if proxy.binary in BINARY_OPS and getattr(BINARY_OPS.get(proxy.binary), "mixes_shapes", False):
            return False
        return shape_group(proxy.left.input) != shape_group(proxy.right.input)


@RULES.register("scalar_matmul", description="matmul with a per-layer-scalar operand (a duplicate of product)")
class ScalarMatmul(PruningRule):
    """An op needing two tensors (matmul) given a per-layer scalar: plain scaling."""

    name = "scalar_matmul"
    description = "matmul with a per-layer-scalar operand (scalar multiplication: a duplicate of product)"
    stage = "static"
    example = "matmul(l1_norm(W), abs(G))"
    near_miss = "matmul(square(W), abs(G))"

    def rejects(self, proxy: Proxy) -> bool:
        left, right = analyze(proxy.left), analyze(proxy.right)
        if left.pruned or right.pruned:
            return False
        needs = proxy.binary in BINARY_OPS and getattr(BINARY_OPS.get(proxy.binary), "needs_matching_tensors", False)
        return needs and (left.scalar or right.scalar)
