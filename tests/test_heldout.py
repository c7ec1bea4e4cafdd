"""Held-out generalisation: the split, what a search may touch, bad holdouts, controls, seed spread."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from lpzero_fw import metrics
from lpzero_fw.baselines import ensemble
from lpzero_fw.proxy import fitness
from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.gpt2 import GPT2Space
from lpzero_fw.tasks import search
from tests.test_cli import REPO, run_app

SMALL = ["strategy.iterations=10", "strategy.population=8", "search.n_archs=10", "logger=none", "threads=1",
         "data.batch_size=2", "data.seq_len=32"]


@pytest.fixture(scope="module")
def gpt2(data_root):
    return GPT2Space(str(data_root / "random_GPT2_wt103"))


@pytest.fixture(scope="module")
def gpt2_40(gpt2_40_benchmark):
    """A real 40-arch LTS folder (config_0..3 of the GPT-2 benchmark): cheap to extract."""
    return GPT2Space(str(gpt2_40_benchmark))


def test_split_is_a_seeded_partition_in_benchmark_order(gpt2):
    ids = gpt2.arch_ids()
    pool, held = gpt2.split(0.5, 3)
    assert len(held) == 100 and sorted(pool + held) == sorted(ids) and not set(pool) & set(held)
    assert pool == [a for a in ids if a in set(pool)] and held == [a for a in ids if a in set(held)]
    assert gpt2.split(0.5, 3) == (pool, held)
    assert gpt2.split(0.5, 4)[1] != held
    assert gpt2.split(0.0, 3) == (ids, [])
    assert len(gpt2.split(0.25, 3)[1]) == 50
    with pytest.raises(LPZeroError):
        gpt2.split(1.0, 3)


def test_search_never_scores_a_held_out_architecture(tmp_path, monkeypatch, stats_cache, gpt2_40):
    """Read the scorer's own record of evaluated archs, not the split function."""
    made: list[fitness.ProxyScorer] = []

    class Recorded(fitness.ProxyScorer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(search, "ProxyScorer", Recorded)
    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMALL, "seed=7", "search.holdout=0.5", f"cache.dir={stats_cache}",
                                           f"search_space.benchmark={gpt2_40.benchmark}"])
    result = search.run(cfg)
    searching, final = made  # one scorer searches, a fresh one scores the best proxy afterwards
    assert searching.scored > 1 and len(searching.evaluated) == 10  # the fitness sample, nothing else
    assert final.evaluated == set(gpt2_40.arch_ids())  # the final scorer scores all (after the search)
    held = set(gpt2_40.split(0.5, 7)[1])
    assert len(held) == 20 and not searching.evaluated & held
    assert result["heldout"]["n_archs"] == 20 and result["full"]["n_archs"] == 40
    assert -1 <= result["heldout"]["kendall_tau"] <= 1
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["heldout"] == result["heldout"] and saved["holdout"] == 0.5


@pytest.mark.parametrize("value, words", [
    ("-0.1", "search.holdout=-0.1"), ("1", "search.holdout=1"), ("0.9", "search pool size 20"),
])
def test_bad_holdout_is_one_line(tmp_path, value, words):
    result = run_app("search.n_archs=50", f"search.holdout={value}", "logger=none", f"cache.dir={tmp_path / 'c'}",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.safetensors"))


def test_holdout_zero_keeps_todays_behaviour(tmp_path, stats_cache, gpt2_40):
    run = tmp_path / "run"
    result = run_app(*SMALL, "search.holdout=0", "search.n_archs=40", f"search_space.benchmark={gpt2_40.benchmark}",
                     f"cache.dir={stats_cache}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "result.json").read_text())
    assert saved["heldout"] is None and saved["full"]["n_archs"] == 40  # all 40 in the fitness sample


def test_best2_ensemble_picks_on_the_search_pool_only():
    quality = np.arange(10.0)
    search_rows = np.array([True] * 5 + [False] * 5)
    good_in, good_out = quality.copy(), quality.copy()
    good_in[5:] = -quality[5:]   # perfect on the search pool, wrong on the held-out rows
    good_out[:5] = -quality[:5]  # the reverse
    noise = np.array([3, 1, 4, 1.5, 5, 9, 2, 6, 5.5, 3.5])
    picked = ensemble.pick_best({"in": good_in, "out": good_out, "noise": noise}, quality, search_rows)
    assert picked == ["in", "noise"]
    assert ensemble.pick_best({"in": good_in, "out": good_out, "noise": noise}, quality, ~search_rows)[0] == "out"


def test_rank_mean_orders_by_average_rank_and_marks_missing():
    a = np.array([1.0, 2.0, 3.0, np.nan])
    b = np.array([30.0, 10.0, 20.0, 5.0])
    assert np.allclose(ensemble.rank_mean([a, b])[:3], [2.0, 1.5, 2.5]) and np.isnan(ensemble.rank_mean([a, b])[3])
    assert ensemble.split_members("ensemble(snip, sum(l1_norm(W), G))") == ["snip", "sum(l1_norm(W), G)"]
    with pytest.raises(LPZeroError):
        ensemble.split_members("ensemble(snip)")


def test_rank_reports_held_out_rows_and_scores_csv(tmp_path, stats_cache):
    run = tmp_path / "rank"
    result = run_app("task=rank", "proxy=[nonembedding_parameters,lpzero_gpt2,'ensemble(nonembedding_parameters, lpzero_gpt2)']",
                     "rank.n_archs=8", "search.holdout=0.5", "seed=2", "logger=none", "threads=1",
                     "data.batch_size=2", "data.seq_len=32",
                     f"cache.dir={stats_cache}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["name"]: r for r in json.loads((run / "ranking.json").read_text())}
    assert set(rows) == {"nonembedding_parameters", "lpzero_gpt2", "ensemble(nonembedding_parameters, lpzero_gpt2)"}
    for row in rows.values():
        assert row["n_archs"] == 8 and 0 < row["heldout"]["n_archs"] < 8
    lines = (run / "scores.csv").read_text().splitlines()
    assert lines[0].startswith("arch_id,valid_ppl,quality,nonembedding_parameters") and len(lines) == 9
    # a correlation recomputed from scores.csv equals the reported one
    table = list(csv.DictReader(open(run / "scores.csv")))
    tau = metrics.kendall([float(r["nonembedding_parameters"]) for r in table], [float(r["quality"]) for r in table])
    assert tau == pytest.approx(rows["nonembedding_parameters"]["kendall_tau"])


def test_report_gives_held_out_mean_and_std_over_seeds(tmp_path):
    sweep = tmp_path / "sweep"
    for job, (tau, rho) in enumerate([(0.8, 0.9), (0.9, 0.95)]):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(f"- seed={job + 1}\n")
        (sweep / str(job) / "result.json").write_text(json.dumps({
            "best_proxy": "x", "fitness": 0.9, "proxies_scored": 3, "rejected": {}, "seconds": 1.0,
            "full": {"kendall_tau": 0.7, "spearman_rho": 0.8, "n_archs": 200},
            "heldout": {"kendall_tau": tau, "spearman_rho": rho, "n_archs": 100}}))
    report = tmp_path / "report"
    result = run_app("task=report", f"report.sweep_dir={sweep}", "logger=none", f"hydra.run.dir={report}")
    assert result.returncode == 0, result.stderr[-3000:]
    text = (report / "report.md").read_text()
    assert "held-out τ mean ± std" in text and "0.8500 ± 0.0500" in text and "0.9250 ± 0.0250" in text
