"""cache.micro_batches: one pass in equal pieces of the batch gives the whole batch's statistics."""
from __future__ import annotations

import pytest
import torch

from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.stats.cache import StatsStore
from lpzero_fw.stats.extract import LayerSample, extract_raw, summarize

DATA = {"name": "synthetic", "batch_size": 4, "seq_len": 16, "seed": 0}


@pytest.fixture(scope="module", params=["gpt2", "transformer_xl", "flexibert"])
def space_and_arch(request, data_root):
    folder = {"gpt2": "random_GPT2_wt103", "transformer_xl": "random_TransXL_wt103",
              "flexibert": "data/BERT_benchmark.json"}[request.param]
    space = SEARCH_SPACES.get(request.param)(benchmark=str(data_root / folder), data=DATA)
    return space, space.arch_ids()[3]


@pytest.mark.parametrize("budget", [64, None])
def test_micro_batches_give_the_whole_batch_statistics(space_and_arch, budget):
    """Whole layers: per-sample inputs (A, H, S, J) are the same, W too, and G, accumulated
    over the pieces, equals the whole batch's gradient to float rounding. Samples: the
    pieces' sample is the sample of the pieces' whole layers, and its weighted means are
    the whole batch's (slots may differ: a tail chosen among values that tie to float
    rounding, as G's and J's do when summed in another order, may hold another of them)."""
    space, arch = space_and_arch
    batch = space.make_batch()
    whole = extract_raw(space, arch, batch, budget=budget)
    for parts in (2, 4):
        pieces = extract_raw(space, arch, batch, budget=budget, micro_batches=parts)
        assert pieces.keys() == whole.keys()
        if budget is not None:
            of_pieces = summarize(extract_raw(space, arch, batch, micro_batches=parts), budget)
            for symbol, (chunk,) in summarize(pieces, budget).items():
                torch.testing.assert_close(chunk.x, of_pieces[symbol][0].x, rtol=1e-5, atol=1e-9, msg=symbol)
                assert torch.equal(chunk.w, of_pieces[symbol][0].w), symbol
        for symbol, layers in whole.items():
            assert len(pieces[symbol]) == len(layers), symbol
            # backward quantities sum in another order: ~1e-5 of the largest seen at 1 thread
            tolerance = 1e-4 if symbol in ("G", "J") else 1e-5
            for got, want in zip(pieces[symbol], layers):
                if isinstance(want, LayerSample):
                    assert (got.numel, got.lead) == (want.numel, want.lead), symbol
                    mean = lambda s: float(s.values.double() @ s.weights.double())  # noqa: E731
                    scale = float(want.values.abs().max()) or 1.0
                    assert abs(mean(got) - mean(want)) <= tolerance * scale, (symbol, parts)
                    continue
                assert got.shape == want.shape, symbol
                scale = float(want.abs().max()) or 1.0
                assert float((got - want).abs().max()) <= tolerance * scale, (symbol, parts)


def test_micro_batches_must_divide_the_batch(space_and_arch, tmp_path):
    space, arch = space_and_arch
    with pytest.raises(LPZeroError, match="cache.micro_batches=3 must be a positive integer that divides the batch size 4"):
        extract_raw(space, arch, space.make_batch(), micro_batches=3)
    with pytest.raises(LPZeroError, match="cache.micro_batches=3 must be"):  # before any pass
        StatsStore(space, directory=tmp_path, micro_batches=3).batch
    one, two = (StatsStore(space, directory=tmp_path, micro_batches=m) for m in (1, 2))
    assert one.key(arch) != two.key(arch)  # not the same bits: their own cache files
    assert one.plain_pass and not two.plain_pass  # task=rank's single pass cannot stand in for two


def test_a_per_sample_input_must_lead_with_the_batch(space_and_arch, monkeypatch):
    """An input whose tensors do not start with the batch dimension cannot be split: a clear error."""
    from lpzero_fw.stats import extractors

    space, arch = space_and_arch
    original = extractors.Activations._recorder

    def transposed(self, index):
        hook = original(self, index)
        return lambda module, inputs, output: hook(module, inputs, output.transpose(0, -1))

    monkeypatch.setattr(extractors.Activations, "_recorder", transposed)
    with pytest.raises(RuntimeError, match="does not lead with the micro-batch's 2 rows"):
        extract_raw(space, arch, space.make_batch(), budget=64, micro_batches=2)
