"""Cost of statistics extraction next to the cost floor: a plain forward+backward.

    python benchmarks/bench_extraction.py                       # default batch and 16x192
    python benchmarks/bench_extraction.py --batches 4x64 --archs 3 --repeats 2
    python benchmarks/bench_extraction.py --memory 16x192 --micro-batches 1 2 4 8

For architectures spread over the GPT-2 benchmark's size range, times in ONE process,
interleaved arch by arch (plain, extraction, plain, extraction, ...):

* plain: build the model, one loss forward and backward, nothing else;
* extraction: what a cold statistics cache does per architecture (``StatsStore``
  without disk): build, hooks, the six inputs, sampling to the budget, the
  storage-dtype round trip.

and prints the ratio of the summed times per batch shape, both in CPU seconds of this
process (``time.process_time``; robust to other load on a shared machine when torch
runs one thread) and in wall seconds. Interleaving in one process keeps the ratios
comparable under load; the absolute seconds are not (report them as measured on a
loaded machine when it was).

``--memory SHAPE``: peak RSS and CPU seconds of one cold extraction of the largest
architecture at that batch, in a fresh process per ``cache.micro_batches`` value (next to
a plain forward+backward of the same model, also in its own process).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("LPZERO_FW_DATA")
    return Path(env) if env else REPO.parent / "shared" / "benchmarks" / "lpzero"


def spread(space, count: int) -> list[str]:
    """``count`` architectures at evenly spaced size quantiles (smallest to largest)."""
    ids = sorted(space.arch_ids(), key=lambda a: space.param_counts(a)["total"])
    if count == 1:
        return [ids[len(ids) // 2]]
    return [ids[round(i * (len(ids) - 1) / (count - 1))] for i in range(count)]


def plain(space, arch_id: str, batch) -> None:
    model = space.build_model(arch_id, seed=0).eval()
    with torch.enable_grad():
        loss = model(**batch)
    loss.backward()
    del model, loss


def _one_pass(shape: str, arch: str, micro_batches: int, threads: int) -> tuple[float, float]:
    """In a fresh process: (CPU seconds, peak RSS GB) of one cold extraction (0: plain pass)."""
    from lpzero_fw.search_spaces.gpt2 import GPT2Space
    from lpzero_fw.stats.cache import StatsStore

    torch.set_num_threads(threads)
    bs, seq = (int(v) for v in shape.split("x"))
    space = GPT2Space(benchmark=str(data_root() / "random_GPT2_wt103"),
                      data={"name": "synthetic", "batch_size": bs, "seq_len": seq, "seed": 0})
    store = StatsStore(space, enabled=False, memory=False, micro_batches=max(micro_batches, 1))
    start = time.process_time()
    plain(space, arch, store.batch) if micro_batches == 0 else store._extract(arch)
    return time.process_time() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def memory(shape: str, micro_batches: list[int], threads: int) -> None:
    from lpzero_fw.search_spaces.gpt2 import GPT2Space

    space = GPT2Space(benchmark=str(data_root() / "random_GPT2_wt103"))
    arch = spread(space, 2)[-1]
    params = space.param_counts(arch)["total"] / 1e6
    print(f"batch {shape}, largest arch {arch} ({params:.1f} M params), {threads} thread(s), fresh process each")
    context = multiprocessing.get_context("spawn")
    for parts in [0, *micro_batches]:
        with context.Pool(1) as pool:
            seconds, rss = pool.apply(_one_pass, (shape, arch, parts, threads))
        label = "plain forward+backward" if parts == 0 else f"extraction, micro_batches={parts}"
        print(f"  {label:<32} CPU {seconds:7.2f} s   peak RSS {rss:5.2f} GB")


def main() -> None:
    from lpzero_fw.search_spaces.gpt2 import GPT2Space
    from lpzero_fw.stats.cache import StatsStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", default=["4x64", "16x192"])
    parser.add_argument("--archs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds per arch (after one warm-up)")
    parser.add_argument("--budget", default="2048", help="values per layer, or 'exact'")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--data", default="synthetic", choices=["synthetic", "wikitext2"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory", metavar="SHAPE", help="peak RSS per micro-batches value at this batch")
    parser.add_argument("--micro-batches", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    if args.memory:
        memory(args.memory, args.micro_batches, args.threads)
        return
    torch.set_num_threads(args.threads)
    budget = None if args.budget == "exact" else int(args.budget)

    for shape in args.batches:
        bs, seq = (int(v) for v in shape.split("x"))
        space = GPT2Space(benchmark=str(data_root() / "random_GPT2_wt103"),
                          data={"name": args.data, "batch_size": bs, "seq_len": seq, "seed": 0})
        store = StatsStore(space, budget=budget, dtype=args.dtype, enabled=False, memory=False)
        batch = store.batch
        archs = spread(space, args.archs)
        plain(space, archs[0], batch)  # warm-up: allocator, kernels, lazy imports
        store._extract(archs[0])
        totals = {"plain": 0.0, "extract": 0.0, "plain_wall": 0.0, "extract_wall": 0.0}
        ratios = []
        print(f"batch {shape} ({args.data}), budget {args.budget} {args.dtype}, {args.threads} thread(s)")
        for arch in archs:
            t = dict.fromkeys(totals, 0.0)
            for r in range(args.repeats):
                order = ("plain", "extract") if r % 2 == 0 else ("extract", "plain")
                for kind in order:
                    c0, w0 = time.process_time(), time.perf_counter()
                    plain(space, arch, batch) if kind == "plain" else store._extract(arch)
                    t[kind] += time.process_time() - c0
                    t[kind + "_wall"] += time.perf_counter() - w0
            for kind in t:
                totals[kind] += t[kind]
            ratios.append(t["extract"] / t["plain"])
            params = space.param_counts(arch)["total"] / 1e6
            print(f"  {arch:>14} {params:6.1f} M params  CPU s: plain {t['plain']:7.2f}  "
                  f"extraction {t['extract']:7.2f}  ratio {t['extract'] / t['plain']:.3f}   "
                  f"(wall ratio {t['extract_wall'] / t['plain_wall']:.3f})")
        print(f"  total over {len(archs)} archs x {args.repeats}: CPU plain {totals['plain']:.2f} s, "
              f"extraction {totals['extract']:.2f} s, ratio {totals['extract'] / totals['plain']:.3f}; "
              f"wall plain {totals['plain_wall']:.2f} s, extraction {totals['extract_wall']:.2f} s, "
              f"ratio {totals['extract_wall'] / totals['plain_wall']:.3f}; median per-arch CPU ratio "
              f"{statistics.median(ratios):.3f} (robust to one stalled run)")


if __name__ == "__main__":
    main()
