"""``task=search``: find the proxy whose scores best rank the benchmark's architectures.

With ``search.holdout=h > 0`` the benchmark is split once by ``seed``
(:meth:`SearchSpace.split`): the fitness sample comes from the search pool only, the
search never scores a held-out architecture, and ``result.json`` reports ``heldout``
(out of sample) beside ``full`` (all archs, in-sample). ``search.holdout=0``: no split,
``heldout`` is null. ``search.benchmarks=[...]``: one proxy for several benchmarks.
"""
from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from lpzero_fw import metrics
from lpzero_fw.proxy.evaluate import absent_counts
from lpzero_fw.proxy.fitness import MultiScorer, ProxyScorer
from lpzero_fw.proxy.space import FormulaSpace
from lpzero_fw.registry import STRATEGIES, TASKS, LPZeroError, build
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
from lpzero_fw.tasks.transfer import benchmark_configs, score_formula
from lpzero_fw.tracking import build_tracker

log = logging.getLogger("lpzero_fw.search")

HISTORY_FIELDS = [
    "iteration", "best_fitness", "mean_fitness", "offspring_fitness",
    "proxies_scored", "rejected_static", "rejected_dynamic", "elapsed",
]


def formula_space(cfg: DictConfig) -> FormulaSpace:
    """The formulas ``search.*`` allows (inputs, operators, chain length, layer reductions)."""
    return FormulaSpace(
        inputs=cfg.search.inputs,  # a list, "core" or "all" (plugins join only when named)
        unary=cfg.search.unary,
        binary=cfg.search.binary,
        n_unary=int(cfg.search.n_unary),
        layers=tuple(cfg.search.get("layers") or ("mean",)),
        ops=str(cfg.search.get("ops") or "lpzero_fw"),
    )


def build_strategy(cfg: DictConfig, proxy_space: FormulaSpace, accept):
    return build(STRATEGIES, cfg.strategy, proxy_space, int(cfg.seed), accept, group="strategy")


@dataclass
class Benchmark:
    """One benchmark a search runs on: its space, store, pools and fitness sample."""

    label: str
    cfg: DictConfig
    space: object
    store: object
    search_ids: list[str]
    held_ids: list[str]
    sample: list[str]
    quality: dict = field(default_factory=dict)


def _holdout(cfg: DictConfig) -> float:
    value = cfg.search.get("holdout", 0.0)
    try:
        holdout = float(0.0 if value is None else value)
    except (TypeError, ValueError):
        holdout = math.nan
    if not 0.0 <= holdout < 1.0:
        raise LPZeroError(f"search.holdout={value} must be a fraction in [0, 1) (0 = no held-out pool)")
    return holdout


def _n_archs(cfg: DictConfig) -> int | None:
    value = cfg.search.get("n_archs")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise LPZeroError(f"search.n_archs={value!r} must be an integer >= 2 or null (the whole search pool)")
    return value


def _prepare(label: str, cfg: DictConfig, n_archs: int | None, holdout: float, fabric) -> Benchmark:
    """Space, split and fitness sample of one benchmark (``n_archs`` None: the whole
    search pool); bad sizes fail before any extraction."""
    space = build_space(cfg)
    all_ids = space.arch_ids()
    search_ids, held_ids = space.split(holdout, int(cfg.seed))
    if n_archs is None:
        n_archs = len(search_ids)
    if n_archs < 2 or n_archs > len(search_ids):
        where = f"the benchmark size {len(all_ids)}" if not held_ids else (
            f"the search pool size {len(search_ids)} ({label}: {len(all_ids)} archs, search.holdout={holdout})")
        raise LPZeroError(f"search.n_archs={n_archs} must lie between 2 and {where}")
    sample = space.sample(n_archs, int(cfg.seed), pool=search_ids)
    return Benchmark(label, cfg, space, build_store(cfg, space, fabric), search_ids, held_ids, sample)


@TASKS.register("search", description="find the proxy whose scores best rank the benchmark (genetic programming + pruning)")
def run(cfg: DictConfig) -> dict:
    start = time.perf_counter()
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    n_archs = _n_archs(cfg)
    holdout = _holdout(cfg)
    aggregate = str(cfg.search.get("aggregate", "min"))
    if aggregate not in MultiScorer.AGGREGATES:
        raise LPZeroError(f"search.aggregate={aggregate!r}; choose one of: {', '.join(MultiScorer.AGGREGATES)}")
    proxy_space = formula_space(cfg)
    rules = RuleSet(to_dict(cfg.pruning.rules))
    components = {**proxy_space.describe(), "rules": rules.describe()}  # with origins: digest + result
    build_strategy(cfg, proxy_space, None)  # strategy.* errors now, not after the slow statistics
    entries = cfg.search.get("benchmarks") or []
    configs = benchmark_configs(cfg, entries) if entries else {str(cfg.search_space.name): cfg}
    transfer_cfgs = benchmark_configs(cfg, cfg.search.get("transfer_to") or [])
    digest = config_digest(cfg, components)
    fabric = build_fabric(cfg)
    benches = [_prepare(label, sub, n_archs, holdout, fabric) for label, sub in configs.items()]
    if n_archs is None:  # the whole search pool (the smallest one when several benchmarks)
        n_archs = min(len(b.sample) for b in benches)
    for bench in benches:
        if not prefetch_sharded(fabric, bench.store, bench.space.arch_ids()):
            return {}
    tracker = build_tracker(to_dict(cfg.logger), out, to_dict(cfg), run_name=out.name)
    try:
        t_stats = time.perf_counter()
        parts = {}
        for bench in benches:
            bench.quality = {a: bench.space.quality(a) for a in bench.space.arch_ids()}
            stats = load_stats(bench.store, bench.sample, f"statistics ({bench.label}, {len(bench.sample)} archs)")
            bench.sample = [a for a in bench.sample if a not in bench.store.skipped]
            parts[bench.label] = (ProxyScorer(stats, bench.quality, rules), bench.sample)
        t_search = time.perf_counter()
        if len(benches) == 1:
            scorer, arch_ids = parts[benches[0].label]
        else:
            scorer, arch_ids = MultiScorer(parts, rules, aggregate), None
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

        # the final evaluation uses its own scorers: the search scorers' records stay search-only
        evaluation = {b.label: _evaluate(b, best, rules, parts[b.label][0]) for b in benches}
        first = evaluation[benches[0].label]
        full, heldout = first["full"], first["heldout"]
        transfer = {label: score_formula(sub, str(best), f"transfer to {label}") for label, sub in transfer_cfgs.items()}
        search_seconds = t_full - t_search
        extraction = {k: v for b in benches for k, v in b.store.extraction_seconds.items()}
        timing = {
            "statistics_seconds": round(t_search - t_stats, 3),
            "search_seconds": round(search_seconds, 3),
            "full_benchmark_seconds": round(time.perf_counter() - t_full, 3),
            "archs_extracted": len(extraction),
            "extraction_seconds_per_arch": round(sum(extraction.values()) / max(1, len(extraction)), 3),
            "evaluations_per_second": round(scorer.evaluations / max(search_seconds, 1e-9), 1),
        }

        result = {
            "best_proxy": str(best),
            "fitness": fitness,
            "heldout": heldout,
            "full": full,
            "holdout": holdout,
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
            "top": top_members(strategy),
            "skipped_archs": sorted(a for b in benches for a in b.store.skipped),
            # archs with no layer of each input (e.g. FlexiBERT all-LT: no S), search sample / all
            "absent_inputs": first["absent_inputs"],
            "config_digest": digest,
            "resumed": resumed,
            "seconds": round(time.perf_counter() - start, 3),
            "timing": timing,
        }
        if len(benches) > 1:
            result["benchmarks"] = evaluation
            result["aggregate"] = aggregate
        if transfer:
            result["transfer"] = transfer
        write_json(out / "result.json", result)
        _write_history(out / "history.csv", history)
        _plot_curve(out / "search_curve.png", history, str(best))
        tracker.record(out, result)
        ckpt.finish()
        console.print(_summary_text(result, benches, evaluation, n_archs, out))
        lacking = {k: v for k, v in (result["absent_inputs"] or {}).get("full", {}).items() if v}
        if lacking:
            n_all = result["absent_inputs"]["n_archs"]
            console.print("  archs lacking an input (left out of that input's proxies): "
                          + ", ".join(f"{k}: {v} of {n_all}" for k, v in lacking.items()))
        return result
    finally:
        tracker.finish()


def _evaluate(bench: Benchmark, best, rules, search_scorer) -> dict:
    """The best proxy on all archs (``full``, in-sample) and on the held-out pool."""
    all_ids = bench.space.arch_ids()
    # the search's cached branch tensors (up to Evaluator.max_tensor_bytes) are of no use to
    # one proxy: dropped before the rest of the benchmark's models are built
    search_scorer.evaluator.clear()
    stats = load_stats(bench.store, all_ids, f"best proxy on all {len(all_ids)} archs ({bench.label})")
    all_ids = [a for a in all_ids if a not in bench.store.skipped]
    final = ProxyScorer(stats, bench.quality, rules, evaluator=search_scorer.evaluator)
    try:
        scores, defined = final.defined_scores(best, all_ids, dynamic=False)
    except Exception as exc:  # the best proxy on the sample may misbehave on others
        log.warning("best proxy failed on %s: %s", bench.label, exc)
        scores, defined = np.full(len(all_ids), np.nan), np.ones(len(all_ids), dtype=bool)
    quality = np.array([bench.quality[a] for a in all_ids])
    held = set(bench.held_ids)
    # archs lacking an input of the proxy have no score and are left out (n_archs says so)
    mask = np.array([a in held for a in all_ids]) & defined
    absent = None
    if bench.store.keep_in_memory:  # (cache.memory=false would re-extract to count)
        absent = {"search": absent_counts({a: stats[a] for a in bench.sample if a in stats}),
                  "full": absent_counts({a: stats[a] for a in all_ids}), "n_archs": len(all_ids)}
    return {
        "full": metrics.correlations(scores[defined], quality[defined]),
        "heldout": metrics.correlations(scores[mask], quality[mask]) if held else None,
        "absent_inputs": absent,
    }


def _summary_text(result: dict, benches, evaluation: dict, n_archs: int, out: Path) -> str:
    lines = [f"[bold green]best proxy[/] {result['best_proxy']}"]
    for bench in benches:
        ev = evaluation[bench.label]
        prefix = f"  {bench.label}: " if len(benches) > 1 else "  "
        if ev["heldout"] is not None:
            h = ev["heldout"]
            lines.append(f"{prefix}[bold]held-out {h['n_archs']} archs (never scored by the search): "
                         f"Kendall tau {h['kendall_tau']:.4f}, Spearman rho {h['spearman_rho']:.4f}[/]")
        f = ev["full"]
        lines.append(f"{prefix}all {f['n_archs']} archs (in-sample): Kendall tau {f['kendall_tau']:.4f}, "
                     f"Spearman rho {f['spearman_rho']:.4f}")
    what = "Spearman" if len(benches) == 1 else f"{result.get('aggregate')} Spearman"
    lines.append(f"  fitness ({what} on {n_archs} search archs) {result['fitness']:.4f}")
    for label, record in result.get("transfer", {}).items():
        lines.append(f"  transfer to {label} ({record['n_archs']} archs): Kendall tau {record['kendall_tau']:.4f}, "
                     f"Spearman rho {record['spearman_rho']:.4f}")
    lines.append(f"  {result['proxies_scored']} proxies scored, {sum(result['rejected'].values())} rejected, "
                 f"{result['seconds']:.1f} s -> {out}")
    return "\n".join(lines)


def _evolve(strategy, scorer, arch_ids, history, tracker, ckpt, search_start) -> None:
    with progress_bar() as progress:
        bar = progress.add_task("search", total=strategy.total_iterations, info="", completed=strategy.iteration)
        while not strategy.done:
            proxies = strategy.ask()
            fitness = [scorer.fitness(p, arch_ids) for p in proxies]  # arch_ids None: multi-benchmark
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


def top_members(strategy, k: int = 10) -> list[dict]:
    """The ``k`` best distinct formulas of the strategy's population (or its best), with fitness."""
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
