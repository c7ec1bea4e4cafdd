"""Experiment logging: Weights & Biases (offline by default) or nothing."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from lpzero_fw.registry import LPZeroError

MODES = ("offline", "online", "disabled")
JSON_OUTPUTS = ("result.json", "ranking.json", "transfer.json", "nas.json")


def scalar_leaves(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"full": {"kendall_tau": 0.9}}`` → ``{"full/kendall_tau": 0.9}``; lists and NaN are left out."""
    leaves: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            leaves.update(scalar_leaves(value, f"{name}/"))
        elif isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
            leaves[name] = value
    return leaves


def _numbers(row: list[str]) -> list:
    out = []
    for cell in row:
        try:
            out.append(float(cell) if any(c in cell for c in ".en") else int(cell))
        except ValueError:
            out.append(cell)
    return out


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

    def record(self, run_dir: Path, result: dict | None = None) -> None:
        """What a user looks for after a run: every scalar leaf of ``result`` in the
        summary (``best_proxy``, ``full/kendall_tau``, ``heldout/...``), ``history.csv``
        as a table, the JSON outputs as one ``results`` artifact, the plots as images."""
        if self.run is None:
            return
        import wandb

        run_dir = Path(run_dir)
        if result:
            self.summary(scalar_leaves(result))
        history = run_dir / "history.csv"
        if history.exists():
            with open(history, newline="") as handle:
                rows = list(csv.reader(handle))
            if len(rows) > 1:
                self.run.log({"history": wandb.Table(columns=rows[0], data=[_numbers(r) for r in rows[1:]])})
        outputs = [run_dir / name for name in JSON_OUTPUTS if (run_dir / name).exists()]
        if outputs:
            artifact = wandb.Artifact(f"results-{self.run.id}", type="results")
            for path in outputs:
                artifact.add_file(str(path))
            self.run.log_artifact(artifact)
        for image in sorted(run_dir.glob("*.png")):
            self.log_image(image.stem, image)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
