"""Third-party plugins: the example package installed for real, and a broken one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.test_cli import REPO, run_cli

EXAMPLE = REPO / "plugins" / "lpzero-fw-example"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The example plugin pip-installed into its own site dir (used via PYTHONPATH)."""
    site = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(EXAMPLE)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return site


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory, data_root):
    """The GPT-2 benchmark cut to its first two config folders (symlinks), so that scoring
    the best proxy on every architecture stays cheap; same folder name, same cache keys."""
    source = data_root / "random_GPT2_wt103"
    copy = tmp_path_factory.mktemp("small-bench") / source.name
    copy.mkdir()
    for item in source.iterdir():
        if not item.name.startswith("config_") or item.name in ("config_0", "config_1"):
            (copy / item.name).symlink_to(item)
    return copy


def test_list_shows_plugin_components_with_origin(plugin_site, tmp_path):
    result = run_cli("task=list", f"hydra.run.dir={tmp_path}", env={"PYTHONPATH": str(plugin_site)})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "example." in line]
    assert any("example.cube" in line and "lpzero-fw-example 0.1.0" in line for line in lines)
    assert any("example.no_cube_of_exp" in line for line in lines)
    assert any("example.depth" in line for line in lines)


def test_search_uses_plugin_operator_rule_and_config(plugin_site, small_benchmark, tmp_path, stats_cache):
    result = run_cli(
        "strategy=example_quick", "search.n_archs=8", "logger=none", f"search_space.benchmark={small_benchmark}",
        "search.unary=[square,abs,exp,l1_norm,mean,example.cube]",
        "pruning.rules=[example.no_cube_of_exp,non_finite_score]",
        f"cache.dir={stats_cache}", f"hydra.run.dir={tmp_path / 'run'}",
        env={"PYTHONPATH": str(plugin_site)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "run" / "result.json").read_text())
    assert out["iterations"] == 40  # the plugin's strategy preset was selected
    cfg = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "example.cube" in cfg and "example.no_cube_of_exp" in cfg
    # result.json says which components shaped the search, and where each came from
    components = out["components"]
    assert components["unary"]["example.cube"] == "lpzero-fw-example 0.1.0"
    assert components["unary"]["square"] == "core" and components["inputs"]["W"] == "core"
    assert components["rules"] == {"example.no_cube_of_exp": "lpzero-fw-example 0.1.0", "non_finite_score": "core"}


def test_installed_plugin_does_not_change_a_default_search(plugin_site, small_benchmark, tmp_path, stats_cache):
    """With the plugin installed, the default run searches the core components only."""
    result = run_cli(
        "strategy.iterations=5", "strategy.population=4", "search.n_archs=8", "logger=none",
        f"search_space.benchmark={small_benchmark}",
        f"cache.dir={stats_cache}", f"hydra.run.dir={tmp_path / 'run'}",
        env={"PYTHONPATH": str(plugin_site)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "run" / "result.json").read_text())
    components = out["components"]
    for kind in ("inputs", "unary", "binary", "rules"):
        assert components[kind] and set(components[kind].values()) == {"core"}, kind
    assert "example." not in out["best_proxy"]


def _in_plugin_env(plugin_site, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that has the example plugin installed."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(plugin_site)}, cwd=REPO,
    )


def test_plugin_op_declaring_itself_the_inverse_of_exp_is_pruned_like_log(plugin_site):
    result = _in_plugin_env(plugin_site, """
        from lpzero_fw import parse
        from lpzero_fw.proxy.space import FormulaSpace
        from lpzero_fw.rules.apply import RuleSet

        rules = RuleSet("core")
        for template, verdict in [("sum({}(exp(W)), square(G))", "cancelling_pair"),
                                  ("sum({}(negate(S)), square(G))", "domain_conflict"),
                                  ("sum({}(abs(W)), square(G))", None)]:
            for op in ("log", "example.log2"):
                got = rules.static_reject(parse(template.format(op)))
                assert got == verdict, (template, op, got)
        assert rules.counts["cancelling_pair"] == 2 and rules.counts["domain_conflict"] == 2
        # plugin components join only when named, or with an explicit "all"
        assert "example.log2" not in FormulaSpace().unary and "example.log2" in FormulaSpace(unary="all").unary
        assert "example.no_cube_of_exp" not in RuleSet("core").names
        assert "example.no_cube_of_exp" in RuleSet("all").names
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_plugin_statistic_merges_correctly_after_a_split_retry(plugin_site, data_root):
    """An out-of-memory retry in two micro-batches gives the plugin input's (a whole-batch
    gradient, ``per_sample = False``) full-batch values, like the built-in inputs'."""
    result = _in_plugin_env(plugin_site, f"""
        import warnings
        import torch
        from lpzero_fw import SEARCH_SPACES
        from lpzero_fw.stats import cache
        from lpzero_fw.stats.extract import LayerSample

        space = SEARCH_SPACES.get("gpt2")(benchmark={str(data_root / "random_GPT2_wt103")!r},
                                          data={{"name": "synthetic", "batch_size": 4, "seq_len": 32, "seed": 0}})
        arch = space.arch_ids()[0]
        store = cache.StatsStore(space, enabled=False)
        whole = cache.extract_raw(space, arch, store.batch, budget=store.budget)
        real, calls = cache.extract_raw, []

        def out_of_memory_once(*args, **kwargs):
            calls.append(kwargs["micro_batches"])
            if len(calls) == 1:
                raise RuntimeError("out of memory (simulated)")
            return real(*args, **kwargs)

        cache.extract_raw = out_of_memory_once
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            merged = store._extract_with_retry(arch)
        assert calls == [1, 2]  # the whole batch, then two micro-batches
        assert set(merged) == set(whole) and "example.GB" in merged
        for symbol in ("example.GB", "G", "J", "W", "A"):
            assert len(merged[symbol]) == len(whole[symbol]) > 0, symbol
            for got, want in zip(merged[symbol], whole[symbol]):
                if isinstance(want, LayerSample):  # the budget's samples: their exact facts, the
                    # weighted mean and the extremes (a tail among values that tie to float rounding
                    # may hold another of them; W's slots also follow G's rounded order statistics)
                    got, want = (torch.stack([s.values.double() @ s.weights.double(), s.values.double().max(),
                                              s.values.double().min()]) for s in (got, want))
                assert got.shape == want.shape, (symbol, got.shape, want.shape)
                err = float((got - want).norm() / want.norm().clamp(min=1e-30))
                assert err < 1e-4, (symbol, err)
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_formula_with_missing_plugin_operator_is_one_line_error(tmp_path):
    result = run_cli("task=rank", "proxy='sum(example.cube(W), G)'", "logger=none", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "example.cube" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_broken_plugin_warns_and_everything_else_works(tmp_path):
    site = tmp_path / "broken-site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lpzero_fw.plugins]\nbroken = broken_plugin_mod\n")
    (site / "broken_plugin_mod.py").write_text("raise ImportError('missing dependency xyz')\n")
    result = run_cli("task=list", f"hydra.run.dir={tmp_path / 'run'}", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "broken" in result.stderr and "missing dependency xyz" in result.stderr
    assert "evolution" in result.stdout and "square" in result.stdout


def test_example_plugin_own_tests_pass(plugin_site):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, timeout=600, cwd=EXAMPLE,
        env={**os.environ, "PYTHONPATH": str(plugin_site)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_resume_refuses_a_different_component_set(tmp_path):
    """The config digest covers the resolved components and their origins (plugin versions)."""
    from omegaconf import OmegaConf

    from lpzero_fw import LPZeroError
    from lpzero_fw.tasks.checkpoint import Checkpointer
    from lpzero_fw.tasks.common import config_digest

    cfg = OmegaConf.create({"seed": 1, "search": {"unary": "all"}})
    before = {"unary": {"square": "core", "example.cube": "lpzero-fw-example 0.1.0"}}
    after = {"unary": {"square": "core", "example.cube": "lpzero-fw-example 0.2.0"}}
    assert config_digest(cfg, before) != config_digest(cfg, after)
    assert config_digest(cfg, before) == config_digest(cfg, dict(before))

    class _Nothing:
        def state_dict(self):
            return {}

    scorer = type("S", (), {"memo": {}, "rejected": {}, "scored": 0, "evaluations": 0})()
    saved = Checkpointer(tmp_path, config_digest(cfg, before), {"seed": 1, "components": before}, every=1)
    saved.save(_Nothing(), scorer, [{"iteration": 1}])
    resumed = Checkpointer(tmp_path, config_digest(cfg, after), {"seed": 1, "components": after}, every=1)
    with pytest.raises(LPZeroError, match=r"components\.unary\.example\.cube"):
        resumed.restore(None, _Nothing(), scorer, [])
