"""Transformer-XL search space: exact counts, the model's maths, the six inputs, baselines,
the family guard and the LTS configs whose cutoffs run past n_token."""
from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from lpzero_fw.baselines.runner import score_baselines
from lpzero_fw.data.lts import LTSBenchmark, benchmark_family
from lpzero_fw.registry import BASELINES, SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.models.gpt2_lts import (
    GPT2LTSConfig,
    analytic_param_counts as gpt2_counts,
    build_gpt2_lts,
    clean_cutoffs,
    model_param_counts as gpt2_model_counts,
)
from lpzero_fw.search_spaces.models.mem_transformer import (
    RelPartialLearnableAttention,
    TransformerXLConfig,
    analytic_param_counts,
    build_transformer_xl,
    model_param_counts,
)
from lpzero_fw.stats.extract import extract_raw
from tests.test_cli import run_app
from tests.test_reliability import HYDRA_FILES, SENTINEL, SMALL

TXL, GPT2 = "random_TransXL_wt103", "random_GPT2_wt103"
DATA = {"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0}
SYMBOLS = ("A", "J", "G", "H", "W", "S")


@pytest.fixture(scope="module")
def space(data_root):
    return SEARCH_SPACES.get("transformer_xl")(benchmark=str(data_root / TXL), data=DATA)


@pytest.fixture(scope="module")
def small(space):
    """The smallest arch, and the smallest with div_val 1 and d_embed == d_model (no
    projection: the input Jacobian must still be defined with frozen word tables)."""
    by_size = sorted(space.arch_ids(), key=lambda a: space.param_counts(a)["total"])
    plain = next(a for a in by_size if space.config(a).div_val == 1 and space.config(a).d_embed == space.config(a).d_model)
    return by_size[0], plain


# ------------------------------------------------------------------------- counts
def test_param_counts_equal_summary_and_training_counts_for_all_200(space):
    summary = space.bench.params_summary()
    ids = space.arch_ids()
    assert len(ids) == 200
    wrong = []
    for arch_id in ids:
        raw = space.bench.config(arch_id)
        want = {k: int(v) for k, v in summary[arch_id].items()}
        want.update(n_all_param=raw["n_all_param"], n_nonemb_param=raw["n_nonemb_param"])
        if space.param_counts(arch_id) != want:
            wrong.append(arch_id)
    assert not wrong, f"{len(wrong)}/200 differ, e.g. {wrong[:3]}"


def test_built_models_have_the_analytic_counts(space, small):
    for arch_id in small:
        model = space.build_model(arch_id)
        assert model_param_counts(model) == space.param_counts(arch_id)
        assert sum(p.numel() for p in model.parameters()) == space.bench.params(arch_id)["total"]


def test_cached_word_tables_build_bit_identical_models(space, small):
    for arch_id in (*small, small[0]):  # the last build reuses the first one's tables
        built, fresh = space.build_model(arch_id).state_dict(), build_transformer_xl(space.config(arch_id)).state_dict()
        assert built.keys() == fresh.keys() and all(torch.equal(built[k], fresh[k]) for k in built)
    model = space.build_model(small[0])
    with torch.no_grad():
        model.word_emb.emb_layers[0].weight.abs_()  # synflow does this: the cache must not change
    assert torch.equal(space.build_model(small[0]).word_emb.emb_layers[0].weight,
                       build_transformer_xl(space.config(small[0])).word_emb.emb_layers[0].weight)


# ---------------------------------------------------------------------- the model
def _tiny(**overrides) -> TransformerXLConfig:
    raw = dict(n_layer=2, n_token=100, d_model=16, d_embed=16, n_head=[2, 4], d_head=-1, d_inner=[24, 40],
               div_val=2, cutoffs=[20, 40, 80], tie_projs=[False, True, True, True], tie_weight=True)
    raw.update(overrides)
    return TransformerXLConfig.from_dict(raw)


@pytest.mark.parametrize("div_val", [1, 2])
def test_adaptive_softmax_is_a_distribution(div_val):
    model = build_transformer_xl(_tiny(div_val=div_val), seed=1).double()
    hidden = torch.randn(3, 16, dtype=torch.float64)
    targets = torch.arange(100)
    nll = model.crit(hidden.repeat_interleave(100, 0), targets.repeat(3), model.word_emb, reduction="none")
    total = (-nll).exp().view(3, 100).sum(dim=1)
    assert torch.allclose(total, torch.ones(3, dtype=torch.float64), atol=1e-10)


def test_relative_attention_equals_the_direct_formula():
    torch.manual_seed(0)
    attn = RelPartialLearnableAttention(d_model=8, n_head=2, d_head=3, pre_lnorm=True, std=0.5).double()
    w, t = torch.randn(2, 5, 8, dtype=torch.float64), 5
    r = torch.randn(t, 8, dtype=torch.float64)  # row m encodes distance t - 1 - m
    out = attn(w, r)
    q, k, v = (z.view(2, t, 2, 3) for z in attn.qkv_net(attn.layer_norm(w)).chunk(3, dim=-1))
    rk = attn.r_net(r).view(t, 2, 3)
    scores = torch.full((2, 2, t, t), float("-inf"), dtype=torch.float64)
    for i in range(t):
        for j in range(i + 1):
            content = ((q[:, i] + attn.r_w_bias) * k[:, j]).sum(-1)
            position = ((q[:, i] + attn.r_r_bias) * rk[t - 1 - (i - j)]).sum(-1)
            scores[:, :, i, j] = (content + position) / math.sqrt(3)
    context = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v).reshape(2, t, 6)
    assert torch.allclose(out, w + attn.o_net(context), atol=1e-10)


def test_model_is_causal_and_pre_lnorm_changes_it():
    model = build_transformer_xl(_tiny(), seed=0).eval()
    ids = torch.randint(0, 100, (1, 8))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 100
    with torch.no_grad():
        a, b = model(ids), model(changed)
        assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6) and not torch.allclose(a[:, -1], b[:, -1])
        pre = build_transformer_xl(_tiny(pre_lnorm=True), seed=0).eval()
        assert not torch.allclose(pre(ids), a)


def test_unsupported_attn_type_is_one_line():
    with pytest.raises(LPZeroError, match="attn_type=1 is not supported; use 0"):
        _tiny(attn_type=1)


# --------------------------------------------------------------- inputs and baselines
def test_six_inputs_are_distinct_and_non_empty(space, small):
    batch = space.make_batch()
    for arch_id in small:
        raw = extract_raw(space, arch_id, batch, symbols=SYMBOLS)
        n_layer = space.config(arch_id).n_layer
        assert [len(raw[s]) for s in SYMBOLS] == [n_layer, n_layer, 5 * n_layer, n_layer, 5 * n_layer, n_layer]
        firsts = {}
        for symbol in SYMBOLS:
            assert all(t.numel() > 0 and torch.isfinite(t).all() for t in raw[symbol]), symbol
            assert any(t.abs().sum() > 0 for t in raw[symbol]), f"{symbol} is all zero on {arch_id}"
            firsts[symbol] = raw[symbol][0].reshape(-1)
        for i, a in enumerate(SYMBOLS):
            for b in SYMBOLS[i + 1:]:
                same = firsts[a].shape == firsts[b].shape and torch.equal(firsts[a], firsts[b])
                assert not same, f"{a} and {b} are the same tensor on {arch_id}"


def test_word_grads_do_not_change_statistics(data_root, space, small):
    with_grads = SEARCH_SPACES.get("transformer_xl")(benchmark=str(data_root / TXL), data=DATA, word_grads=True)
    batch = space.make_batch()
    for arch_id in small:
        fast, full = extract_raw(space, arch_id, batch), extract_raw(with_grads, arch_id, batch)
        for symbol in SYMBOLS:
            for x, y in zip(fast[symbol], full[symbol], strict=True):
                assert torch.allclose(x, y, rtol=1e-5, atol=1e-8), symbol


def test_every_baseline_runs_on_transformer_xl(space, small):
    names = [n for n in BASELINES.names() if BASELINES.get(n).applies_to(space.family)]
    assert "lpzero_flexibert_reference" not in names  # declared FlexiBERT-only
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a baseline that fails warns and gives nan
        scores = score_baselines(space, small[0], space.make_batch(), names)
    assert set(scores) == set(names)
    assert all(math.isfinite(v) for v in scores.values()), scores
    counts = space.param_counts(small[0])
    assert scores["num_parameters"] == counts["total"]
    assert scores["nonembedding_parameters"] == counts["nonembedding"]


def test_seq_len_above_the_segment_is_refused(data_root):
    sp = SEARCH_SPACES.get("transformer_xl")(benchmark=str(data_root / TXL), data={**DATA, "seq_len": 500})
    with pytest.raises(LPZeroError, match="seq_len=500 exceeds the models' 192-token segments"):
        sp.make_batch()


# ------------------------------------------------------------------- family guard
def test_families_of_the_shipped_benchmarks(data_root):
    assert benchmark_family(data_root / TXL) == "transformer_xl"
    assert benchmark_family(data_root / GPT2) == "gpt2"
    assert benchmark_family(data_root / "data" / "BERT_benchmark.json") == "flexibert"


def _renamed_copy(src: Path, dst: Path, n: int = 3, params: bool = True) -> Path:
    """A folder named neutrally with ``n`` of ``src``'s configs (symlinked) and its summaries."""
    dst.mkdir()
    for i in range(n):
        (dst / f"config_{i}").mkdir()
        (dst / f"config_{i}" / "j0").symlink_to(src / f"config_{i}" / "j0")
    for name in ("ppl_summary.yaml", "params_summary.yaml") if params else ("ppl_summary.yaml",):
        shutil.copy(src / name, dst / name)
    return dst


def test_family_is_read_from_the_published_counts_not_the_name(tmp_path, data_root):
    assert benchmark_family(_renamed_copy(data_root / TXL, tmp_path / "mine_a")) == "transformer_xl"
    assert benchmark_family(_renamed_copy(data_root / GPT2, tmp_path / "mine_b")) == "gpt2"
    # without counts the training run's experiment_name (nv_xformer_xl) still tells
    assert benchmark_family(_renamed_copy(data_root / TXL, tmp_path / "mine_c", params=False)) == "transformer_xl"


@pytest.mark.parametrize(
    "name, bench, found",
    [
        ("gpt2", TXL, "transformer_xl"),
        ("transformer_xl", GPT2, "gpt2"),
        ("gpt2", "data/BERT_benchmark.json", "flexibert"),
        ("transformer_xl", "data/BERT_benchmark.json", "flexibert"),
        ("flexibert", GPT2, "gpt2"),
        ("flexibert", TXL, "transformer_xl"),
    ],
)
def test_every_space_refuses_another_family(data_root, name, bench, found):
    path = data_root / bench
    with pytest.raises(LPZeroError) as info:
        SEARCH_SPACES.get(name)(benchmark=str(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and f"holds {found} models" in message and f"use search_space={found}" in message


def test_family_guard_on_the_command_line(tmp_path, data_root):
    run = tmp_path / "run"
    run.mkdir()
    sentinel = run / "result.json"
    sentinel.write_text(SENTINEL)
    result = run_app(*SMALL, f"hydra.run.dir={run}", f"cache.dir={tmp_path / 'stats'}",
                     "search_space=gpt2", f"search_space.benchmark={TXL}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert TXL in lines[0] and "transformer_xl" in lines[0] and "use search_space=transformer_xl" in lines[0]
    assert sentinel.read_text() == SENTINEL
    assert sorted(p.name for p in run.iterdir() if p.name not in HYDRA_FILES) == ["result.json"]
    assert not list((tmp_path / "stats").glob("*.safetensors"))


def test_lts_reader_refuses_on_request_only(data_root):
    LTSBenchmark(data_root / TXL)  # a plain reader reads any folder
    with pytest.raises(LPZeroError, match="use search_space=transformer_xl"):
        LTSBenchmark(data_root / TXL, family="gpt2")


# ---------------------------------------------- LTS configs with cutoffs past n_token
LTS_LOG = dict(n_layer=2, n_token=50264, d_model=64, d_embed=-1, n_head=[2, 4], d_inner=[96, 128], div_val=4,
               cutoffs=[59997, 99997, 639997, 50264], tie_projs=[False, True, True, True], tie_weight=True,
               tgt_len=16)


def test_cutoffs_past_n_token_are_trimmed_like_the_lts_code():
    assert clean_cutoffs([59997, 99997, 639997, 50264], 50264) == [50264]
    assert clean_cutoffs([19997, 39997, 199997, 50264], 50264) == [19997, 39997, 50264]
    assert clean_cutoffs([10, 200], 100) == [10, 100]


def test_trimmed_config_builds_with_lts_counts_for_both_families():
    n, d = 50264, 64
    # one cluster with its table (d_embed = d_model) and, div_val > 1, its projection;
    # the head cluster is untied (tie_projs[0] false): its own output projection; no clusters
    embedding, softmax = n * d + d * d, n + d * d
    layers = [(2, 96), (4, 128)]
    gpt2_cfg = GPT2LTSConfig.from_dict(LTS_LOG)
    assert gpt2_cfg.cutoffs == (n,) and gpt2_cfg.d_embed == d and gpt2_cfg.tie_projs == (False,)
    nonemb = sum(4 * d * d + 4 * d + 2 * d * i + i + d for _, i in layers) + (4 * 2 + 2) * d
    assert gpt2_counts(gpt2_cfg) == gpt2_model_counts(build_gpt2_lts(gpt2_cfg))
    assert gpt2_counts(gpt2_cfg)["total"] == embedding + 16 * d + nonemb + softmax
    txl_cfg = TransformerXLConfig.from_dict(LTS_LOG)
    assert txl_cfg.cutoffs == (n,) and txl_cfg.d_embed == d
    model = build_transformer_xl(txl_cfg)
    assert analytic_param_counts(txl_cfg) == model_param_counts(model)
    nonemb = sum(5 * d * d + 2 * d + 2 * d * i + i + d + 2 * d + 2 * d for _, i in layers)
    assert analytic_param_counts(txl_cfg)["total"] == embedding + nonemb + softmax
    ids = torch.randint(0, n, (2, 9))
    loss = model(input_ids=ids[:, :-1], labels=ids[:, 1:])
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - math.log(n)) < 1.0


# ------------------------------------------------------------------------ end to end
def test_search_and_rank_on_a_transformer_xl_folder(tmp_path, data_root, space):
    """The main job on 6 small archs of an LTS Transformer-XL folder: the result contract,
    the statistics cached, and the printed formula re-ranked (warm) to the same τ."""
    by_size = sorted(space.arch_ids(), key=lambda a: space.param_counts(a)["total"])[:6]
    folder = tmp_path / "txl_small"
    folder.mkdir()
    for arch_id in by_size:
        config, job = arch_id.rsplit("_", 1)
        (folder / config).mkdir(exist_ok=True)
        (folder / config / job).symlink_to(data_root / TXL / config / job)
    for name in ("ppl_summary.yaml", "params_summary.yaml"):
        shutil.copy(data_root / TXL / name, folder / name)
    args = ["search_space=transformer_xl", f"search_space.benchmark={folder}", "logger=none", "threads=1",
            "strategy.iterations=8", "strategy.population=6", "search.n_archs=6", "search.holdout=0", "data.seq_len=32",
            f"cache.dir={tmp_path / 'cache'}"]
    import json

    r = run_app(*args, f"hydra.run.dir={tmp_path / 'search'}")
    assert r.returncode == 0, r.stderr[-3000:]
    first = json.loads((tmp_path / "search" / "result.json").read_text())
    assert first["full"]["n_archs"] == 6 and math.isfinite(first["full"]["kendall_tau"])
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 6
    ranked = run_app("task=rank", f"proxy='{first['best_proxy']}'", *args, f"hydra.run.dir={tmp_path / 'rank'}")
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    row = json.loads((tmp_path / "rank" / "ranking.json").read_text())[0]
    assert row["kendall_tau"] == pytest.approx(first["full"]["kendall_tau"], abs=1e-9)
