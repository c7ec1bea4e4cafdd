"""The reference operator set (ops/reference.py): semantics, op sets, and the GPT-2 oracle."""
from __future__ import annotations

import math

import pytest
import torch

from lpzero_fw.baselines.reference import NAMED_FORMULAS
from lpzero_fw.baselines.runner import score_baselines
from lpzero_fw.ops.base import Values
from lpzero_fw.ops.reference import op_names, translate
from lpzero_fw.proxy.evaluate import Evaluator, InvalidProxy, evaluate
from lpzero_fw.formula.parse import parse
from lpzero_fw.proxy.space import FormulaSpace
from lpzero_fw.registry import BINARY_OPS, UNARY_OPS, LPZeroError
from lpzero_fw.stats.cache import StatsStore
from lpzero_fw.stats.extract import summarize

SYNTHETIC = {"name": "synthetic", "batch_size": 2, "seq_len": 32, "seed": 0}


def exact(t: torch.Tensor) -> Values:
    """A layer tensor as exact statistics (the whole layer, its shape's first dimension)."""
    return summarize({"X": [t]}, budget=None)["X"][0]


def op(name):
    return UNARY_OPS.get(name)()


# ------------------------------------------------------------------------------ semantics
def test_softmax_runs_over_dim0_of_the_layer():
    t = torch.randn(4, 6)
    v = exact(t)
    got = op("ref.softmax")(v).x.reshape(4, 6)
    assert torch.allclose(got, torch.softmax(t, dim=0), atol=1e-6)
    assert torch.allclose(got.sum(dim=0), torch.ones(6), atol=1e-5)  # columns sum to 1
    log = op("ref.log_softmax")(v).x.reshape(4, 6)
    assert torch.allclose(log, torch.log_softmax(t, dim=0), atol=1e-5)
    # ours is a whole-layer softmax: different numbers
    assert not torch.allclose(op("softmax")(v).x.reshape(4, 6), got, atol=1e-3)
    # activations (batch, tokens, features): over the batch
    a = torch.randn(3, 5, 2)
    assert torch.allclose(op("ref.softmax")(exact(a)).x.reshape(3, 5, 2), torch.softmax(a, dim=0), atol=1e-6)


def test_values_without_shapes_are_flat_layers():
    t = torch.randn(2, 5)
    flat = Values(t, torch.full((2, 1), 5.0))  # no lead: each row is a 1-D layer
    assert torch.allclose(op("ref.softmax")(flat).x, torch.softmax(t, dim=1), atol=1e-6)


def test_softmax_of_a_scalar_is_one_and_log_softmax_zero():
    s = Values(torch.tensor([[2.5], [-1.0]]), torch.ones(2, 1))
    assert op("ref.softmax")(s).x.flatten().tolist() == [1.0, 1.0]
    assert op("ref.log_softmax")(s).x.flatten().tolist() == [0.0, 0.0]


def test_sampled_softmax_estimates_the_column_sums():
    torch.manual_seed(0)
    t = torch.randn(64, 96) * 1e-3  # near-constant columns, like an untrained model's gradients
    sampled = summarize({"X": [t]}, budget=512)["X"][0]
    est = op("ref.softmax")(sampled).x.square().mean().item()
    true = torch.softmax(t, dim=0).square().mean().item()
    assert est == pytest.approx(true, rel=1e-3)


def test_elementwise_reference_semantics():
    x = torch.tensor([[-2.0, 0.0, 0.5, 3.0]])
    v = Values(x, torch.full((1, 1), 4.0), torch.full((1, 1), 4.0))
    assert op("ref.log")(v).x[0].tolist() == pytest.approx([0.0, 0.0, math.log(0.5), math.log(3.0)])
    assert op("ref.abs_log")(v).x[0].tolist() == pytest.approx([math.log(2.0), 0.0, math.log(0.5), math.log(3.0)])
    assert op("log")(v).x[0, 0].item() < -20  # ours: log(1e-9)
    assert torch.isnan(op("ref.invert")(v).x).all()  # a zero in the layer: the reference raises
    ok = Values(torch.tensor([[2.0, -4.0]]), torch.full((1, 1), 2.0), torch.full((1, 1), 2.0))
    assert op("ref.invert")(ok).x.tolist() == [[0.5, -0.25]]
    assert op("ref.l1_norm")(v).x.item() == pytest.approx(x.abs().mean().item())
    assert op("l1_norm")(v).x.item() == pytest.approx(x.abs().sum().item())


def test_std_and_normalize_use_bessel_correction():
    t = torch.randn(5, 7)
    v = exact(t)
    assert op("ref.std")(v).x.item() == pytest.approx(torch.std(t).item(), rel=1e-5)
    ref = (t - t.mean()) / (torch.std(t) + 1e-9)
    assert torch.allclose(op("ref.normalize")(v).x.reshape(5, 7), ref, atol=1e-5)
    one = exact(torch.tensor([3.0]))
    assert math.isnan(op("ref.std")(one).x.item())  # torch.std of one value


def test_ops_never_mutate_inputs():
    t = torch.tensor([[-1.0, 0.0, 2.0], [0.5, -0.5, 4.0]])
    for name in op_names(UNARY_OPS, "reference"):
        v = Values(t.clone(), torch.full((2, 1), 3.0), torch.full((2, 1), 3.0))
        op(name)(v)
        assert torch.equal(v.x, t), name


def test_binary_ops_join_per_layer_means():
    """The reference reduces both operands to per-layer means first: any two inputs combine."""
    w = [torch.randn(3, 4), torch.randn(5, 2)]
    a = [torch.randn(2, 3, 6) + 1, torch.randn(2, 3, 6) - 1]
    stats = {"W": [exact(t) for t in w], "A": [exact(t) for t in a]}
    prod = sum(x.mean().item() * y.mean().item() for x, y in zip(w, a)) / 2
    for name in ("ref.product", "ref.matmul"):
        proxy = parse(f"{name}(W, A)")
        assert evaluate(proxy, stats) == pytest.approx(prod, rel=1e-5)
        assert Evaluator().score(proxy, "a", stats) == pytest.approx(prod, rel=1e-5)
    total = sum(x.mean().item() + y.mean().item() for x, y in zip(w, a)) / 2
    assert Evaluator().score(parse("ref.sum(W, A)"), "a", stats) == pytest.approx(total, rel=1e-5)
    with pytest.raises(InvalidProxy, match="shape_mismatch"):  # ours: W and A are not aligned
        evaluate(parse("product(W, A)"), stats)
    from lpzero_fw.rules.apply import RuleSet

    assert RuleSet(["shape_group_mismatch"]).static_reject(parse("product(W, A)")) is not None
    assert RuleSet(["shape_group_mismatch"]).static_reject(parse("ref.product(W, A)")) is None


# ----------------------------------------------------------------------------- op sets
def test_op_sets_from_class_attributes():
    ours, ref = op_names(UNARY_OPS), op_names(UNARY_OPS, "reference")
    assert "l1_norm" in ours and "ref.l1_norm" not in ours
    assert "ref.l1_norm" in ref and "l1_norm" not in ref and "square" in ref
    assert len(ref) == len(ours) == 21
    assert set(op_names(BINARY_OPS, "reference")) == {"ref.sum", "ref.difference", "ref.product", "ref.matmul"}
    # the default search space stays ours; the reference one samples only reference ops
    assert set(FormulaSpace().unary) == set(ours)
    assert set(FormulaSpace(ops="reference").unary) == set(ref)
    with pytest.raises(LPZeroError, match="unknown search.ops 'paper'.*lpzero_fw, reference"):
        FormulaSpace(ops="paper")


def test_named_formulas_translate_and_round_trip():
    text = translate(NAMED_FORMULAS["lpzero_gpt2"], "reference")
    assert text == "ref.sum(ref.l1_norm(square(W)), square(ref.softmax(G)))"
    assert str(parse(text)) == text
    assert translate(NAMED_FORMULAS["lpzero_gpt2"], "lpzero_fw") == NAMED_FORMULAS["lpzero_gpt2"]


# ------------------------------------------------------------------------------ oracle
@pytest.fixture(scope="module")
def gpt2(data_root):
    from lpzero_fw.search_spaces.gpt2 import GPT2Space

    folder = data_root / "random_GPT2_wt103"
    if not folder.is_dir():
        pytest.skip(f"benchmark folder {folder} is not available")
    return GPT2Space(benchmark=str(folder), data=SYNTHETIC)


def test_lpzero_gpt2_under_reference_ops_matches_the_hand_written_baseline(gpt2):
    """The formula machinery with ref.* ops equals lpzero_gpt2_reference (the reference's code)."""
    proxy = parse(translate(NAMED_FORMULAS["lpzero_gpt2"], "reference"))
    ours = parse(NAMED_FORMULAS["lpzero_gpt2"])
    store = StatsStore(gpt2, budget=None, dtype="float32", enabled=False)
    archs = gpt2.sample(3, 7)
    for arch in archs:
        stats = store.get(arch)
        oracle = score_baselines(gpt2, arch, gpt2.make_batch(seed=0), ["lpzero_gpt2_reference"])
        value = Evaluator().score(proxy, arch, stats)
        assert value == pytest.approx(oracle["lpzero_gpt2_reference"], rel=1e-5), arch
        assert evaluate(proxy, stats) == pytest.approx(value, rel=1e-6)
        # our semantics give a different number
        assert evaluate(ours, stats) != pytest.approx(value, rel=1e-2)


def test_layer_shapes_survive_the_disk_cache_format():
    from lpzero_fw.stats.cache import _flatten, _unflatten

    raw = {"G": [torch.randn(6, 4), torch.randn(3, 8)], "A": [torch.randn(2, 3, 5)]}
    for budget in (None, 16):
        stats = summarize(raw, budget)
        back = _unflatten(_flatten(stats, torch.float16))
        leads = [c.lead.flatten().tolist() for c in back["G"]]
        assert leads == ([[6.0], [3.0]] if budget is None else [[6.0, 3.0]])
        assert back["A"][0].lead.flatten().tolist() == [2.0]
