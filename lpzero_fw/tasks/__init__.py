"""Tasks selected by ``task=<name>`` (the :data:`~lpzero_fw.registry.TASKS` registry: a
task is a ``run(cfg) -> result`` function; plugins may register their own); user errors
become one-line messages."""
from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from lpzero_fw.registry import TASKS, LPZeroError, import_modules


def execute(cfg: DictConfig):
    """Run ``cfg.task.name`` and return its result; bad input raises :class:`LPZeroError`."""
    logging.getLogger("lpzero_fw").setLevel(logging.INFO)
    seed, threads = cfg.get("seed"), cfg.get("threads")
    if not _is_int(seed):
        raise LPZeroError(f"seed={seed!r} must be an integer")
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise LPZeroError(f"threads={threads!r} must be a positive integer or null")
    import_modules(list(cfg.get("plugins") or []))
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    return TASKS.get(cfg.task.name)(cfg)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def run_task(cfg: DictConfig) -> None:
    """Run ``cfg.task.name``; an :class:`LPZeroError` prints one line and exits 2."""
    try:
        execute(cfg)
    except LPZeroError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
