"""Speed and memory of the Transformer-XL search space (prints figures).

    python benchmarks/bench_txl.py                 # cold default search + per-arch extraction
    python benchmarks/bench_txl.py --skip-search   # per-arch extraction only

Runs the default search on ``search_space=transformer_xl`` as a user would (a subprocess
of ``python -m lpzero_fw``, empty cache: all 200 architectures are extracted for the
full pass) and prints its wall time, peak RSS and in-sample τ/ρ; then the extraction
wall and CPU seconds (build + forward/backward + statistics) of the smallest, median and largest
model, with ``word_grads`` off (the default) and on.
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


def run(args: list[str]) -> tuple[float, float, float, dict]:
    """Wall seconds, CPU seconds (user + system: what a loaded machine does not inflate
    much), peak RSS (GB) and result.json of one CLI run."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    out = Path(tempfile.mkdtemp(prefix="lpzero-bench-txl-run-"))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lpzero_fw", "logger=none", f"hydra.run.dir={out}", *args],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"run failed ({status}): {' '.join(args)}\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, json.loads((out / "result.json").read_text())


def extraction_per_arch(word_grads: bool) -> list[tuple[str, int, float]]:
    from lpzero_fw.registry import SEARCH_SPACES
    from lpzero_fw.stats.cache import StatsStore

    root = Path(os.environ.get("LPZERO_FW_DATA", REPO.parent / "shared/benchmarks/lpzero"))
    space = SEARCH_SPACES.get("transformer_xl")(
        benchmark=str(root / "random_TransXL_wt103"),
        data={"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0},
        word_grads=word_grads,
    )
    sizes = {a: space.param_counts(a)["total"] for a in space.arch_ids()}
    ordered = sorted(sizes, key=sizes.get)
    args = {"budget": 2048, "dtype": "float16", "enabled": False}
    StatsStore(space, **args).get(ordered[0])  # warm-up: imports, first-call costs
    rows = []
    for arch in (ordered[0], ordered[len(ordered) // 2], ordered[-1]):
        store = StatsStore(space, **args)
        start, cpu = time.perf_counter(), time.process_time()
        store.get(arch)
        rows.append((arch, sizes[arch], time.perf_counter() - start, time.process_time() - cpu))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    if not args.skip_search:
        cache = tempfile.mkdtemp(prefix="lpzero-bench-txl-")
        wall, cpu, rss, result = run(["search_space=transformer_xl", "threads=1", f"cache.dir={cache}"])
        full = result["full"]
        print(f"cold default search       {wall:8.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:.2f} GB, "
              f"{result['timing']['archs_extracted']} archs extracted")
        print(f"best proxy {result['best_proxy']}: in-sample tau {full['kendall_tau']:.4f} "
              f"rho {full['spearman_rho']:.4f} on {full['n_archs']} archs")
        if "heldout" in result:
            held = result["heldout"]
            print(f"held-out tau {held['kendall_tau']:.4f} rho {held['spearman_rho']:.4f} on {held['n_archs']} archs")
    import torch

    torch.set_num_threads(1)
    for word_grads in (False, True):
        for arch, params, seconds, cpu in extraction_per_arch(word_grads):
            print(f"extraction word_grads={str(word_grads).lower():<5} {arch:<14} {params / 1e6:6.1f}M params "
                  f"{seconds:6.2f} s wall, {cpu:6.2f} s CPU")


if __name__ == "__main__":
    main()
