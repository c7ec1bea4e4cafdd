"""Transfer across benchmarks and the multi-benchmark search, on small real benchmark folders."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.test_cli import run_app

TINY = ["data.batch_size=2", "data.seq_len=32"]  # small batches: these tests check plumbing, not quality


@pytest.fixture(scope="module")
def small_benchmarks(data_root, tmp_path_factory):
    """A 10-arch GPT-2 LTS folder (config_0) and a 6-entry FlexiBERT file: real models, real scores."""
    root = tmp_path_factory.mktemp("small-benchmarks")
    gpt2 = root / "gpt2_small"
    source = data_root / "random_GPT2_wt103"
    shutil.copytree(source / "config_0", gpt2 / "config_0")
    for name in ("ppl_summary.yaml", "params_summary.yaml"):
        shutil.copy(source / name, gpt2 / name)
    entries = json.loads((data_root / "data" / "BERT_benchmark.json").read_text())[:6]
    flexibert = root / "flexibert_small.json"
    flexibert.write_text(json.dumps(entries))
    return f"{{name:gpt2,benchmark:'{gpt2}'}}", f"{{name:flexibert,benchmark:'{flexibert}'}}"


def test_transfer_over_two_benchmarks_writes_all_files(tmp_path, stats_cache, small_benchmarks):
    gpt2, flexibert = small_benchmarks
    run = tmp_path / "transfer"
    result = run_app("task=transfer", "proxy=[nonembedding_parameters,lpzero_gpt2]", *TINY,
                     f"transfer.benchmarks=[{gpt2},{flexibert}]", "logger=none", "threads=1",
                     f"cache.dir={stats_cache}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((run / "transfer.json").read_text())
    assert data["benchmarks"] == ["gpt2:gpt2_small", "flexibert:flexibert_small.json"]
    for proxy in ("nonembedding_parameters", "lpzero_gpt2"):
        for bench in data["benchmarks"]:
            record = data["proxies"][proxy][bench]
            assert record["n_archs"] == (10 if bench.startswith("gpt2") else 6) and -1 <= record["kendall_tau"] <= 1
    assert "gpt2:gpt2_small" in (run / "transfer.md").read_text()
    assert (run / "transfer.png").stat().st_size > 1000
    lines = (run / "scores.csv").read_text().splitlines()
    assert lines[0] == "benchmark,arch_id,quality,nonembedding_parameters,lpzero_gpt2" and len(lines) == 17


def test_multi_benchmark_search_end_to_end(tmp_path, stats_cache, small_benchmarks):
    gpt2, flexibert = small_benchmarks
    run = tmp_path / "multi"
    result = run_app(f"search.benchmarks=[{gpt2},{flexibert}]", "search.aggregate=mean", "search.n_archs=4", *TINY,
                     "search.holdout=0.4", f"search.transfer_to=[{gpt2}]", "strategy.iterations=6",
                     "strategy.population=6", "logger=none", "threads=1",
                     f"cache.dir={stats_cache}", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "result.json").read_text())
    assert set(saved["benchmarks"]) == {"gpt2:gpt2_small", "flexibert:flexibert_small.json"}
    assert saved["benchmarks"]["gpt2:gpt2_small"]["heldout"]["n_archs"] == 4
    assert saved["benchmarks"]["flexibert:flexibert_small.json"]["heldout"]["n_archs"] == 2
    assert saved["heldout"] == saved["benchmarks"]["gpt2:gpt2_small"]["heldout"]
    assert saved["aggregate"] == "mean" and -1 <= saved["fitness"] <= 1
    assert saved["transfer"]["gpt2:gpt2_small"]["n_archs"] == 10
    assert "held-out" in result.stderr


def test_bad_benchmark_entry_is_one_line(tmp_path):
    result = run_app("task=transfer", "proxy=num_parameters", "transfer.benchmarks=[nosuchspace]", "logger=none",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and "gpt2" in result.stderr and "Traceback" not in result.stderr
