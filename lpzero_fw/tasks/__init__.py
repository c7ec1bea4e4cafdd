"""Tasks selected by ``task=<name>``; user errors become one-line messages."""
from __future__ import annotations

import importlib
import logging
import sys

from omegaconf import DictConfig

from lpzero_fw.registry import LPZeroError, import_modules

TASKS = {
    "search": "lpzero_fw.tasks.search",
    "rank": "lpzero_fw.tasks.rank",
    "list": "lpzero_fw.tasks.list_components",
    "report": "lpzero_fw.tasks.report",
    "transfer": "lpzero_fw.tasks.transfer",
    "nas": "lpzero_fw.tasks.nas",
    "build_benchmark": "lpzero_fw.tasks.build_benchmark",
}


def execute(cfg: DictConfig):
    """Run ``cfg.task.name`` and return its result; bad input raises :class:`LPZeroError`."""
    logging.getLogger("lpzero_fw").setLevel(logging.INFO)
    import_modules(list(cfg.get("plugins") or []))
    threads = cfg.get("threads")
    if threads is not None:
        if int(threads) < 1:
            raise LPZeroError(f"threads={threads} must be a positive integer or null")
        import torch

        torch.set_num_threads(int(threads))
    name = cfg.task.name
    if name not in TASKS:
        raise LPZeroError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name]).run(cfg)


def run_task(cfg: DictConfig) -> None:
    """Run ``cfg.task.name``; an :class:`LPZeroError` prints one line and exits 2."""
    try:
        execute(cfg)
    except LPZeroError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
