"""The import-layer contract (pyproject.toml, ``[tool.importlinter]``) and the public API."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contract on the ``lpzero_fw`` found in ``package_parent``."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())",
         "--config", str(REPO / "pyproject.toml"), "--no-cache", "--no-logo"],
        capture_output=True, text=True, timeout=300, cwd=package_parent,
        env={**os.environ, "PYTHONPATH": str(package_parent)},
    )


def test_import_layers_are_kept():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "layered core KEPT" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The check can fail: a rule importing the scoring layer (the old rules <-> proxy cycle)."""
    copy = tmp_path / "lpzero_fw"
    shutil.copytree(REPO / "lpzero_fw", copy, ignore=shutil.ignore_patterns("__pycache__", "conf"))
    static = copy / "rules" / "static.py"
    static.write_text(static.read_text() + "\nfrom lpzero_fw.proxy.fitness import ProxyScorer  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "layered core BROKEN" in result.stdout
    assert "lpzero_fw.rules.static -> lpzero_fw.proxy.fitness" in result.stdout


def test_public_api_is_complete_and_has_no_import_time_side_effects():
    code = (
        "import sys, lpzero_fw\n"
        "heavy = [m for m in ('torch', 'lpzero_fw.registry', 'lpzero_fw.ops') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "for name in lpzero_fw.__all__:\n"
        "    assert getattr(lpzero_fw, name) is not None, name\n"
        "from lpzero_fw import UNARY_OPS, UnaryOp, Values, Taps, Formula, parse, LPZeroError\n"
        "assert isinstance(parse('sum(W, G)'), Formula)\n"
        "assert issubclass(UNARY_OPS.get('log'), UnaryOp)\n"
        "try:\n"
        "    lpzero_fw.no_such_name\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
