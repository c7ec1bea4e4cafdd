"""task=build_benchmark: a tiny LLaMA benchmark trained with Lightning on WikiText-2, resumed,
then searched and ranked through search_space=hf_causal_lm."""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lpzero_fw.registry import LPZeroError
from lpzero_fw.tasks import build_benchmark
from tests.test_cli import REPO, run_app

TINY = [
    "task=build_benchmark", "data=wikitext2", "logger=none", "build.n_archs=6",
    "build.base.hidden_size=32", "build.base.vocab_size=512", "build.base.max_position_embeddings=32",
    "build.choices.num_hidden_layers=[1,2]", "build.choices.num_attention_heads=[1,2]",
    "build.choices.intermediate_size=[32,64]", "build.steps=4", "build.batch_size=2", "build.seq_len=16",
    "build.warmup=1", "build.valid_windows=4",
]


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """Outside Hydra the run dir (build.json) is the cwd: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def read_table(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def excerpt(source: Path, target: Path, chars: int) -> Path:
    """The start of a WikiText-2 file (BPE-tokenising whole files costs ~25 s of CPU)."""
    target.write_text(source.read_text(encoding="utf-8")[:chars], encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def wikitext(tmp_path_factory, corpus_root) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("wikitext")
    return (excerpt(corpus_root / "wikitext-2" / "valid.txt", out / "train.txt", 60_000),
            excerpt(corpus_root / "wikitext-2" / "test.txt", out / "valid.txt", 20_000))


@pytest.fixture()
def tiny(wikitext) -> list[str]:
    return [*TINY, f"build.train_path={wikitext[0]}", f"build.valid_path={wikitext[1]}"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, wikitext) -> Path:
    out = tmp_path_factory.mktemp("build")
    table = out / "tiny.jsonl"
    paths = [f"build.train_path={wikitext[0]}", f"build.valid_path={wikitext[1]}"]
    with contextlib.chdir(out):
        summary = build_benchmark.run(compose_cfg(*TINY, *paths, f"build.table={table}"))
    assert summary["trained"] == 6 and summary["failed"] == 0
    return table


def test_build_writes_six_trained_heterogeneous_rows(built):
    rows = read_table(built)
    assert [r["id"] for r in rows] == [f"arch_{i:03d}" for i in range(6)]
    for row in rows:
        assert row["steps"] == 4 and row["params"] > 0
        assert math.isclose(row["valid_ppl"], math.exp(row["valid_loss"]), rel_tol=1e-9)
        assert len(row["num_attention_heads"]) == row["num_hidden_layers"] == len(row["intermediate_size"])
        assert row["hidden_size"] == 32 and row["vocab_size"] == 512  # base fields make rows self-contained
    assert len({json.dumps(r["num_attention_heads"]) + json.dumps(r["intermediate_size"]) for r in rows}) == 6


def test_build_resumes_without_retraining_and_refuses_other_settings(built, tiny):
    before = built.read_text()
    summary = build_benchmark.run(compose_cfg(*tiny, f"build.table={built}"))
    assert summary["skipped"] == 6 and summary["trained"] == 0 and built.read_text() == before
    with pytest.raises(LPZeroError, match="id=arch_000 was built with another config"):
        build_benchmark.run(compose_cfg(*tiny, f"build.table={built}", "build.seed=1"))


def test_failing_architecture_is_recorded_and_skipped(tmp_path, tiny):
    table = tmp_path / "bad.jsonl"
    summary = build_benchmark.run(
        compose_cfg(*tiny, f"build.table={table}", "build.n_archs=2", "build.per_layer=[]",
                    "+build.choices.hidden_act=[no_such_activation]")
    )
    assert summary["failed"] == 2 and summary["trained"] == 0
    rows = read_table(table)
    assert all("no_such_activation" in r["error"] and "valid_ppl" not in r for r in rows)


def test_search_and_rank_on_the_built_table(built, wikitext, tmp_path, stats_cache):
    common = [
        "search_space=hf_causal_lm", f"search_space.benchmark={built}", "data=text_file",
        f"data.path={wikitext[1]}", "data.seq_len=16",
        "data.batch_size=2", "logger=none", "threads=1", f"cache.dir={stats_cache}",
    ]
    search = run_app(*common, "strategy.iterations=10", "strategy.population=6", "search.n_archs=6", "search.holdout=0",
                     f"hydra.run.dir={tmp_path / 's'}")
    assert search.returncode == 0, search.stderr[-3000:]
    result = json.loads((tmp_path / "s" / "result.json").read_text())
    assert result["full"]["n_archs"] == 6 and -1 <= result["full"]["kendall_tau"] <= 1
    rank = run_app(*common, "task=rank", f"proxy=[num_parameters,nonembedding_parameters,'{result['best_proxy']}']",
                   f"hydra.run.dir={tmp_path / 'r'}")
    assert rank.returncode == 0, rank.stderr[-3000:]
    ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
    assert {r["n_archs"] for r in ranking} == {6} and all(math.isfinite(r["kendall_tau"]) for r in ranking)


def test_bad_build_settings_are_one_line_errors(tmp_path, tiny):
    missing = run_app("search_space=hf_causal_lm", "logger=none", f"hydra.run.dir={tmp_path / 'm'}")
    assert missing.returncode == 2 and "search_space.benchmark" in missing.stderr
    assert "Traceback" not in missing.stderr
    with pytest.raises(LPZeroError, match="'num_layers' is not a llama config key"):
        build_benchmark.run(compose_cfg(*tiny, "+build.choices.num_layers=[2]"))
    with pytest.raises(LPZeroError, match="build.per_layer: 'rope_theta' is not a key of build.choices"):
        build_benchmark.run(compose_cfg(*tiny, "build.per_layer=[rope_theta]"))
