"""Cost of the GPT-2 (LTS) benchmark models on this machine.

For the smallest, median and largest architecture (by total parameters) and each batch
shape, prints the build time, the forward+backward time (first = cold, then the best of
``--repeats`` warm runs) and the peak RSS. Every case runs in its own subprocess, so the
peak RSS is that case's alone.

    python benchmarks/bench_models.py                     # default batch and 16x192
    python benchmarks/bench_models.py --batches 4x64 8x64 8x128 16x192
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("LPZERO_FW_DATA")
    return Path(env) if env else REPO.parent / "shared" / "benchmarks" / "lpzero"


def default_batch() -> str:
    import yaml

    cfg = yaml.safe_load((REPO / "conf" / "data" / "synthetic.yaml").read_text())
    return f"{cfg['batch_size']}x{cfg['seq_len']}"


def run_case(arch_id: str, batch: str, repeats: int) -> dict:
    """Executed in the child process."""
    import torch

    from lpzero_fw.search_spaces.gpt2 import GPT2Space

    bs, seq = (int(v) for v in batch.split("x"))
    space = GPT2Space(
        benchmark=str(data_root() / "random_GPT2_wt103"),
        data={"name": "synthetic", "batch_size": bs, "seq_len": seq, "seed": 0},
    )
    batch_tensors = space.make_batch(0)
    t0 = time.perf_counter()
    model = space.build_model(arch_id)
    build = time.perf_counter() - t0
    times = []
    for _ in range(1 + repeats):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = model(**batch_tensors)
        loss.backward()
        times.append(time.perf_counter() - t0)
    return {
        "arch": arch_id,
        "params": space.param_counts(arch_id)["total"],
        "batch": batch,
        "build_s": build,
        "cold_s": times[0],
        "warm_s": min(times[1:]) if repeats else times[0],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="*", default=None, help="BxT shapes (default: conf default and 16x192)")
    parser.add_argument("--repeats", type=int, default=2, help="warm forward+backward runs per case")
    parser.add_argument("--case", nargs=2, metavar=("ARCH", "BxT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], args.case[1], args.repeats)))
        return

    from lpzero_fw.search_spaces.gpt2 import GPT2Space

    space = GPT2Space(benchmark=str(data_root() / "random_GPT2_wt103"))
    totals = {a: space.param_counts(a)["total"] for a in space.arch_ids()}
    order = sorted(totals, key=totals.get)
    picks = {"smallest": order[0], "median": order[len(order) // 2], "largest": order[-1]}
    batches = args.batches or list(dict.fromkeys([default_batch(), "16x192"]))
    header = f"{'which':9} {'arch':13} {'params':>7} {'batch':>7} {'build s':>8} {'fwd+bwd cold s':>15} {'warm s':>7} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for batch in batches:
        for which, arch in picks.items():
            out = subprocess.run(
                [sys.executable, __file__, "--case", arch, batch, "--repeats", str(args.repeats)],
                capture_output=True, text=True, check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{which:9} {arch:13} {r['params'] / 1e6:6.1f}M {batch:>7} {r['build_s']:8.2f} "
                f"{r['cold_s']:15.2f} {r['warm_s']:7.2f} {r['rss_mb']:12.0f}"
            )
    print(f"(torch threads: {r['threads']}; median of {len(order)} archs by total params)")


if __name__ == "__main__":
    main()
