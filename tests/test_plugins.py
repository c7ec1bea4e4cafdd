"""Third-party plugins: the example package installed for real, and a broken one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_list_shows_plugin_components_with_origin(plugin_site, tmp_path):
    result = run_cli("task=list", f"hydra.run.dir={tmp_path}", env={"PYTHONPATH": str(plugin_site)})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "example." in line]
    assert any("example.cube" in line and "lpzero-fw-example 0.1.0" in line for line in lines)
    assert any("example.no_cube_of_exp" in line for line in lines)
    assert any("example.depth" in line for line in lines)


def test_search_uses_plugin_operator_rule_and_config(plugin_site, tmp_path, stats_cache):
    result = run_cli(
        "strategy=example_quick", "search.n_archs=8", "logger=none",
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
