"""Storage precision of the statistics cache and sampling inside the hooks."""
from __future__ import annotations

import warnings

import pytest
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.stats import cache as cache_mod
from lpzero_fw.stats.cache import StatsStore
from lpzero_fw.stats.extract import LayerSample, _positions, extract_raw, sample_indices, summarize

TINY = [1.234567e-7, -9.87654e-8, 1.0e-7, 3.33333e-8, -2.5e-6, 7.77777e-9]


def _three_digits(a: float, b: float) -> bool:
    return f"{a:.2e}" == f"{b:.2e}"


@pytest.fixture(scope="module")
def space(data_root):
    from lpzero_fw.search_spaces.gpt2 import GPT2Space

    folder = data_root / "random_GPT2_wt103"
    if not folder.is_dir():
        pytest.skip(f"GPT-2 benchmark not found under {data_root}")
    return GPT2Space(benchmark=str(folder), data={"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0})


@pytest.fixture(scope="module")
def smallest(space):
    return min(space.arch_ids(), key=lambda a: space.param_counts(a)["total"])


def _tiny_stats():
    x = torch.tensor([TINY])
    return {"G": [Values(x, torch.tensor([[1e6]]))]}


def test_a_1e7_gradient_survives_the_cache_round_trip(space, tmp_path):
    store = StatsStore(space, directory=tmp_path)  # defaults: what users get
    store._write("tiny", cache_mod._round_trip(_tiny_stats(), cache_mod.DTYPES[store.dtype]))
    back = StatsStore(space, directory=tmp_path)._read("tiny")
    for a, b in zip(TINY, back["G"][0].x[0].tolist()):
        assert _three_digits(a, b), (a, b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_the_lossy_dtypes_would_not_keep_them(dtype):
    """The test above can fail: half-precision storage loses these values."""
    lossy = torch.tensor(TINY).to(cache_mod.DTYPES[dtype]).float().tolist()
    assert not all(_three_digits(a, b) for a, b in zip(TINY, lossy))


def test_real_statistics_round_trip_bit_exactly(space, smallest, tmp_path):
    cold = StatsStore(space, directory=tmp_path, budget=128).get(smallest)
    warm = StatsStore(space, directory=tmp_path, budget=128)._read(smallest)
    assert warm is not None and set(warm) == set(cold)
    for symbol in cold:
        for a, b in zip(cold[symbol], warm[symbol]):
            assert torch.equal(a.x, b.x) and torch.equal(a.n, b.n) and torch.equal(a.w, b.w), symbol
    g = cold["G"][0].x
    assert g.dtype == torch.float32 and (g.abs() < 1e-4).any()  # small values are there, unflushed


def test_old_format_files_are_never_read(space, smallest, tmp_path, monkeypatch):
    store = StatsStore(space, directory=tmp_path, budget=16)
    key = store.key(smallest)
    monkeypatch.setattr(cache_mod, "EXTRACTOR_VERSION", 1)
    assert store.key(smallest) != key  # the version is part of the key
    monkeypatch.undo()
    store._write("a", _tiny_stats())
    monkeypatch.setattr(cache_mod, "FILE_FORMAT", "lpzero_fw-stats-0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store._read("a") is None
    assert any("format" in str(w.message) for w in caught)


def test_hook_samples_equal_samples_of_whole_layers(space, smallest):
    batch = space.make_batch()
    whole = extract_raw(space, smallest, batch)
    hooked = extract_raw(space, smallest, batch, budget=64)
    assert set(whole) == set(hooked) == {"A", "G", "H", "J", "S", "W"}
    assert all(isinstance(t, LayerSample) for layers in hooked.values() for t in layers)
    a, b = summarize(whole, 64), summarize(hooked, 64)
    for symbol in a:  # (pinned means may differ in the last bit: summation order)
        torch.testing.assert_close(a[symbol][0].x, b[symbol][0].x, rtol=1e-6, atol=1e-12), symbol
        assert torch.equal(a[symbol][0].n, b[symbol][0].n), symbol
    # exact mode keeps every value of every layer (k == n)
    exact = summarize(whole, None)
    for symbol, layers in whole.items():
        assert [c.x.shape[1] for c in exact[symbol]] == [t.numel() for t in layers]
        assert all(int(c.n.item()) == c.x.shape[1] for c in exact[symbol])


@pytest.mark.parametrize("n,k", [(10, 4), (100, 100), (5000, 64), (10_000_000, 2048), (3, 8)])
def test_sample_indices(n, k):
    index = sample_indices(n, k, 0)
    assert index.shape == (k,) and index.dtype == torch.int64
    assert bool((index[1:] >= index[:-1]).all()) and 0 <= int(index[0]) and int(index[-1]) < n
    if k <= n:
        assert index.unique().numel() == k  # without replacement
    _positions.cache_clear()
    assert torch.equal(index, sample_indices(n, k, 0))  # deterministic
    assert not torch.equal(index, sample_indices(n, k, 1)) or k >= n


def test_large_layer_samples_are_uniform():
    """The fast sampler's positions are spread like a uniform sample (not clustered)."""
    n, k = 1_000_000, 2048
    index = sample_indices(n, k, 3).double()
    counts = torch.histc(index, bins=8, min=0, max=n)
    assert counts.min() > k / 8 * 0.75 and counts.max() < k / 8 * 1.25


def test_the_sample_and_the_whole_layer_agree_on_cancelled_means(space, smallest):
    """J and G behind LayerNorms have structurally zero means: 0 in both versions (the
    sample's mean is pinned to the layer's), so invert(mean(J)) scores alike."""
    raw = extract_raw(space, smallest, space.make_batch())
    exact, sampled = summarize(raw, None), summarize(raw, 64)
    for symbol in ("J", "G"):
        whole = torch.cat([c.row_means() for c in exact[symbol]])
        assert torch.equal(whole, torch.zeros_like(whole)), symbol
        assert torch.equal(sampled[symbol][0].row_means(), whole), symbol
    a_means = torch.cat([c.row_means() for c in exact["A"]])
    assert bool((a_means.abs() > 0).all())  # real means stay
