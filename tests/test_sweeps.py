"""Ablation sweeps through real Hydra launchers, and the sweep report."""
from __future__ import annotations

import json

import pytest

from tests.test_cli import run_cli

REDUCED = ["strategy.iterations=10", "strategy.population=6", "search.n_archs=8", "search.holdout=0", "logger=none", "threads=1"]


def small_flexibert(data_root, tmp_path, n=10) -> list[str]:
    """The ablation presets run on FlexiBERT: its first ``n`` entries and a tiny text batch keep tests cheap."""
    entries = json.loads((data_root / "data" / "BERT_benchmark.json").read_text())[:n]
    path = tmp_path / "bert_small.json"
    path.write_text(json.dumps(entries))
    return [f"search_space.benchmark={path}", "data.batch_size=2", "data.seq_len=16"]


def test_ablation_strategy_with_joblib_then_report(tmp_path, stats_cache, data_root):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "experiment=ablation_strategy", "seed=1", "hydra/launcher=local_parallel",
                     *REDUCED, *small_flexibert(data_root, tmp_path), f"cache.dir={stats_cache}",
                     f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(sweep.glob("*/result.json"))
    assert len(jobs) == 3
    strategies = sorted(json.loads(p.read_text())["strategy"] for p in jobs)
    assert strategies == ["evolution", "evolution", "random"]

    report_dir = tmp_path / "report"
    report = run_cli("task=report", f"report.sweep_dir={sweep}", "logger=none", f"hydra.run.dir={report_dir}")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (report_dir / "report.md").read_text()
    for variant in ("evolution_rps", "evolution_norps", "random_rps"):
        assert variant in text
    assert (report_dir / "report_curves.png").stat().st_size > 1000
    assert (report_dir / "fig6_strategy.png").stat().st_size > 1000  # the paper's Fig. 6
    assert all(json.loads(p.read_text())["ops"] == "reference" for p in jobs)


def test_submitit_local_launcher_runs_jobs_in_subprocesses(tmp_path, stats_cache, gpt2_40_benchmark):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "hydra/launcher=submitit_local", "seed=1,2", *REDUCED,
                     f"search_space.benchmark={gpt2_40_benchmark}",
                     f"cache.dir={stats_cache}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(sweep.glob("*/result.json"))) == 2


def test_report_on_a_directory_without_jobs_is_a_clear_error(tmp_path):
    result = run_cli("task=report", f"report.sweep_dir={tmp_path}", "logger=none", f"hydra.run.dir={tmp_path / 'r'}")
    assert result.returncode == 2
    assert "no finished job" in result.stderr and "Traceback" not in result.stderr
