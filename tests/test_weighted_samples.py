"""Weighted layer samples: exact tails, a value-stratified middle, and ops that honour the weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lpzero_fw.formula.parse import parse
from lpzero_fw.ops.base import UnaryOp, Values
from lpzero_fw.proxy.evaluate import Evaluator, evaluate
from lpzero_fw.ops.binary import OperandMismatch
from lpzero_fw.registry import BINARY_OPS, UNARY_OPS
from lpzero_fw.stats.extract import _KINDS, _LayerSampler, _tail, _value_order, sample_layers, sampler, tail_size


def _layer(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen) * torch.randn(n, generator=gen).exp()  # heavy tails


def test_the_tails_are_kept_exactly_and_the_weights_are_shares():
    k, n = 256, 100_000
    x = _layer(n).reshape(100, 1000).t()  # non-contiguous, as hooks see permuted heads
    s = sampler(k)(x)
    t = tail_size(k)
    flat = x.reshape(-1)
    assert s.values.shape == s.weights.shape == (k,) and s.numel == n and s.lead == 1000
    assert float(s.weights.sum()) == pytest.approx(1.0, abs=1e-6) and bool((s.weights >= 0).all())
    for tail in (flat.topk(t).values, (-flat).topk(t).values.neg(), flat[flat.abs().topk(t, largest=False).indices]):
        held = torch.isin(tail, s.values[: 3 * t])
        assert bool(held.all())  # every tail value is in the row, exactly
    tails = s.weights[: 3 * t]
    assert bool(((tails == 0) | torch.isclose(tails, torch.tensor(1 / n))).all())
    # the weighted mean is the layer's; its extremes are the layer's
    assert float(s.values.double() @ s.weights.double()) == pytest.approx(float(flat.double().mean()), rel=1e-5, abs=1e-7)
    assert float(s.values.min()) == float(flat.min()) and float(s.values.max()) == float(flat.max())


def _brute_tail(flat: torch.Tensor, t: int, key) -> torch.Tensor:
    """The t best positions by (key descending, position ascending), by a full stable sort."""
    return torch.sort(key(flat), descending=True, stable=True).indices[:t].sort().values


@pytest.mark.parametrize("n", [300, 256 * 64, 256 * 64 + 1, 100_003])
@pytest.mark.parametrize("layer", ["heavy", "zeros", "ties"])
def test_the_block_preselected_tails_are_the_exact_tails(n, layer):
    """The block pre-selection returns the same positions as sorting the whole layer, also
    when thousands of values tie (causal attention zeros, ReLU outputs, rounded weights)."""
    x = _layer(n, 5)
    if layer == "zeros":
        x = torch.where(torch.rand(n, generator=torch.Generator().manual_seed(6)) < 0.5, 0.0, x.abs())
    elif layer == "ties":
        x = (x * 2).round() / 2
    for t in (1, 64):
        for kind in _KINDS:
            got = _tail(x, t, kind).sort().values
            assert torch.equal(got, _brute_tail(x, t, kind.key)), (layer, n, t)


def test_the_middle_is_stratified_by_value():
    """The uniform part is evenly spaced order statistics of a larger uniform draw: its
    deciles sit where the layer's are, far closer than a plain sample of the same size."""
    k, n = 2048, 400_000
    x = torch.rand(n, generator=torch.Generator().manual_seed(1))
    s = sampler(k)(x)
    middle = s.values[3 * tail_size(k):].sort().values
    deciles = torch.quantile(middle, torch.linspace(0.1, 0.9, 9))
    assert float((deciles - torch.linspace(0.1, 0.9, 9)).abs().max()) < 4e-3  # a plain sample of 2048: ~1e-2


def test_each_input_of_a_group_stratifies_its_own_block():
    """W and G share positions, yet each is stratified by value: the middle's slots split
    into one block per input, block ``i`` evenly spaced order statistics of input ``i`` (a
    gradient's values nearest zero, which ``invert`` amplifies, are no longer a plain
    sample's luck)."""
    k, n = 2048, 400_000
    gen = torch.Generator().manual_seed(4)
    w, g = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    middle = slice(3 * tail_size(k) * 2, k)
    samples = sample_layers([w, g], k)
    for i, s in enumerate(samples):
        block = s.values[middle].chunk(2)[i].sort().values
        deciles = torch.quantile(block, torch.linspace(0.1, 0.9, 9))
        assert float((deciles - torch.linspace(0.1, 0.9, 9)).abs().max()) < 1e-2, i  # a plain sample: ~3e-2


def test_a_group_is_sampled_at_shared_positions():
    """W and G: the second input's values sit where the first's do (its tails are in both rows)."""
    w = _layer(50_000, 2)
    g = _layer(50_000, 3)
    sw, sg = sample_layers([w, g], 512)
    assert torch.equal(sw.weights, sg.weights)
    for p in (int(g.argmax()), int(g.argmin()), int(g.abs().argmin()), int(w.argmax())):
        slot = int(((sg.values == g[p]) & (sw.values == w[p])).nonzero()[0])  # both inputs' values of position p
        assert float(sw.weights[slot]) == pytest.approx(1 / 50_000)
    sa, sb = sample_layers([w, 2 * w], 512)  # aligned: element by element the same positions
    torch.testing.assert_close(sb.values, 2 * sa.values, rtol=1e-6, atol=1e-6)


def _zero_share(sample, value_rows=None) -> float:
    rows = value_rows if value_rows is not None else [sample.values]
    zero = torch.stack([r == 0 for r in rows]).all(dim=0)
    return float(sample.weights.double()[zero].sum())


@pytest.mark.parametrize("zeros", [0.995, 0.5, 30 / 400_000, 500 / 400_000])
def test_exact_zeros_weigh_their_exact_share(zeros):
    """An embedding gradient is 99.5% exact zeros (rows no token used), causal attention half
    zeros: the weights give the zeros their exact share of the layer, also when so few that
    only the nearest-zero tail holds them; the mean stays exact and the zeros stay 0."""
    n = 400_000
    x = _layer(n, 7)
    x[torch.randperm(n, generator=torch.Generator().manual_seed(8))[: round(zeros * n)]] = 0.0
    s = sampler(2048)(x)
    assert _zero_share(s) == pytest.approx(float((x == 0).double().mean()), rel=1e-6)
    assert float(s.values.double() @ s.weights.double()) == pytest.approx(float(x.double().mean()), rel=1e-5, abs=1e-7)
    assert float(s.weights.sum()) == pytest.approx(1.0, abs=1e-6)


def test_a_group_weighs_each_joint_zero_pattern_exactly():
    """W and G share weights, so the strata are joint: where G alone, W alone and both are 0."""
    n = 300_000
    gen = torch.Generator().manual_seed(9)
    w, g = _layer(n, 10), _layer(n, 11)
    g[torch.rand(n, generator=gen) < 0.9] = 0.0  # unused embedding rows
    w[torch.rand(n, generator=gen) < 0.2] = 0.0  # zero-initialised biases
    sw, sg = sample_layers([w, g], 2048)
    for rows, exact in (([sg.values], g == 0), ([sw.values], w == 0), ([sw.values, sg.values], (w == 0) & (g == 0))):
        assert _zero_share(sw, rows) == pytest.approx(float(exact.double().mean()), rel=1e-6)
    for s, x in ((sw, w), (sg, g)):
        assert float(s.values.double() @ s.weights.double()) == pytest.approx(float(x.double().mean()), rel=1e-5, abs=1e-7)


def test_micro_batch_pieces_count_the_zeros_of_the_whole_layer():
    n = 200_000
    x = _layer(n, 12)
    x[: n // 3] = 0.0
    whole = sampler(2048)(x.reshape(8, -1))
    keep = _LayerSampler(2048, 0)
    for part, rows in enumerate(x.reshape(8, -1).split(3)):
        keep.add([rows], part * 3 * (n // 8), n, rows.shape[0])
    (pieced,) = keep.result()
    assert _zero_share(pieced) == pytest.approx(_zero_share(whole), rel=1e-6) == pytest.approx(1 / 3, rel=1e-4)


def test_a_layer_within_the_budget_is_kept_whole():
    x = _layer(300)
    s = sampler(512)(x)
    assert torch.equal(s.values[:300], x) and torch.equal(s.weights[300:], torch.zeros(212))
    assert torch.allclose(s.weights[:300], torch.full((300,), 1 / 300))


# -- ops on weighted values -----------------------------------------------------------------
def _exact_and_padded():
    """The same three layers as exact Values and as weighted Values padded with weightless copies."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 40, generator=gen)
    exact = Values(x, torch.full((3, 1), 40.0))
    pad = x[:, torch.arange(24) % 7]
    w = torch.cat([torch.full((3, 40), 1 / 40), torch.zeros(3, 24)], dim=1)
    return exact, Values(torch.cat([x, pad], dim=1), torch.full((3, 1), 40.0), None, w)


@pytest.mark.parametrize("name", [n for n in UNARY_OPS.names() if UNARY_OPS.get(n).op_set == "lpzero_fw"])
def test_every_op_honours_the_weights(name):
    """A weighted sample holding every value once (and weightless copies) gives the exact
    result: an op that ignored the weights would count the copies."""
    exact, padded = _exact_and_padded()
    op = UNARY_OPS.get(name)()
    a, b = op(exact), op(padded)
    torch.testing.assert_close(b.row_means(), a.row_means(), rtol=1e-5, atol=1e-6)
    if not op.reduces:
        torch.testing.assert_close(b.x[:, :40], a.x, rtol=1e-5, atol=1e-6)
        assert b.w is padded.w  # shape-keeping ops carry the weights


@pytest.mark.parametrize("name", ["ref.std", "ref.normalize", "ref.l1_norm"])
def test_reference_ops_honour_the_weights(name):
    exact, padded = _exact_and_padded()
    op = UNARY_OPS.get(name)()
    torch.testing.assert_close(op(padded).row_means(), op(exact).row_means(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sum", "difference", "product", "matmul"])
def test_binary_ops_honour_the_weights_and_check_alignment(name):
    exact, padded = _exact_and_padded()
    op = BINARY_OPS.get(name)()
    square = lambda v: v.like(v.x.square())  # noqa: E731
    torch.testing.assert_close(op(padded, square(padded)).row_means(), op(exact, square(exact)).row_means(),
                               rtol=1e-5, atol=1e-6)
    shuffled = Values(padded.x, padded.n, None, padded.w.flip(1))  # other positions, same sizes
    with pytest.raises(OperandMismatch):
        op(padded, shuffled)


@pytest.fixture
def old_style_op():
    """A plugin op written before sample weights: it builds ``Values(x, v.n)``."""
    @UNARY_OPS.register("oldplugin.cube", description="x ** 3 (test plugin)")
    class Cube(UnaryOp):
        def __call__(self, v):
            return Values(v.x.pow(3), v.n)

    yield "oldplugin.cube"
    UNARY_OPS._entries.pop("oldplugin.cube", None)


def test_an_op_that_drops_the_weights_is_scored_with_them(old_style_op):
    """Both evaluators give it its operand's weights, so it scores like ``v.like(...)``:
    weightless padding copies must not count."""
    exact, padded = _exact_and_padded()
    for formula in (f"product({old_style_op}(W), G)", f"sum({old_style_op}(W), G)"):
        proxy = parse(formula)
        want = evaluate(proxy, {"W": [exact], "G": [exact]})
        assert evaluate(proxy, {"W": [padded], "G": [padded]}) == pytest.approx(want, rel=1e-5)
        assert Evaluator().score(proxy, "a", {"W": [padded], "G": [padded]}) == pytest.approx(want, rel=1e-5)


def test_the_value_order_is_a_stable_argsort_with_the_held_positions_last():
    """The int64 sort of (value bits, position) orders negatives, ties and zeros as a
    stable argsort does, and puts the positions a tail holds after every other."""
    gen = torch.Generator().manual_seed(9)
    x = (torch.randn(5_000, generator=gen) * 4).round().numpy()  # negatives, ties, many zeros
    x[x == 0] = 0.0  # +0.0 only (the bit order puts -0.0 just below +0.0)
    free = torch.rand(5_000, generator=gen).numpy() > 0.05
    order = _value_order(x, free)
    expected = np.concatenate([np.flatnonzero(free)[np.argsort(x[free], kind="stable")], np.flatnonzero(~free)])
    assert np.array_equal(order, expected)
