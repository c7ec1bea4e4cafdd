"""Absent inputs: a layer or an architecture without an input (FlexiBERT LT layers have
no softmax) leaves that input's proxies undefined there only, never for the benchmark."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps

from lpzero_fw.ops.base import Values
from lpzero_fw.proxy.evaluate import ABSENT_INPUT, Evaluator, InvalidProxy, absent_counts, absent_input, evaluate
from lpzero_fw.proxy.fitness import ProxyScorer
from lpzero_fw.formula.parse import parse
from lpzero_fw.rules.apply import RuleSet


def _arch(seed: int, s_layers: int, w_layers: int = 3, k: int = 8) -> dict:
    gen = torch.Generator().manual_seed(seed)

    def chunk(rows):
        x = torch.rand(rows, k, generator=gen) + 0.1 * seed
        return [Values(x, torch.full((rows, 1), float(k)))] if rows else []

    return {"W": chunk(w_layers), "S": chunk(s_layers)}


def _benchmark(absent: set[int], n: int = 8):
    stats = {f"a{i}": _arch(i, 0 if i in absent else 2) for i in range(n)}
    quality = {f"a{i}": float((i * 5) % n) for i in range(n)}  # not monotone in the scores
    return stats, quality


def test_one_arch_without_an_input_does_not_veto_it():
    stats, quality = _benchmark(absent={3})
    ids = list(stats)
    scorer = ProxyScorer(stats, quality, RuleSet("all"))
    proxy = parse("sum(abs(S), prune(W))")
    fitness = scorer.fitness(proxy, ids)
    assert fitness is not None and math.isfinite(fitness)
    # = Spearman on the archs that have S
    keep = [a for a in ids if a != "a3"]
    expected = sps.spearmanr([evaluate(proxy, stats[a]) for a in keep], [quality[a] for a in keep]).statistic
    assert fitness == pytest.approx(expected)
    values, defined = scorer.defined_scores(proxy, ids)
    assert defined.tolist() == [a != "a3" for a in ids] and math.isnan(values[3])
    assert ABSENT_INPUT not in scorer.rejected


def test_a_pruned_absent_input_is_defined_everywhere():
    stats, quality = _benchmark(absent={3})
    scorer = ProxyScorer(stats, quality, RuleSet("all"))
    values, defined = scorer.defined_scores(parse("sum(prune(S), abs(W))"), list(stats))
    assert defined.all() and np.isfinite(values).all()
    assert absent_input(parse("sum(prune(S), abs(W))"), stats["a3"]) is None
    assert absent_input(parse("sum(abs(S), W)"), stats["a3"]) == "S"


def test_an_input_absent_on_most_archs_cannot_rank_them():
    stats, quality = _benchmark(absent={0, 1, 2, 3, 4})
    scorer = ProxyScorer(stats, quality, RuleSet("all"))
    assert scorer.fitness(parse("sum(abs(S), prune(W))"), list(stats)) is None
    assert scorer.rejected[ABSENT_INPUT] == 1


def test_other_invalidity_still_rejects_the_proxy():
    stats, quality = _benchmark(absent=set())
    scorer = ProxyScorer(stats, quality, RuleSet("all"))
    # W (3 layers) and S (2 layers) tensors cannot meet element-wise on any arch
    assert scorer.fitness(parse("product(abs(S), abs(W))"), list(stats)) is None
    assert scorer.rejected["shape_mismatch"] == 1


def test_per_layer_absence_reduces_over_the_layers_that_have_it():
    arch = _arch(1, s_layers=2, w_layers=3)
    s_means = arch["S"][0].x.mean(dim=1)
    w_means = arch["W"][0].x.mean(dim=1)
    # mean over S's 2 layers; layer_sum multiplies by S's own layer count
    assert evaluate(parse("sum(S, prune(W))"), arch) == pytest.approx(float(s_means.mean()))
    assert evaluate(parse("layer_sum(sum(S, prune(W)))"), arch) == pytest.approx(2 * float(s_means.mean()))
    # per-layer scalars of different depths collapse to their mean over layers
    value = Evaluator().score(parse("sum(mean(S), mean(W))"), "x", arch)
    assert value == pytest.approx(float(s_means.mean() + w_means.mean()))
    with pytest.raises(InvalidProxy, match=ABSENT_INPUT):
        Evaluator().score(parse("sum(S, W)"), "y", _arch(2, s_layers=0))


def test_absent_counts():
    stats, _ = _benchmark(absent={1, 4})
    assert absent_counts(stats) == {"S": 2, "W": 0}


# ---------------------------------------------------------------- real FlexiBERT archs
def _root() -> Path:
    env = os.environ.get("LPZERO_FW_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "lpzero"
    if not (root / "data" / "BERT_benchmark.json").is_file():
        pytest.skip(f"FlexiBERT benchmark not found under {root}")
    return root


def test_flexibert_all_lt_arch_has_no_softmax_and_is_left_out():
    from lpzero_fw.search_spaces.flexibert import FlexiBERTSpace
    from lpzero_fw.stats.cache import StatsStore

    space = FlexiBERTSpace(benchmark=str(_root() / "data" / "BERT_benchmark.json"),
                           data={"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0})
    ids = space.arch_ids()
    all_lt = [a for a in ids if all(layer.operation_type == "LT" for layer in space.arch(a).layers)]
    with_sa = [a for a in ids if any(layer.operation_type == "SA" for layer in space.arch(a).layers)]
    assert all_lt, "the benchmark has all-LT architectures"
    chosen = [all_lt[0], *with_sa[:4]]
    store = StatsStore(space, budget=32, enabled=False)
    stats = {a: store.get(a) for a in chosen}
    assert stats[all_lt[0]]["S"] == [] and all(stats[a]["S"] for a in with_sa[:4])
    assert absent_counts(stats)["S"] == 1
    scorer = ProxyScorer(stats, {a: space.quality(a) for a in chosen}, RuleSet("all"))
    # (mean(S) itself is 1/tokens on every arch: a softmax row sums to 1)
    values, defined = scorer.defined_scores(parse("sum(square(S), prune(W))"), chosen)
    assert defined.tolist() == [False, True, True, True, True]
    assert np.isfinite(values[1:]).all()
