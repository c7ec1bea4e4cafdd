"""``task=search``: find the proxy whose scores best rank the benchmark's architectures."""
from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from lpzero_fw import metrics
from lpzero_fw.proxy.evaluate import absent_counts
from lpzero_fw.proxy.fitness import ProxyScorer
from lpzero_fw.proxy.space import ProxySpace
from lpzero_fw.registry import STRATEGIES, LPZeroError
from lpzero_fw.rules.apply import RuleSet
from lpzero_fw.tasks import checkpoint
from lpzero_fw.tasks.common import (
    build_fabric,
    build_space,
    build_store,
    config_digest,
    console,
    prefetch_sharded,
    load_stats,
    progress_bar,
    run_dir,
    to_dict,
    write_json,
)
from lpzero_fw.tracking import Tracker

log = logging.getLogger("lpzero_fw.search")

HISTORY_FIELDS = [
    "iteration", "best_fitness", "mean_fitness", "offspring_fitness",
    "proxies_scored", "rejected_static", "rejected_dynamic", "elapsed",
]


def build_strategy(cfg: DictConfig, proxy_space: ProxySpace, accept):
    params = to_dict(cfg.strategy)
    name = params.pop("name")
    return STRATEGIES.get(name)(proxy_space, int(cfg.seed), accept, **params)


def run(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    n_archs = int(cfg.search.n_archs)
    proxy_space = ProxySpace(
        inputs=cfg.search.inputs,  # a list, "core" or "all" (plugins join only when named)
        unary=cfg.search.unary,
        binary=cfg.search.binary,
        n_unary=int(cfg.search.n_unary),
        layers=tuple(cfg.search.get("layers") or ("mean",)),
        ops=str(cfg.search.get("ops") or "lpzero_fw"),
    )
    rules = RuleSet(to_dict(cfg.pruning.rules))
    components = {**proxy_space.describe(), "rules": rules.describe()}  # with origins: digest + result
    build_strategy(cfg, proxy_space, None)  # strategy.* errors now, not after the slow statistics
    space = build_space(cfg)
    all_ids = space.arch_ids()
    if n_archs < 2 or n_archs > len(all_ids):
        raise LPZeroError(
            f"search.n_archs={n_archs} must lie between 2 and the benchmark size {len(all_ids)}"
        )
    digest = config_digest(cfg, components)
    fabric = build_fabric(cfg)
    store = build_store(cfg, space, fabric)
    arch_ids = space.sample(n_archs, int(cfg.seed))
    if not prefetch_sharded(fabric, store, all_ids):
        return {}
    tracker = Tracker(to_dict(cfg.logger), out, to_dict(cfg), name=out.name)
    try:
        quality = {a: space.quality(a) for a in all_ids}
        t_stats = time.perf_counter()
        stats = load_stats(store, arch_ids, f"statistics ({n_archs} archs)")
        arch_ids = [a for a in arch_ids if a not in store.skipped]
        t_search = time.perf_counter()
        scorer = ProxyScorer(stats, quality, rules)
        strategy = build_strategy(cfg, proxy_space, scorer.static_ok)
        history: list[dict] = []
        ckpt = checkpoint.Checkpointer(out, digest, {**to_dict(cfg), "components": components},
                                       every=int(cfg.search.checkpoint_every))
        resumed = ckpt.restore(cfg.get("resume"), strategy, scorer, history)
        search_start = time.perf_counter() - (history[-1]["elapsed"] if history else 0.0)
        _evolve(strategy, scorer, arch_ids, history, tracker, ckpt, search_start)
        if strategy.best is None:
            raise LPZeroError("no valid proxy was found; raise the budget or relax search.inputs / pruning")
        best, fitness = strategy.best
        t_full = time.perf_counter()

        full_stats = load_stats(store, all_ids, f"best proxy on all {len(all_ids)} archs")
        all_ids = [a for a in all_ids if a not in store.skipped]
        scorer.stats = full_stats
        try:
            full_scores, defined = scorer.defined_scores(best, all_ids, dynamic=False)
        except Exception as exc:  # the best proxy on 50 archs may misbehave on others
            log.warning("best proxy failed on the full benchmark: %s", exc)
            full_scores, defined = np.full(len(all_ids), np.nan), np.ones(len(all_ids), dtype=bool)
        # archs lacking an input of the proxy have no score and are left out (n_archs says so)
        full = metrics.correlations(full_scores[defined], [quality[a] for a, d in zip(all_ids, defined) if d])
        search_seconds = t_full - t_search
        timing = {
            "statistics_seconds": round(t_search - t_stats, 3),
            "search_seconds": round(search_seconds, 3),
            "full_benchmark_seconds": round(time.perf_counter() - t_full, 3),
            "archs_extracted": len(store.extraction_seconds),
            "extraction_seconds_per_arch": round(
                sum(store.extraction_seconds.values()) / max(1, len(store.extraction_seconds)), 3),
            "evaluations_per_second": round(scorer.evaluations / max(search_seconds, 1e-9), 1),
        }

        result = {
            "best_proxy": str(best),
            "fitness": fitness,
            "full": full,
            "search_space": cfg.search_space.name,
            "ops": proxy_space.ops,
            "strategy": cfg.strategy.name,
            "seed": int(cfg.seed),
            "n_archs_search": n_archs,
            "iterations": strategy.iteration,
            "proxies_scored": scorer.scored,
            "evaluations": scorer.evaluations,
            "rejected": dict(sorted(scorer.rejected.items())),
            "components": components,
            "top": _top(strategy),
            "skipped_archs": sorted(store.skipped),
            # archs with no layer of each input (e.g. FlexiBERT all-LT: no S), search sample / all
            "absent_inputs": {"search": absent_counts({a: stats[a] for a in arch_ids}),
                              "full": absent_counts({a: full_stats[a] for a in all_ids})}
            if store.keep_in_memory else None,  # (cache.memory=false would re-extract to count)
            "config_digest": digest,
            "resumed": resumed,
            "seconds": round(time.perf_counter() - start, 3),
            "timing": timing,
        }
        write_json(out / "result.json", result)
        _write_history(out / "history.csv", history)
        _plot_curve(out / "search_curve.png", history, str(best))
        tracker.record(out, result)
        ckpt.finish()
        console.print(
            f"[bold green]best proxy[/] {best}\n"
            f"  fitness (Spearman on {n_archs} archs) {fitness:.4f}\n"
            f"  all {full['n_archs']} archs: Kendall tau {full['kendall_tau']:.4f}, "
            f"Spearman rho {full['spearman_rho']:.4f}\n"
            f"  {scorer.scored} proxies scored, {sum(scorer.rejected.values())} rejected, "
            f"{result['seconds']:.1f} s -> {out}"
        )
        lacking = {k: v for k, v in (result["absent_inputs"] or {}).get("full", {}).items() if v}
        if lacking:
            console.print("  archs lacking an input (left out of that input's proxies): "
                          + ", ".join(f"{k}: {v} of {len(all_ids)}" for k, v in lacking.items()))
        return result
    finally:
        tracker.finish()


def _evolve(strategy, scorer, arch_ids, history, tracker, ckpt, search_start) -> None:
    with progress_bar() as progress:
        bar = progress.add_task("search", total=strategy.total_iterations, info="", completed=strategy.iteration)
        while not strategy.done:
            proxies = strategy.ask()
            fitness = [scorer.fitness(p, arch_ids) for p in proxies]
            before = strategy.iteration
            strategy.tell(proxies, fitness)
            if strategy.iteration == before:
                continue  # still filling the initial population
            row = _history_row(strategy, scorer, fitness[-1], time.perf_counter() - search_start)
            history.append(row)
            tracker.log({k: v for k, v in row.items() if k != "iteration"}, step=row["iteration"])
            best = strategy.best[1] if strategy.best else float("nan")
            progress.update(bar, completed=strategy.iteration, info=f"best rho {best:.4f}")
            ckpt.maybe_save(strategy, scorer, history)


def _history_row(strategy, scorer, offspring, elapsed) -> dict:
    population = strategy.population_fitness()
    static = sum(v for k, v in scorer.rejected.items() if k in scorer.rules.static_names)
    return {
        "iteration": strategy.iteration,
        "best_fitness": strategy.best[1] if strategy.best else float("nan"),
        "mean_fitness": float(np.mean(population)) if population else float("nan"),
        "offspring_fitness": float("nan") if offspring is None else offspring,
        "proxies_scored": scorer.scored,
        "rejected_static": static,
        "rejected_dynamic": sum(scorer.rejected.values()) - static,
        "elapsed": round(elapsed, 3),
    }


def _top(strategy, k: int = 10) -> list[dict]:
    population = getattr(strategy, "population", None)
    if not population:
        return [] if strategy.best is None else [{"proxy": str(strategy.best[0]), "fitness": strategy.best[1]}]
    ranked = sorted(population, key=lambda m: m[1], reverse=True)
    seen, top = set(), []
    for proxy, fitness in ranked:
        if str(proxy) not in seen:
            seen.add(str(proxy))
            top.append({"proxy": str(proxy), "fitness": fitness})
        if len(top) == k:
            break
    return top


def _write_history(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})


def _plot_curve(path: Path, history: list[dict], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    its = [r["iteration"] for r in history]
    ax.plot(its, [r["best_fitness"] for r in history], label="best so far", color="tab:blue")
    ax.plot(its, [r["mean_fitness"] for r in history], label="population mean", color="tab:orange", alpha=0.7)
    ax.set_xlabel("iteration")
    ax.set_ylabel("Spearman rho (search archs)")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
