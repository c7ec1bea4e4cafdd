"""Table mode (``nas.candidates=benchmark``): grade a proxy's picks by their trained metric.

The benchmark is split into a search pool and a held-out pool (``SearchSpace.split``, the
search's own split).
For ``nas.budgets`` parameter budgets spread over the held-out pool's range (quantiles
of total parameters), every selector picks the held-out architecture it scores highest
among those within the budget; its *regret* is how much worse the pick's trained metric
is than the best architecture within that budget (metric units, >= 0, lower is better).
Selectors: the proxy, non-embedding parameters, total parameters, and the best
baseline — chosen by Kendall tau on the *search* pool, never on held-out results.
"""
from __future__ import annotations

import math

import numpy as np
from omegaconf import DictConfig

from lpzero_fw import metrics
from lpzero_fw.registry import BASELINES, LPZeroError
from lpzero_fw.tasks.common import (
    build_fabric,
    build_store,
    console,
    load_stats,
    progress_bar,
    to_dict,
    write_json,
)

DEFAULT_HOLDOUT = 0.5


def regret(selector: np.ndarray, quality: np.ndarray, params: np.ndarray, budget: float) -> tuple[float, int, int]:
    """(regret, pick index, best index) among archs with ``params <= budget``; nan scores never win."""
    feasible = np.flatnonzero(params <= budget)
    best = feasible[np.argmax(quality[feasible])]
    scores = np.where(np.isfinite(selector[feasible]), selector[feasible], -np.inf)
    pick = feasible[np.argmax(scores)]
    return float(quality[best] - quality[pick]), int(pick), int(best)


def _holdout(cfg: DictConfig) -> float:
    """``nas.holdout``, else ``search.holdout`` (the search's own split), else one half."""
    value = cfg.nas.get("holdout")
    if value is None:
        value = cfg.search.get("holdout")
    if value is None or value == 0:
        return DEFAULT_HOLDOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise LPZeroError(f"holdout={value!r} must be a fraction between 0 and 1")
    return float(value)


def _baseline_names(spec) -> list[str]:
    if spec in (None, "none"):
        return []
    if spec == "all":
        return BASELINES.names()
    names = [spec] if isinstance(spec, str) else list(spec)
    for name in names:
        BASELINES.get(name)  # unknown name: one-line error listing the baselines
    return names


def _score_baselines(space, store, ids: list[str], names: list[str], label: str) -> dict[str, np.ndarray]:
    from lpzero_fw.baselines.runner import score_baselines

    scores = {name: np.full(len(ids), np.nan) for name in names}
    with progress_bar() as progress:
        bar = progress.add_task(label, total=len(ids), info="")
        for i, arch_id in enumerate(ids):
            values = score_baselines(space, arch_id, store.batch, names)
            for name, value in values.items():
                sign = 1.0 if BASELINES.get(name).higher_is_better else -1.0
                scores[name][i] = sign * value
            progress.update(bar, advance=1, info=arch_id)
    return scores


def run_table(cfg: DictConfig, space, out) -> dict:
    from lpzero_fw.nas.scoring import ProxyScore

    nas = to_dict(cfg.nas)
    n_budgets = nas.get("budgets", 10)
    if isinstance(n_budgets, bool) or not isinstance(n_budgets, int) or n_budgets < 1:
        raise LPZeroError(f"nas.budgets={n_budgets!r} must be a positive integer")
    names = _baseline_names(nas.get("baselines"))
    spec = cfg.get("proxy")
    if spec is None:
        from lpzero_fw.registry import ARCH_SPACES

        family = cfg.search_space.name
        spec = ARCH_SPACES.get(family).default_proxy if family in ARCH_SPACES else None
        if not spec:
            raise LPZeroError("nas.candidates=benchmark needs proxy=<formula | name>")
    holdout = _holdout(cfg)
    pool, held = space.split(holdout, int(cfg.seed))
    if len(held) < 2 or len(pool) < 1:
        raise LPZeroError(f"holdout={holdout} leaves {len(held)} held-out architectures; raise it")
    store = build_store(cfg, space, build_fabric(cfg))
    scorer = ProxyScore(spec, store)
    if scorer.kind == "formula":
        load_stats(store, held, f"statistics ({len(held)} held-out archs)")
        held = [a for a in held if a not in store.skipped]
    quality = np.array([space.quality(a) for a in held])
    counts = [space.param_counts(a) for a in held]
    params = np.array([c["total"] for c in counts], float)
    selectors = {
        "proxy": np.array([scorer(a) for a in held]),
        "nonembedding_params": np.array([c.get("nonembedding", c["total"]) for c in counts], float),
        "params": params,
    }
    chosen_baseline, pool_tau = None, {}
    if names:
        pool_scores = _score_baselines(space, store, pool, names, f"baselines on the search pool ({len(pool)})")
        pool_quality = np.array([space.quality(a) for a in pool])
        pool_tau = {name: metrics.kendall(v, pool_quality) for name, v in pool_scores.items()}
        ranked = [n for n in names if not math.isnan(pool_tau[n])]
        if ranked:
            chosen_baseline = max(ranked, key=lambda n: pool_tau[n])
            held_scores = _score_baselines(space, store, held, [chosen_baseline], f"{chosen_baseline} (held out)")
            selectors[f"baseline:{chosen_baseline}"] = held_scores[chosen_baseline]
    budgets = np.quantile(params, np.linspace(0.1, 1.0, n_budgets)) if n_budgets > 1 else np.array([params.max()])
    oriented = 1.0 if space.higher_is_better else -1.0
    rows = []
    for budget in budgets:
        row = {"budget": float(budget), "n_archs": int(np.sum(params <= budget))}
        for label, scores in selectors.items():
            value, pick, best = regret(scores, quality, params, budget)
            row[label] = {"regret": value, "pick": held[pick], "pick_metric": oriented * quality[pick]}
            row["best"] = {"arch": held[best], "metric": oriented * quality[best]}
        rows.append(row)
    summary = {
        label: {
            "mean_regret": float(np.mean([r[label]["regret"] for r in rows])),
            "heldout": metrics.correlations(scores, quality),
        }
        for label, scores in selectors.items()
    }
    result = {
        "family": cfg.search_space.name,
        "proxy": scorer.name,
        "metric": space.metric_name,
        "holdout": holdout,
        "n_search_pool": len(pool),
        "n_heldout": len(held),
        "baseline": chosen_baseline,
        "baseline_search_pool_tau": pool_tau,
        "summary": summary,
        "budgets": rows,
    }
    write_json(out / "regret.json", result)
    (out / "regret.md").write_text(regret_markdown(result))
    console.print(regret_markdown(result))
    return result


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
