"""The wheel carries everything the package reads at run time (a non-editable install
once lacked data/manifest.json): checked against the source tree and against the files
a real run opens, recorded with an audit hook."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_cli import REPO

PACKAGE = REPO / "lpzero_fw"
AUDIT = """
import os, runpy, sys
root = os.path.realpath(sys.argv[1])
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(root + os.sep):
            opened.add(os.path.relpath(path, root))
sys.addaudithook(hook)
out = sys.argv[2]
sys.argv = ["lpzero_fw", *sys.argv[3:]]
try:
    try:
        runpy.run_module("lpzero_fw", run_name="__main__")
    except SystemExit as exc:
        assert not exc.code, exc.code
    from lpzero_fw.data.locate import resolve_root  # the download path: reads the manifest
    resolve_root(None, cache_dir=os.environ["AUDIT_BENCHMARKS"], folders=("random_GPT2_wt103", "data"))
finally:
    open(out, "w").write("\\n".join(sorted(opened)))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``python -m build`` (sdist, then the wheel from the sdist), as CI and a release do."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "-o", str(out), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next(out.glob("*.whl"))


def _package_files(names) -> set[str]:
    return {n for n in names if n.startswith("lpzero_fw/") and not n.endswith((".py", ".pyc"))}


def test_wheel_has_every_data_file_of_the_source_package(wheel):
    in_wheel = _package_files(zipfile.ZipFile(wheel).namelist())
    in_source = set()
    for folder, _, files in os.walk(PACKAGE, followlinks=True):  # conf/ is a symlink to ../conf
        for name in files:
            rel = (Path(folder) / name).relative_to(REPO).as_posix()
            if "__pycache__" not in rel:
                in_source.add(rel)
    assert _package_files(in_source) == in_wheel
    assert {"lpzero_fw/data/manifest.json", "lpzero_fw/conf/config.yaml"} <= in_wheel


def test_sdist_rebuilds_the_project(wheel):
    sdist = next(wheel.parent.glob("*.tar.gz"))
    import tarfile

    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    for needed in ("pyproject.toml", "MANIFEST.in", "lpzero_fw/data/manifest.json", "conf/config.yaml",
                   "tests/conftest.py", "tools/make_manifest.py", ".ci/run"):
        assert needed in names, needed


def test_installed_wheel_runs_and_reads_only_files_it_ships(wheel, tmp_path, data_root, stats_cache,
                                                           small_gpt2_benchmark):
    """Unpacked wheel (what pip installs), run from elsewhere: a small search (Hydra configs),
    then the download path's lookup (the manifest; the files are all there, so no network).
    .ci/run does the real thing: pip install of the wheel, main job, download from a server."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    record = tmp_path / "opened.txt"
    env = {**os.environ, "PYTHONPATH": str(site), "LPZERO_FW_DATA": "", "LPZERO_FW_NO_SIBLING_DATA": "1",
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "AUDIT_BENCHMARKS": str(data_root)}
    args = ["strategy.iterations=3", "strategy.population=4", "search.n_archs=4", "logger=none", "threads=1",
            f"search_space.benchmark={small_gpt2_benchmark}", f"cache.dir={stats_cache}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    ran = subprocess.run([sys.executable, "-c", AUDIT, str(site / "lpzero_fw"), str(record), *args],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["best_proxy"]
    opened = {f"lpzero_fw/{p}" for p in record.read_text().split()}
    data_read = _package_files(opened)
    assert "lpzero_fw/data/manifest.json" in data_read and "lpzero_fw/conf/config.yaml" in data_read
    assert data_read <= _package_files(zipfile.ZipFile(wheel).namelist())


def test_console_script_finds_its_configs(wheel, tmp_path):
    """``lpzero-fw`` imports lpzero_fw.__main__ as a module (not ``-m``): Hydra must still
    find the configs (a relative config_path once made it look for a ``lpzero_fw.conf`` package)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    entry = zipfile.ZipFile(wheel).read(next(n for n in zipfile.ZipFile(wheel).namelist()
                                             if n.endswith("entry_points.txt"))).decode()
    assert "lpzero-fw = lpzero_fw.__main__:main" in entry
    ran = subprocess.run([sys.executable, "-c", "import sys; from lpzero_fw.__main__ import main; sys.exit(main())",
                          "--help"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "search_space:" in ran.stdout and "gpt2" in ran.stdout
