"""``task=rank proxy=<name | formula | all>``: how well do proxies rank the benchmark?"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig

from lpzero_fw import metrics
from lpzero_fw.baselines.proxies import NAMED_FORMULAS
from lpzero_fw.baselines.runner import score_baselines
from lpzero_fw.proxy.evaluate import ABSENT_INPUT, Evaluator, InvalidProxy, absent_counts
from lpzero_fw.proxy.parse import parse
from lpzero_fw.registry import BASELINES, LPZeroError
from lpzero_fw.tasks.figures import proxies_vs_params
from lpzero_fw.tasks.common import (
    build_fabric,
    build_space,
    build_store,
    console,
    progress_bar,
    run_dir,
    to_dict,
    write_json,
)
from lpzero_fw.tracking import Tracker


def resolve_proxies(spec, ops: str = "lpzero_fw") -> tuple[list[str], dict[str, str]]:
    """Split ``proxy=`` into baseline names and {label: formula} (formulas parsed eagerly).

    Named formulas are written in the operator set ``ops`` (``search.ops``; labelled
    ``name@ops`` outside the default set); explicit formulas are taken literally.
    """
    from lpzero_fw.ops.reference import DEFAULT_SET, translate

    suffix = "" if ops == DEFAULT_SET else f"@{ops}"
    named = {name: (name + suffix, translate(text, ops)) for name, text in NAMED_FORMULAS.items()}
    if spec is None:
        raise LPZeroError("task=rank needs proxy=<baseline name | formula | all> (e.g. proxy=all)")
    items = list(spec) if isinstance(spec, (list, tuple, ListConfig)) else [spec]
    baselines, formulas = [], {}
    for item in items:
        item = str(item).strip()
        if item == "all":
            baselines += [n for n in BASELINES.names() if n not in baselines]
            formulas.update(dict(named.values()))
        elif item in named:
            label, text = named[item]
            formulas[label] = text
        elif item in BASELINES:
            baselines.append(item)
        elif "(" in item:
            formulas[item] = str(parse(item))
        else:
            choices = ", ".join(["all", *BASELINES.names(), *NAMED_FORMULAS])
            raise LPZeroError(f"unknown proxy {item!r}; give a formula or one of: {choices}")
    return baselines, formulas


def run(cfg: DictConfig) -> list[dict]:
    start = time.perf_counter()
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    baselines, formulas = resolve_proxies(cfg.get("proxy"), str(cfg.search.get("ops") or "lpzero_fw"))
    space = build_space(cfg)
    ids = space.arch_ids()
    n = cfg.rank.n_archs
    if n is not None and not 2 <= int(n) <= len(ids):
        raise LPZeroError(f"rank.n_archs={n} must lie between 2 and the benchmark size {len(ids)}")
    arch_ids = ids if n is None else space.sample(int(n), int(cfg.seed))
    quality = np.array([space.quality(a) for a in arch_ids])
    tracker = Tracker(to_dict(cfg.logger), out, to_dict(cfg), name=f"rank-{out.name}")
    try:
        scores, seconds, absent, lacking = _score_all(cfg, space, arch_ids, baselines, formulas)
        rows, oriented_scores = [], {}
        for name, values in scores.items():
            oriented = values if name in formulas or BASELINES.get(name).higher_is_better else -values
            oriented_scores[name] = oriented
            defined = ~absent.get(name, np.zeros(len(arch_ids), dtype=bool))  # absent input: left out
            record = metrics.correlations(oriented[defined], quality[defined])
            rows.append({"name": name, **record, "seconds": round(seconds[name], 3)})
        rows.sort(key=lambda r: (-_nan_low(r["kendall_tau"]), r["name"]))
        write_json(out / "ranking.json", rows)
        (out / "ranking.md").write_text(_markdown(rows, space.metric_name, len(arch_ids), lacking))
        _scatter(out / "scatter.png", oriented_scores, quality, rows, formulas, space.metric_name)
        proxies_vs_params(out / "fig1_proxies_vs_params.png", rows, formulas)  # the paper's Fig. 1
        tracker.log_table("ranking", rows)
        tracker.record(out)
        console.print(_markdown(rows, space.metric_name, len(arch_ids)))
        if any(lacking.values()):
            console.print("archs lacking an input (left out of that input's proxies; n says how many remain): "
                          + ", ".join(f"{k}: {v} of {len(arch_ids)}" for k, v in lacking.items() if v))
        console.print(f"{len(rows)} proxies on {len(arch_ids)} archs in {time.perf_counter() - start:.1f} s -> {out}")
        return rows
    finally:
        tracker.finish()


def _nan_low(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def _score_all(cfg, space, arch_ids, baselines, formulas):
    scores = {name: np.full(len(arch_ids), np.nan) for name in [*baselines, *formulas]}
    absent = {name: np.zeros(len(arch_ids), dtype=bool) for name in formulas}
    lacking: dict[str, int] = {}  # input -> archs with no layer of it
    seconds = {name: 0.0 for name in scores}
    store = build_store(cfg, space, build_fabric(cfg)) if formulas else None
    parsed = {label: parse(text) for label, text in formulas.items()}
    evaluator = Evaluator()
    batch = space.make_batch(seed=int(cfg.data.get("seed", 0))) if baselines else None
    with progress_bar() as progress:
        bar = progress.add_task("rank", total=len(arch_ids), info="")
        for i, arch_id in enumerate(arch_ids):
            if baselines:
                values = score_baselines(space, arch_id, batch, baselines, seconds=seconds)
                for name, value in values.items():
                    scores[name][i] = value
            if parsed:
                t0 = time.perf_counter()
                stats = store.get(arch_id)
                extraction = (time.perf_counter() - t0) / len(parsed)
                for symbol, count in absent_counts({arch_id: stats}).items():
                    lacking[symbol] = lacking.get(symbol, 0) + count
                for label, proxy in parsed.items():
                    t1 = time.perf_counter()
                    try:
                        scores[label][i] = evaluator.score(proxy, arch_id, stats)
                    except InvalidProxy as invalid:
                        scores[label][i] = np.nan
                        absent[label][i] = invalid.rule == ABSENT_INPUT
                    seconds[label] += extraction + time.perf_counter() - t1
            progress.update(bar, advance=1, info=arch_id)
    return scores, seconds, absent, lacking


def _markdown(rows: list[dict], metric: str, n: int, lacking: dict[str, int] | None = None) -> str:
    lines = [
        f"Ranking on {n} architectures (oriented: positive = agrees with trained {metric})",
        "",
        "| # | proxy | Kendall τ | Spearman ρ | n | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | `{r['name']}` | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | {r['n_archs']} | {r['seconds']:.1f} |"
        )
    missing = {k: v for k, v in (lacking or {}).items() if v}
    if missing:
        lines += ["", "Architectures lacking an input (left out of the proxies reading it; see n): "
                  + ", ".join(f"{k} {v} of {n}" for k, v in missing.items())]
    return "\n".join(lines) + "\n"


def _scatter(path: Path, scores, quality, rows, formulas, metric) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = [r["name"] for r in rows]
    cols = min(4, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    by_name = {r["name"]: r for r in rows}
    for ax, name in zip(axes.flat, names):
        values = scores[name]
        ok = np.isfinite(values)
        ax.scatter(values[ok], quality[ok], s=6, alpha=0.7)
        r = by_name[name]
        label = name if len(name) <= 36 else name[:33] + "..."
        ax.set_title(f"{label}\nτ={r['kendall_tau']:.3f} ρ={r['spearman_rho']:.3f}", fontsize=7)
        ax.tick_params(labelsize=6)
        finite = values[ok]
        if finite.size and np.all(finite > 0) and finite.max() / finite.min() > 1e3:  # 3+ decades
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif finite.size:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useOffset=False)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.supylabel(f"oriented {metric}", fontsize=8)
    fig.supxlabel("oriented proxy score (negated where lower is better)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
