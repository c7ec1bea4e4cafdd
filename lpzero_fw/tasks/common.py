"""Pieces every task needs: the search space, statistics, run directory, progress."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lpzero_fw.data.locate import resolve_root
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError, build
from lpzero_fw.search_spaces.base import SearchSpace
from lpzero_fw.stats.cache import LazyStats, StatsStore

console = Console(stderr=True)


def to_dict(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def run_dir() -> Path:
    """Hydra's output directory for this job (cwd when run outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:
        return Path.cwd()


def build_space(cfg: DictConfig) -> SearchSpace:
    """The configured search space, its benchmark path resolved against benchmark.root."""
    params = to_dict(cfg.search_space)
    name = params.pop("name")
    SEARCH_SPACES.get(name)  # unknown name → one-line error before touching data
    if params.get("benchmark") is None:
        raise LPZeroError(f"search_space={name} needs search_space.benchmark=<path to its benchmark>")
    benchmark = Path(str(params.pop("benchmark"))).expanduser()
    if not benchmark.is_absolute() and not benchmark.exists():
        root = resolve_root(
            cfg.benchmark.root,
            download=cfg.benchmark.download,
            base_url=cfg.benchmark.base_url,
            cache_dir=cfg.benchmark.cache_dir,
            folders=(benchmark.parts[0],),
        )
        benchmark = root / benchmark
    if not benchmark.exists():
        raise LPZeroError(f"search_space.benchmark={str(benchmark)!r} does not exist")
    return build(SEARCH_SPACES, {"name": name, **params}, benchmark=str(benchmark), data=to_dict(cfg.data),
                 group="search_space")


def build_fabric(cfg: DictConfig):
    """A Lightning Fabric for the configured device(s).

    One device: a :class:`DeferredFabric`, created when the first architecture is
    extracted (importing lightning costs 2-4 s that runs on cached statistics skip).
    Several devices: created now and launched (re-runs this command per extra device).
    """
    settings = to_dict(cfg.fabric)
    if settings.get("devices", 1) in (1, "1"):
        return DeferredFabric(settings)
    fabric = _make_fabric(settings)
    if fabric.world_size > 1:
        fabric.launch()  # Hydra-aware
    return fabric


def _make_fabric(settings: dict):
    from lightning.fabric import Fabric

    try:
        return Fabric(**settings)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise LPZeroError(f"fabric settings {settings} are not usable: {exc}") from None


class DeferredFabric:
    """A one-device Fabric built on first use; answers ``world_size``/``global_rank`` without it."""

    world_size = 1
    global_rank = 0

    def __init__(self, settings: dict) -> None:
        self.settings = settings
        self._fabric = None

    @property
    def plain_cpu(self) -> bool:
        """One CPU device in float32: passes need no Fabric at all (see StatsStore.plain_pass)."""
        return (str(self.settings.get("accelerator", "cpu")) == "cpu"
                and str(self.settings.get("precision", "32-true")) in ("32-true", "32")
                and str(self.settings.get("devices", 1)) == "1")

    def __getattr__(self, name: str):  # only for what this class does not define
        if name.startswith("__") or name == "_fabric":
            raise AttributeError(name)
        if self._fabric is None:
            self._fabric = _make_fabric(self.settings)
        return getattr(self._fabric, name)


def build_store(cfg: DictConfig, space: SearchSpace, fabric=None) -> StatsStore:
    cache = to_dict(cfg.cache)
    return StatsStore(
        space,
        batch_seed=int(cfg.data.get("seed", 0)),
        model_seed=0,
        budget=cache["budget"],
        dtype=cache["dtype"],
        directory=cache["dir"],
        enabled=cache["enabled"],
        memory=cache.get("memory", True),
        fabric=fabric,
        micro_batches=cache["micro_batches"],
    )


def prefetch_sharded(fabric, store: StatsStore, arch_ids: list[str]) -> bool:
    """Multi-device extraction: each rank extracts its shard of ``arch_ids`` into the
    shared disk cache, then all ranks meet; afterwards rank 0 reads everything from
    disk. Returns True on the rank that should continue (rank 0)."""
    if fabric is None or fabric.world_size <= 1:
        return True
    if not store.enabled:
        raise LPZeroError("fabric.devices > 1 gathers statistics through the disk cache; set cache.enabled=true")
    shard = arch_ids[fabric.global_rank :: fabric.world_size]
    store.get_many(shard, max_skip=1.0)
    fabric.barrier()
    return fabric.global_rank == 0


def config_digest(cfg: DictConfig, components: dict | None = None) -> str:
    """Hash of everything that determines results (not logging or output paths).

    ``components``: the resolved components with their origins (plugin versions),
    which the config alone does not pin (e.g. ``search.unary=all``).
    """
    data = to_dict(cfg)
    for key in ("logger", "hydra", "resume"):
        data.pop(key, None)
    if components is not None:
        data["components"] = components
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    """Atomic JSON write: readers never see half a file.

    ``indent=None`` writes compact JSON with the C encoder (checkpoints: ~10x faster).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=indent, allow_nan=True)
        handle.write("\n")
    os.replace(tmp, path)


class _Progress(Progress):
    """Rich progress; without a terminal (logs, Slurm) a plain line every 10%."""

    def update(self, task_id, **kwargs) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        if self.console.is_terminal:
            return
        task = self._tasks[task_id]
        if not task.total:
            return
        step = int(10 * task.completed / task.total)
        if step > task.fields.get("_printed", -1):
            task.fields["_printed"] = step
            print(f"{task.description}: {int(task.completed)}/{int(task.total)} {task.fields.get('info', '')}",
                  file=sys.stderr, flush=True)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A rich progress bar on stderr (plain lines when not a terminal)."""
    progress = _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield progress


def load_stats(store: StatsStore, arch_ids: list[str], description: str):
    """Statistics of ``arch_ids`` with a progress bar (extraction is the slow part)."""
    if not all(store.cached(a) for a in arch_ids):
        store.batch  # a bad data config fails here as one line, before any progress bar
    if not store.keep_in_memory:
        return LazyStats(store, arch_ids)
    with progress_bar() as progress:
        task = progress.add_task(description, total=len(arch_ids), info="")

        def advance(arch_id: str) -> None:
            progress.update(task, advance=1, info=arch_id)

        return store.get_many(arch_ids, progress=advance)
