"""``task=nas``: pick architectures with a proxy, under parameter / latency / memory budgets.

``nas.candidates=space`` (default) searches the family's architecture space with an
architecture strategy and writes ``nas.json`` (Pareto front and chosen architecture),
``candidates.csv``, ``pareto.png`` and the chosen config in the builder's format.
``nas.candidates=benchmark`` grades picks on the benchmark's trained, held-out
architectures instead (regret per parameter budget; see :mod:`lpzero_fw.nas.table`).
"""
from __future__ import annotations

import csv
import json
import math
import random
import time

import numpy as np
from omegaconf import DictConfig

from lpzero_fw import metrics
from lpzero_fw.registry import ARCH_SPACES, ARCH_STRATEGIES, BASELINES, TASKS, LPZeroError
from lpzero_fw.tasks.common import (
    build_fabric,
    build_space,
    build_store,
    console,
    load_stats,
    progress_bar,
    run_dir,
    to_dict,
    write_json,
)

DEFAULT_HOLDOUT = 0.5

CANDIDATE_MODES = ("space", "benchmark")
MEASURE_MODES = ("front", "all")


def check_constraints(nas: dict) -> dict[str, float | None]:
    """The three budgets as numbers (or None); anything else is a one-line error."""
    limits = {}
    for key in ("max_params", "max_latency_ms", "max_memory_mb"):
        value = nas.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise LPZeroError(f"nas.{key}={value!r} must be a positive number or null")
        limits[key] = value
    return limits


def build_arch_space(cfg: DictConfig, space):
    family = cfg.search_space.name
    if family not in ARCH_SPACES:
        raise LPZeroError(f"task=nas has no architecture space for search_space={family}; "
                          f"choose one of: {', '.join(ARCH_SPACES.names())}")
    return ARCH_SPACES.get(family)(space, to_dict(cfg.nas.space) or {})


@TASKS.register("nas", description="pick architectures with a proxy under budgets: Pareto front, regret")
def run(cfg: DictConfig) -> dict:
    nas = to_dict(cfg.nas)
    limits = check_constraints(nas)
    mode = nas.get("candidates", "space")
    if mode not in CANDIDATE_MODES:
        raise LPZeroError(f"nas.candidates={mode!r} is not valid; choose one of: {', '.join(CANDIDATE_MODES)}")
    if nas.get("measure", "front") not in MEASURE_MODES:
        raise LPZeroError(f"nas.measure={nas.get('measure')!r} is not valid; choose one of: {', '.join(MEASURE_MODES)}")
    n = nas.get("n_candidates")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LPZeroError(f"nas.n_candidates={n!r} must be a positive integer")
    if nas.get("strategy") not in ARCH_STRATEGIES:
        raise LPZeroError(ARCH_STRATEGIES.unknown_message(nas.get("strategy")))
    out = run_dir()
    out.mkdir(parents=True, exist_ok=True)
    space = build_space(cfg)
    if mode == "benchmark":
        return run_table(cfg, space, out)
    return search(cfg, space, out, limits)


class _Scoring:
    """One proxy on candidate genomes, through the search's own path (build -> statistics ->
    formula); built alike in this process and in every ``nas.workers`` process."""

    def __init__(self, cfg: DictConfig, spec=None, space=None) -> None:
        from lpzero_fw.nas.scoring import CandidateSpace, ProxyScore, proxy_inputs
        from lpzero_fw.stats.cache import StatsStore

        self.arch = build_arch_space(cfg, space if space is not None else build_space(cfg))
        self.spec = spec = spec or self.arch.default_proxy  # proxy=<formula | name>, else the family's
        symbols = proxy_inputs(spec)  # a formula: extract only its inputs, skip unread gradients
        self.candidates = CandidateSpace(self.arch, freeze_unread=symbols is not None)
        cache = to_dict(cfg.cache)
        # candidates are scored once: statistics are neither kept in memory nor written to disk
        self.store = StatsStore(self.candidates, batch_seed=int(cfg.data.get("seed", 0)), budget=cache["budget"],
                                dtype=cache["dtype"], enabled=False, memory=False, symbols=symbols)
        self.scorer = ProxyScore(spec, self.store)

    def __call__(self, genome) -> float:
        return self.scorer(self.candidates.add(genome))


_WORKER: dict = {}  # the worker process's own _Scoring (set by _start_worker)


def _start_worker(config: dict, spec) -> None:
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(1)
    _WORKER["scoring"] = _Scoring(OmegaConf.create(config), spec)


def _score_in_worker(genome) -> float:
    return _WORKER["scoring"](genome)


def _positive(nas: dict, key: str, default: int) -> int:
    value = nas.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LPZeroError(f"nas.{key}={value!r} must be a positive integer")
    return value


def search(cfg: DictConfig, space, out, limits: dict) -> dict:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from omegaconf import OmegaConf

    from lpzero_fw.nas.measure import latency_ms, peak_memory_mb
    from lpzero_fw.nas.pareto import pareto_front, plot_front

    start, cpu_start = time.perf_counter(), time.process_time()
    nas = to_dict(cfg.nas)
    workers, step = _positive(nas, "workers", 1), _positive(nas, "batch", 8)
    scoring = _Scoring(cfg, cfg.get("proxy"), space)
    spec = scoring.spec
    arch, candidates, scorer, store = scoring.arch, scoring.candidates, scoring.scorer, scoring.store
    max_params = limits["max_params"]
    smallest = arch.smallest()
    floor = arch.param_counts(smallest)["total"]
    if max_params is not None and max_params < floor:
        raise LPZeroError(f"nas.max_params={max_params:g} is below the smallest architecture of the "
                          f"{arch.family} space ({floor:,} parameters); raise it or widen nas.space")
    measured = limits["max_latency_ms"] is not None or limits["max_memory_mb"] is not None
    measure_all = measured or nas.get("measure") == "all"
    repeats = int(nas.get("latency_repeats", 3))
    batch = store.batch

    def costs(genome) -> dict:
        model = arch.build(genome, seed=0)
        return {"latency_ms": round(latency_ms(model, batch, repeats), 3),
                "memory_mb": round(peak_memory_mb(model, batch), 3)}

    def feasible(genome) -> bool:
        return max_params is None or arch.param_counts(genome)["total"] <= max_params

    name = nas["strategy"]
    strategy = ARCH_STRATEGIES.get(name)(arch, int(cfg.seed), feasible, **(nas.get(name) or {}))
    if measured:  # unsatisfiable latency / memory budgets fail before the search
        floor_costs = costs(smallest)
        for key, limit in (("latency_ms", limits["max_latency_ms"]), ("memory_mb", limits["max_memory_mb"])):
            if limit is not None and floor_costs[key] > limit:
                raise LPZeroError(f"nas.max_{key}={limit:g} is below the smallest architecture's "
                                  f"{floor_costs[key]:.1f} on this device; raise it or widen nas.space")

    checks = {"latency": ("latency_ms", limits["max_latency_ms"]), "memory": ("memory_mb", limits["max_memory_mb"])}
    target = int(nas["n_candidates"])
    rows: list[dict] = []
    seen: dict[str, float | None] = {}
    rejected = {"latency": 0, "memory": 0, "unscorable": 0}
    proposals = 0
    # Proposals come in steps of nas.batch drawn from the same strategy state, are scored
    # (by nas.workers processes), then told in order: the result depends on the batch,
    # never on the number of workers.
    pool = None
    if workers > 1:
        config = OmegaConf.to_container(cfg, resolve=True)
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                                   initargs=(config, spec))
    try:
        with progress_bar() as progress:
            bar = progress.add_task(f"nas ({name})", total=target, info="")
            while len(rows) < target and proposals < 50 * target:
                asked = [strategy.ask() for _ in range(step)]
                proposals += step
                todo: dict[str, dict] = {}  # new keys of this step, in order, with their rows
                for genome in asked:
                    key = candidates.add(genome)
                    if key in seen or key in todo:  # a repeat costs nothing and counts nothing
                        continue
                    counts = arch.param_counts(genome)
                    row = {"config": genome, "params": int(counts["total"]),
                           "nonembedding_params": int(counts["nonembedding"])}
                    if measure_all:
                        row.update(costs(genome))
                        over = [k for k, (field, lim) in checks.items() if lim is not None and row[field] > lim]
                        if over:
                            rejected[over[0]] += 1
                            seen[key] = None
                            continue
                    todo[key] = row
                genomes = [row["config"] for row in todo.values()]
                scores = list(pool.map(_score_in_worker, genomes)) if pool else [scoring(g) for g in genomes]
                for (key, row), score in zip(todo.items(), scores):
                    seen[key] = score if math.isfinite(score) else None
                    if seen[key] is None:
                        rejected["unscorable"] += 1
                    elif len(rows) < target:
                        row["proxy_score"] = score
                        rows.append(row)
                for genome in asked:
                    strategy.tell(genome, seen[candidates.add(genome)])
                if rows:
                    best = max(r["proxy_score"] for r in rows)
                    progress.update(bar, completed=len(rows), info=f"best {best:.4g}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    search_seconds = time.perf_counter() - start
    search_cpu = time.process_time() - cpu_start  # on a shared machine wall time includes waiting
    if not rows:
        raise LPZeroError(f"no architecture satisfied the constraints after {proposals} proposals; "
                          "relax nas.max_* or widen nas.space")
    objectives = ["params", "latency_ms", "memory_mb"] if measure_all else ["params"]
    front = pareto_front(rows, maximise=["proxy_score"], minimise=objectives)
    for row in front:
        if "latency_ms" not in row:
            row.update(costs(row["config"]))
    chosen = max(rows, key=lambda r: r["proxy_score"])
    if "latency_ms" not in chosen:
        chosen.update(costs(chosen["config"]))
    arch.write_config(chosen["config"], out / arch.config_file)
    _write_candidates(out / "candidates.csv", rows)
    plot_front(out / "pareto.png", rows, front, chosen, scorer.name, max_params)
    result = {
        "family": arch.family,
        "proxy": scorer.name,
        "strategy": name,
        "constraints": limits,
        "space": arch.describe(),
        "candidates_scored": len(rows),
        "proposals": proposals,
        "rejected": rejected,
        "batch": {k: list(v.shape) for k, v in batch.items()},
        "search_seconds": round(search_seconds, 2),
        "search_cpu_seconds": round(search_cpu, 2),
        "candidates_per_second": round(len(rows) / search_seconds, 2),
        "workers": workers,
        "batch_proposals": step,
        "front": front,
        "chosen": chosen,
        "chosen_config": arch.config_file,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out / "nas.json", result)
    _track(cfg, out, "nas", front, out / "pareto.png",
           {k: result[k] for k in ("candidates_scored", "search_seconds", "candidates_per_second")})
    console.print(f"{len(rows)} candidates scored in {search_seconds:.1f} s; front of {len(front)}; chosen: "
                  f"{chosen['params']:,} params, proxy {chosen['proxy_score']:.4g}, "
                  f"{chosen['latency_ms']:.1f} ms, {chosen['memory_mb']:.1f} MB -> {out}")
    return result


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
    if spec == "all":  # human-designed ones: a searched formula (e.g. the paper's) is not a control
        return [n for n in BASELINES.names() if not getattr(BASELINES.get(n), "searched", False)]
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
    from lpzero_fw.nas.table import budgets as spread, regret, regret_markdown

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
    n_pool = len(pool)
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
    chosen_baseline, pool_tau = (names[0], {}) if len(names) == 1 else (None, {})
    if len(names) > 1:  # one baseline needs no choosing
        k = nas.get("baseline_archs")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
            raise LPZeroError(f"nas.baseline_archs={k!r} must be an integer >= 2 or null (the whole search pool)")
        if k is not None and k < len(pool):
            pool = sorted(random.Random(int(cfg.seed)).sample(pool, k), key=pool.index)
        pool_scores = _score_baselines(space, store, pool, names, f"baselines on the search pool ({len(pool)})")
        pool_quality = np.array([space.quality(a) for a in pool])
        pool_tau = {name: metrics.kendall(v, pool_quality) for name, v in pool_scores.items()}
        ranked = [n for n in names if not math.isnan(pool_tau[n])]
        chosen_baseline = max(ranked, key=lambda n: pool_tau[n]) if ranked else None
    if chosen_baseline is not None:
        held_scores = _score_baselines(space, store, held, [chosen_baseline], f"{chosen_baseline} (held out)")
        selectors[f"baseline:{chosen_baseline}"] = held_scores[chosen_baseline]
    budgets = spread(params, n_budgets)
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
        "n_search_pool": n_pool,
        "n_baseline_selection": len(pool) if names else 0,
        "n_heldout": len(held),
        "baseline": chosen_baseline,
        "baseline_search_pool_tau": pool_tau,
        "summary": summary,
        "budgets": rows,
    }
    write_json(out / "regret.json", result)
    _track(cfg, out, "regret", [{"selector": k, **v["heldout"], "mean_regret": v["mean_regret"]}
                                for k, v in summary.items()], None, {"baseline": chosen_baseline})
    (out / "regret.md").write_text(regret_markdown(result))
    console.print(regret_markdown(result))
    return result


def _track(cfg: DictConfig, out, name: str, rows: list[dict], image, summary: dict) -> None:
    """Log a table, a plot and summary numbers to the configured tracker (W&B or none)."""
    from lpzero_fw.tracking import build_tracker

    tracker = build_tracker(to_dict(cfg.logger), out, to_dict(cfg), run_name=f"{name}-{out.name}")
    try:
        tracker.log_table(name, [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()}
                                 for r in rows])
        if image is not None:
            tracker.log_image(name, image)
        tracker.summary(summary)
    finally:
        tracker.finish()


def _write_candidates(path, rows: list[dict]) -> None:
    fields = ["proxy_score", "params", "nonembedding_params", "latency_ms", "memory_mb", "config"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "config": json.dumps(row["config"], sort_keys=True)})
