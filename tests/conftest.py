"""Shared fixtures: where the benchmark files and the text corpus are, and one
statistics cache for the whole session (extraction is what makes tests slow)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """$LPZERO_FW_DATA, else ../shared/benchmarks/lpzero beside the checkout."""
    env = os.environ.get("LPZERO_FW_DATA")
    return Path(env) if env else REPO.parent / "shared" / "benchmarks" / "lpzero"


@pytest.fixture(scope="session")
def corpus_root() -> Path:
    """$LPZERO_FW_CORPUS, else ../shared/corpus beside the checkout."""
    env = os.environ.get("LPZERO_FW_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session", autouse=True)
def user_cache_dir(tmp_path_factory) -> Path:
    """A session-wide ``$XDG_CACHE_HOME``: runs without ``cache.dir`` share the session's
    statistics cache instead of extracting again (or touching the developer's ~/.cache).
    Under pytest-xdist every worker uses the same one: the cache's per-architecture locks
    make each architecture be extracted once, by whichever worker needs it first."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = base.parent / "xdg-cache"  # the parent of the workers' own temp dirs
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(path))
        yield path


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_worker():
    """pytest-xdist runs one worker per core: each worker, and every CLI process it starts,
    uses one torch thread, so the workers do not oversubscribe the cores."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import torch

    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        patch.setenv("MKL_NUM_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def stats_cache(user_cache_dir) -> Path:
    """One statistics cache for every end-to-end test: extracted once, then warm. It is
    the default ``cache.dir`` of the session too (see :func:`user_cache_dir`)."""
    path = user_cache_dir / "lpzero_fw" / "stats"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def small_gpt2_benchmark(tmp_path_factory, data_root) -> Path:
    """The GPT-2 benchmark cut to its first 10 architectures (config_0/j0..j9, symlinked).
    Same folder name, so its statistics share cache entries with the full benchmark:
    for tests whose point is not the 200 archs (parallel jobs, devices, plugins)."""
    folder = tmp_path_factory.mktemp("small-bench") / "random_GPT2_wt103"
    folder.mkdir()
    source = data_root / "random_GPT2_wt103"
    for name in ("config_0", "ppl_summary.yaml", "params_summary.yaml"):
        (folder / name).symlink_to(source / name)
    return folder


@pytest.fixture(scope="session")
def gpt2_40_benchmark(tmp_path_factory, data_root) -> Path:
    """The GPT-2 benchmark cut to config_0..config_3 (40 real architectures, symlinked).
    The end-to-end tests search on it: large enough for the default held-out split
    (20 + 20) and S=10, small enough to extract in seconds. The 200-arch main job runs in
    CI's wheel job."""
    folder = tmp_path_factory.mktemp("bench-40") / "random_GPT2_wt103"
    folder.mkdir()
    source = data_root / "random_GPT2_wt103"
    for name in ("config_0", "config_1", "config_2", "config_3", "ppl_summary.yaml", "params_summary.yaml"):
        (folder / name).symlink_to(source / name)
    return folder
