"""The Python API: score() on transformers models, run() on any task."""
from __future__ import annotations

import math

import pytest
import torch

from lpzero_fw.registry import LPZeroError

FORMULA = "sum(square(negate(H)), log_softmax(frobenius_norm(A)))"


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=32,
                                      bos_token_id=0, eos_token_id=0))


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=3, hidden_size=64, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=96, vocab_size=500,
                                        bos_token_id=0, eos_token_id=0, pad_token_id=0))


IDS = torch.randint(0, 500, (2, 12), generator=torch.Generator().manual_seed(0))


def test_package_exports_lazily():
    import lpzero_fw

    assert set(lpzero_fw.__all__) >= {"score", "run"}
    from lpzero_fw import run, score

    assert callable(score) and callable(run)


@pytest.mark.parametrize("build, layers, linears_per_layer", [(_gpt2, 2, 4), (_llama, 3, 7)])
def test_generic_taps_expose_all_six_inputs(build, layers, linears_per_layer):
    from lpzero_fw.api import ModelSpace
    from lpzero_fw.stats.extract import extract_raw

    space = ModelSpace(build(), IDS)
    raw = extract_raw(space, ModelSpace.ARCH_ID, space.batch)
    assert {s: len(v) for s, v in raw.items()} == {
        "A": layers, "H": layers, "S": layers, "J": layers, "W": layers * linears_per_layer,
        "G": layers * linears_per_layer}
    assert raw["H"][0].shape == (2, 4, 12, 16) and raw["S"][0].shape == (2, 4, 12, 12)
    probs = raw["S"][0]
    assert torch.allclose(probs.sum(-1), torch.ones(2, 4, 12), atol=1e-5)  # real attention probabilities
    assert torch.all(probs[..., 0, 1:] == 0)  # causal
    assert any(g.abs().sum() > 0 for g in raw["G"])


@pytest.mark.parametrize("build", [_gpt2, _llama])
def test_score_leaves_the_model_untouched(build):
    from lpzero_fw import score

    model = build()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    values = [score(model, IDS, proxy) for proxy in ("lpzero_gpt2", FORMULA, "snip", FORMULA)]
    assert all(math.isfinite(v) for v in values)
    assert values[1] == values[3]  # deterministic
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_score_differs_between_architectures():
    from lpzero_fw import score

    assert score(_gpt2(), IDS, "lpzero_gpt2") != score(_llama(), IDS, "lpzero_gpt2")


def test_score_matches_the_search_path(data_root):
    """A benchmark model scores exactly what the search's cached statistics give."""
    from lpzero_fw import score
    from lpzero_fw.proxy.evaluate import evaluate
    from lpzero_fw.formula.parse import parse
    from lpzero_fw.search_spaces.gpt2 import GPT2Space
    from lpzero_fw.stats.cache import StatsStore

    space = GPT2Space(benchmark=str(data_root / "random_GPT2_wt103"),
                      data={"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0})
    arch_id = "config_0_j0"
    store = StatsStore(space, enabled=False)
    expected = evaluate(parse(FORMULA), store.get(arch_id))
    assert score(space.build_model(arch_id), space.make_batch(0), FORMULA) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("batch, proxy, message", [
    ({"tokens": IDS}, "lpzero_gpt2", "batch must be a tensor of token ids"),
    (IDS.float(), "lpzero_gpt2", "must be an integer tensor"),
    (IDS, "no_such_proxy", "unknown proxy 'no_such_proxy'"),
    (IDS, "sum(square(Q), W)", "Q"),
])
def test_score_bad_input_is_one_line(batch, proxy, message):
    from lpzero_fw import score

    with pytest.raises(LPZeroError) as err:
        score(_gpt2(), batch, proxy)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_score_needs_a_loss():
    from transformers import GPT2Config, GPT2Model

    from lpzero_fw import score

    model = GPT2Model(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=16))
    with pytest.raises(LPZeroError, match="returned no loss"):
        score(model, IDS % 100, "lpzero_gpt2")


def test_run_returns_the_task_result(tmp_path):
    from lpzero_fw import run

    rows = run("list", ["logger=none"], output_dir=tmp_path)
    assert any(r["registry"] == "arch_strategies" and r["name"] == "evolution" for r in rows)
    with pytest.raises(LPZeroError, match="nas.max_params=-3"):
        run("nas", ["nas.max_params=-3", "logger=none"], output_dir=tmp_path)
    with pytest.raises(LPZeroError, match="search_space"):
        run("nas", ["search_space=nope"], output_dir=tmp_path)
