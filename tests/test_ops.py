"""Unary and binary operators: hand-computed values, population estimators, purity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lpzero_fw.ops.base import EPS, BinaryOp, UnaryOp, Values
from lpzero_fw.ops.binary import OperandMismatch
from lpzero_fw.registry import BINARY_OPS, UNARY_OPS

ROW = [1.0, -2.0, 3.0, 0.0]
K = len(ROW)


def values(rows, n):
    x = torch.tensor(rows, dtype=torch.float32)
    return Values(x, torch.full((x.shape[0], 1), float(n)))


def exact():
    """The whole layer: k == n == 4."""
    return values([ROW], K)


def budget():
    """A uniform sample of 4 values from a layer of n == 8."""
    return values([ROW], 8)


def softmax_ref(n):
    e = [math.exp(v) for v in ROW]
    z = n * sum(e) / K
    return [v / z for v in e]


MEAN = sum(ROW) / K
M2 = sum((v - MEAN) ** 2 for v in ROW) / K  # 13/4


def var_ref(n):
    return M2 * K / (K - 1) * (n - 1) / n


# op name -> (function of n giving the expected row, or a scalar for reductions)
ELEMENTWISE = {
    "log": lambda n: [0.0, math.log(EPS), math.log(3.0), math.log(EPS)],
    "abs_log": lambda n: [math.log(1 + EPS), math.log(2 + EPS), math.log(3 + EPS), math.log(EPS)],
    "abs": lambda n: [1.0, 2.0, 3.0, 0.0],
    "square": lambda n: [1.0, 4.0, 9.0, 0.0],
    "exp": lambda n: [math.exp(v) for v in ROW],
    "normalize": lambda n: [(v - MEAN) / (math.sqrt(var_ref(n)) + EPS) for v in ROW],
    "relu": lambda n: [1.0, 0.0, 3.0, 0.0],
    "invert": lambda n: [1.0, -0.5, 1 / 3, 1 / EPS],
    "softmax": softmax_ref,
    "sigmoid": lambda n: [1 / (1 + math.exp(-v)) for v in ROW],
    "log_softmax": lambda n: [math.log(p) for p in softmax_ref(n)],
    "sqrt": lambda n: [1.0, 0.0, math.sqrt(3.0), 0.0],
    "negate": lambda n: [-1.0, 2.0, -3.0, -0.0],
    "min_max_normalize": lambda n: [(v + 2) / (5 + EPS) for v in ROW],
    "no_op": lambda n: list(ROW),
    "prune": lambda n: list(ROW),
}
REDUCTIONS = {
    "frobenius_norm": lambda n: math.sqrt(n * sum(v * v for v in ROW) / K),
    "normalized_sum": lambda n: MEAN,
    "l1_norm": lambda n: n * sum(abs(v) for v in ROW) / K,
    "mean": lambda n: MEAN,
    "std": lambda n: math.sqrt(var_ref(n)),
}


def test_the_papers_21_unary_ops_are_registered():
    assert set(UNARY_OPS.names()) >= set(ELEMENTWISE) | set(REDUCTIONS)
    assert len(set(ELEMENTWISE) | set(REDUCTIONS)) == 21
    for name in set(ELEMENTWISE) | set(REDUCTIONS):
        cls = UNARY_OPS.get(name)
        assert issubclass(cls, UnaryOp) and cls.name == name and cls.description
        assert cls.reduces == (name in REDUCTIONS)
        assert UNARY_OPS.entry(name).description


@pytest.mark.parametrize("mode", ["exact", "budget"])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_tensor_ops_match_hand_computed_values(name, mode):
    v = exact() if mode == "exact" else budget()
    n = K if mode == "exact" else 8
    out = UNARY_OPS.get(name)()(v)
    assert out.x.shape == v.x.shape and torch.equal(out.n, v.n)
    np.testing.assert_allclose(out.x[0].double().numpy(), ELEMENTWISE[name](n), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["exact", "budget"])
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_match_hand_computed_values(name, mode):
    v = exact() if mode == "exact" else budget()
    n = K if mode == "exact" else 8
    out = UNARY_OPS.get(name)()(v)
    assert out.x.shape == (1, 1) and torch.equal(out.n, torch.ones(1, 1))
    assert out.x.item() == pytest.approx(REDUCTIONS[name](n), rel=1e-6)


def test_exact_mode_estimators_equal_whole_population_values():
    layer = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    v = Values(layer, torch.full((3, 1), 50.0))
    op = lambda name: UNARY_OPS.get(name)()(v).x  # noqa: E731
    torch.testing.assert_close(op("frobenius_norm")[:, 0], torch.linalg.norm(layer, dim=1))
    torch.testing.assert_close(op("l1_norm")[:, 0], layer.abs().sum(dim=1))
    torch.testing.assert_close(op("std")[:, 0], layer.std(dim=1, correction=0))
    torch.testing.assert_close(op("softmax"), torch.softmax(layer, dim=1))
    torch.testing.assert_close(op("log_softmax"), torch.log_softmax(layer, dim=1))


def test_budget_estimators_are_close_to_the_population_on_a_large_sample():
    gen = torch.Generator().manual_seed(1)
    population = torch.randn(1, 200_000, generator=gen) * 2 + 1
    sample = population[:, torch.randperm(200_000, generator=gen)[:20_000]]
    full = Values(population, torch.tensor([[200_000.0]]))
    part = Values(sample, torch.tensor([[200_000.0]]))
    for name in ("frobenius_norm", "l1_norm", "std", "mean"):
        op = UNARY_OPS.get(name)()
        assert op(part).x.item() == pytest.approx(op(full).x.item(), rel=0.05), name


def test_a_mean_cancelled_to_float32_rounding_is_zero_in_any_summation_order():
    """The mean of a LayerNorm's Jacobian is 0 by construction; float32 leaves ~1e-9 of its
    scale with an order-dependent sign, which invert would turn into +-1e9: it is 0, so
    invert(mean) is +1e9 whatever the order."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 100_003, generator=gen) * 2.6e-4
    centred = x - x.mean()  # float32: a residual of rounding size
    orders = [centred, centred.flip(1), centred[:, torch.randperm(100_003, generator=gen)]]
    assert any(float(c.double().mean()) != 0.0 for c in orders)
    for c in orders:
        v = Values(c, torch.tensor([[100_003.0]]))
        for name in ("mean", "normalized_sum"):
            assert UNARY_OPS.get(name)()(v).x.item() == 0.0, name
        assert UNARY_OPS.get("invert")()(UNARY_OPS.get("mean")()(v)).x.item() == pytest.approx(1 / EPS)
    # a small real mean is kept: 1e-5 of the mean |x|, twenty times the bar
    shifted = Values(centred + 1e-5 * float(centred.abs().mean()), torch.tensor([[100_003.0]]))
    assert UNARY_OPS.get("mean")()(shifted).x.item() == pytest.approx(1e-5 * float(centred.abs().mean()), rel=1e-2)


def test_softmax_is_stable_for_large_inputs():
    v = values([[1000.0, 1000.0, -1000.0, 999.0]], 4)
    out = UNARY_OPS.get("softmax")()(v).x
    assert torch.isfinite(out).all() and out.sum().item() == pytest.approx(1.0)
    log_out = UNARY_OPS.get("log_softmax")()(v).x
    assert torch.isfinite(log_out).all()


def test_exp_overflow_gives_inf_rather_than_an_error():
    out = UNARY_OPS.get("exp")()(values([[1000.0]], 1)).x
    assert torch.isinf(out).all()


def test_invert_keeps_the_sign_of_zero():
    out = UNARY_OPS.get("invert")()(values([[0.0, -0.0]], 2)).x[0]
    assert out[0].item() == pytest.approx(1 / EPS) and out[1].item() == pytest.approx(-1 / EPS)


def test_scalars_through_every_op():
    s = Values(torch.tensor([[2.0], [-3.0]]), torch.ones(2, 1))
    for name in UNARY_OPS.names():
        out = UNARY_OPS.get(name)()(s)
        assert out.x.shape == (2, 1) and torch.equal(out.n, torch.ones(2, 1)), name
    assert torch.equal(UNARY_OPS.get("std")()(s).x, torch.zeros(2, 1))
    assert torch.equal(UNARY_OPS.get("softmax")()(s).x, torch.ones(2, 1))
    assert torch.equal(UNARY_OPS.get("frobenius_norm")()(s).x, torch.tensor([[2.0], [3.0]]))


finite_rows = st.lists(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=5, max_size=5), min_size=1, max_size=4
)
any_rows = st.lists(
    st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    min_size=1,
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(rows=any_rows, n=st.sampled_from([3.0, 10.0, 1e6]))
def test_ops_never_modify_inputs_and_are_deterministic(rows, n):
    v = values(rows, n)
    x0, n0 = v.x.clone(), v.n.clone()
    for name in UNARY_OPS.names():
        op = UNARY_OPS.get(name)()
        first = op(v)
        second = op(v)
        assert torch.equal(v.x, x0, ) or torch.allclose(v.x, x0, equal_nan=True), name
        assert torch.equal(v.n, n0), name
        assert torch.allclose(first.x, second.x, equal_nan=True), name
        expected_k = 1 if op.reduces else v.x.shape[1]
        assert first.x.shape == (v.rows, expected_k), name
    for name in BINARY_OPS.names():
        BINARY_OPS.get(name)()(v, v)
        assert torch.allclose(v.x, x0, equal_nan=True) and torch.equal(v.n, n0), name


@settings(max_examples=30, deadline=None)
@given(rows=finite_rows)
def test_ops_are_vectorised_row_by_row(rows):
    v = values(rows, 40.0)
    for name in UNARY_OPS.names():
        op = UNARY_OPS.get(name)()
        together = op(v).x
        apart = torch.cat([op(Values(v.x[i : i + 1], v.n[i : i + 1])).x for i in range(v.rows)])
        torch.testing.assert_close(together, apart, equal_nan=True, msg=name)


# -- binary ------------------------------------------------------------------------------
A_ROWS = [[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]]
B_ROWS = [[2.0, 0.5, -1.0], [1.0, 1.0, 1.0]]


def test_the_papers_4_binary_ops_are_registered():
    assert set(BINARY_OPS.names()) >= {"sum", "difference", "product", "matmul"}
    for name in ("sum", "difference", "product", "matmul"):
        cls = BINARY_OPS.get(name)
        assert issubclass(cls, BinaryOp) and cls.name == name and cls.description
    assert BINARY_OPS.get("matmul").needs_matching_tensors


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sum", [[3.0, 2.5, 2.0], [1.0, 0.0, 5.0]]),
        ("difference", [[-1.0, 1.5, 4.0], [-1.0, -2.0, 3.0]]),
        ("product", [[2.0, 1.0, -3.0], [0.0, -1.0, 4.0]]),
    ],
)
def test_elementwise_binary_ops(name, expected):
    out = BINARY_OPS.get(name)()(values(A_ROWS, 3), values(B_ROWS, 3))
    assert out.x.tolist() == expected and torch.equal(out.n, torch.full((2, 1), 3.0))


def test_matmul_is_the_inner_product_of_flattened_layers():
    out = BINARY_OPS.get("matmul")()(values(A_ROWS, 3), values(B_ROWS, 3))  # exact: k == n
    assert out.x[:, 0].tolist() == pytest.approx([0.0, 3.0]) and torch.equal(out.n, torch.ones(2, 1))
    sampled = BINARY_OPS.get("matmul")()(values(A_ROWS, 30), values(B_ROWS, 30))  # budget: n * mean
    assert sampled.x[:, 0].tolist() == pytest.approx([0.0, 30.0])


@pytest.mark.parametrize("name", ["sum", "difference", "product", "matmul"])
def test_per_layer_scalars_broadcast(name):
    scalar = Values(torch.tensor([[2.0], [-1.0]]), torch.ones(2, 1))
    tensor = values(A_ROWS, 3)
    out = BINARY_OPS.get(name)()(scalar, tensor)
    fn = {"sum": lambda s, t: s + t, "difference": lambda s, t: s - t}.get(name, lambda s, t: s * t)
    expected = [[fn(s, t) for t in row] for s, row in zip([2.0, -1.0], A_ROWS)]
    assert out.x.tolist() == expected and torch.equal(out.n, tensor.n)


@pytest.mark.parametrize("name", ["sum", "difference", "product", "matmul"])
def test_mismatched_tensors_are_rejected(name):
    op = BINARY_OPS.get(name)()
    with pytest.raises(OperandMismatch):
        op(values(A_ROWS, 3), values(B_ROWS, 6))  # same samples, different layer sizes
    with pytest.raises(OperandMismatch):
        op(values(A_ROWS, 3), values(B_ROWS[:1], 3))  # different layer counts
    with pytest.raises(OperandMismatch):
        op(values(A_ROWS, 3), values([r + [0.0] for r in B_ROWS], 3))  # different sample sizes
