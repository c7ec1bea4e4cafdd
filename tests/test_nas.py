"""task=nas: architecture spaces, strategies, constraints, Pareto fronts, regret tables."""
from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
import yaml

from lpzero_fw.registry import ARCH_SPACES, ARCH_STRATEGIES, LPZeroError

SMALL = ["nas.space={n_layer: {low: 2, high: 3}, d_model: [64, 128], d_embed: [128], div_val: [4]}"]


@pytest.fixture(scope="module")
def gpt2(data_root):
    from lpzero_fw.search_spaces.gpt2 import GPT2Space

    return GPT2Space(benchmark=str(data_root / "random_GPT2_wt103"),
                     data={"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0})


@pytest.fixture(scope="module")
def arch(gpt2):
    return ARCH_SPACES.get("gpt2")(gpt2, {})


def test_default_ranges_cover_the_benchmark(gpt2, arch):
    """Every trained benchmark architecture lies inside the default LTS ranges."""
    for arch_id in gpt2.arch_ids()[:40]:
        raw = gpt2.bench.config(arch_id)
        n = raw["n_layer"]
        assert arch.ranges["n_layer"].low <= n <= arch.ranges["n_layer"].high
        assert raw["d_model"] in arch.ranges["d_model"].values()
        assert set(raw["n_head"][:n]) <= set(arch.ranges["n_head"].values())
        assert all(512 <= d <= 2048 for d in raw["d_inner"][:n])
        assert raw["d_embed"] in arch.ranges["d_embed"].values() and raw["div_val"] in arch.ranges["div_val"].values()


def test_samples_and_mutations_stay_in_range_and_count_parameters_exactly(arch):
    from lpzero_fw.search_spaces.models.gpt2_lts import GPT2LTSConfig, model_param_counts

    rng = random.Random(0)
    genome = arch.sample(rng)
    for _ in range(30):
        before = json.dumps(genome, sort_keys=True)
        child = arch.mutate(genome, rng)
        assert json.dumps(genome, sort_keys=True) == before  # the parent is untouched
        assert len(child["n_head"]) == len(child["d_inner"]) == child["n_layer"]
        assert all(h in (2, 4, 8) for h in child["n_head"]) and all(512 <= d <= 2048 for d in child["d_inner"])
        genome = child
    small = arch.smallest()
    model = arch.build(small)
    assert model_param_counts(model)["total"] == arch.param_counts(small)["total"]
    cfg = GPT2LTSConfig.from_dict(arch.model_config(small))
    assert cfg.n_head == tuple(small["n_head"]) and cfg.d_model == small["d_model"]


def test_smallest_is_the_minimum(arch):
    rng = random.Random(1)
    floor = arch.param_counts(arch.smallest())["total"]
    assert all(arch.param_counts(arch.sample(rng))["total"] >= floor for _ in range(200))


@pytest.mark.parametrize("ranges, message", [
    ({"n_layers": [2]}, "unknown nas.space key 'n_layers'"),
    ({"d_model": [64], "n_head": [3]}, "n_head=3 does not divide d_model=64"),
    ({"d_inner": {"low": 900, "high": 600}}, "low <= high"),
    ({"n_layer": [0, 2]}, "must be positive"),
    ({"d_model": "big"}, "must be integers"),
])
def test_bad_space_is_one_line(gpt2, ranges, message):
    with pytest.raises(LPZeroError) as err:
        ARCH_SPACES.get("gpt2")(gpt2, ranges)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_freezing_unread_parameters_keeps_statistics_identical(arch, gpt2):
    """Candidate statistics skip embedding/softmax gradients; every statistic is bit-identical."""
    import torch

    from lpzero_fw.nas.scoring import CandidateSpace
    from lpzero_fw.stats.extract import extract_raw

    genome = arch.sample(random.Random(3))
    batch = gpt2.make_batch(0)
    stats = []
    for freeze in (False, True):
        space = CandidateSpace(arch, freeze_unread=freeze)
        stats.append(extract_raw(space, space.add(genome), batch))
    assert stats[0].keys() == stats[1].keys()
    for symbol in stats[0]:
        assert len(stats[0][symbol]) == len(stats[1][symbol]) > 0
        assert all(torch.equal(a, b) for a, b in zip(stats[0][symbol], stats[1][symbol]))


def test_strategies_respect_feasibility(arch):
    budget = 6_000_000

    def feasible(genome):
        return arch.param_counts(genome)["total"] <= budget

    for name in ("random", "evolution"):
        options = {"population": 4, "tournament": 2} if name == "evolution" else {}
        strategy = ARCH_STRATEGIES.get(name)(arch, 0, feasible, **options)
        for i in range(12):
            genome = strategy.ask()
            assert feasible(genome)
            strategy.tell(genome, float(i))
    with pytest.raises(LPZeroError, match="nas.population"):
        ARCH_STRATEGIES.get("evolution")(arch, 0, feasible, population=1)


def test_pareto_front():
    from lpzero_fw.nas.pareto import pareto_front

    rows = [{"p": 1, "s": 1.0}, {"p": 2, "s": 0.5}, {"p": 2, "s": 3.0}, {"p": 3, "s": 3.0}, {"p": 4, "s": 5.0}]
    front = pareto_front(rows, maximise=["s"], minimise=["p"])
    assert [(r["p"], r["s"]) for r in front] == [(1, 1.0), (2, 3.0), (4, 5.0)]


def test_regret_picks_within_budget():
    from lpzero_fw.nas.table import regret

    quality = np.array([-30.0, -20.0, -25.0, -10.0])  # oriented (-ppl)
    params = np.array([1.0, 2.0, 3.0, 9.0])
    proxy = np.array([0.1, 0.3, 0.9, 5.0])
    assert regret(proxy, quality, params, 3.0) == (5.0, 2, 1)  # picks arch 2 (ppl 25), best is arch 1 (ppl 20)
    assert regret(-params, quality, params, 9.0) == (20.0, 0, 3)
    assert regret(np.array([np.nan, 1.0, np.nan, np.nan]), quality, params, 3.0)[0] == 0.0


def _run(tmp_path, *overrides):
    from lpzero_fw import run

    return run("nas", ["threads=1", "logger=none", "data.batch_size=2", "data.seq_len=16", *overrides],
               output_dir=tmp_path)


@pytest.mark.slow
def test_nas_search_writes_front_plot_and_loadable_config(tmp_path, arch, gpt2):
    from lpzero_fw.api import score
    from lpzero_fw.search_spaces.models.gpt2_lts import GPT2LTSConfig, build_gpt2_lts

    budget = 4_000_000
    result = _run(tmp_path, *SMALL, "nas.n_candidates=6", f"nas.max_params={budget}",
                  "nas.evolution.population=3", "nas.evolution.tournament=2")
    saved = json.loads((tmp_path / "nas.json").read_text())
    assert saved["candidates_scored"] == result["candidates_scored"] == 6
    assert (tmp_path / "pareto.png").stat().st_size > 0
    front, chosen = saved["front"], saved["chosen"]
    assert chosen["proxy_score"] == max(r["proxy_score"] for r in front)
    assert all(r["params"] <= budget and r["latency_ms"] > 0 and r["memory_mb"] > 0 for r in front)
    params = [r["params"] for r in front]
    scores = [r["proxy_score"] for r in front]
    assert params == sorted(params) and scores == sorted(scores)  # a front: more params buy a higher score
    with open(tmp_path / "model_config.yaml") as handle:
        cfg = GPT2LTSConfig.from_dict(yaml.safe_load(handle))
    assert list(cfg.d_inner) == chosen["config"]["d_inner"]
    # the score in nas.json is the score of that model through the public API (same statistics path)
    model = build_gpt2_lts(cfg, seed=0)
    batch = gpt2.make_batch(0)
    assert score(model, batch, "lpzero_gpt2") == pytest.approx(chosen["proxy_score"], rel=1e-4)


def test_workers_score_exactly_like_one_process(tmp_path):
    """Proposals come in steps of nas.batch; 2 worker processes give the same candidates,
    scores and choice as scoring in the task's own process."""
    common = [*SMALL, "nas.n_candidates=6", "nas.max_params=4e6", "nas.batch=3",
              "nas.evolution.population=3", "nas.evolution.tournament=2"]
    one = _run(tmp_path / "one", *common, "nas.workers=1")
    two = _run(tmp_path / "two", *common, "nas.workers=2")
    assert two["workers"] == 2 and one["candidates_scored"] == two["candidates_scored"] == 6
    def scored(run):  # latency and memory are measured, so they vary from run to run
        rows = csv.DictReader(open(tmp_path / run / "candidates.csv"))
        return [(r["config"], r["params"], r["proxy_score"]) for r in rows]

    assert scored("one") == scored("two")
    assert one["chosen"]["config"] == two["chosen"]["config"]
    assert one["chosen"]["proxy_score"] == two["chosen"]["proxy_score"]


@pytest.mark.parametrize("override, message", [
    ("nas.max_params=-5", "nas.max_params=-5 must be a positive number or null"),
    ("nas.max_params=1000", "nas.max_params=1000 is below the smallest architecture"),
    ("nas.max_latency_ms=0.001", "nas.max_latency_ms=0.001 is below the smallest architecture"),
    ("nas.space={heads: [2]}", "unknown nas.space key 'heads'"),
    ("nas.strategy=annealing", "unknown architecture strategy 'annealing'"),
])
def test_bad_constraints_are_one_line(tmp_path, override, message):
    with pytest.raises(LPZeroError) as err:
        _run(tmp_path, *([] if override.startswith("nas.space") else SMALL), "nas.n_candidates=2", override)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "nas.json").exists()


def test_bad_constraint_on_the_command_line_exits_2(tmp_path):
    from tests.test_cli import run_app

    result = run_app("task=nas", "nas.max_params=-1", "threads=1", "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: nas.max_params=-1 must be a positive number or null"
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_table_mode_grades_picks_on_heldout_archs(tmp_path, stats_cache):
    result = _run(tmp_path, "nas.candidates=benchmark", "nas.holdout=0.05", "nas.budgets=3",
                  "nas.baselines=[grad_norm,snip]", "nas.baseline_archs=3", "proxy=lpzero_gpt2",
                  f"cache.dir={stats_cache}")
    assert result["n_heldout"] == 10 and result["n_search_pool"] == 190 and result["n_baseline_selection"] == 3
    tau = result["baseline_search_pool_tau"]
    assert set(tau) == {"grad_norm", "snip"} and result["baseline"] == max(tau, key=tau.get)
    assert set(result["summary"]) == {"proxy", "nonembedding_params", "params", f"baseline:{result['baseline']}"}
    for row in result["budgets"]:
        for label in result["summary"]:
            assert row[label]["regret"] >= 0
    assert result["budgets"][-1]["n_archs"] == 10
    assert (tmp_path / "regret.md").read_text().count("\n| ") >= 5


def test_transformer_xl_space_covers_its_benchmark_and_counts_exactly(data_root):
    """The Transformer-XL architecture space: its default ranges hold the benchmark's
    architectures, candidates count parameters like the built model, and the chosen config
    is one the Transformer-XL builder reads."""
    import random

    from lpzero_fw.search_spaces.models.mem_transformer import TransformerXLConfig, model_param_counts
    from lpzero_fw.search_spaces.transformer_xl import TransformerXLSpace

    txl = TransformerXLSpace(benchmark=str(data_root / "random_TransXL_wt103"),
                             data={"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0})
    space = ARCH_SPACES.get("transformer_xl")(txl, {})
    for arch_id in txl.arch_ids()[:40]:
        raw = txl.bench.config(arch_id)
        for key, r in space.ranges.items():
            values = raw[key] if isinstance(raw[key], list) else [raw[key]]
            assert all(r.low <= v <= r.high and (r.choices is None or v in r.choices) for v in values), (arch_id, key)
    small = ARCH_SPACES.get("transformer_xl")(txl, {"d_model": [64], "d_embed": [128], "div_val": [4], "n_layer": [5]})
    rng = random.Random(0)
    for _ in range(2):
        genome = small.sample(rng)
        counts = small.param_counts(genome)
        built = model_param_counts(small.build(genome))
        assert counts["total"] == built["total"] and counts["nonembedding"] == built["nonembedding"]
    config = TransformerXLConfig.from_dict(small.model_config(genome))
    assert list(config.d_inner) == genome["d_inner"] and len(config.n_head) == genome["n_layer"]


def test_llama_space_spans_its_table_counts_exactly_and_searches(tmp_path):
    """LoNAS-style LLaMA space: ranges from the table's rows, meta-device counts equal the
    built model's, and task=nas writes a chosen config the table's builder reads."""
    import random

    from lpzero_fw.search_spaces.llama import LlamaSpace
    from lpzero_fw.search_spaces.models.hf_taps import build_causal_lm

    rows = [{"id": f"a{i}", "hidden_size": 32, "vocab_size": 512, "max_position_embeddings": 64,
             "num_hidden_layers": depth, "num_attention_heads": heads, "intermediate_size": inner, "valid_ppl": 90.0 + i}
            for i, (depth, heads, inner) in enumerate([(1, [2], [64]), (2, [1, 4], [64, 128]), (3, [2, 2, 4], [128] * 3)])]
    table = tmp_path / "tiny.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    space = ARCH_SPACES.get("llama")(LlamaSpace(benchmark=str(table)), {})
    assert {k: r.spec() for k, r in space.ranges.items()} == {
        "num_hidden_layers": [1, 2, 3], "num_attention_heads": [1, 2, 4], "intermediate_size": [64, 128]}
    genome = space.sample(random.Random(3))
    model = space.build(genome)
    assert space.param_counts(genome)["total"] == sum(p.numel() for p in model.parameters())
    result = _run(tmp_path / "run", "search_space=llama", f"search_space.benchmark={table}", "nas.n_candidates=4",
                  "nas.evolution.population=2", "nas.evolution.tournament=1", "nas.max_params=1e6")
    chosen = json.loads((tmp_path / "run" / "chosen_config.json").read_text())
    chosen.pop("id")
    assert len(chosen["intermediate_size"]) == chosen["num_hidden_layers"] == result["chosen"]["config"]["num_hidden_layers"]
    assert sum(p.numel() for p in build_causal_lm("llama", chosen).parameters()) == result["chosen"]["params"]


def test_any_causal_lm_family_searches_the_fields_its_table_varies(tmp_path):
    """search_space=hf_causal_lm (here GPT-2 from transformers): genes are the fields the rows
    vary, in the family's own names; per-layer lists stay per layer; nas.space adds a field."""
    from lpzero_fw.search_spaces.hf_causal_lm import HFCausalLMSpace
    from lpzero_fw.search_spaces.models.hf_taps import build_causal_lm

    rows = [{"id": f"g{i}", "n_embd": 32, "vocab_size": 512, "n_positions": 64, "n_layer": depth,
             "n_head": heads, "n_inner": 64, "valid_ppl": 80.0 + i}
            for i, (depth, heads) in enumerate([(1, [2]), (2, [1, 4]), (3, [2, 2, 4])])]
    table = tmp_path / "gpt2.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = HFCausalLMSpace(benchmark=str(table), family="gpt2")
    space = ARCH_SPACES.get("hf_causal_lm")(base, {})
    assert {k: r.spec() for k, r in space.ranges.items()} == {"n_layer": [1, 2, 3], "n_head": [1, 2, 4]}
    assert space.per_layer == ("n_head",)
    rng = random.Random(0)
    for _ in range(5):
        genome = space.mutate(space.sample(rng), rng)
        assert len(genome["n_head"]) == genome["n_layer"]
        model = space.build(genome)
        assert space.param_counts(genome)["total"] == sum(p.numel() for p in model.parameters())
        assert [layer.attn.num_heads for layer in model.lm.transformer.h] == genome["n_head"]

    wider = ARCH_SPACES.get("hf_causal_lm")(base, {"n_inner": [64, 256]})
    assert wider.ranges["n_inner"].spec() == [64, 256] and "n_inner" not in wider.per_layer
    with pytest.raises(LPZeroError, match="unknown nas.space key 'not_a_field'"):
        ARCH_SPACES.get("hf_causal_lm")(base, {"not_a_field": [1]})
    with pytest.raises(LPZeroError, match="n_head=3 does not divide n_embd=32"):
        ARCH_SPACES.get("hf_causal_lm")(base, {"n_head": [2, 3]})

    result = _run(tmp_path / "run", "search_space=hf_causal_lm", "search_space.family=gpt2",
                  f"search_space.benchmark={table}", "nas.n_candidates=4", "nas.evolution.population=2",
                  "nas.evolution.tournament=1", "nas.max_params=1e6")
    chosen = json.loads((tmp_path / "run" / "chosen_config.json").read_text())
    chosen.pop("id")
    assert len(chosen["n_head"]) == chosen["n_layer"]
    assert sum(p.numel() for p in build_causal_lm("gpt2", chosen).parameters()) == result["chosen"]["params"]
