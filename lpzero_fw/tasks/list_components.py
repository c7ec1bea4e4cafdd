"""``task=list``: every registered component with its description and origin."""
from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from lpzero_fw.registry import ALL_REGISTRIES, PLUGINS, TASKS


@TASKS.register("list", description="list every registered component with its origin")
def run(cfg: DictConfig) -> list[dict]:
    console = Console()
    rows = []
    for kind, registry in ALL_REGISTRIES.items():
        table = Table(title=f"{registry.kind} ({kind})", title_justify="left")
        for column in ("name", "description", "origin"):
            table.add_column(column)
        for entry in registry.entries():
            table.add_row(entry.name, entry.description, entry.origin)
            rows.append({"registry": kind, "name": entry.name, "description": entry.description,
                         "origin": entry.origin})
        console.print(table)
    for name, error in PLUGINS.failed.items():
        console.print(f"[yellow]plugin {name!r} failed to load: {error}[/]")
    return rows
