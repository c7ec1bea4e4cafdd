"""GPT-2 (LTS) search space: reader, exact parameter counts, models, taps, batches."""
from __future__ import annotations

import math
import shutil

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from lpzero_fw.data.lts import LTSBenchmark
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.gpt2 import GPT2Space
from lpzero_fw.search_spaces.models.gpt2_lts import (
    GPT2LTSConfig,
    analytic_param_counts,
    build_gpt2_lts,
    clean_cutoffs,
    model_param_counts,
)

SYNTHETIC = {"name": "synthetic", "batch_size": 2, "seq_len": 32, "seed": 0}


@pytest.fixture(scope="module")
def folder(data_root):
    path = data_root / "random_GPT2_wt103"
    if not path.is_dir():
        pytest.skip(f"benchmark folder {path} is not available")
    return path


@pytest.fixture(scope="module")
def space(folder):
    return GPT2Space(benchmark=str(folder), data=SYNTHETIC)


@pytest.fixture(scope="module")
def by_size(space):
    """Arch ids sorted by total parameters: smallest, median, largest."""
    totals = {a: space.param_counts(a)["total"] for a in space.arch_ids()}
    order = sorted(totals, key=totals.get)
    return {"smallest": order[0], "median": order[len(order) // 2], "largest": order[-1]}


# ------------------------------------------------------------------------------- reader
def test_ids_are_naturally_sorted_and_complete(space):
    ids = space.arch_ids()
    assert len(ids) == 200 and len(set(ids)) == 200
    assert ids[:3] == ["config_0_j0", "config_0_j1", "config_0_j2"]
    assert ids.index("config_2_j0") < ids.index("config_10_j0")  # natural, not lexicographic
    assert ids[-1] == "config_19_j9"


def test_registered_and_oriented(space):
    assert SEARCH_SPACES.get("gpt2") is GPT2Space
    assert GPT2Space.higher_is_better is False and GPT2Space.metric_name == "valid_ppl"
    assert space.ground_truth("config_0_j0") == pytest.approx(45.022968707221274)
    assert space.quality("config_0_j0") == -space.ground_truth("config_0_j0")
    # more parameters train to a lower perplexity on this benchmark: quality must agree
    ids = space.arch_ids()
    attn = [space.param_counts(a)["Attn"] for a in ids]
    quality = [space.quality(a) for a in ids]
    from scipy.stats import spearmanr

    assert spearmanr(attn, quality)[0] > 0.9


def _copy(folder, tmp_path, configs=("config_0", "config_1")):
    dst = tmp_path / "random_GPT2_copy"
    dst.mkdir()
    for name in ("ppl_summary.yaml", "params_summary.yaml"):
        shutil.copy(folder / name, dst / name)
    for name in configs:
        shutil.copytree(folder / name, dst / name)
    return dst


def test_any_lts_folder_loads(folder, tmp_path):
    bench = LTSBenchmark(_copy(folder, tmp_path))
    assert len(bench.arch_ids()) == 20 and bench.config("config_1_j3")["n_layer"] > 0
    space = GPT2Space(benchmark=str(bench.folder), data=SYNTHETIC)
    assert space.describe()["benchmark"] == "random_GPT2_copy"


@pytest.mark.parametrize("victim", ["ppl_summary.yaml", "params_summary.yaml", "config_0/j0/model_config.yaml"])
def test_missing_file_names_it(folder, tmp_path, victim):
    dst = _copy(folder, tmp_path)
    (dst / victim).unlink()
    bench = LTSBenchmark(dst)
    with pytest.raises(LPZeroError, match=victim.split("/")[-1]) as err:
        bench.valid_ppl("config_0_j0")
        bench.params("config_0_j0")
        bench.config("config_0_j0")
    assert "\n" not in str(err.value) and "missing" in str(err.value)


@pytest.mark.parametrize(
    "victim,content,match",
    [
        ("ppl_summary.yaml", "config_0_j0: [unclosed", "not valid YAML"),
        ("ppl_summary.yaml", "- a list\n", "must hold a YAML mapping"),
        ("config_0/j0/model_config.yaml", "n_layer: {", "not valid YAML"),
    ],
)
def test_corrupt_file_names_it(folder, tmp_path, victim, content, match):
    dst = _copy(folder, tmp_path)
    (dst / victim).write_text(content)
    bench = LTSBenchmark(dst)
    with pytest.raises(LPZeroError, match=match) as err:
        bench.valid_ppl("config_0_j0")
        bench.config("config_0_j0")
    assert victim.split("/")[-1] in str(err.value) and "\n" not in str(err.value)


def test_missing_entry_and_unknown_id(folder, tmp_path):
    dst = _copy(folder, tmp_path)
    (dst / "ppl_summary.yaml").write_text("config_0_j1:\n  valid_ppl: 30.0\n")
    bench = LTSBenchmark(dst)
    with pytest.raises(LPZeroError, match="no entry for 'config_0_j0'"):
        bench.valid_ppl("config_0_j0")
    with pytest.raises(LPZeroError, match="unknown architecture 'config_99_j0'"):
        bench.valid_ppl("config_99_j0")
    with pytest.raises(LPZeroError, match="does not exist"):
        LTSBenchmark(tmp_path / "nope")


# ------------------------------------------------------------------------- param counts
def test_cutoffs_are_cleaned_like_the_reference():
    assert clean_cutoffs([19997, 39997, 199997, 50264], 50264) == [19997, 39997, 50264]
    assert clean_cutoffs([], 100) == [100]
    assert clean_cutoffs([10, 20], 100) == [10, 20, 100]
    assert clean_cutoffs([10, 200], 100) == [10, 100]


def test_analytic_counts_equal_params_summary_for_all_archs(space):
    summary = space.bench.params_summary()
    for arch_id in space.arch_ids():
        assert space.param_counts(arch_id) == {k: int(v) for k, v in summary[arch_id].items()}, arch_id


def test_total_by_hand_for_one_arch(space):
    # config_0_j0: d=128, d_embed=256, div_val=4, L=5, clusters [0,19997) [19997,39997) [39997,50264)
    c = space.param_counts("config_0_j0")
    ada = 19997 * 256 + 128 * 256 + 20000 * 64 + 128 * 64 + 10267 * 16 + 128 * 16 + 192 * 128
    softmax = 2 * (256 + 1) + 50264 + 128 * 256  # cluster weight/bias, output biases, untied head projection
    assert c["AdaEmb"] == ada and c["total"] == ada + c["nonembedding"] + softmax


@pytest.mark.parametrize("which", ["smallest", "median", "largest"])
def test_built_model_counts_equal_analytic(space, by_size, which):
    arch_id = by_size[which]
    model = space.build_model(arch_id)
    assert model_param_counts(model) == space.param_counts(arch_id)


TINY = {
    "n_layer": 2, "n_token": 1000, "d_model": 16, "d_embed": 32, "n_head": [2, 4], "d_inner": [24, 40],
    "div_val": 2, "cutoffs": [300, 600, 5000], "tie_weight": True, "tie_projs": [False, True, True],
    "tgt_len": 8,
}
VARIANTS = [
    {},
    {"div_val": 1},
    {"div_val": 1, "d_embed": 16},
    {"div_val": 1, "d_embed": -1, "tie_projs": [True, True, True]},
    {"tie_weight": False},
    {"tie_weight": False, "div_val": 1, "tie_projs": [False, False, True]},
    {"tie_projs": [False, False, False]},
    {"cutoffs": []},
]


@pytest.mark.parametrize("change", VARIANTS)
def test_tiny_variants_counts_and_normalised_softmax(change):
    cfg = GPT2LTSConfig.from_dict({**TINY, **change})
    model = build_gpt2_lts(cfg, seed=1)
    assert model_param_counts(model) == analytic_param_counts(cfg)
    # the adaptive softmax is a distribution over the whole vocabulary
    hidden = torch.randn(1, cfg.d_model).expand(cfg.n_token, -1)
    every = torch.arange(cfg.n_token)
    with torch.no_grad():
        mean = model.lm_head(hidden, every, model.wte)
        per_token = model.lm_head(hidden, every, model.wte, reduction="none")
        shuffled = torch.randperm(cfg.n_token)
        again = model.lm_head(hidden, every[shuffled], model.wte, reduction="none")
    assert per_token.mean().item() == pytest.approx(mean.item(), rel=1e-5)
    torch.testing.assert_close(again, per_token[shuffled])  # per-token order is kept
    assert torch.exp(-per_token.double()).sum().item() == pytest.approx(1.0, abs=1e-4)


def test_bad_config_is_one_line_error():
    with pytest.raises(LPZeroError, match="not divisible by n_head=3"):
        GPT2LTSConfig.from_dict({**TINY, "n_head": [3, 4]})
    with pytest.raises(LPZeroError, match="missing key 'd_model'"):
        GPT2LTSConfig.from_dict({k: v for k, v in TINY.items() if k != "d_model"})


# ---------------------------------------------------------------------- forward/backward
@pytest.mark.parametrize("which", ["smallest", "largest"])
def test_forward_backward_gives_finite_grads_everywhere(space, by_size, which):
    model = space.build_model(by_size[which])
    batch = space.make_batch(0)
    loss = model(**batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert 5.0 < loss.item() < 25.0
    loss.backward()
    frozen = {id(m.weight) for m in model.wte.emb_layers}  # word_grads=false (default): word tables
    for name, p in model.named_parameters():
        if id(p) in frozen:
            assert not p.requires_grad and p.grad is None, name
            continue
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("arch_id", ["config_0_j0", "config_0_j4", "config_4_j9"])  # div_val 4; d_embed = d_model; largest
def test_word_grads_and_table_cache_do_not_change_statistics(folder, arch_id):
    """The default space (frozen word tables, tables drawn once per geometry) extracts what a
    plain build with every gradient extracts; the cached tables give bit-identical models."""
    from lpzero_fw.stats.extract import extract_raw

    data = {"name": "synthetic", "batch_size": 2, "seq_len": 32, "seed": 0}
    fast = GPT2Space(benchmark=str(folder), data=data)
    full = GPT2Space(benchmark=str(folder), data=data, word_grads=True)
    fast.build_model(arch_id, seed=2)  # draws the tables and caches them
    a, b = fast.build_model(arch_id, seed=2), build_gpt2_lts(fast.config(arch_id), seed=2)  # copy vs draw
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    batch = fast.make_batch()
    x, y = extract_raw(fast, arch_id, batch), extract_raw(full, arch_id, batch)
    assert set(x) == set(y) == {"A", "J", "G", "H", "W", "S"}
    for symbol in x:
        for u, v in zip(x[symbol], y[symbol], strict=True):
            assert torch.allclose(u, v, rtol=1e-5, atol=1e-8), symbol


def test_build_is_deterministic_and_keeps_global_rng(space, by_size):
    arch_id = by_size["smallest"]
    state = torch.get_rng_state()
    a, b = space.build_model(arch_id, seed=3), space.build_model(arch_id, seed=3)
    c = space.build_model(arch_id, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["h.0.attn.c_attn.weight"], pc["h.0.attn.c_attn.weight"])


def test_initialisation_follows_the_reference(space):
    model = space.build_model("config_0_j1")  # 16 layers, d_model 512: large samples
    n_layer = len(model.h)
    assert model.h[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.h[0].mlp.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(2 * n_layer), rel=0.02)
    assert model.wte.emb_layers[0].weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.wte.emb_projs[0].std().item() == pytest.approx(0.01, rel=0.02)
    assert model.h[0].attn.c_attn.bias.abs().sum() == 0 and torch.all(model.ln_f.weight == 1)


# ---------------------------------------------------------------------------------- taps
def test_taps_shapes_and_semantics(space, by_size):
    arch_id = by_size["smallest"]
    cfg = space.config(arch_id)
    model = space.build_model(arch_id)
    taps = space.taps(model)
    n = cfg.n_layer
    assert [len(taps.activations), len(taps.heads), len(taps.softmax), len(taps.blocks)] == [n] * 4
    assert len(taps.linears) == 4 * n and all(isinstance(m, Conv1D) for m in taps.linears)
    seen: dict[str, list] = {"A": [], "H": [], "S": [], "J": []}
    hooks = []
    for key, modules in (("A", taps.activations), ("H", taps.heads), ("S", taps.softmax)):
        for m in modules:
            hooks.append(m.register_forward_hook(lambda _m, _i, out, key=key: seen[key].append(out)))
    for m in taps.blocks:
        hooks.append(m.register_forward_hook(lambda _m, inp, _o: seen["J"].append(inp[0])))
    batch = space.make_batch(0)
    bsz, tokens = batch["input_ids"].shape
    model(**batch)
    for h in hooks:
        h.remove()
    for layer in range(n):
        heads, d_head = cfg.n_head[layer], cfg.d_model // cfg.n_head[layer]
        assert seen["A"][layer].shape == (bsz, tokens, cfg.d_inner[layer])
        assert seen["H"][layer].shape == (bsz, heads, tokens, d_head)
        probs = seen["S"][layer]
        assert probs.shape == (bsz, heads, tokens, tokens)
        torch.testing.assert_close(probs.sum(-1), torch.ones(bsz, heads, tokens))
        assert probs.triu(1).abs().max() == 0  # causal
        assert seen["J"][layer].shape == (bsz, tokens, cfg.d_model)
    with pytest.raises(LPZeroError, match="GPT2Space"):
        space.taps(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------ batches
def test_make_batch_shifts_labels_and_is_deterministic(space):
    a, b, c = space.make_batch(0), space.make_batch(0), space.make_batch(1)
    assert set(a) == {"input_ids", "labels"}
    assert a["input_ids"].shape == a["labels"].shape == (2, 32)
    assert torch.equal(a["input_ids"][:, 1:], a["labels"][:, :-1])
    assert torch.equal(a["input_ids"], b["input_ids"]) and not torch.equal(a["input_ids"], c["input_ids"])


def test_seq_len_above_positions(folder):
    long = {**SYNTHETIC, "seq_len": 200}
    with pytest.raises(LPZeroError, match="exceeds the models' 192 positions"):
        GPT2Space(benchmark=str(folder), data=long).make_batch(0)
    wide = GPT2Space(benchmark=str(folder), data=long, max_positions=256)
    assert wide.make_batch(0)["input_ids"].shape == (2, 200)
    counts = wide.param_counts("config_0_j0")
    assert counts["AdaEmb"] == 6631088 + 64 * 128
    assert model_param_counts(wide.build_model("config_0_j0")) == counts
    with pytest.raises(LPZeroError, match="max_positions"):
        GPT2Space(benchmark=str(folder), data=SYNTHETIC, max_positions=0)


def test_describe_has_statistics_settings(space):
    d = space.describe()
    assert d == {"name": "gpt2", "benchmark": "random_GPT2_wt103", "max_positions": None, "data": SYNTHETIC}


def test_real_text_batch(folder, corpus_root):
    path = corpus_root / "wikitext-2" / "valid.txt"
    if not path.is_file():
        pytest.skip("corpus not available")
    data = {"name": "wikitext2", "batch_size": 2, "seq_len": 24, "seed": 0, "path": str(path)}
    space = GPT2Space(benchmark=str(folder), data=data)
    batch = space.make_batch(0)
    assert batch["input_ids"].shape == (2, 24) and int(batch["input_ids"].max()) < 50257
    assert torch.isfinite(space.build_model("config_0_j0")(**batch))
