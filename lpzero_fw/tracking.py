"""Experiment logging: the LOGGERS registry (``logger=wandb``, offline by default, or ``none``)."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from lpzero_fw.registry import LOGGERS, LPZeroError, build

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


@LOGGERS.register("none", description="log nothing: the run directory holds every output")
class Tracker:
    """Where a run's metrics, tables, plots and outputs go besides the run directory.

    Tasks talk only to this interface (never to wandb); this base logs nothing
    (``logger=none``) and a logger plugin overrides the hooks it supports.
    """

    def __init__(self, run_dir: Path, config: dict, run_name: str | None = None) -> None:
        self.run_dir = Path(run_dir)

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """One step of metrics (search: one row of ``history.csv``)."""

    def log_table(self, key: str, rows: list[dict]) -> None:
        """A table of rows (dicts sharing their keys)."""

    def log_image(self, key: str, path: Path) -> None:
        """A plot from the run directory."""

    def record(self, run_dir: Path, result: dict | None = None) -> None:
        """What a user looks for after a run (``result``, history, outputs, plots)."""

    def summary(self, values: dict[str, Any]) -> None:
        """Run-level values."""

    def finish(self) -> None:
        """Close the run (called once, also after a failure)."""


@LOGGERS.register("wandb", description="Weights & Biases, offline by default")
class WandbTracker(Tracker):
    """A W&B run per task run; jobs of one sweep share a group."""

    def __init__(self, run_dir: Path, config: dict, run_name: str | None = None, *, mode: str = "offline",
                 project: str = "lpzero_fw", entity: str | None = None, group: str | None = None,
                 tags: list[str] = ()) -> None:
        super().__init__(run_dir, config, run_name)
        self.run = None
        if mode not in MODES:
            raise LPZeroError(f"logger.mode={mode!r} is not valid; choose one of: {', '.join(MODES)}")
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=project,
            entity=entity,
            group=group or sweep_group(),
            tags=list(tags or []),
            name=run_name,
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


def build_tracker(cfg: dict, run_dir: Path, config: dict, run_name: str | None = None) -> Tracker:
    """The configured logger (``cfg``: the ``logger`` group, its ``name`` a LOGGERS entry)."""
    return build(LOGGERS, {"name": "none", **dict(cfg)}, run_dir, config, run_name, group="logger")
