"""Proxy formulas: printing/parsing, the search space, and evaluation semantics."""
from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lpzero_fw.ops.base import UnaryOp, Values
from lpzero_fw.proxy.evaluate import Evaluator, InvalidProxy, evaluate, result_layers
from lpzero_fw.formula.genotype import Branch, Formula
from lpzero_fw.formula.parse import FormulaError, format_proxy, parse
from lpzero_fw.proxy.space import FormulaSpace
from lpzero_fw.registry import UNARY_OPS, LPZeroError

PUBLISHED = [
    "sum(l1_norm(square(W)), square(softmax(G)))",
    "sum(square(negate(H)), log_softmax(frobenius_norm(A)))",
]


# -- printing and parsing -------------------------------------------------------------
@pytest.mark.parametrize("text", PUBLISHED)
def test_published_proxies_parse(text):
    proxy = parse(text)
    assert str(proxy) == format_proxy(proxy) == text


def test_parse_builds_branches_innermost_first():
    proxy = parse(PUBLISHED[0])
    assert proxy == Formula(Branch("W", ("square", "l1_norm")), Branch("G", ("softmax", "square")), "sum")
    assert parse("product(W, G)") == Formula(Branch("W", ()), Branch("G", ()), "product")


def _spaced(text: str, rng: random.Random) -> str:
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_.]*|[(),]", text)
    return "".join(rng.choice(["", " ", "  ", "\t", "\n"]) + t for t in tokens) + rng.choice(["", " \n"])


def test_round_trip_of_1000_random_proxies():
    rng = random.Random(0)
    spaces = [FormulaSpace(n_unary=n) for n in (1, 2, 3)]
    for _ in range(1000):
        proxy = rng.choice(spaces).sample(rng)
        text = str(proxy)
        assert parse(text) == proxy
        assert parse(_spaced(text, rng)) == proxy


@pytest.mark.parametrize(
    "text, position, token",
    [
        ("sum(W, G", 8, "end of text"),
        ("sum(W G)", 6, "'G'"),
        ("sum(W, G))", 9, "')'"),
        ("sum(W, G) extra", 10, "'extra'"),
        ("sum(abs(W, G)", 9, "','"),
        ("sum(abs(W), G$)", 13, "'$'"),
        ("", 0, "end of text"),
        ("sum()", 4, "')'"),
        ("sum(W, 3)", 7, "'3'"),
        ("abs(W, G)", 0, "'abs'"),
        ("sum(fancy(W), G)", 4, "'fancy'"),
        ("sum(W, Q)", 7, "'Q'"),
        ("sum(abs(sqare(W)), G)", 8, "'sqare'"),
    ],
)
def test_malformed_formulas_point_at_the_bad_token(text, position, token):
    with pytest.raises(FormulaError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert f"position {position} ({token})" in message
    assert isinstance(info.value, LPZeroError)


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(FormulaError, match=r"unknown unary operator 'sqare'.*choose one of: .*square.*Did you mean square"):
        parse("sum(sqare(W), G)")
    with pytest.raises(FormulaError, match=r"unknown statistic input 'Q'; choose one of: A, G, H, J, S, W"):
        parse("sum(W, Q)")
    with pytest.raises(FormulaError, match=r"unknown binary operator 'plus'"):
        parse("plus(W, G)")


@pytest.fixture
def dotted_op():
    @UNARY_OPS.register("myplugin.double", description="2x (test plugin)")
    class Double(UnaryOp):
        def __call__(self, v):
            return Values(v.x * 2, v.n)

    yield "myplugin.double"
    UNARY_OPS._entries.pop("myplugin.double", None)


def test_plugin_names_with_dots_are_accepted(dotted_op):
    proxy = parse(f"sum({dotted_op}(W), abs(G))")
    assert proxy.left.ops == (dotted_op,)
    assert parse(str(proxy)) == proxy
    stats = {"W": [Values(torch.ones(1, 2), torch.full((1, 1), 2.0))], "G": [Values(-torch.ones(1, 2), torch.full((1, 1), 2.0))]}
    assert Evaluator().score(proxy, "a", stats) == pytest.approx(3.0)


# -- the search space ------------------------------------------------------------------------
def test_space_size_and_validation():
    space = FormulaSpace(inputs=("W", "G"), unary=("abs", "square", "exp"), binary=("sum",), n_unary=2)
    assert space.size() == (2 * 3**2) ** 2
    assert FormulaSpace().size() == (6 * 21**2) ** 2 * 4
    with pytest.raises(LPZeroError, match=r"n_unary=0"):
        FormulaSpace(n_unary=0)
    with pytest.raises(LPZeroError, match=r"unknown unary operator 'sqare'.*choose one of"):
        FormulaSpace(unary=("abs", "sqare"))
    with pytest.raises(LPZeroError, match=r"unknown statistic input 'X'.*choose one of: A, G, H, J, S, W"):
        FormulaSpace(inputs=("W", "X"))
    with pytest.raises(LPZeroError, match=r"unknown binary operator 'mul'"):
        FormulaSpace(binary=("mul",))


def test_sampling_is_seeded_uniform_and_inside_the_space():
    space = FormulaSpace(inputs=("W", "G"), unary=("abs", "square"), binary=("sum", "product"), n_unary=1)
    draws = [space.sample(random.Random(7)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(0)
    counts: dict[str, int] = {}
    for _ in range(8000):
        proxy = space.sample(rng)
        assert proxy in space
        counts[str(proxy)] = counts.get(str(proxy), 0) + 1
    assert len(counts) == space.size() == 32
    assert min(counts.values()) > 8000 / 32 * 0.7


def test_mutation_resamples_genes_with_the_given_probability():
    space = FormulaSpace()
    rng = random.Random(3)
    parent = space.sample(rng)
    assert space.mutate(parent, rng, 0.0) == parent
    changed = 0
    genes = lambda p: [p.left.input, *p.left.ops, p.right.input, *p.right.ops, p.binary]  # noqa: E731
    for _ in range(500):
        child = space.mutate(parent, rng, 1.0)
        assert child in space
        changed += sum(a != b for a, b in zip(genes(parent), genes(child)))
    # every gene re-sampled: it differs unless the same value is drawn again
    assert changed / (500 * 7) > 0.75
    with pytest.raises(LPZeroError):
        space.mutate(parent, rng, 1.5)


def test_crossover_takes_each_gene_from_a_parent():
    space = FormulaSpace()
    rng = random.Random(5)
    a, b = space.sample(rng), space.sample(rng)
    genes = lambda p: [p.left.input, *p.left.ops, p.right.input, *p.right.ops, p.binary]  # noqa: E731
    seen_a = seen_b = 0
    for _ in range(200):
        child = space.crossover(a, b, rng)
        for ga, gb, gc in zip(genes(a), genes(b), genes(child)):
            assert gc in (ga, gb)
            seen_a += gc == ga
            seen_b += gc == gb
    assert seen_a > 400 and seen_b > 400


# -- evaluation ------------------------------------------------------------------------------------
def V(rows, n=None):
    x = torch.tensor(rows, dtype=torch.float32)
    n = x.shape[1] if n is None else n
    return Values(x, torch.full((x.shape[0], 1), float(n)))


def per_layer(rows):
    """Exact mode: one chunk per layer."""
    return [V([row]) for row in rows]


W_ROWS = [[1.0, -1.0, 2.0, 0.0], [3.0, 1.0, -2.0, 2.0]]
G_ROWS = [[0.5, 0.5, -1.0, 1.0], [1.0, 0.0, 0.0, 1.0]]
A_ROWS = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def stats_budget():
    return {"W": [V(W_ROWS)], "G": [V(G_ROWS)], "A": [V(A_ROWS)]}


def stats_exact():
    return {"W": per_layer(W_ROWS), "G": per_layer(G_ROWS), "A": per_layer(A_ROWS)}


def hand_score(rows):
    return float(np.mean([np.mean(r) for r in rows]))


@pytest.mark.parametrize("make", [stats_budget, stats_exact])
def test_scores_on_hand_computed_examples(make):
    stats = make()
    w, g, a = np.array(W_ROWS), np.array(G_ROWS), np.array(A_ROWS)
    cases = {
        "sum(W, G)": hand_score(w + g),
        "difference(square(W), G)": hand_score(w**2 - g),
        "product(W, G)": hand_score(w * g),
        "matmul(W, G)": float(np.mean((w * g).sum(axis=1))),
        "product(l1_norm(W), G)": hand_score(np.abs(w).sum(axis=1, keepdims=True) * g),
        # per-layer scalar with another layer count: collapsed to its mean over layers
        "sum(frobenius_norm(W), A)": float(np.mean(np.linalg.norm(w, axis=1))) + hand_score(a),
        "product(mean(A), G)": float(np.mean(a)) * hand_score(g),
        "sum(prune(W), abs(A))": hand_score(np.abs(a)),
        "sum(abs(A), prune(W))": hand_score(np.abs(a)),
    }
    evaluator = Evaluator()
    for text, expected in cases.items():
        proxy = parse(text)
        assert evaluate(proxy, stats) == pytest.approx(expected, rel=1e-5), text
        assert evaluator.score(proxy, "arch", stats) == pytest.approx(expected, rel=1e-5), text


@pytest.mark.parametrize("make", [stats_budget, stats_exact])
def test_invalid_proxies_carry_a_rule(make):
    stats = make()
    evaluator = Evaluator()
    for text, rule in [
        ("sum(prune(W), prune(G))", "both_pruned"),
        ("sum(W, A)", "shape_mismatch"),
        ("product(abs(W), A)", "shape_mismatch"),
        ("matmul(W, A)", "shape_mismatch"),
    ]:
        for fn in (lambda p: evaluate(p, stats), lambda p: evaluator.score(p, "x", stats)):
            with pytest.raises(InvalidProxy) as info:
                fn(parse(text))
            assert info.value.rule == rule, text


def test_layers_of_different_size_are_a_shape_mismatch():
    stats = {"W": [V([[1.0, 2.0]], 2), V([[1.0, 2.0]], 4)], "G": [V([[1.0, 2.0]], 2), V([[1.0, 2.0]], 2)]}
    with pytest.raises(InvalidProxy, match="shape_mismatch"):
        Evaluator().score(parse("sum(W, G)"), "a", stats)
    with pytest.raises(InvalidProxy, match="shape_mismatch"):
        evaluate(parse("sum(W, G)"), stats)


def test_empty_and_missing_inputs():
    stats = {"W": [V(W_ROWS)], "S": []}
    with pytest.raises(InvalidProxy, match="empty_input"):
        Evaluator().score(parse("sum(abs(S), W)"), "a", stats)
    assert Evaluator().score(parse("sum(prune(S), W)"), "a", stats) == pytest.approx(hand_score(W_ROWS))
    with pytest.raises(LPZeroError, match="no input 'G'"):
        Evaluator().score(parse("sum(G, W)"), "a", stats)


def random_arch(seed: int, k: int, exact: bool):
    """W, G share layer sizes (aligned); A, H, J have their own; S non-negative."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"W": [k] * 4, "G": [k] * 4, "A": [k] * 2, "H": [k] * 2, "J": [k] * 3, "S": [k] * 2}
    stats = {}
    for symbol, layer_sizes in sizes.items():
        rows = torch.randn(len(layer_sizes), k, generator=gen) * (0.5 + seed % 3)
        if symbol == "S":
            rows = rows.abs() / k
        if symbol == "G":
            rows = rows * 0.1
        if exact:
            stats[symbol] = [Values(rows[i : i + 1].clone(), torch.tensor([[float(k)]])) for i in range(len(layer_sizes))]
        else:
            stats[symbol] = [Values(rows.clone(), torch.full((len(layer_sizes), 1), float(k)))]
    return stats


def _close(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b or abs(a) > 1e30 or abs(b) > 1e30
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)


def _outcome(fn):
    try:
        return fn()
    except InvalidProxy as invalid:
        return invalid.rule


def test_evaluator_matches_the_plain_definition_and_exact_matches_budget():
    """Cached fast path == plain definition; one chunk per layer == one chunk (k == n)."""
    rng = random.Random(11)
    space = FormulaSpace(n_unary=2)
    archs = {f"a{i}": (random_arch(i, 16, exact=False), random_arch(i, 16, exact=True)) for i in range(3)}
    fast = Evaluator(max_tensor_bytes=50_000)  # small LRU: exercise eviction too
    fast_exact = Evaluator()
    for _ in range(600):
        proxy = space.sample(rng)
        for key, (budget, exact) in archs.items():
            plain = _outcome(lambda: evaluate(proxy, budget))
            assert _close(_outcome(lambda: fast.score(proxy, key, budget)), plain), str(proxy)
            assert _close(_outcome(lambda: evaluate(proxy, exact)), plain), str(proxy)
            assert _close(_outcome(lambda: fast_exact.score(proxy, key, exact)), plain), str(proxy)


def test_score_many():
    archs = {f"a{i}": random_arch(i, 8, exact=False) for i in range(3)}
    proxies = [parse(t) for t in ("sum(abs(W), G)", "sum(W, A)", "product(std(A), l1_norm(J))")]
    batch = Evaluator().score_many(proxies, archs)
    assert batch.scores.shape == (3, 3) and batch.arch_keys == list(archs)
    assert batch.invalid == [None, "shape_mismatch", None]
    assert np.isnan(batch.scores[1]).all() and np.isfinite(batch.scores[[0, 2]]).all()
    for j, (key, stats) in enumerate(archs.items()):
        assert batch.scores[0, j] == pytest.approx(evaluate(proxies[0], stats), rel=1e-5)


def test_new_statistics_for_a_known_key_drop_the_cached_results():
    evaluator = Evaluator()
    proxy = parse("sum(abs(W), square(G))")
    first = evaluator.score(proxy, "a", random_arch(0, 8, exact=False))
    second = evaluator.score(proxy, "a", random_arch(1, 8, exact=False))
    assert first != second
    same = random_arch(1, 8, exact=False)
    assert evaluator.score(proxy, "a", same) == pytest.approx(second)
    # a new mapping over the same chunk objects keeps the cache
    misses = evaluator.misses
    assert evaluator.score(proxy, "a", dict(same)) == pytest.approx(second)
    assert evaluator.misses == misses


def test_cache_hits_for_shared_branches():
    evaluator = Evaluator()
    stats = random_arch(0, 8, exact=False)
    evaluator.score(parse("sum(abs(W), square(G))"), "a", stats)
    evaluator.score(parse("product(abs(W), l1_norm(A))"), "a", stats)
    assert evaluator.cache_info()["branch_hits"] == 1 and evaluator.cache_info()["branch_misses"] == 3


special = st.sampled_from([0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 3e38, float("inf"), float("-inf"), float("nan"), 1.0, -2.5])


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(special, st.floats(width=32)), min_size=8, max_size=8),
    seed=st.integers(0, 10_000),
)
def test_evaluation_is_robust_to_any_float_inputs(values, seed):
    """Only a float (maybe nan/inf) or InvalidProxy comes out, never a torch error."""
    x = torch.tensor(values, dtype=torch.float32).reshape(2, 4)
    stats = {s: [Values(x.clone(), torch.full((2, 1), 4.0))] for s in ("A", "J", "G", "H", "W", "S")}
    rng = random.Random(seed)
    space = FormulaSpace()
    evaluator = Evaluator()
    for _ in range(30):
        proxy = space.sample(rng)
        for fn in (lambda: evaluator.score(proxy, "a", stats), lambda: evaluate(proxy, stats)):
            try:
                assert isinstance(fn(), float)
            except InvalidProxy:
                pass


def test_layer_sum_round_trips_and_is_a_gene():
    space = FormulaSpace(layers=("mean", "sum"))
    rng = random.Random(3)
    proxies = [space.sample(rng) for _ in range(300)]
    assert {p.layers for p in proxies} == {"mean", "sum"}
    for proxy in proxies:
        assert parse(str(proxy)) == proxy
    assert str(parse("layer_sum(sum(l1_norm(G), prune(W)))")) == "layer_sum(sum(l1_norm(G), prune(W)))"
    with pytest.raises(LPZeroError, match="layers"):
        FormulaSpace(layers=("median",))
    with pytest.raises(FormulaError):
        parse("layer_sum(sum(l1_norm(G), prune(W))")


@pytest.mark.parametrize("make", [stats_budget, stats_exact])
def test_layer_sum_is_mean_times_result_layers(make):
    stats = make()
    evaluator = Evaluator()
    for text, rows in [
        ("sum(l1_norm(W), prune(A))", 2),
        ("product(frobenius_norm(A), square(W))", None),
    ]:
        mean = parse(text)
        summed = parse(f"layer_sum({text})")
        m = evaluator.score(mean, "arch", stats)
        s = evaluator.score(summed, "arch", stats)
        assert s == pytest.approx(m * result_layers(summed, stats))
        assert evaluate(summed, stats) == pytest.approx(s, rel=1e-4)
        if rows is not None:
            assert result_layers(summed, stats) == rows


def test_a_registered_layer_reduction_parses_samples_and_scores_in_both_evaluators():
    """Layer reductions are components: one registered by a plugin is a gene, a formula
    wrapper and a score rule, with no table of names to extend."""
    from lpzero_fw import LAYER_REDUCTIONS, LayerReduction

    @LAYER_REDUCTIONS.register("sqrtdepth", description="mean x sqrt(layers) (test plugin)")
    class SqrtDepth(LayerReduction):
        def reduce(self, mean, layers):
            return mean * layers ** 0.5

    try:
        assert SqrtDepth.name == "sqrtdepth"
        space = FormulaSpace(layers=("mean", "sqrtdepth"))
        assert {space.sample(random.Random(s)).layers for s in range(40)} == {"mean", "sqrtdepth"}
        text = "sum(l1_norm(W), prune(A))"
        proxy = parse(f"layer_sqrtdepth({text})")
        assert str(proxy) == f"layer_sqrtdepth({text})" and parse(str(proxy)) == proxy
        stats = stats_budget()
        mean = Evaluator().score(parse(text), "arch", stats)
        assert Evaluator().score(proxy, "arch", stats) == pytest.approx(mean * 2 ** 0.5)
        assert evaluate(proxy, stats) == pytest.approx(mean * 2 ** 0.5, rel=1e-4)
    finally:
        LAYER_REDUCTIONS._entries.pop("sqrtdepth", None)
    with pytest.raises(FormulaError, match="unknown layer reduction 'sqrtdepth'"):
        parse(f"layer_sqrtdepth({text})")


def test_scorer_spearman_equals_scipy():
    from scipy.stats import spearmanr

    from lpzero_fw.proxy.fitness import ProxyScorer
    from lpzero_fw.rules.apply import RuleSet

    rng = np.random.default_rng(0)
    ids = [f"a{i}" for i in range(30)]
    quality = dict(zip(ids, rng.normal(size=30).round(1)))  # ties on purpose
    scorer = ProxyScorer({}, quality, RuleSet("all"))
    for _ in range(20):
        values = rng.normal(size=30).round(1)
        expected = spearmanr(values, [quality[a] for a in ids]).statistic
        assert scorer._spearman(values, ids) == pytest.approx(expected, abs=1e-12)
