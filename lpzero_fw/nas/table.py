"""Table mode (``nas.candidates=benchmark``): grade a proxy's picks by their trained metric.

The benchmark is split into a search pool and a held-out pool (``SearchSpace.split``, the
search's own split).
For ``nas.budgets`` parameter budgets spread over the held-out pool's range (quantiles
of total parameters), every selector picks the held-out architecture it scores highest
among those within the budget; its *regret* is how much worse the pick's trained metric
is than the best architecture within that budget (metric units, >= 0, lower is better).
Selectors: the proxy, non-embedding parameters, total parameters, and the best
baseline — chosen by Kendall tau on the *search* pool, never on held-out results
(orchestrated by :func:`lpzero_fw.tasks.nas.run_table`).
"""
from __future__ import annotations

import numpy as np


def budgets(params: np.ndarray, n: int) -> np.ndarray:
    """``n`` budgets at the 1/n, 2/n, ..., 100 % quantiles of ``params`` (the last admits all)."""
    return np.quantile(params, np.linspace(1.0 / n, 1.0, n))


def regret(selector: np.ndarray, quality: np.ndarray, params: np.ndarray, budget: float) -> tuple[float, int, int]:
    """(regret, pick index, best index) among archs with ``params <= budget``; nan scores never win."""
    feasible = np.flatnonzero(params <= budget)
    best = feasible[np.argmax(quality[feasible])]
    scores = np.where(np.isfinite(selector[feasible]), selector[feasible], -np.inf)
    pick = feasible[np.argmax(scores)]
    return float(quality[best] - quality[pick]), int(pick), int(best)


def regret_markdown(result: dict) -> str:
    labels = list(result["summary"])
    lines = [
        f"Regret of each selector's pick ({result['metric']}, held-out pool of {result['n_heldout']} archs; "
        f"0 = picked the best architecture within the budget)",
        "",
        "| budget (params) | archs | " + " | ".join(f"`{label}`" for label in labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for row in result["budgets"]:
        cells = " | ".join(f"{row[label]['regret']:.2f}" for label in labels)
        lines.append(f"| {row['budget'] / 1e6:.2f}M | {row['n_archs']} | {cells} |")
    mean = " | ".join(f"**{result['summary'][label]['mean_regret']:.2f}**" for label in labels)
    lines.append(f"| mean | | {mean} |")
    tau = " | ".join(f"{result['summary'][label]['heldout']['kendall_tau']:.3f}" for label in labels)
    lines.append(f"| held-out Kendall τ | | {tau} |")
    return "\n".join(lines) + "\n"
