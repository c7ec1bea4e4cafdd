"""Held-out generalisation over 5 seeds: the searched proxy against the controls it must beat.

    python benchmarks/bench_seeds.py --scores <task=rank run>/scores.csv [--seeds 1,2,3,4,5] [-- overrides...]

1. Runs the sweep ``python -m lpzero_fw -m seed=1,...,5 hydra/launcher=local_parallel
   threads=1`` (plus any overrides after ``--``) and times it (warm when the statistics cache
   is already filled: run once to warm it, then again to time).
2. Baseline scores do not depend on the split seed, so they come once from the ``scores.csv``
   of a ``task=rank`` run on the whole benchmark. For each seed the benchmark is split like
   the search split it (:meth:`SearchSpace.split`); the best single baseline and the two
   members of ``best2_ensemble`` are chosen by Kendall τ on that seed's *search pool*; every
   control is then measured on the held-out pool.
3. Prints one table: held-out τ / ρ mean ± std over seeds, and the all-archs τ beside it
   (in-sample for the searched proxy and for the choices made on the search pool).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lpzero_fw import metrics  # noqa: E402
from lpzero_fw.baselines import ensemble  # noqa: E402
from lpzero_fw.registry import BASELINES  # noqa: E402


def read_scores(path: Path) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    rows = list(csv.DictReader(open(path)))
    ids = [r["arch_id"] for r in rows]
    quality = np.array([float(r["quality"]) for r in rows])
    skip = {"arch_id", "quality"} | {k for k in rows[0] if k not in BASELINES}  # metric + formulas/ensembles
    columns = {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows])
               for k in rows[0] if k not in skip}
    return ids, quality, columns


def sweep(seeds: list[str], out: Path, overrides: list[str]) -> float:
    cmd = [sys.executable, "-m", "lpzero_fw", "-m", f"seed={','.join(seeds)}", "hydra/launcher=local_parallel",
           "threads=1", "logger=none", f"hydra.sweep.dir={out}", *overrides]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return time.perf_counter() - t0


def stat(values: list[float]) -> str:
    arr = np.array(values, float)
    return f"{np.nanmean(arr):.3f} ± {np.nanstd(arr):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", type=Path, required=True, help="scores.csv of task=rank on the whole benchmark")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--sweep-dir", type=Path, default=None, help="reuse a finished sweep instead of running one")
    parser.add_argument("--search-space", default="gpt2", help="search space of the sweep this script runs")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the sweep (after --)")
    args = parser.parse_args()
    seeds = args.seeds.split(",")

    wall = None
    sweep_dir = args.sweep_dir
    if sweep_dir is None:
        sweep_dir = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
        wall = sweep(seeds, sweep_dir, [f"search_space={args.search_space}", *args.overrides])
    results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]
    if not results:
        sys.exit(f"no result.json under {sweep_dir}")

    ids, quality, columns = read_scores(args.scores)
    candidates = {k: v for k, v in columns.items() if not getattr(BASELINES.get(k), "searched", False)}
    # the space exactly as the sweep's runs built it (their saved config, overrides included)
    from omegaconf import OmegaConf

    from lpzero_fw.tasks.common import build_space

    saved = sorted(sweep_dir.glob("*/.hydra/config.yaml"))
    if not saved:
        sys.exit(f"no .hydra/config.yaml under {sweep_dir}")
    space = build_space(OmegaConf.load(saved[0]))
    if space.arch_ids() != ids:
        sys.exit("scores.csv does not cover the whole benchmark in arch_ids order (rank without rank.n_archs)")

    table: dict[str, dict[str, list]] = {}

    def add(name: str, held: dict, full: dict, chosen: str = "") -> None:
        entry = table.setdefault(name, {"tau": [], "rho": [], "full_tau": [], "chosen": []})
        entry["tau"].append(held["kendall_tau"])
        entry["rho"].append(held["spearman_rho"])
        entry["full_tau"].append(full["kendall_tau"])
        if chosen:
            entry["chosen"].append(chosen)

    for result in results:
        seed, holdout = int(result["seed"]), float(result["holdout"])
        _, held_ids = space.split(holdout, seed)
        held = np.isin(ids, held_ids)
        add("searched proxy", result["heldout"], result["full"], result["best_proxy"])
        best = ensemble.pick_best(candidates, quality, ~held, k=1)[0]
        add("best single baseline (chosen on the search pool)", metrics.correlations(candidates[best][held], quality[held]),
            metrics.correlations(candidates[best], quality), best)
        pair = ensemble.pick_best(candidates, quality, ~held, k=2)
        column = ensemble.rank_mean([candidates[m] for m in pair])
        add("best2_ensemble (members chosen on the search pool)", metrics.correlations(column[held], quality[held]),
            metrics.correlations(column, quality), "+".join(pair))
        for name in ("num_parameters", "nonembedding_parameters"):
            if name in columns:
                add(name, metrics.correlations(columns[name][held], quality[held]),
                    metrics.correlations(columns[name], quality))

    n_held = results[0]["heldout"]["n_archs"]
    print(f"\n{space.describe()['name']}: {len(results)} seeds ({', '.join(str(r['seed']) for r in results)}), "
          f"held-out pool {n_held} archs per seed; candidates: {len(candidates)} baselines from {args.scores}")
    print("\n| proxy | held-out τ (mean ± std) | held-out ρ (mean ± std) | all archs τ (mean ± std) | chosen per seed |")
    print("|---|---|---|---|---|")
    for name, entry in table.items():
        chosen = "; ".join(dict.fromkeys(entry["chosen"])) if entry["chosen"] else ""
        print(f"| {name} | {stat(entry['tau'])} | {stat(entry['rho'])} | {stat(entry['full_tau'])} | {chosen} |")
    if wall is not None:
        print(f"\nsweep wall time: {wall:.1f} s ({len(seeds)} seeds, hydra/launcher=local_parallel threads=1) -> {sweep_dir}")


if __name__ == "__main__":
    main()
