"""Speed of ``task=nas``: how many candidate architectures the proxy scores per minute.

    python benchmarks/bench_nas.py                          # 1,000 candidates, nas.max_params=10M, 2 workers
    python benchmarks/bench_nas.py --max-params 20e6 --candidates 200 --workers 1

Runs the job as a user would (``python -m lpzero_fw task=nas search_space=gpt2 ...`` at the
default batch) and prints wall time, the CPU time the job got (on a shared machine wall
time includes waiting for a core), candidates per second, the load average before and
after, and where ``pareto.png`` went. Target: >= 1,000 candidates in <= 5 min on 2 cores.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-params", type=float, default=10e6)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="nas.workers: scoring processes (1 thread each)")
    parser.add_argument("--strategy", default="evolution")
    parser.add_argument("--proxy", default=None, help="formula or name (default: the family's)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="lpzero-bench-nas-"))
    command = [sys.executable, "-m", "lpzero_fw", "task=nas", "search_space=gpt2", "logger=none",
               f"nas.max_params={args.max_params:g}", f"nas.n_candidates={args.candidates}",
               f"nas.strategy={args.strategy}", f"nas.workers={args.workers}", f"threads={args.threads}",
               f"hydra.run.dir={out}"]
    if args.proxy:
        command.append(f"proxy='{args.proxy}'")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"task=nas failed ({status}):\n{proc.stderr.read().decode()[-2000:]}")
    result = json.loads((out / "nas.json").read_text())
    cpu = usage.ru_utime + usage.ru_stime
    figures = {
        "candidates_scored": result["candidates_scored"],
        "max_params": args.max_params,
        "batch": result["batch"],
        "threads": args.threads,
        "workers": args.workers,
        "wall_seconds": round(wall, 1),
        "search_seconds": result["search_seconds"],
        "cpu_seconds": round(cpu, 1),
        "candidates_per_second_wall": result["candidates_per_second"],
        "cpu_seconds_per_candidate": round(cpu / result["candidates_scored"], 3),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
        "front_size": len(result["front"]),
        "chosen_params": result["chosen"]["params"],
        "pareto_png": str(out / "pareto.png"),
    }
    print(json.dumps(figures, indent=2))
    print(f"\n| candidates | wall | CPU | per candidate (CPU) | load |\n|---|---|---|---|---|\n"
          f"| {figures['candidates_scored']} | {wall:.0f} s | {cpu:.0f} s | "
          f"{figures['cpu_seconds_per_candidate']:.2f} s | {figures['load_average_before_after']} |")


if __name__ == "__main__":
    main()
