"""Paper presets (conf/experiment) and the paper's figures (tasks/figures.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lpzero_fw.tasks.figures import proxies_vs_params, swept_key, sweep_figures

CONF = Path(__file__).resolve().parents[1] / "conf"


def cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose("config", overrides=list(overrides))


PAPER = {"n_archs": 50, "n_unary": 2, "layers": ["mean"], "ops": "reference"}
BUDGET = {"iterations": 1000, "population": 80, "tournament_ratio": 0.1, "crossover_prob": 0.5, "mutation_prob": 0.5}


@pytest.mark.parametrize("preset", ["paper_gpt2", "paper_flexibert", "ablation_strategy", "ablation_population",
                                    "ablation_unary"])
def test_paper_presets_are_the_paper(preset):
    c = cfg(f"experiment={preset}")
    assert {k: (list(v) if k == "layers" else v) for k, v in c.search.items() if k in PAPER} == PAPER
    assert {k: c.strategy[k] for k in BUDGET} == BUDGET and c.strategy.name == "evolution"
    assert c.data.name == "wikitext2" and c.pruning.rules in ("all", "core")  # every built-in rule
    if preset == "paper_gpt2":
        assert c.search_space.name == "gpt2" and (c.data.batch_size, c.data.seq_len) == (16, 192)
    else:  # the paper's ablations sit at the FlexiBERT level, on the reference's models
        assert c.search_space.name == "flexibert" and c.search_space.reference_quirks
        assert c.search_space.objective == "hidden_sum"


@pytest.mark.parametrize("preset,space", [("lpzero_fw_gpt2", "gpt2"), ("lpzero_fw_flexibert", "flexibert")])
def test_our_extended_settings_have_their_own_presets(preset, space):
    c = cfg(f"experiment={preset}")
    assert c.search_space.name == space and c.search.ops == "lpzero_fw"
    assert list(c.search.layers) == ["mean", "sum"] and c.data.name == "synthetic"


def test_default_config_keeps_our_operator_set():
    assert cfg().search.ops == "lpzero_fw"


# ------------------------------------------------------------------------------ figures
def job(overrides, fitness_curve, tau, rho):
    history = [{"iteration": str(i + 1), "best_fitness": str(f)} for i, f in enumerate(fitness_curve)]
    result = {"fitness": fitness_curve[-1], "full": {"kendall_tau": tau, "spearman_rho": rho, "n_archs": 500}}
    return {"job": "0", "overrides": overrides, "history": history, "result": result}


def test_unary_sweep_gives_table5(tmp_path):
    jobs = [job(["search.n_unary=1", "seed=1"], [0.1, 0.3], 0.40, 0.60),
            job(["search.n_unary=1", "seed=2"], [0.2, 0.5], 0.50, 0.70),
            job(["search.n_unary=2", "seed=1"], [0.3, 0.6], 0.55, 0.75)]
    assert swept_key(jobs) == "search.n_unary"
    written = sweep_figures(tmp_path, jobs)
    assert {p.name for p in written} == {"fig_unary.png", "table5_unary.md"}
    table = (tmp_path / "table5_unary.md").read_text()
    assert "| 1 | 2 | 0.450 ± 0.050 | 0.650 ± 0.050 | 0.400 ± 0.100 |" in table
    assert "| 2 | 1 | 0.550 ± 0.000 |" in table


def test_strategy_and_population_sweeps_get_their_figures(tmp_path):
    variants = [job([f"+variant={v}", "seed=1"], [0.1, 0.2, 0.4], 0.3, 0.5) for v in ("evolution_rps", "random_rps")]
    assert [p.name for p in sweep_figures(tmp_path, variants)] == ["fig6_strategy.png"]
    pops = [job([f"strategy.population={p}", "seed=1"], [0.1, 0.2], 0.3, 0.5) for p in (80, 200)]
    assert [p.name for p in sweep_figures(tmp_path, pops)] == ["fig7_population.png"]
    assert (tmp_path / "fig7_population.png").stat().st_size > 1000
    # a sweep of only seeds, or of two keys at once, is none of the paper's figures
    assert sweep_figures(tmp_path, [job(["seed=1"], [0.1], 0.1, 0.1), job(["seed=2"], [0.1], 0.1, 0.1)]) == []


def test_fig1_draws_proxies_against_params(tmp_path):
    rows = [{"name": "num_parameters", "kendall_tau": 0.58, "n_archs": 200},
            {"name": "snip", "kendall_tau": 0.7, "n_archs": 200},
            {"name": "lpzero_gpt2@reference", "kendall_tau": -0.89, "n_archs": 200}]
    path = proxies_vs_params(tmp_path / "fig1.png", rows, {"lpzero_gpt2@reference"})
    assert path.stat().st_size > 1000
    assert proxies_vs_params(tmp_path / "none.png", rows[:1]) is None


def test_ablation_variants_compose_with_the_paper_preset():
    c = cfg("experiment=ablation_strategy", "+variant=random_rps")
    assert c.strategy.name == "random" and "tournament_ratio" not in c.strategy
    assert c.search_space.name == "flexibert" and c.search.ops == "reference"
