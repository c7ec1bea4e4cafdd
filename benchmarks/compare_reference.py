"""Compare our baseline proxies with the LPZero reference's GPT-2 scores.

For every baseline that has a reference score file
(``<benchmark>/<name>_scores_seed_1111.yaml``), score the same architectures with our
implementation and print, side by side, the oriented Kendall τ / Spearman ρ against the
trained quality (``space.quality`` = −validation perplexity) of ours and of the reference
scores (oriented the same way as ours), and |Δτ|.

    python benchmarks/compare_reference.py --n-archs 40 --batch-size 4 --seq-len 192

Partial results are written to ``--out`` after every architecture, so a long run can be
inspected (and the table re-printed with ``--table-only --out <file>``).
"""
from __future__ import annotations

import argparse
import json
import sys
import math
import time
import warnings
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scipy.stats import kendalltau, spearmanr

from lpzero_fw.baselines.runner import score_baselines
from lpzero_fw.registry import BASELINES, SEARCH_SPACES

DEFAULT_BENCH = Path(__file__).resolve().parents[2] / "shared/benchmarks/lpzero/random_GPT2_wt103"

#: our baseline name -> reference score file stem (or ``params:<column>`` of params_summary.yaml)
REFERENCE_NAMES: dict[str, str] = {
    "num_parameters": "num_parameters",
    "nonembedding_parameters": "params:nonembedding",
    "synaptic_diversity": "synaptic_diversity",
    "synaptic_saliency": "synaptic_saliency",
    "activation_distance": "activation_distance",
    "jacobian_cosine": "jacobian_cosine",
    "head_importance": "head_importance",
    "head_confidence": "head_confidence",
    "softmax_confidence": "attention_confidence",
    "grad_norm": "grad_norm",
    "snip": "snip",
    "fisher": "fisher",
    "grasp": "grasp",
    "synflow": "synflow",
    "logsynflow": "logsynflow",
    "eznas": "eznas",
    "lpzero_gpt2_reference": "lpzero",
}

console = Console(width=None if sys.stdout.isatty() else 130)


def load_reference(bench: Path, ref: str) -> dict[str, float] | None:
    if ref.startswith("params:"):
        column = ref.split(":", 1)[1]
        data = yaml.load((bench / "params_summary.yaml").read_text(), Loader=yaml.CSafeLoader)
        return {k: float(v[column]) for k, v in data.items()}
    path = bench / f"{ref}_scores_seed_1111.yaml"
    if not path.exists():
        return None
    data = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    return {k: float(v) for k, v in data.items()}


def correlate(scores: list[float], quality: list[float]) -> tuple[float, float, int]:
    s, q = np.asarray(scores, float), np.asarray(quality, float)
    keep = np.isfinite(s) & np.isfinite(q)
    s, q = s[keep], q[keep]
    if len(s) < 3 or np.ptp(s) == 0:
        return math.nan, math.nan, int(len(s))
    return float(kendalltau(s, q).statistic), float(spearmanr(s, q).statistic), int(len(s))


def data_config(args) -> dict:
    if args.data == "synthetic":
        return {"name": "synthetic", "batch_size": args.batch_size, "seq_len": args.seq_len, "seed": args.seed}
    # WikiText-2 valid.txt under $LPZERO_FW_CORPUS (a corpus root) or ../shared/corpus
    return {"name": "wikitext2", "batch_size": args.batch_size, "seq_len": args.seq_len, "seed": args.seed}


def build_table(record: dict) -> Table:
    table = Table(title=f"GPT-2 baselines vs reference ({record['settings']})")
    for col in ("baseline", "reference", "n", "ours τ", "ours ρ", "ref τ", "ref ρ", "|Δτ|", "within 0.1"):
        table.add_column(col, justify="right" if col not in ("baseline", "reference") else "left")
    for row in record["table"]:
        dt = row["abs_delta_tau"]
        table.add_row(
            row["name"], row["reference"], str(row["n_archs"]),
            f"{row['ours_tau']:.3f}", f"{row['ours_rho']:.3f}",
            f"{row['ref_tau']:.3f}", f"{row['ref_rho']:.3f}",
            f"{dt:.3f}", "yes" if (math.isfinite(dt) and dt <= 0.1) else "no",
        )
    return table


def summarise(names, refs, ours, archs, quality, orient) -> list[dict]:
    rows = []
    for name in names:
        done = [a for a in archs if a in ours and name in ours[a]]
        q = [quality[a] for a in done]
        sign = 1.0 if orient[name] else -1.0
        ours_tau, ours_rho, n = correlate([sign * ours[a][name] for a in done], q)
        ref = refs[name]
        ref_archs = [a for a in done if a in ref]
        ref_tau, ref_rho, _ = correlate([sign * ref[a] for a in ref_archs], [quality[a] for a in ref_archs])
        rows.append({
            "name": name, "reference": REFERENCE_NAMES[name], "n_archs": n,
            "ours_tau": ours_tau, "ours_rho": ours_rho, "ref_tau": ref_tau, "ref_rho": ref_rho,
            "abs_delta_tau": abs(ours_tau - ref_tau),
            "higher_is_better": orient[name],
        })
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default=str(DEFAULT_BENCH))
    parser.add_argument("--n-archs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=192)
    parser.add_argument("--data", choices=["wikitext2", "synthetic"], default="wikitext2")
    parser.add_argument("--seed", type=int, default=0, help="arch sample, batch and init seed")
    parser.add_argument("--names", nargs="*", help="baselines to run (default: all with a reference)")
    parser.add_argument("--out", default="compare_reference.json")
    parser.add_argument(
        "--threads", type=int, default=0,
        help="torch CPU threads (0: torch's default; use 1 on a shared, busy machine)",
    )
    parser.add_argument("--table-only", action="store_true", help="re-print the table of --out")
    args = parser.parse_args(argv)
    out = Path(args.out)

    if args.table_only:
        console.print(build_table(json.loads(out.read_text())))
        return 0

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    bench = Path(args.benchmark)
    names = args.names or [n for n in REFERENCE_NAMES if n in BASELINES]
    refs = {}
    for name in names:
        ref = load_reference(bench, REFERENCE_NAMES.get(name, name))
        if ref is None:
            console.print(f"[yellow]no reference file for {name}; skipped")
            continue
        refs[name] = ref
    names = [n for n in names if n in refs]
    orient = {n: bool(BASELINES.get(n).higher_is_better) for n in names}

    space = SEARCH_SPACES.get("gpt2")(benchmark=str(bench), data=data_config(args))
    archs = space.sample(args.n_archs, seed=args.seed)
    quality = {a: space.quality(a) for a in archs}
    batch = space.make_batch(seed=args.seed)
    settings = (
        f"{len(archs)} archs, data={args.data}, batch {tuple(batch['input_ids'].shape)}, seed {args.seed}"
    )
    console.print(f"[bold]{settings}[/]; baselines: {', '.join(names)}")

    ours: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    record: dict = {"settings": settings, "args": vars(args), "names": names}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("scoring", total=len(archs))
        for arch in archs:
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ours[arch] = score_baselines(space, arch, batch, names, seed=args.seed)
            seconds[arch] = time.perf_counter() - start
            for w in caught:
                progress.console.print(f"[red]{w.message}")
            progress.console.print(
                f"{arch}: {seconds[arch]:.2f}s  total params {space.param_counts(arch)['total']:,}"
            )
            progress.advance(task)
            record.update(
                scores=ours, seconds=seconds, quality=quality,
                mean_seconds_per_arch=float(np.mean(list(seconds.values()))),
                table=summarise(names, refs, ours, archs, quality, orient),
            )
            out.write_text(json.dumps(record, indent=1, default=float))

    console.print(build_table(record))
    console.print(f"mean seconds per arch (all {len(names)} baselines): {record['mean_seconds_per_arch']:.2f}")
    console.print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
