"""How large a LLaMA-family model can this machine extract statistics for?

    python benchmarks/bench_llama_scale.py                       # 125M .. 1.1B, stop at the first failure
    python benchmarks/bench_llama_scale.py --sizes 1b 2b --batch 1x64

Each size is a LLaMA config (TinyLlama / OpenLLaMA-like shapes, vocabulary 32,000) written
as a one-architecture benchmark table; a subprocess builds it through
``search_space=hf_causal_lm`` exactly as a search would and extracts all six statistic
inputs into an empty cache (``cache.budget`` values per layer), printing parameters,
build + extraction seconds (wall and CPU) and the child's peak RSS. A size whose
estimated peak (weights + gradients, float32, plus 25 %) exceeds ``--max-gb`` is not
started, so the machine is never driven out of memory.
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

SHAPES = {  # hidden, layers, heads, kv heads, intermediate
    "125m": (768, 12, 12, 12, 2048),
    "350m": (1024, 24, 16, 16, 2816),
    "760m": (1536, 24, 16, 16, 4096),
    "1.1b": (2048, 22, 32, 4, 5632),   # TinyLlama-1.1B
    "1.5b": (2048, 32, 32, 8, 5632),
    "2b": (2560, 26, 20, 20, 6912),
    "3b": (3200, 26, 32, 32, 8640),    # OpenLLaMA-3B
    "7b": (4096, 32, 32, 32, 11008),   # LLaMA-7B (the paper's LoNAS super-network)
}
VOCAB = 32000

CHILD = r"""
import json, resource, sys, time, torch
from lpzero_fw.search_spaces.hf_causal_lm import HFCausalLMSpace
from lpzero_fw.stats.cache import StatsStore
table, cache, budget, batch, seq, threads = sys.argv[1:7]
torch.set_num_threads(int(threads))
space = HFCausalLMSpace(benchmark=table, family="llama",
                        data={"name": "synthetic", "batch_size": int(batch), "seq_len": int(seq), "seed": 0})
store = StatsStore(space, budget=int(budget), directory=cache)
wall, cpu = time.perf_counter(), time.process_time()
stats = store.get(space.arch_ids()[0])
layers = {k: sum(v.rows for v in chunks) for k, chunks in stats.items()}
print(json.dumps({"seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
                  "layers_per_input": layers,
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))
"""


def params(hidden: int, layers: int, heads: int, kv: int, inter: int) -> int:
    head_dim = hidden // heads
    attn = hidden * hidden * 2 + 2 * hidden * kv * head_dim
    return VOCAB * hidden * 2 + layers * (attn + 3 * hidden * inter + 2 * hidden) + hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["125m", "350m", "760m", "1.1b"], choices=list(SHAPES))
    parser.add_argument("--batch", default="1x64", help="batch x sequence length")
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-gb", type=float, default=20.0)
    args = parser.parse_args()
    batch, seq = args.batch.split("x")
    work = Path(tempfile.mkdtemp(prefix="lpzero-llama-scale-"))
    print(f"| size | parameters | estimated GB | build + extraction s (wall / CPU) | peak RSS GB | layers per input |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        hidden, layers, heads, kv, inter = SHAPES[size]
        n = params(hidden, layers, heads, kv, inter)
        estimate = n * 8 * 1.25 / 2**30
        if estimate > args.max_gb:
            print(f"| {size} | {n / 1e9:.2f}B | {estimate:.1f} | not started (> --max-gb {args.max_gb}) | | |")
            continue
        table = work / f"{size}.jsonl"
        row = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
               "num_key_value_heads": kv, "intermediate_size": inter, "vocab_size": VOCAB,
               "max_position_embeddings": 2048, "tie_word_embeddings": False}
        table.write_text("".join(json.dumps({"id": f"{size}_{i}", **row, "valid_ppl": 10.0 + i}) + "\n" for i in range(3)))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(table), str(work / f"cache-{size}"), str(args.budget),
                               batch, seq, str(args.threads)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["killed"])[-1]
            print(f"| {size} | {n / 1e9:.2f}B | {estimate:.1f} | failed after {time.perf_counter() - start:.0f} s "
                  f"(exit {proc.returncode}: {tail[:120]}) | | |")
            break
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {size} | {n / 1e9:.2f}B | {estimate:.1f} | {out['seconds']} / {out['cpu_seconds']} | "
              f"{out['peak_rss_gb']} | {out['layers_per_input']} |", flush=True)


if __name__ == "__main__":
    main()
