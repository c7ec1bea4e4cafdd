"""``task=rank proxy=<name | formula | ensemble(...) | all>``: how well do proxies rank the benchmark?

With ``search.holdout > 0`` every row also carries ``heldout``: its correlation on the
held-out pool a search with the same ``seed`` would never score, and ``best2_ensemble``
chooses its members on that search's pool only. ``scores.csv`` keeps every arch's scores.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from typing import NamedTuple

import numpy as np
from omegaconf import DictConfig, ListConfig

from lpzero_fw import metrics
from lpzero_fw.baselines import ensemble
from lpzero_fw.baselines.reference import NAMED_FORMULAS
from lpzero_fw.baselines.runner import STATISTICS, run_baselines
from lpzero_fw.proxy.evaluate import ABSENT_INPUT, Evaluator, InvalidProxy, absent_counts
from lpzero_fw.formula.parse import parse
from lpzero_fw.registry import BASELINES, TASKS, LPZeroError, import_modules
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
from lpzero_fw.tracking import build_tracker


class Request:
    """What ``proxy=`` asks for: baseline names, {label: formula}, ensemble specs."""

    def __init__(self, spec, ops: str = "lpzero_fw", family: str | None = None) -> None:
        from lpzero_fw.ops.reference import DEFAULT_SET, translate

        # named formulas are written in the operator set ``ops`` (``search.ops``), labelled
        # ``name@ops`` outside the default set; explicit formulas are taken literally
        suffix = "" if ops == DEFAULT_SET else f"@{ops}"
        self.named = {name: (name + suffix, translate(text, ops)) for name, text in NAMED_FORMULAS.items()}
        self.family = family  # ``all`` takes the baselines defined for this model family
        if spec is None:
            raise LPZeroError("this task needs proxy=<baseline name | formula | all | ensemble(...)> (e.g. proxy=all)")
        items = list(spec) if isinstance(spec, (list, tuple, ListConfig)) else [spec]
        self.baselines: list[str] = []
        self.formulas: dict[str, str] = {}
        self.ensembles: dict[str, list[str]] = {}  # label -> member labels (best2: filled later)
        for item in items:
            self._add(str(item).strip(), top=True)

    def _add(self, item: str, top: bool = False) -> str:
        if item == "all" and top:
            for name in BASELINES.names():
                if BASELINES.get(name).applies_to(self.family):
                    self._add(name)
            self.formulas.update(dict(self.named.values()))
            self.ensembles.setdefault(ensemble.BEST2, [])
        elif item == ensemble.BEST2 and top:
            self.ensembles.setdefault(item, [])
        elif item.startswith(ensemble.PREFIX) and top:
            members = [self._add(m) for m in ensemble.split_members(item)]
            self.ensembles[f"ensemble({', '.join(members)})"] = members
        elif item in self.named:
            label, text = self.named[item]
            self.formulas[label] = text
            item = label
        elif item in BASELINES:
            if item not in self.baselines:
                self.baselines.append(item)
        elif "(" in item:
            self.formulas[item] = str(parse(item))
        else:
            choices = ", ".join(["all", ensemble.BEST2, "ensemble(...)", *BASELINES.names(), *NAMED_FORMULAS])
            raise LPZeroError(f"unknown proxy {item!r}; give a formula or one of: {choices}")
        return item

    @property
    def candidates(self) -> list[str]:
        """Single controls ``best2_ensemble`` may pick from: human-designed baselines."""
        return [n for n in BASELINES.names()
                if not BASELINES.get(n).searched and BASELINES.get(n).applies_to(self.family)]

    def need_candidates(self) -> None:
        """best2_ensemble needs every candidate scored, even when not asked for itself."""
        if ensemble.BEST2 in self.ensembles:
            for name in self.candidates:
                self._add(name)


def resolve_proxies(spec, ops: str = "lpzero_fw") -> tuple[list[str], dict[str, str]]:
    """Split ``proxy=`` into baseline names and {label: formula} (formulas parsed eagerly)."""
    request = Request(spec, ops)
    return request.baselines, request.formulas


def orient(name: str, values: np.ndarray, formulas) -> np.ndarray:
    """Scores oriented so that higher predicts a better model (formulas are by construction)."""
    return values if name in formulas or BASELINES.get(name).higher_is_better else -values


class Table(NamedTuple):
    """Every single proxy's scores over ``arch_ids``, by label."""

    oriented: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    seconds: dict[str, float]
    #: archs lacking an input the formula reads (no score there, left out of its correlations)
    absent: dict[str, np.ndarray]
    #: input symbol -> archs with no layer of it
    lacking: dict[str, int]


def score_table(cfg, space, arch_ids, request: Request) -> Table:
    """Score every single proxy of ``request`` on ``arch_ids``."""
    request.need_candidates()
    raw, seconds, absent, lacking = _score_all(cfg, space, arch_ids, request.baselines, request.formulas)
    return Table({n: orient(n, v, request.formulas) for n, v in raw.items()}, raw, seconds, absent, lacking)


def correlate(values: np.ndarray, quality: np.ndarray, absent: np.ndarray | None) -> dict:
    """The correlation record over the archs where the proxy is defined."""
    keep = np.ones(len(values), bool) if absent is None else ~absent
    return metrics.correlations(values[keep], quality[keep])


def add_ensembles(oriented: dict[str, np.ndarray], quality: np.ndarray, request: Request,
                  search_mask: np.ndarray) -> dict[str, list[str]]:
    """Add each ensemble's column to ``oriented``; best2 picks on ``search_mask`` rows only."""
    members = {}
    for label, names in request.ensembles.items():
        if label == ensemble.BEST2:
            names = ensemble.pick_best({n: oriented[n] for n in request.candidates}, quality, search_mask)
        oriented[label] = ensemble.rank_mean([oriented[n] for n in names])
        members[label] = list(names)
    return members


def holdout_pools(cfg, space, arch_ids) -> tuple[np.ndarray, np.ndarray | None]:
    """Boolean masks over ``arch_ids``: (search pool, held-out pool or None when holdout=0)."""
    search_ids, held_ids = space.split(float(cfg.search.get("holdout", 0.0) or 0.0), int(cfg.seed))
    held = set(held_ids)
    held_mask = np.array([a in held for a in arch_ids])
    if not held:
        return np.ones(len(arch_ids), bool), None
    return ~held_mask, held_mask


def write_scores_csv(path: Path, arch_ids, ground_truth, metric: str, quality, oriented: dict) -> None:
    """One row per arch: id, the benchmark's metric as reported, oriented quality, oriented proxy scores."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch_id", metric, "quality", *oriented])
        for i, arch_id in enumerate(arch_ids):
            writer.writerow([arch_id, ground_truth[i], quality[i], *(_fmt(v[i]) for v in oriented.values())])


def _fmt(value: float) -> str:
    return "" if not np.isfinite(value) else repr(float(value))


@TASKS.register("rank", description="rank formulas and baselines on a benchmark: tau/rho, scores.csv, figures")
def run(cfg: DictConfig) -> list[dict]:
    start = time.perf_counter()
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    Request(cfg.get("proxy"))  # a bad proxy= fails before the benchmark is read
    space = build_space(cfg)
    request = Request(cfg.get("proxy"), str(cfg.search.get("ops") or "lpzero_fw"), space.family)
    ids = space.arch_ids()
    n = cfg.rank.n_archs
    if n is not None and not 2 <= int(n) <= len(ids):
        raise LPZeroError(f"rank.n_archs={n} must lie between 2 and the benchmark size {len(ids)}")
    arch_ids = ids if n is None else space.sample(int(n), int(cfg.seed))
    search_mask, held_mask = holdout_pools(cfg, space, arch_ids)
    ground = np.array([float(space.ground_truth(a)) for a in arch_ids])
    quality = np.array([space.quality(a) for a in arch_ids])
    tracker = build_tracker(to_dict(cfg.logger), out, to_dict(cfg), run_name=f"rank-{out.name}")
    try:
        asked = [*request.baselines, *request.formulas, *request.ensembles]
        table = score_table(cfg, space, arch_ids, request)
        oriented, raw, seconds, absent = table.oriented, table.raw, table.seconds, table.absent
        members = add_ensembles(oriented, quality, request, search_mask)
        rows = []
        for name in asked:
            record = correlate(oriented[name], quality, absent.get(name))
            row = {"name": name, **record,
                   "seconds": round(sum(seconds[m] for m in members.get(name, [name])), 3)}
            if name in members:
                row["members"] = members[name]
            if held_mask is not None:
                gone = absent.get(name)
                row["heldout"] = correlate(oriented[name][held_mask], quality[held_mask],
                                           None if gone is None else gone[held_mask])
            rows.append(row)
        key = (lambda r: r["heldout"]["kendall_tau"]) if held_mask is not None else (lambda r: r["kendall_tau"])
        rows.sort(key=lambda r: (-_nan_low(key(r)), r["name"]))
        write_json(out / "ranking.json", rows)
        write_scores_csv(out / "scores.csv", arch_ids, ground, space.metric_name, quality, oriented)
        text = _markdown(rows, space.metric_name, len(arch_ids), held_mask, table.lacking)
        (out / "ranking.md").write_text(text)
        _scatter(out / "scatter.png", oriented, quality, rows, space.metric_name)
        proxies_vs_params(out / "fig1_proxies_vs_params.png", rows, request.formulas)  # the paper's Fig. 1
        tracker.log_table("ranking", rows)
        tracker.record(out)
        console.print(text)
        console.print(f"{len(rows)} proxies on {len(arch_ids)} archs in {time.perf_counter() - start:.1f} s -> {out}")
        return rows
    finally:
        tracker.finish()


def _nan_low(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value


_WORKER: dict = {}  # a rank.workers process's own space and batch (set by _start_worker)


def _start_worker(config: dict, baselines: list[str]) -> None:
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(1)
    cfg = OmegaConf.create(config)
    import_modules(list(cfg.get("plugins") or []))  # local plugins, as the parent imported them
    space = build_space(cfg)
    _WORKER.update(space=space, batch=space.make_batch(seed=int(cfg.data.get("seed", 0))), baselines=baselines)


def _baselines_in_worker(job) -> tuple[dict[str, float], dict[str, float], dict | None]:
    arch_id, plan = job
    return _scored(_WORKER["space"], arch_id, _WORKER["batch"], _WORKER["baselines"], plan)


def _workers(cfg) -> int:
    value = (to_dict(cfg.get("rank")) or {}).get("workers", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LPZeroError(f"rank.workers={value!r} must be a positive integer")
    return value


def _baseline_values(cfg, space, jobs, baselines, batch):
    """An iterator of ``(values, seconds, statistics)`` per ``(arch_id, plan)`` job, in order:
    from this process, or from ``rank.workers`` processes (one torch thread each; a
    baseline seeds its own model, so the values do not depend on where it ran)."""
    workers = min(_workers(cfg), len(jobs))
    if workers > 1:
        return _in_workers(cfg, jobs, baselines, workers)
    return (_scored(space, arch_id, batch, baselines, plan) for arch_id, plan in jobs)


def _scored(space, arch_id: str, batch, baselines, plan=None):
    seconds: dict[str, float] = {}
    values, raw = run_baselines(space, arch_id, batch, baselines, seconds=seconds, extract=plan)
    return values, seconds, raw


def _in_workers(cfg, jobs, baselines, workers: int):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from omegaconf import OmegaConf

    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                               initargs=(OmegaConf.to_container(cfg, resolve=True), list(baselines)))
    try:
        yield from pool.map(_baselines_in_worker, jobs)
    finally:  # an error or interrupt in the caller must not wait for the remaining archs
        pool.shutdown(wait=False, cancel_futures=True)


def _score_all(cfg, space, arch_ids, baselines, formulas):
    """Scores of every baseline and formula on ``arch_ids``. Statistics the cache lacks are
    extracted by the baselines' shared pass when there is one (one forward+backward per
    arch for both), else by the store itself."""
    scores = {name: np.full(len(arch_ids), np.nan) for name in [*baselines, *formulas]}
    absent = {name: np.zeros(len(arch_ids), dtype=bool) for name in formulas}
    lacking: dict[str, int] = {}  # input -> archs with no layer of it
    seconds = {name: 0.0 for name in scores}
    store = build_store(cfg, space, build_fabric(cfg)) if formulas else None
    parsed = {label: parse(text) for label, text in formulas.items()}
    evaluator = Evaluator()
    batch = None
    if baselines:  # the store's batch when there is one (the same seed): made once
        batch = store.batch if store is not None else space.make_batch(seed=int(cfg.data.get("seed", 0)))
    share = (store is not None and store.plain_pass
             and any(BASELINES.get(name).shared_pass for name in baselines))
    jobs = [(a, store.plan if share and not store.cached(a) else None) for a in arch_ids]
    scored = _baseline_values(cfg, space, jobs, baselines, batch) if baselines else None
    with progress_bar() as progress:
        bar = progress.add_task("rank", total=len(arch_ids), info="")
        for i, arch_id in enumerate(arch_ids):
            raw, extraction = None, 0.0
            if scored is not None:
                values, spent, raw = next(scored)
                for name, value in values.items():
                    scores[name][i] = value
                    seconds[name] += spent.get(name, 0.0)
                extraction = spent.get(STATISTICS, 0.0)
            if parsed:
                t0 = time.perf_counter()
                stats = store.get(arch_id) if raw is None else store.add(arch_id, raw)
                extraction = (extraction + time.perf_counter() - t0) / len(parsed)
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


def _markdown(rows: list[dict], metric: str, n: int, held_mask, lacking: dict[str, int] | None = None) -> str:
    missing = {k: v for k, v in (lacking or {}).items() if v}
    note = (["", "Architectures lacking an input (left out of the proxies reading it; see n): "
             + ", ".join(f"{k} {v} of {n}" for k, v in missing.items())] if missing else [])
    head = f"Ranking on {n} architectures (oriented: positive = agrees with trained {metric})"
    if held_mask is None:
        lines = [head, "", "| # | proxy | Kendall τ | Spearman ρ | n | seconds |", "|---|---|---|---|---|---|"]
        for i, r in enumerate(rows, 1):
            lines.append(f"| {i} | `{_label(r)}` | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} "
                         f"| {r['n_archs']} | {r['seconds']:.1f} |")
        return "\n".join(lines + note) + "\n"
    n_held = int(held_mask.sum())
    lines = [
        head + f"; held-out = the {n_held} archs a search with this seed never scores, "
        "all = every arch (in-sample for searched proxies)", "",
        "| # | proxy | held-out τ | held-out ρ | all τ | all ρ | n held-out / all | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        h = r["heldout"]
        lines.append(
            f"| {i} | `{_label(r)}` | {h['kendall_tau']:.3f} | {h['spearman_rho']:.3f} | {r['kendall_tau']:.3f} "
            f"| {r['spearman_rho']:.3f} | {h['n_archs']} / {r['n_archs']} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines + note) + "\n"


def _label(row: dict) -> str:
    return f"{row['name']} = ensemble({', '.join(row['members'])})" if row["name"] == ensemble.BEST2 else row["name"]


def _scatter(path: Path, scores, quality, rows, metric) -> None:
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
