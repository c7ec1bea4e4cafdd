"""Pareto fronts of scored candidates and their plot."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def pareto_front(rows: Sequence[dict], maximise: Sequence[str], minimise: Sequence[str]) -> list[dict]:
    """Rows no other row dominates (at least as good in every objective, better in one),
    sorted by the first minimised objective."""

    def dominates(a: dict, b: dict) -> bool:
        no_worse = all(a[k] >= b[k] for k in maximise) and all(a[k] <= b[k] for k in minimise)
        better = any(a[k] > b[k] for k in maximise) or any(a[k] < b[k] for k in minimise)
        return no_worse and better

    ordered = sorted(rows, key=lambda r: ([r[k] for k in minimise], [-r[k] for k in maximise]))
    front: list[dict] = []
    for row in ordered:  # a dominator of `row` sorts before it on the first minimised key or ties
        if not any(dominates(other, row) for other in front):
            front = [f for f in front if not dominates(row, f)] + [row]
    return sorted(front, key=lambda r: [r[k] for k in minimise])


def plot_front(path: Path, rows: Sequence[dict], front: Sequence[dict], chosen: dict | None,
               proxy: str, max_params: float | None = None) -> None:
    """Proxy score vs total parameters: every candidate, the front, the chosen one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([r["params"] / 1e6 for r in rows], [r["proxy_score"] for r in rows],
               s=6, alpha=0.35, color="tab:gray", label=f"candidates ({len(rows)})")
    ax.plot([r["params"] / 1e6 for r in front], [r["proxy_score"] for r in front],
            "o-", ms=4, color="tab:blue", label=f"Pareto front ({len(front)})")
    if chosen is not None:
        ax.scatter([chosen["params"] / 1e6], [chosen["proxy_score"]], marker="*", s=180,
                   color="tab:red", zorder=5, label="chosen")
    if max_params:
        ax.axvline(max_params / 1e6, ls="--", lw=1, color="tab:red", label="nas.max_params")
    label = proxy if len(proxy) <= 60 else proxy[:57] + "..."
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(f"proxy score\n{label}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
