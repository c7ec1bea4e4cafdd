"""The Hydra app as a user runs it: help, composition errors, bad input, installs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lpzero_fw", *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=600,
    )


def run_app(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The same Hydra app as :func:`run_cli`, run in this process: no interpreter and
    import start-up (~4 s each), for the many bad-input cases that stop at validation.
    Exit code, stdout and stderr come back as from a subprocess; a traceback would
    propagate as an exception and fail the test."""
    import contextlib
    import io

    from hydra.core.global_hydra import GlobalHydra

    from lpzero_fw.__main__ import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", **(env or {})}.items():
            patch.setenv(key, value)
        patch.setattr(sys, "argv", ["lpzero_fw", *args])
        GlobalHydra.instance().clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            finally:
                GlobalHydra.instance().clear()
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def test_help_lists_groups_and_options():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for group in ("task", "search_space", "strategy", "pruning", "data", "logger", "fabric", "cache", "experiment"):
        assert f"{group}:" in result.stdout
    for option in ("gpt2", "flexibert", "evolution", "random", "rps", "synthetic", "paper_gpt2"):
        assert option in result.stdout


def test_bad_value_exits_2_with_one_line_from_a_real_process(tmp_path):
    """The real process (the table in test_reliability.py runs in-process)."""
    result = run_cli("threads=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip() == "error: threads=0 must be a positive integer or null"


def test_unknown_group_option_lists_valid_ones():
    result = run_app("search_space=nope")
    assert result.returncode == 2
    assert result.stderr == (
        "error: search_space=nope is not an option; options: flexibert, gpt2, hf_causal_lm, llama, transformer_xl\n"
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        ("experiment=nope", "experiment=nope is not an option; options: "),
        ("search.n_unary=x", "search.n_unary=x: Value 'x' of type 'str' could not be converted to Integer"),
        ("cache.budgte=1", "cache.budgte: no such setting; keys of cache: budget, dir, dtype, enabled, memory"),
        ("seed=abc", "seed='abc' must be an integer"),
    ],
)
def test_bad_settings_stop_composition_with_one_line(override, expected, tmp_path):
    """Typed run settings (lpzero_fw/settings.py) and the preset group: a wrong type, an
    unknown key or an unknown preset is one line naming it, exit 2, no run directory."""
    run_dir = tmp_path / "run"
    result = run_app(override, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + expected), result.stderr
    assert not (run_dir / "result.json").exists()


def test_list_task_shows_components_with_origin(tmp_path):
    result = run_cli("task=list", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    for name in ("gpt2", "square", "matmul", "evolution", "snip", "core"):
        assert name in result.stdout


def test_works_when_installed_non_editable(tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    assert (target / "lpzero_fw" / "conf" / "config.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("--help", cwd=elsewhere, env={"PYTHONPATH": str(target)})
    assert result.returncode == 0, result.stderr
    assert "search_space: flexibert, gpt2" in result.stdout
