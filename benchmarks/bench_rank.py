"""Cost of ranking every baseline: ``task=rank proxy=all`` wall and CPU time, per-baseline seconds.

    python benchmarks/bench_rank.py --n-archs 40 --workers 1 --compare <earlier run>/ranking.json
    python benchmarks/bench_rank.py --workers 2 -- search_space=transformer_xl

Runs the CLI as a user would (``threads=1``, GPT-2 and its default batch unless overridden
after ``--``), prints wall seconds, CPU seconds of the run and its worker processes, peak
RSS, and each proxy's seconds (``ranking.json``), slowest first. ``--compare`` checks every
proxy's Kendall τ against an earlier ``ranking.json`` (for a change meant to leave scores
as they are: prints max |Δτ|).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-archs", type=int, default=None, help="a seeded sample (default: the whole benchmark)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--compare", type=Path, default=None, help="an earlier ranking.json")
    parser.add_argument("overrides", nargs="*", help="more CLI overrides (after --)")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="lpzero-bench-rank-"))
    cmd = [sys.executable, "-m", "lpzero_fw", "task=rank", "proxy=all", "threads=1", "logger=none",
           f"rank.workers={args.workers}", f"hydra.run.dir={out}", *args.overrides]
    if args.n_archs is not None:
        cmd.append(f"rank.n_archs={args.n_archs}")
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = json.loads((out / "ranking.json").read_text())
    print(f"wall {wall:.1f} s, CPU {usage.ru_utime + usage.ru_stime:.1f} s (run + workers), "
          f"peak RSS of the largest process {usage.ru_maxrss / 1e6:.2f} GB -> {out}")
    for row in sorted(rows, key=lambda r: -r["seconds"]):
        print(f"  {row['seconds']:8.1f} s  tau {row['kendall_tau']:+.3f}  {row['name']}")
    if args.compare is not None:
        before = {r["name"]: r["kendall_tau"] for r in json.loads(args.compare.read_text())}
        common = [r for r in rows if r["name"] in before]
        gap = max(abs(r["kendall_tau"] - before[r["name"]]) for r in common)
        print(f"max |delta tau| against {args.compare}: {gap:.2e} over {len(common)} proxies")


if __name__ == "__main__":
    main()
