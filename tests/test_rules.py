"""Pruning rules: every rule's example and near miss, the RuleSet, and what rules claim."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.proxy.evaluate import Evaluator, InvalidProxy, evaluate
from lpzero_fw.formula.parse import parse
from lpzero_fw.proxy.space import FormulaSpace
from lpzero_fw.registry import RULES, LPZeroError
from lpzero_fw.rules.apply import RuleSet
from lpzero_fw.rules.base import PruningRule

STATIC = [
    "both_pruned", "cancelling_pair", "constant_output", "domain_conflict", "idempotent_repeat",
    "redundant_sign", "scalar_matmul", "scalar_reduction", "shape_group_mismatch", "zero_mean_branch",
]
DYNAMIC = ["constant_scores", "huge_magnitude", "non_finite_score"]


def test_registered_rules():
    assert set(RULES.names()) >= set(STATIC) | set(DYNAMIC)
    for name in STATIC:
        assert RULES.get(name).stage == "static"
    for name in DYNAMIC:
        assert RULES.get(name).stage == "dynamic"


@pytest.mark.parametrize("name", RULES.names())
def test_each_rule_rejects_its_example_and_accepts_its_near_miss(name):
    cls = RULES.get(name)
    rule = cls()
    assert isinstance(rule, PruningRule) and rule.name == name and rule.description
    assert cls.example is not None and cls.near_miss is not None
    if rule.stage == "static":
        example, near_miss = parse(cls.example), parse(cls.near_miss)
    else:
        example, near_miss = np.asarray(cls.example, float), np.asarray(cls.near_miss, float)
    assert rule.rejects(example)
    assert not rule.rejects(near_miss)


@pytest.mark.parametrize(
    "text, rule",
    [
        ("sum(exp(log(W)), G)", "cancelling_pair"),
        ("sum(negate(negate(W)), G)", "cancelling_pair"),
        ("sum(invert(invert(A)), A)", "cancelling_pair"),
        ("sum(abs_log(exp(W)), G)", "cancelling_pair"),
        ("sum(normalize(normalize(A)), mean(G))", "idempotent_repeat"),
        ("sum(min_max_normalize(min_max_normalize(A)), mean(G))", "idempotent_repeat"),
        ("sum(abs(square(W)), G)", "redundant_sign"),
        ("sum(relu(exp(W)), G)", "redundant_sign"),
        ("sum(abs(S), mean(G))", "redundant_sign"),
        ("sum(l1_norm(abs(W)), G)", "redundant_sign"),
        ("sum(log(log_softmax(W)), G)", "domain_conflict"),
        ("sum(relu(negate(square(W))), G)", "domain_conflict"),
        ("sum(std(mean(W)), G)", "scalar_reduction"),
        ("sum(normalize(l1_norm(W)), G)", "constant_output"),
        ("sum(mean(normalize(W)), G)", "constant_output"),
        ("sum(l1_norm(softmax(W)), G)", "constant_output"),
        ("product(normalize(W), mean(A))", "zero_mean_branch"),
        ("sum(negate(normalize(W)), A)", "zero_mean_branch"),
        ("sum(normalize(W), prune(A))", "zero_mean_branch"),
        ("product(abs(H), abs(A))", "shape_group_mismatch"),
        ("matmul(abs(W), frobenius_norm(G))", "scalar_matmul"),
    ],
)
def test_more_rejections(text, rule):
    assert RULES.get(rule)().rejects(parse(text))


@pytest.mark.parametrize(
    "text",
    [
        "sum(l1_norm(square(W)), square(softmax(G)))",  # the paper's first proxy
        "sum(abs(W), abs(G))",
        "product(abs(W), sqrt(G))",
        "matmul(abs(W), square(G))",
        "sum(frobenius_norm(A), abs(W))",  # scalar broadcast across shape groups
        "sum(sqrt(negate(W)), abs(G))",  # W can be negative
        "sum(prune(A), abs(W))",
        "product(normalize(W), normalize(G))",
        "sum(log(softmax(S)), mean(A))",
    ],
)
def test_ordinary_proxies_pass_every_static_rule(text):
    assert RuleSet("all").static_reject(parse(text)) is None


def test_the_papers_second_proxy_has_a_constant_branch():
    # log_softmax of a per-layer scalar is log(1) = 0 (also in the reference code),
    # so the proxy is square(negate(H)) plus zero and constant_output drops it
    text = "sum(square(negate(H)), log_softmax(frobenius_norm(A)))"
    assert RuleSet("all").static_reject(parse(text)) == "constant_output"


def test_dynamic_rules():
    rules = RuleSet(DYNAMIC)
    assert rules.dynamic_reject(np.array([1.0])) is None
    assert rules.dynamic_reject(np.array([1.0, 1.0])) is None  # too few to call constant
    assert rules.dynamic_reject(np.array([1.0, 1.0, 1.0])) == "constant_scores"
    assert rules.dynamic_reject(np.array([0.0, 0.0, 0.0, 0.0])) == "constant_scores"
    assert rules.dynamic_reject(np.array([1e-12, 2e-12, 3e-12])) is None  # tiny but varying
    assert rules.dynamic_reject(np.array([1.0, np.inf])) == "non_finite_score"
    assert rules.dynamic_reject(np.array([np.nan, np.nan, np.nan])) == "non_finite_score"
    assert rules.dynamic_reject([1.0, 2e30]) == "huge_magnitude"
    assert rules.counts == {"constant_scores": 2, "huge_magnitude": 1, "non_finite_score": 2}


def test_ruleset_selection_and_counters():
    everything = RuleSet("all")
    assert set(everything.names) == set(RULES.names())
    assert everything.static_names == frozenset(STATIC) and everything.dynamic_names == frozenset(DYNAMIC)
    none = RuleSet("none")
    assert none.names == [] and none.static_reject(parse("sum(prune(W), prune(G))")) is None
    assert none.dynamic_reject([np.nan]) is None
    assert RuleSet(None).names == []
    some = RuleSet(["both_pruned", "non_finite_score"])
    assert some.static_reject(parse("sum(prune(W), prune(G))")) == "both_pruned"
    assert some.static_reject(parse("sum(log(exp(W)), G)")) is None
    some.static_reject(parse("sum(prune(A), prune(G))"))
    assert some.counts == {"both_pruned": 2, "non_finite_score": 0}
    some.reset_counts()
    assert some.counts == {"both_pruned": 0, "non_finite_score": 0}


def test_unknown_rule_names_are_user_errors():
    with pytest.raises(LPZeroError, match=r"unknown pruning rule 'both_prunned'.*choose one of: .*both_pruned"):
        RuleSet(["both_prunned"])
    with pytest.raises(LPZeroError, match=r"unknown pruning rule 'some'"):
        RuleSet("some")


def _random_stats(seed: int):
    gen = torch.Generator().manual_seed(seed)
    stats = {}
    for symbol, rows in {"W": 4, "G": 4, "A": 2, "H": 2, "J": 3, "S": 2}.items():
        x = torch.randn(rows, 32, generator=gen) * (1 + seed)
        if symbol == "S":
            x = x.abs() / 32
        stats[symbol] = [Values(x, torch.full((rows, 1), 32.0 * (seed + 1)))]
    return stats


CONSTANT_RULES = {"constant_output", "domain_conflict", "both_pruned", "scalar_reduction"}


def test_rejected_constant_proxies_really_are_constant():
    """A proxy whose only fault is a constant branch scores the same as its other branch plus a constant."""
    archs = [_random_stats(i) for i in range(4)]
    rng = random.Random(2)
    space = FormulaSpace()
    rules = RuleSet(["constant_output", "domain_conflict"])
    checked = 0
    while checked < 40:
        proxy = space.sample(rng)
        if rules.static_reject(proxy) is None:
            continue
        # replace the other branch by prune: what remains must be constant across archs
        for side in ("left", "right"):
            alone = parse(f"sum({_branch(getattr(proxy, side))}, prune({_branch(getattr(proxy, 'right' if side == 'left' else 'left'))}))")
            if rules.static_reject(alone) is None:
                continue
            try:
                scores = [evaluate(alone, stats) for stats in archs]
            except InvalidProxy:
                continue
            finite = [s for s in scores if np.isfinite(s)]
            if len(finite) == len(scores):
                assert max(finite) - min(finite) <= 1e-5 * max(1.0, max(abs(s) for s in finite)), str(alone)
                checked += 1


def _branch(branch):
    text = branch.input
    for op in branch.ops:
        text = f"{op}({text})"
    return text


def test_static_shape_rules_predict_evaluator_shape_errors():
    """Proxies passing shape_group_mismatch never hit shape_mismatch on budget stats."""
    archs = {f"a{i}": _random_stats(i) for i in range(2)}
    rules = RuleSet(["shape_group_mismatch", "both_pruned"])
    evaluator = Evaluator()
    rng = random.Random(4)
    space = FormulaSpace()
    for _ in range(1500):
        proxy = space.sample(rng)
        accepted = rules.static_reject(proxy) is None
        for key, stats in archs.items():
            try:
                evaluator.score(proxy, key, stats)
                ok = True
            except InvalidProxy:
                ok = False
            if accepted:
                assert ok, str(proxy)


# -- facts, not names -------------------------------------------------------------------
_SIGNS = {"nonneg", "nonpos", "same", "flipped", "any"}


def test_every_unary_op_declares_consistent_facts():
    from lpzero_fw.registry import UNARY_OPS

    for name in UNARY_OPS.names():
        op = UNARY_OPS.get(name)
        assert not (op.elementwise and op.reduces), name
        assert not (op.whole_layer and (op.elementwise or op.reduces)), name
        assert op.output_sign in _SIGNS and op.output_mean in {"zero", "kept", "any"}, name
        for other in op.inverse_of + op.constant_after:
            assert other in UNARY_OPS, (name, other)


def _referenced_ops() -> set[str]:
    from lpzero_fw.registry import UNARY_OPS

    return {o for n in UNARY_OPS.names() for o in UNARY_OPS.get(n).inverse_of + UNARY_OPS.get(n).constant_after}


def test_rules_know_operators_by_their_facts_not_their_names():
    """A renamed copy of a built-in op is pruned exactly like the op itself."""
    from lpzero_fw.formula.genotype import Branch, Formula
    from lpzero_fw.registry import UNARY_OPS

    renamed, core = {}, UNARY_OPS.names()
    for name in core:
        if name not in _referenced_ops():  # an op others name in inverse_of / constant_after keeps its name
            renamed[name] = f"copy.{name}"
            UNARY_OPS.register(renamed[name], type(f"Copy_{name}", (UNARY_OPS.get(name),), {}))
    try:
        rules, copies = RuleSet("core"), RuleSet("core")
        assert not set(renamed.values()) & set(FormulaSpace().unary)  # not core: not in a default search
        space = FormulaSpace(unary=core)
        rng = random.Random(3)
        swap = lambda b: Branch(b.input, tuple(renamed.get(o, o) for o in b.ops))  # noqa: E731
        rejected = 0
        for _ in range(4000):
            proxy = space.sample(rng)
            twin = Formula(swap(proxy.left), swap(proxy.right), proxy.binary, proxy.layers)
            verdict = rules.static_reject(proxy)
            assert copies.static_reject(twin) == verdict, (str(proxy), str(twin))
            rejected += verdict is not None
        assert rejected > 500 and rules.counts == copies.counts
    finally:
        for name in renamed.values():
            UNARY_OPS._entries.pop(name, None)
