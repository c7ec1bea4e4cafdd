"""Do the reference's searched formulas, in the reference operator set, reproduce its scores?

GPT-2: scores ``lpzero_gpt2`` translated into ``search.ops=reference`` on every arch of
``random_GPT2_wt103`` through the statistics cache (the same statistics a search uses)
and prints its Spearman ρ against the authors' ``lpzero_scores_seed_1111.yaml`` and its
oriented τ / ρ against −perplexity::

    python benchmarks/reference_oracle.py --batch-size 16 --seq-len 192 --symbols W G  # reference batch, exact

FlexiBERT (``--space flexibert``): ``lpzero_flexibert_reference`` (a baseline; with
``--formula`` also the translated ``lpzero_flexibert`` formula on this package's H) against the ``lpzero`` column of the authors'
``BERT_results_activation_lpzero.csv`` and against GLUE.
Per-arch scores go to ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import kendalltau, spearmanr

from lpzero_fw.baselines.reference import NAMED_FORMULAS
from lpzero_fw.baselines.runner import score_baselines
from lpzero_fw.data.locate import resolve_root
from lpzero_fw.ops.reference import translate
from lpzero_fw.proxy.evaluate import Evaluator, InvalidProxy
from lpzero_fw.formula.parse import parse
from lpzero_fw.registry import SEARCH_SPACES
from lpzero_fw.stats.cache import StatsStore
from lpzero_fw.stats.extract import extract_raw, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="gpt2", choices=("gpt2", "flexibert"))
    parser.add_argument("--data", default="wikitext2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=192)
    parser.add_argument("--n-archs", type=int, default=None, help="a seeded sample (default: all)")
    parser.add_argument("--budget", type=int, default=2048, help="cache values per layer (0 = exact)")
    parser.add_argument("--quirks", action="store_true", help="flexibert: the reference's 256/1024 models")
    parser.add_argument("--symbols", nargs="*", default=None,
                        help="extract only these inputs, exactly, without the cache (gpt2: W G)")
    parser.add_argument("--formula", action="store_true", help="flexibert: also score the translated formula")
    parser.add_argument("--out", default="reference_oracle.json")
    args = parser.parse_args()

    data = {"name": args.data, "batch_size": args.batch_size, "seq_len": args.seq_len, "seed": 0}
    root = resolve_root()
    if args.space == "gpt2":
        space = SEARCH_SPACES.get("gpt2")(benchmark=str(root / "random_GPT2_wt103"), data=data)
        with open(root / "random_GPT2_wt103" / "lpzero_scores_seed_1111.yaml") as handle:
            reference = yaml.safe_load(handle)
        formula, baseline = "lpzero_gpt2", None
    else:
        space = SEARCH_SPACES.get("flexibert")(data=data, reference_quirks=args.quirks, objective="hidden_sum")
        with open(root / "data" / "BERT_results_activation_lpzero.csv") as handle:
            reference = {f"flexibert_{int(row['ID'])}": float(row["lpzero"]) for row in csv.DictReader(handle)}
        formula, baseline = "lpzero_flexibert", "lpzero_flexibert_reference"
    ids = space.arch_ids() if args.n_archs is None else space.sample(args.n_archs, 0)
    proxy = parse(translate(NAMED_FORMULAS[formula], "reference"))
    store = StatsStore(space, budget=args.budget or None, dtype="float16" if args.budget else "float32",
                       enabled=bool(args.budget))
    evaluator = Evaluator()
    rows = {}
    start = time.perf_counter()
    for i, arch in enumerate(ids, 1):
        row = {}
        if baseline is None or args.formula:
            try:
                if args.symbols:
                    raw = extract_raw(space, arch, store.batch, symbols=args.symbols)
                    stats = summarize(raw, None)
                else:
                    stats = store.get(arch)
                row["formula"] = evaluator.score(proxy, arch, stats)
            except InvalidProxy as exc:
                row["formula"] = float("nan")
                print(arch, exc)
            store.memory.clear()
        if baseline:
            row["baseline"] = score_baselines(space, arch, store.batch, [baseline])[baseline]
        rows[arch] = row
        if i % 10 == 0 or i == len(ids):
            print(f"{i}/{len(ids)} archs, {time.perf_counter() - start:.0f} s", flush=True)
            Path(args.out).write_text(json.dumps(rows, indent=1))
    quality = np.array([space.quality(a) for a in ids])
    ref = np.array([reference[a] for a in ids])
    print(f"{len(ids)} archs, batch {args.batch_size}x{args.seq_len} {args.data}, budget {args.budget or 'exact'}")
    print(f"authors' scores vs quality: tau {kendalltau(ref, quality)[0]:+.3f} rho {spearmanr(ref, quality)[0]:+.3f}")
    for key in rows[ids[0]]:
        ours = np.array([rows[a][key] for a in ids])
        ok = np.isfinite(ours)
        print(f"{key}: Spearman vs authors' scores {spearmanr(ours[ok], ref[ok])[0]:.4f} (n={ok.sum()}); "
              f"vs quality tau {kendalltau(ours[ok], quality[ok])[0]:+.3f} rho {spearmanr(ours[ok], quality[ok])[0]:+.3f}")


if __name__ == "__main__":
    main()
