"""Types of the run's own settings (``search.*``, ``cache.*``), for Hydra's ConfigStore.

The values and their documentation live in ``conf/`` (``config.yaml``, ``cache/*.yaml``),
so every key has one default; these dataclasses only declare each key's type, so a
value of the wrong type (``search.n_unary=x``) or an unknown key (``cache.budgte=1``)
stops composition with one line instead of failing deep inside a run.
Components' options get their schemas from their constructors instead
(:func:`lpzero_fw.registry.schema_of`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING


@dataclass
class SearchSettings:
    """``search.*``: the proxy space and the benchmark split (see conf/config.yaml)."""

    n_archs: Optional[int] = MISSING
    n_unary: int = MISSING
    layers: List[str] = MISSING
    inputs: Any = MISSING  # a list of symbols, "core" or "all"
    unary: Any = MISSING  # null/"core", "all" or a list of names
    binary: Any = MISSING
    ops: Optional[str] = MISSING
    checkpoint_every: int = MISSING
    holdout: Optional[float] = MISSING
    transfer_to: List[Any] = MISSING  # benchmark names or {name, search_space, ...} entries
    benchmarks: List[Any] = MISSING
    aggregate: str = MISSING


@dataclass
class CacheSettings:
    """``cache.*``: the statistics cache (see conf/cache/default.yaml)."""

    enabled: bool = MISSING
    dir: Optional[str] = MISSING
    budget: Optional[int] = MISSING
    dtype: str = MISSING
    memory: bool = MISSING
    micro_batches: int = MISSING


#: ConfigStore name (under ``schema/run``) -> schema; the YAML extends it
RUN_SCHEMAS: dict[str, type] = {"search": SearchSettings, "cache": CacheSettings}
