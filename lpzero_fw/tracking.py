"""Experiment logging: Weights & Biases (offline by default) or nothing."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lpzero_fw.registry import LPZeroError

MODES = ("offline", "online", "disabled")


def sweep_group() -> str | None:
    """Jobs of one Hydra multirun share a W&B group named after the sweep directory."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return Path(hydra_cfg.sweep.dir).as_posix().replace("/", "_").strip("_")
    except Exception:
        return None
    return None


class Tracker:
    """A thin wrapper so tasks never import wandb themselves (``logger=none`` → no-op)."""

    def __init__(self, cfg: dict, run_dir: Path, config: dict, name: str | None = None) -> None:
        self.run = None
        if cfg.get("name", "none") == "none":
            return
        if cfg["name"] != "wandb":
            raise LPZeroError(f"unknown logger {cfg['name']!r}; choose one of: wandb, none")
        mode = cfg.get("mode", "offline")
        if mode not in MODES:
            raise LPZeroError(f"logger.mode={mode!r} is not valid; choose one of: {', '.join(MODES)}")
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=cfg.get("project", "lpzero_fw"),
            entity=cfg.get("entity"),
            group=cfg.get("group") or sweep_group(),
            tags=list(cfg.get("tags") or []),
            name=name,
            mode=mode,
            dir=str(run_dir),
            config=config,
            reinit="finish_previous",
        )

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def log_table(self, key: str, rows: list[dict]) -> None:
        if self.run is not None and rows:
            import wandb

            columns = list(rows[0])
            self.run.log({key: wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})

    def log_image(self, key: str, path: Path) -> None:
        if self.run is not None and Path(path).exists():
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
