"""The paper's figures, drawn from what ``task=rank`` and ``task=report`` already computed.

* Fig. 1 (``task=rank``): ``fig1_proxies_vs_params.png``, every proxy's oriented Kendall τ
  as a bar, the number-of-parameters baseline as a dashed line: which proxies beat #params.
* Fig. 5 is ``task=rank``'s ``scatter.png`` (oriented scores against oriented quality).
* Fig. 6 / Fig. 7 (``task=report`` on ``experiment=ablation_strategy`` /
  ``ablation_population`` sweeps): ``fig6_strategy.png`` / ``fig7_population.png``, the
  best-so-far Spearman ρ per iteration, mean ± std over seeds, one curve per variant.
* Table 5 (``task=report`` on an ``ablation_unary`` sweep): ``table5_unary.md``, τ and ρ
  on the whole benchmark per number of unary operators, mean ± std over seeds.

The figure follows from which override the sweep varies (besides the seed), so any sweep
of those keys gets it, on any benchmark.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

#: swept override key -> (file name, title, legend label)
SWEEP_FIGURES = {
    "variant": ("fig6_strategy.png", "Search strategy (Fig. 6)", "variant"),
    "strategy.population": ("fig7_population.png", "Population size (Fig. 7)", "p"),
    "search.n_unary": ("fig_unary.png", "Unary operators per branch (Table 5)", "n"),
}
PARAMS_BASELINE = "num_parameters"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------------------- rank
def proxies_vs_params(path: Path, rows: list[dict], formulas=()) -> Path | None:
    """Fig. 1: oriented τ per proxy, #params as the line to beat; None when < 2 proxies."""
    rows = [r for r in rows if r.get("kendall_tau") is not None and np.isfinite(r["kendall_tau"])]
    if len(rows) < 2:
        return None
    plt = _plt()
    rows = sorted(rows, key=lambda r: r["kendall_tau"])
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(rows) + 1.2))
    colors = ["tab:orange" if r["name"] in formulas else "tab:blue" for r in rows]
    ax.barh([r["name"] for r in rows], [r["kendall_tau"] for r in rows], color=colors)
    params = next((r for r in rows if r["name"] == PARAMS_BASELINE), None)
    if params is not None:
        ax.axvline(params["kendall_tau"], color="k", linestyle="--", linewidth=1,
                   label=f"#params τ={params['kendall_tau']:.3f}")
        ax.legend(fontsize=7, loc="lower right")
    ax.axvline(0, color="grey", linewidth=0.5)
    n = rows[0].get("n_archs")
    ax.set_xlabel(f"Kendall τ, oriented (positive = agrees with trained quality; n={n})", fontsize=8)
    ax.set_title("Zero-cost proxies vs #params (Fig. 1); orange: searched formulas", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- report
def _split(override: str) -> tuple[str, str]:
    key, _, value = override.lstrip("+").partition("=")
    return key, value


def swept_key(jobs: list[dict]) -> str | None:
    """The one override key (seed aside) whose value differs between jobs, if any."""
    values = defaultdict(set)
    for job in jobs:
        for override in job["overrides"]:
            key, value = _split(override)
            if key != "seed":
                values[key].add(value)
    varying = [k for k, v in values.items() if len(v) > 1]
    return varying[0] if len(varying) == 1 else None


def _value(job: dict, key: str) -> str:
    for override in job["overrides"]:
        k, v = _split(override)
        if k == key:
            return v
    return "(default)"


def _order(values):
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def sweep_figures(out: Path, jobs: list[dict]) -> list[Path]:
    """The paper figure/table for a sweep of one of :data:`SWEEP_FIGURES`' keys."""
    key = swept_key(jobs)
    if key not in SWEEP_FIGURES:
        return []
    groups = defaultdict(list)
    for job in jobs:
        groups[_value(job, key)].append(job)
    written = [_curves(out / SWEEP_FIGURES[key][0], groups, *SWEEP_FIGURES[key][1:])]
    if key == "search.n_unary":
        written.append(_unary_table(out / "table5_unary.md", groups))
    return written


def _curves(path: Path, groups: dict, title: str, label: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for value in _order(groups):
        runs = [job["history"] for job in groups[value] if job["history"]]
        if not runs:
            continue
        length = max(len(h) for h in runs)
        # best-so-far per iteration; a shorter run keeps its final value
        ys = np.array([[float(h[min(i, len(h) - 1)]["best_fitness"]) for i in range(length)] for h in runs])
        x = np.arange(length)
        mean, spread = ys.mean(0), ys.std(0)
        ax.plot(x, mean, label=f"{label}={value} (seeds={len(runs)})")
        ax.fill_between(x, mean - spread, mean + spread, alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("best Spearman ρ on the search archs")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _unary_table(path: Path, groups: dict) -> Path:
    lines = ["Unary operators per branch (Table 5): whole benchmark, in-sample; mean ± std over seeds",
             "", "| n | seeds | Kendall τ | Spearman ρ | best ρ (search) |", "|---|---|---|---|---|"]
    for value in _order(groups):
        results = [job["result"] for job in groups[value]]

        def stat(get):
            v = np.array([get(r) for r in results], float)
            return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"

        lines.append(f"| {value} | {len(results)} | {stat(lambda r: r['full']['kendall_tau'])} "
                     f"| {stat(lambda r: r['full']['spearman_rho'])} | {stat(lambda r: r['fitness'])} |")
    path.write_text("\n".join(lines) + "\n")
    return path
