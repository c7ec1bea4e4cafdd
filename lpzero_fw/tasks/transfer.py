"""``task=transfer proxy=<...> transfer.benchmarks=[...]``: do proxies rank other benchmarks too?

A benchmark entry is a search-space name (its config group's defaults, e.g. ``gpt2``) or a
mapping of search_space settings (``{name: gpt2, benchmark: /data/random_GPT2_lm1b}``);
each entry gets its own statistics store (the cache key includes the space's settings).
Writes ``transfer.json`` (proxy × benchmark: τ, ρ, n on all archs), ``transfer.md``,
``transfer.png`` (heat map of τ) and ``scores.csv`` (one row per benchmark × arch).
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from lpzero_fw import metrics
from lpzero_fw.proxy.evaluate import Evaluator, InvalidProxy
from lpzero_fw.formula.parse import parse
from lpzero_fw.registry import SEARCH_SPACES, TASKS, LPZeroError
from lpzero_fw.tasks import rank
from lpzero_fw.tasks.common import (
    build_fabric,
    build_space,
    build_store,
    console,
    load_stats,
    run_dir,
    to_dict,
    write_json,
)
from lpzero_fw.tracking import build_tracker

CONF = Path(__file__).resolve().parents[1] / "conf" / "search_space"


def entry_settings(entry) -> tuple[str, dict]:
    """(label, search_space settings) of one benchmark entry."""
    if isinstance(entry, (DictConfig, dict)):
        overrides = dict(to_dict(entry) if isinstance(entry, DictConfig) else entry)
        name = overrides.get("name")
    else:
        name, overrides = str(entry), {}
    if not name or name not in SEARCH_SPACES:
        raise LPZeroError(
            f"benchmark entry {to_dict(entry)!r} needs a search-space name; choose one of: {', '.join(SEARCH_SPACES.names())}"
        )
    group = CONF / f"{name}.yaml"
    settings = dict(OmegaConf.to_container(OmegaConf.load(group))) if group.exists() else {"name": name}
    settings.update(overrides)
    if "benchmark" not in settings:
        raise LPZeroError(f"benchmark entry {name!r} has no config group search_space/{name}.yaml; "
                          f"give a mapping with its benchmark, e.g. {{name: {name}, benchmark: /path}}")
    label = name if "benchmark" not in overrides else f"{name}:{Path(str(settings['benchmark'])).name}"
    return label, settings


def benchmark_configs(cfg: DictConfig, entries) -> dict[str, DictConfig]:
    """{label: a copy of ``cfg`` whose search_space is the entry's}; labels are unique."""
    if entries is None or isinstance(entries, (str, DictConfig, dict)) or not isinstance(entries, (list, tuple, ListConfig)):
        raise LPZeroError(f"benchmark list {to_dict(entries)!r} must be a list, e.g. [gpt2, flexibert]")
    out: dict[str, DictConfig] = {}
    for entry in entries:
        label, settings = entry_settings(entry)
        if label in out:
            raise LPZeroError(f"benchmark {label!r} is listed twice")
        sub = OmegaConf.create(to_dict(cfg))
        sub.search_space = OmegaConf.create(settings)
        out[label] = sub
    return out


def score_formula(cfg: DictConfig, formula: str, description: str = "") -> dict:
    """Correlations of one formula on every arch of ``cfg``'s benchmark (its own store)."""
    space = build_space(cfg)
    store = build_store(cfg, space, build_fabric(cfg))
    ids = space.arch_ids()
    stats = load_stats(store, ids, description or f"transfer ({len(ids)} archs)")
    ids = [a for a in ids if a not in store.skipped]
    evaluator, proxy, values = Evaluator(), parse(formula), np.full(len(ids), np.nan)
    for i, arch_id in enumerate(ids):
        try:
            values[i] = evaluator.score(proxy, arch_id, stats[arch_id])
        except InvalidProxy:
            pass
    return metrics.correlations(values, [space.quality(a) for a in ids])


@TASKS.register("transfer", description="rank proxies on several benchmarks: transfer.json/.md and a heat map")
def run(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    request = rank.Request(cfg.get("proxy"), str(cfg.search.get("ops") or "lpzero_fw"))
    benches = benchmark_configs(cfg, cfg.transfer.get("benchmarks"))
    if not benches:
        raise LPZeroError("task=transfer needs transfer.benchmarks=[...], e.g. transfer.benchmarks=[gpt2,flexibert]")
    asked = [*request.baselines, *request.formulas, *request.ensembles]
    table: dict[str, dict[str, dict]] = {name: {} for name in asked}
    members: dict[str, dict[str, list[str]]] = {}
    csv_rows: list[list] = []
    tracker = build_tracker(to_dict(cfg.logger), out, to_dict(cfg), run_name=f"transfer-{out.name}")
    try:
        for label, sub in benches.items():
            console.print(f"[bold]benchmark[/] {label}")
            space = build_space(sub)
            ids = space.arch_ids()
            quality = np.array([space.quality(a) for a in ids])
            request.family = space.family
            scored = rank.score_table(sub, space, ids, request)
            oriented = scored.oriented
            search_mask, _ = rank.holdout_pools(sub, space, ids)
            members[label] = rank.add_ensembles(oriented, quality, request, search_mask)
            for name in asked:
                table[name][label] = rank.correlate(oriented[name], quality, scored.absent.get(name))
            csv_rows += [[label, a, quality[i], *(oriented[n][i] for n in asked)] for i, a in enumerate(ids)]
        result = {"benchmarks": list(benches), "proxies": table, "ensemble_members": members,
                  "seconds": round(time.perf_counter() - start, 3)}
        write_json(out / "transfer.json", result)
        text = _markdown(table, list(benches))
        (out / "transfer.md").write_text(text)
        _heatmap(out / "transfer.png", table, list(benches))
        with open(out / "scores.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["benchmark", "arch_id", "quality", *asked])
            writer.writerows([row[:3] + [rank._fmt(v) for v in row[3:]] for row in csv_rows])
        tracker.log_image("transfer", out / "transfer.png")
        console.print(text)
        console.print(f"{len(asked)} proxies on {len(benches)} benchmarks in {result['seconds']:.1f} s -> {out}")
        return result
    finally:
        tracker.finish()


def _markdown(table: dict, benches: list[str]) -> str:
    lines = [
        "Kendall τ / Spearman ρ on all archs of each benchmark (oriented: positive = agrees with trained quality)",
        "",
        "| proxy | " + " | ".join(benches) + " |",
        "|---|" + "---|" * len(benches),
    ]
    for name, per in table.items():
        cells = [f"{per[b]['kendall_tau']:.3f} / {per[b]['spearman_rho']:.3f} (n={per[b]['n_archs']})" for b in benches]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _heatmap(path: Path, table: dict, benches: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    grid = np.array([[table[n][b]["kendall_tau"] for b in benches] for n in names], float)
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * len(benches), 1.0 + 0.32 * len(names)))
    image = ax.imshow(np.nan_to_num(grid, nan=0.0), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(names)):
        for j in range(len(benches)):
            value = grid[i, j]
            ax.text(j, i, "n/a" if math.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(benches)), benches, fontsize=8)
    ax.set_yticks(range(len(names)), [n if len(n) <= 40 else n[:37] + "..." for n in names], fontsize=7)
    ax.set_title("Kendall τ (oriented) per benchmark", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
