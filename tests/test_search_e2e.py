"""The main job end to end on real GPT-2 benchmark models (reduced budget)."""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli import run_app

SMALL = [
    "strategy.iterations=30", "strategy.population=12", "search.n_archs=10",
    "logger=none", "search.checkpoint_every=10",
]


@pytest.fixture()
def shared_cache(stats_cache):
    return stats_cache


@pytest.fixture()
def bench(gpt2_40_benchmark) -> str:
    """40 real GPT-2 archs (see conftest): the default held-out split, quick to extract."""
    return f"search_space.benchmark={gpt2_40_benchmark}"


def search(run_dir: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_app(*SMALL, f"cache.dir={cache}", f"hydra.run.dir={run_dir}", *extra)


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def test_search_writes_the_contract_and_is_deterministic(tmp_path, shared_cache, bench):
    first, second = tmp_path / "a", tmp_path / "b"
    r1 = search(first, shared_cache, bench)
    assert r1.returncode == 0, r1.stderr[-3000:]
    result = read_result(first)
    for key in ("best_proxy", "fitness", "full", "proxies_scored", "rejected", "seconds"):
        assert key in result
    assert result["full"]["n_archs"] == 40 and result["heldout"]["n_archs"] == 20
    assert set(result["full"]) >= {"kendall_tau", "spearman_rho", "n_archs"}
    assert -1 <= result["fitness"] <= 1 and math.isfinite(result["full"]["kendall_tau"])
    assert (first / "search_curve.png").stat().st_size > 1000
    assert (first / ".hydra" / "config.yaml").is_file()
    rows = list(csv.DictReader(open(first / "history.csv")))
    assert len(rows) == 30 and rows[-1]["iteration"] == "30"
    best = [float(r["best_fitness"]) for r in rows]
    assert best == sorted(best)  # best-so-far never decreases

    r2 = search(second, shared_cache, bench)  # warm cache this time
    assert r2.returncode == 0, r2.stderr[-3000:]
    again = read_result(second)
    assert again["best_proxy"] == result["best_proxy"] and again["fitness"] == result["fitness"]
    strip = lambda p: [{k: v for k, v in r.items() if k != "elapsed"} for r in csv.DictReader(open(p))]
    assert strip(first / "history.csv") == strip(second / "history.csv")

    # the printed formula reproduces its full-benchmark correlation through task=rank
    ranked = run_app("task=rank", f"proxy='{result['best_proxy']}'", "logger=none", bench,
                     f"cache.dir={shared_cache}", f"hydra.run.dir={tmp_path / 'rank'}")
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    row = json.loads((tmp_path / "rank" / "ranking.json").read_text())[0]
    assert row["kendall_tau"] == pytest.approx(result["full"]["kendall_tau"], abs=1e-9)


def test_random_strategy_runs(tmp_path, shared_cache, bench):
    # also the default logger: W&B in offline mode writes a run under the run directory
    r = run_app("strategy=random", bench, "strategy.iterations=28", "strategy.population=12", "search.n_archs=10",
                f"cache.dir={shared_cache}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    result = read_result(tmp_path)
    assert result["strategy"] == "random" and result["iterations"] == 40
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    from tests.test_tracking import offline_run

    logged = offline_run(tmp_path)
    assert logged["summary"]["best_proxy"] == result["best_proxy"]
    assert logged["summary"]["full/kendall_tau"] == result["full"]["kendall_tau"]
    assert "result.json" in logged["artifacts"]["results"]


def test_kill_and_resume_equals_uninterrupted(tmp_path, shared_cache, bench):
    straight = tmp_path / "straight"
    assert search(straight, shared_cache, bench, "strategy.iterations=60").returncode == 0
    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lpzero_fw", *SMALL, bench, "strategy.iterations=60", f"cache.dir={shared_cache}",
         f"hydra.run.dir={killed}"], cwd=Path(__file__).resolve().parents[1], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (killed / "checkpoint.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (killed / "result.json").exists():
        pytest.skip("the run finished before it could be killed")
    assert (killed / "checkpoint.json").exists()
    refused = search(killed, shared_cache, bench, "strategy.iterations=60", "seed=7", f"resume={killed}")
    assert refused.returncode == 2
    assert "differing keys: seed" in refused.stderr and "Traceback" not in refused.stderr
    resumed = search(killed, shared_cache, bench, "strategy.iterations=60", f"resume={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = read_result(straight), read_result(killed)
    assert b["resumed"] is True
    for key in ("best_proxy", "fitness", "full", "proxies_scored", "rejected", "top"):
        assert a[key] == b[key], key
    strip = lambda p: [{k: v for k, v in r.items() if k != "elapsed"} for r in csv.DictReader(open(p))]
    assert strip(straight / "history.csv") == strip(killed / "history.csv")


def test_two_process_fabric_extraction_matches_one_process(tmp_path, shared_cache, small_gpt2_benchmark):
    one, two = tmp_path / "one", tmp_path / "two"
    bench = f"search_space.benchmark={small_gpt2_benchmark}"  # 10 archs: the point is the sharding
    assert search(one, shared_cache, bench, "search.holdout=0").returncode == 0
    fresh = tmp_path / "fresh-cache"  # cold: both ranks really extract their shards
    r = search(two, fresh, bench, "search.holdout=0", "fabric.accelerator=cpu", "fabric.devices=2", "fabric.strategy=ddp", "threads=1")
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_result(one), read_result(two)
    for key in ("best_proxy", "fitness", "full", "proxies_scored", "rejected"):
        assert a[key] == b[key], key
    assert len(list(fresh.glob("*.safetensors"))) == 10
