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
import time

from omegaconf import DictConfig

from lpzero_fw.registry import ARCH_SPACES, ARCH_STRATEGIES, LPZeroError
from lpzero_fw.tasks.common import build_space, console, progress_bar, run_dir, to_dict, write_json

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
        from lpzero_fw.nas.table import run_table

        return run_table(cfg, space, out)
    return search(cfg, space, out, limits)


def search(cfg: DictConfig, space, out, limits: dict) -> dict:
    from lpzero_fw.nas.measure import latency_ms, peak_memory_mb
    from lpzero_fw.nas.pareto import pareto_front, plot_front
    from lpzero_fw.nas.scoring import CandidateSpace, ProxyScore, proxy_inputs
    from lpzero_fw.stats.cache import StatsStore

    start = time.perf_counter()
    nas = to_dict(cfg.nas)
    arch = build_arch_space(cfg, space)
    spec = cfg.get("proxy") or arch.default_proxy
    symbols = proxy_inputs(spec)  # a formula: extract only its inputs, skip unread gradients
    candidates = CandidateSpace(arch, freeze_unread=symbols is not None)
    cache = to_dict(cfg.cache)
    # candidates are scored once: statistics are neither kept in memory nor written to disk
    store = StatsStore(candidates, batch_seed=int(cfg.data.get("seed", 0)), budget=cache["budget"],
                       dtype=cache["dtype"], enabled=False, memory=False, symbols=symbols)
    scorer = ProxyScore(spec, store)
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

    if measured:  # unsatisfiable latency / memory budgets fail before the search
        floor_costs = costs(smallest)
        for key, limit in (("latency_ms", limits["max_latency_ms"]), ("memory_mb", limits["max_memory_mb"])):
            if limit is not None and floor_costs[key] > limit:
                raise LPZeroError(f"nas.max_{key}={limit:g} is below the smallest architecture's "
                                  f"{floor_costs[key]:.1f} on this device; raise it or widen nas.space")

    checks = {"latency": ("latency_ms", limits["max_latency_ms"]), "memory": ("memory_mb", limits["max_memory_mb"])}

    def feasible(genome) -> bool:
        return max_params is None or arch.param_counts(genome)["total"] <= max_params

    name = nas["strategy"]
    strategy = ARCH_STRATEGIES.get(name)(arch, int(cfg.seed), feasible, **(nas.get(name) or {}))
    target = int(nas["n_candidates"])
    rows: list[dict] = []
    seen: dict[str, float | None] = {}
    rejected = {"latency": 0, "memory": 0, "unscorable": 0}
    proposals = 0
    with progress_bar() as progress:
        bar = progress.add_task(f"nas ({name})", total=target, info="")
        while len(rows) < target and proposals < 50 * target:
            genome = strategy.ask()
            proposals += 1
            key = candidates.add(genome)
            if key in seen:  # a repeat costs nothing and counts nothing
                strategy.tell(genome, seen[key])
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
                    strategy.tell(genome, None)
                    continue
            score = scorer(key)
            seen[key] = score if math.isfinite(score) else None
            strategy.tell(genome, seen[key])
            if seen[key] is None:
                rejected["unscorable"] += 1
                continue
            row["proxy_score"] = score
            rows.append(row)
            best = max(r["proxy_score"] for r in rows)
            progress.update(bar, advance=1, info=f"best {best:.4g}")
    search_seconds = time.perf_counter() - start
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
        "candidates_per_second": round(len(rows) / search_seconds, 2),
        "front": front,
        "chosen": chosen,
        "chosen_config": arch.config_file,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out / "nas.json", result)
    console.print(f"{len(rows)} candidates scored in {search_seconds:.1f} s; front of {len(front)}; chosen: "
                  f"{chosen['params']:,} params, proxy {chosen['proxy_score']:.4g}, "
                  f"{chosen['latency_ms']:.1f} ms, {chosen['memory_mb']:.1f} MB -> {out}")
    return result


def _write_candidates(path, rows: list[dict]) -> None:
    fields = ["proxy_score", "params", "nonembedding_params", "latency_ms", "memory_mb", "config"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "config": json.dumps(row["config"], sort_keys=True)})
