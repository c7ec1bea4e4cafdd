"""Does another way of choosing the final proxy generalise better? Decided on the search pool only.

    python benchmarks/bench_selection.py --space transformer_xl [--seeds 1,2,3,4,5] [--reps 2]

A nested check that never loads a held-out architecture: for each seed the benchmark is
split as a search splits it (:meth:`SearchSpace.split`, ``search.holdout=0.5``) and only
the *search pool* is used. Within it, ``--reps`` seeded halves give an inner fit set and an
inner validation set; on each, four ways of choosing the final proxy are compared by
Kendall τ on the inner validation set, beside non-embedding parameters there:

- ``fitness``: the search as it is, the best proxy by fitness (Spearman ρ) on the fit set;
- ``validation``: evolve on half of the fit set, then pick, among the best proxy and the
  10 best distinct members of the final population, the one with the highest ρ on the
  other half;
- ``rank_average``: the mean rank of the 10 best distinct members of the final population;
- ``kendall_fitness``: the search with Kendall τ (the metric it is judged on) as its
  fitness instead of Spearman ρ, its best proxy.

Default search settings otherwise (G=1000, p=80, the default formula space and rules). The
statistics come from the cache (run a search on the space once to fill it).
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hydra import compose, initialize_config_dir  # noqa: E402

import lpzero_fw.tasks  # noqa: E402,F401  (registers the config schemas)
from lpzero_fw import metrics  # noqa: E402
from lpzero_fw.formula.parse import parse  # noqa: E402
from lpzero_fw.proxy.evaluate import InvalidProxy  # noqa: E402
from lpzero_fw.proxy.fitness import ProxyScorer  # noqa: E402
from lpzero_fw.registry import STRATEGIES, build  # noqa: E402
from lpzero_fw.rules.apply import RuleSet  # noqa: E402
from lpzero_fw.tasks.common import build_space, build_store, to_dict  # noqa: E402
from lpzero_fw.tasks.search import formula_space, top_members  # noqa: E402

TOP = 10


class KendallScorer(ProxyScorer):
    """Fitness = Kendall tau instead of Spearman rho (same rules, same invalid cases)."""

    def _spearman(self, values: np.ndarray, arch_ids: list[str]) -> float:
        return metrics.kendall(values, [self.quality[a] for a in arch_ids])


def compose_config(space: str):
    with initialize_config_dir(config_dir=str(REPO / "lpzero_fw" / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"search_space={space}", "logger=none"])


def evolve(cfg, formulas, scorer: ProxyScorer, fit_ids: list[str], seed: int):
    """The default search on ``fit_ids``: its best proxy and the final population's best distinct members."""
    strategy = build(STRATEGIES, cfg.strategy, formulas, seed, scorer.static_ok, group="strategy")
    while not strategy.done:
        proxies = strategy.ask()
        strategy.tell(proxies, [scorer.fitness(p, fit_ids) for p in proxies])
    return strategy.best[0], [parse(member["proxy"]) for member in top_members(strategy, TOP)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="transformer_xl")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    cfg = compose_config(args.space)
    space = build_space(cfg)
    store = build_store(cfg, space)
    rules = RuleSet(to_dict(cfg.pruning.rules))
    formulas = formula_space(cfg)
    quality = {a: space.quality(a) for a in space.arch_ids()}

    def tau(values, ids) -> float:
        values = np.asarray(values, float)
        keep = np.isfinite(values)
        return metrics.kendall(values[keep], np.array([quality[a] for a in ids])[keep])

    def scores(scorer, proxy, ids) -> np.ndarray:
        try:
            return scorer.scores(proxy, ids, dynamic=False)
        except InvalidProxy:
            return np.full(len(ids), np.nan)

    methods = ["fitness", "validation", "rank_average", "kendall_fitness", "nonembedding"]
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        search_ids, _held_out = space.split(0.5, seed)  # the held-out pool is never loaded
        pool = store.get_many(search_ids)
        shared = ProxyScorer(pool, quality, rules)
        for rep in range(args.reps):
            ids = list(search_ids)
            random.Random(1000 * seed + rep).shuffle(ids)
            fit, val = ids[: len(ids) // 2], ids[len(ids) // 2:]

            scorer = ProxyScorer(pool, quality, rules, evaluator=shared.evaluator)
            best, top = evolve(cfg, formulas, scorer, fit, seed)
            by_fitness = tau(scores(scorer, best, val), val)
            averaged = tau(np.mean([stats.rankdata(scores(scorer, p, val)) for p in top], axis=0), val)

            inner_fit, inner_val = fit[: len(fit) // 2], fit[len(fit) // 2:]
            scorer = ProxyScorer(pool, quality, rules, evaluator=shared.evaluator)
            best, top = evolve(cfg, formulas, scorer, inner_fit, seed)
            inner_quality = [quality[a] for a in inner_val]
            candidates = [best, *top]
            rho = [metrics.spearman(scores(scorer, p, inner_val), inner_quality) for p in candidates]
            validated = tau(scores(scorer, candidates[int(np.nanargmax(rho))], val), val)

            scorer = KendallScorer(pool, quality, rules, evaluator=shared.evaluator)
            best, _ = evolve(cfg, formulas, scorer, fit, seed)
            by_kendall = tau(scores(scorer, best, val), val)

            control = tau([space.param_counts(a)["nonembedding"] for a in val], val)
            rows.append([by_fitness, validated, averaged, by_kendall, control])
            print(f"seed {seed} rep {rep}: " + "  ".join(f"{m} {v:.3f}" for m, v in zip(methods, rows[-1])), flush=True)
    table = np.array(rows)
    print(f"\n{args.space}: Kendall tau on the inner validation sets ({len(rows)} splits of the search pools)")
    for i, method in enumerate(methods):
        gap = "" if method == "nonembedding" else f"   vs nonembedding {np.mean(table[:, i] - table[:, -1]):+.4f}"
        print(f"  {method:15s} {table[:, i].mean():.4f} ± {table[:, i].std():.4f}{gap}")


if __name__ == "__main__":
    main()
