"""Speed benchmark of the statistics cache and shared evaluation (prints figures).

    python benchmarks/bench_search.py            # the default search: G=1000, p=80, S = the search pool

Runs the main job as a user would (subprocesses of ``python -m lpzero_fw``) and prints:
cold wall time (empty cache, extraction included), warm wall time, extraction seconds
per arch (smallest / median / largest), proxy x arch evaluations per second, peak
RSS, the time to score one proxy on all archs cold and warm, and a short search with
the cache disabled (every proxy re-extracts statistics, as the reference did)
against the same search with the cache.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (GB) and result/ranking json of one CLI run."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    out = Path(tempfile.mkdtemp(prefix="lpzero-bench-"))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lpzero_fw", "logger=none", f"hydra.run.dir={out}", *args],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"run failed ({status}): {' '.join(args)}\n{proc.stderr.read().decode()[-2000:]}")
    result = out / "result.json"
    data = json.loads(result.read_text()) if result.exists() else json.loads((out / "ranking.json").read_text())
    return wall, usage.ru_maxrss / 2**20, data


def extraction_per_arch(cache_args: dict) -> list[tuple[str, int, float]]:
    from lpzero_fw.registry import SEARCH_SPACES
    from lpzero_fw.stats.cache import StatsStore

    space = SEARCH_SPACES.get("gpt2")(
        benchmark=str(Path(os.environ.get("LPZERO_FW_DATA", REPO.parent / "shared/benchmarks/lpzero"))
                      / "random_GPT2_wt103"),
        data={"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0},
    )
    sizes = {a: space.param_counts(a)["total"] for a in space.arch_ids()}
    ordered = sorted(sizes, key=sizes.get)
    StatsStore(space, enabled=False, **cache_args).get(ordered[0])  # warm-up: imports, first-call costs
    rows = []
    for arch in (ordered[0], ordered[len(ordered) // 2], ordered[-1]):
        store = StatsStore(space, enabled=False, **cache_args)
        start = time.perf_counter()
        store.get(arch)
        rows.append((arch, sizes[arch], time.perf_counter() - start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nocache-iterations", type=int, default=20)
    parser.add_argument("--nocache-population", type=int, default=10,
                        help="population of the cache-off comparison (p=80 would re-extract 80x50 times)")
    parser.add_argument("--nocache-archs", type=int, default=10)
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="lpzero-bench-cache-")
    print(f"default search (G=1000, p=80, S = the 100-arch search pool, synthetic 4x64), cache {cache}")
    cold, cold_rss, cold_result = run([f"cache.dir={cache}"])
    warm, warm_rss, warm_result = run([f"cache.dir={cache}"])
    timing = warm_result["timing"]
    print(f"cold wall time            {cold:8.1f} s   (peak RSS {cold_rss:.2f} GB, "
          f"{cold_result['timing']['archs_extracted']} archs extracted)")
    print(f"warm wall time            {warm:8.1f} s   (peak RSS {warm_rss:.2f} GB; search loop "
          f"{timing['search_seconds']:.1f} s)")
    print(f"evaluations per second    {timing['evaluations_per_second']:8.0f}     (proxy x arch, warm search loop)")
    print(f"best proxy {warm_result['best_proxy']}: tau {warm_result['full']['kendall_tau']:.4f} "
          f"rho {warm_result['full']['spearman_rho']:.4f} on {warm_result['full']['n_archs']} archs")
    for arch, params, seconds in extraction_per_arch({"budget": 2048, "dtype": "float16"}):
        print(f"extraction {arch:<14} {params / 1e6:6.1f}M params  {seconds:6.2f} s")

    formula = warm_result["best_proxy"]
    fresh = tempfile.mkdtemp(prefix="lpzero-bench-cache-")
    one_cold, _, _ = run(["task=rank", f"proxy='{formula}'", f"cache.dir={fresh}"])
    one_warm, _, _ = run(["task=rank", f"proxy='{formula}'", f"cache.dir={fresh}"])
    print(f"one proxy on all archs    {one_cold:8.1f} s cold, {one_warm:.1f} s warm")

    small = [f"strategy.iterations={args.nocache_iterations}", f"strategy.population={args.nocache_population}",
             f"search.n_archs={args.nocache_archs}"]
    cached, _, r1 = run([*small, f"cache.dir={cache}"])
    nocache, _, r2 = run([*small, "cache.enabled=false", "cache.memory=false"])
    s1, s2 = r1["timing"]["search_seconds"], r2["timing"]["search_seconds"]
    print(f"{args.nocache_iterations}-iteration search (p={args.nocache_population}, S={args.nocache_archs}): "
          f"search loop {s1:.2f} s with cache, {s2:.1f} s re-extracting per proxy "
          f"(x{s2 / max(s1, 1e-9):.0f}); whole runs {cached:.1f} s vs {nocache:.1f} s")


if __name__ == "__main__":
    main()
