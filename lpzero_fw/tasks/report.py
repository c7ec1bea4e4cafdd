"""``task=report report.sweep_dir=...``: one table and overlay plots for a whole sweep."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig

from lpzero_fw.registry import TASKS, LPZeroError
from lpzero_fw.tasks.common import console, run_dir, to_dict
from lpzero_fw.tasks.figures import sweep_figures
from lpzero_fw.tracking import build_tracker


def collect(sweep_dir: Path) -> list[dict]:
    """One record per finished job: overrides, result.json, history.csv."""
    jobs = []
    for result_path in sorted(sweep_dir.glob("*/result.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        job = result_path.parent
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
        history = list(csv.DictReader(open(job / "history.csv"))) if (job / "history.csv").exists() else []
        jobs.append({"job": job.name, "overrides": overrides or [], "result": json.loads(result_path.read_text()),
                     "history": history})
    return jobs


def variant_of(overrides: list[str], common: frozenset = frozenset()) -> str:
    """Overrides without the seed and without those every job shares: jobs that differ
    only by seed form one variant."""
    kept = [o for o in overrides if not o.lstrip("+").startswith("seed=") and o not in common]
    return " ".join(kept) or "(default)"


def shared_overrides(jobs: list[dict]) -> frozenset:
    sets = [set(job["overrides"]) for job in jobs]
    return frozenset(set.intersection(*sets)) if len(sets) > 1 else frozenset()


@TASKS.register("report", description="summarise a sweep: mean/std per variant, the paper's ablation figures")
def run(cfg: DictConfig) -> list[dict]:
    if not cfg.report.sweep_dir:
        raise LPZeroError("task=report needs report.sweep_dir=<a multirun directory>")
    sweep = Path(str(cfg.report.sweep_dir)).expanduser()
    if not sweep.is_dir():
        raise LPZeroError(f"report.sweep_dir={str(sweep)!r} is not a directory")
    jobs = collect(sweep)
    if not jobs:
        raise LPZeroError(f"report.sweep_dir={str(sweep)!r} holds no finished job (no */result.json)")
    common = shared_overrides(jobs)
    rows = []
    for job in jobs:
        r = job["result"]
        rejected = sum(r.get("rejected", {}).values())
        rows.append({
            "job": job["job"], "overrides": " ".join(o for o in job["overrides"] if o not in common), "variant": variant_of(job["overrides"], common),
            "best_proxy": r["best_proxy"], "best_rho": r["fitness"],
            "heldout_tau": (r.get("heldout") or {}).get("kendall_tau", float("nan")),
            "heldout_rho": (r.get("heldout") or {}).get("spearman_rho", float("nan")),
            "full_tau": r["full"]["kendall_tau"], "full_rho": r["full"]["spearman_rho"],
            "proxies_scored": r["proxies_scored"], "rejected": rejected, "seconds": r["seconds"],
        })
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    text = _markdown(rows)
    (out / "report.md").write_text(text)
    _overlay(out / "report_curves.png", jobs, common)
    figures = sweep_figures(out, jobs)  # the paper's Fig. 6 / Fig. 7 / Table 5 for its ablation sweeps
    tracker = build_tracker(to_dict(cfg.logger), out, {"sweep_dir": str(sweep)}, run_name=f"report-{sweep.name}")
    try:
        tracker.log_table("report", rows)
        tracker.log_image("report_curves", out / "report_curves.png")
    finally:
        tracker.finish()
    console.print(text)
    console.print(f"{len(rows)} jobs -> {out / 'report.md'}" + "".join(f", {f.name}" for f in figures))
    return rows


def _markdown(rows: list[dict]) -> str:
    """Per job, then mean ± std per variant; held-out (out of sample) columns lead, "full"
    (all archs) is in-sample for a searched proxy. Held-out is n/a for search.holdout=0."""
    lines = ["| job | overrides | best ρ (search) | held-out τ | held-out ρ | full τ | full ρ | scored | rejected "
             "| seconds | best proxy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['job']} | {r['overrides']} | {r['best_rho']:.4f} | {_num(r['heldout_tau'])} | {_num(r['heldout_rho'])} "
            f"| {r['full_tau']:.4f} | {r['full_rho']:.4f} "
            f"| {r['proxies_scored']} | {r['rejected']} | {r['seconds']:.1f} | `{r['best_proxy']}` |"
        )
    by_variant = defaultdict(list)
    for r in rows:
        by_variant[r["variant"]].append(r)
    lines += ["", "| variant | jobs | best ρ mean ± std | held-out τ mean ± std | held-out ρ mean ± std "
              "| full τ mean ± std (in-sample) | full ρ mean ± std (in-sample) |", "|---|---|---|---|---|---|---|"]
    for variant, group in by_variant.items():
        def stat(key):
            values = np.array([g[key] for g in group], float)
            if not np.isfinite(values).any():
                return "n/a"
            return f"{np.nanmean(values):.4f} ± {np.nanstd(values):.4f}"
        lines.append(f"| {variant} | {len(group)} | {stat('best_rho')} | {stat('heldout_tau')} | {stat('heldout_rho')} "
                     f"| {stat('full_tau')} | {stat('full_rho')} |")
    return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _overlay(path: Path, jobs: list[dict], common: frozenset) -> None:
    """Best-so-far rho against proxies scored (the search's real cost; evolution scores
    its whole initial population first), mean ± std over the jobs of each variant, on a
    log axis, with the y range fitted to the curves after their first 10%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = defaultdict(list)
    for job in jobs:
        if job["history"]:
            x = np.array([float(h.get("proxies_scored") or h["iteration"]) for h in job["history"]])
            y = np.array([float(h["best_fitness"]) for h in job["history"]])
            curves[variant_of(job["overrides"], common)].append((x, y))
    fig, ax = plt.subplots(figsize=(7, 4))
    lows, highs = [], []
    for variant, runs in curves.items():
        grid = np.arange(max(max(x[0] for x, _ in runs), 1.0), max(x[-1] for x, _ in runs) + 1)
        # best-so-far is a step function: the value of the last row at or before each grid
        # point (a job that finished with fewer proxies keeps its final best)
        ys = np.stack([y[np.clip(np.searchsorted(x, grid, side="right") - 1, 0, None)] for x, y in runs])
        mean, spread = ys.mean(0), ys.std(0)
        ax.plot(grid, mean, label=f"{variant} (n={len(runs)})")
        ax.fill_between(grid, mean - spread, mean + spread, alpha=0.2)
        tail = slice(len(grid) // 10, None)
        lows.append(np.nanmin((mean - spread)[tail]))
        highs.append(np.nanmax((mean + spread)[tail]))
    if lows and np.isfinite(min(lows)) and np.isfinite(max(highs)):
        pad = 0.1 * max(max(highs) - min(lows), 1e-3)
        ax.set_ylim(min(lows) - pad, max(highs) + pad)
    ax.set_xscale("log")
    ax.set_xlabel("proxies scored (log)")
    ax.set_ylabel("best-so-far Spearman ρ (search archs)")
    ax.grid(alpha=0.3, which="both")
    if lows:  # a sweep whose jobs kept no history has no curves to label
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
