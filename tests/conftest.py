"""Shared fixtures: where the benchmark files and the text corpus are."""
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


@pytest.fixture(scope="session")
def stats_cache(tmp_path_factory) -> Path:
    """One statistics cache for every end-to-end test: extracted once, then warm."""
    return tmp_path_factory.mktemp("stats-cache")
