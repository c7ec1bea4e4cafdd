"""Benchmark tables (bring your own): one row per trained architecture, CSV or JSONL.

A row holds an ``id``, the model family's config fields (scalars, or per-layer lists:
JSON lists in JSONL, JSON list strings such as ``"[4, 8]"`` in CSV cells), one or more
metric columns, optionally ``error`` (a row the builder could not train: skipped) and
any of the declared note columns (``extra`` below, e.g. ``params`` or ``seconds``).
Every other column must be a config key of the family, so a table written for another
family fails on its first foreign column instead of being read as metrics.

Every problem is one :class:`LPZeroError` naming the file, the row and the column.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from lpzero_fw.registry import LPZeroError

SUFFIXES = (".csv", ".jsonl")
ID = "id"
ERROR = "error"
MIN_ROWS = 3


@dataclass(frozen=True)
class Row:
    """One architecture: its config fields and every non-config column."""

    id: str
    config: dict[str, Any]
    values: dict[str, Any]


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Raw rows of a CSV or JSONL file (CSV cells that hold JSON are decoded)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise LPZeroError(f"benchmark table {str(path)!r} must end in {' or '.join(SUFFIXES)}")
    if not path.is_file():
        raise LPZeroError(f"benchmark table {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LPZeroError(f"{path.name} line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise LPZeroError(f"{path.name} line {number}: a row must be a JSON object")
            rows.append(row)
        return rows
    return [{k: _cell(v) for k, v in row.items() if k is not None} for row in csv.DictReader(text.splitlines())]


def _cell(text: str | None) -> Any:
    """A CSV cell: '' → None, numbers and JSON lists decoded, anything else kept as text."""
    if text is None or text == "":
        return None
    stripped = text.strip()
    if stripped[:1] in "[{" or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            pass
    return text


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class BenchmarkTable:
    """A validated benchmark table.

    ``config_keys``: the family's valid config keys; ``metric``: the ground-truth
    column; ``extra``: further non-config columns the table may carry.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        metric: str,
        config_keys: Iterable[str],
        family: str,
        extra: Iterable[str] = (),
    ) -> None:
        self.path = Path(path)
        self.metric = metric
        self.family = family
        keys = set(config_keys)
        allowed = {ID, ERROR, metric, *extra}
        name = self.path.name
        self.rows: dict[str, Row] = {}
        self.failed: dict[str, str] = {}
        for number, raw in enumerate(read_rows(self.path), 1):
            arch = raw.get(ID)
            if arch is None or str(arch).strip() == "":
                raise LPZeroError(f"{name} row {number}: column {ID!r} is missing or empty")
            arch = str(arch)
            where = f"{name} row {number} (id={arch})"
            if arch in self.rows or arch in self.failed:
                raise LPZeroError(f"{where}: duplicate id {arch!r}")
            for column in raw:
                if column not in allowed and column not in keys:
                    raise LPZeroError(
                        f"{where}, column {column!r}: unknown {family} config key; "
                        f"a config key of {family}, {ID!r}, {ERROR!r}, the metric {metric!r} "
                        f"or a declared extra column ({', '.join(sorted(extra)) or 'none'})"
                    )
            if raw.get(ERROR):
                self.failed[arch] = str(raw[ERROR])
                continue
            if metric not in raw or raw[metric] is None:
                raise LPZeroError(f"{where}, column {metric!r}: the metric is missing")
            if as_number(raw[metric]) is None:
                raise LPZeroError(f"{where}, column {metric!r}: {raw[metric]!r} is not a finite number")
            config = {k: v for k, v in raw.items() if k in keys and k not in allowed and v is not None}
            values = {k: v for k, v in raw.items() if k in allowed}
            self.rows[arch] = Row(arch, config, values)
        if len(self.rows) < MIN_ROWS:
            raise LPZeroError(
                f"{name}: {len(self.rows)} usable rows; a benchmark needs at least {MIN_ROWS} "
                f"(rows with an {ERROR!r} are skipped)"
            )

    def ids(self) -> list[str]:
        return list(self.rows)

    def value(self, arch_id: str) -> float:
        return float(self.rows[arch_id].values[self.metric])

    def config(self, arch_id: str) -> dict[str, Any]:
        return dict(self.rows[arch_id].config)


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row to a JSONL table (flushed and synced: a crash loses at most this row)."""
    import os

    path = Path(path)
    if path.suffix != ".jsonl":
        raise LPZeroError(f"build tables are JSONL; {str(path)!r} must end in .jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row, sort_keys=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
