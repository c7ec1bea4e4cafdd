"""Reliability: user mistakes give one clean line, faulty architectures are retried or
skipped, and the six statistic inputs are what the formulas assume.

The CLI table runs the Hydra app (in-process, see ``run_app``) once per bad input and checks: non-zero
exit, no traceback, a one-line ``error: ...`` naming the bad value (and the valid
choices where there is a list), a sentinel ``result.json`` left untouched, and a
quick finish (validation happens before any statistics are extracted).
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.stats.cache import StatsStore
from lpzero_fw.stats.extract import tail_size
from tests.test_cli import run_app

SMALLEST, LARGEST = "config_9_j3", "config_4_j9"
HYDRA_FILES = {".hydra", "lpzero_fw.log"}  # Hydra writes these for every job
SENTINEL = '{"best_proxy": "earlier result", "fitness": 0.5}\n'

# small budgets: a case that wrongly proceeds must not run for long
SMALL = ("logger=none", "threads=1", "strategy.iterations=5", "strategy.population=4", "search.n_archs=5")


# --------------------------------------------------------------------------- CLI table
@dataclass
class Ctx:
    tmp: Path
    data_root: Path
    corpus_root: Path
    env: dict = field(default_factory=dict)


@dataclass
class Case:
    args: Callable[[Ctx], list[str]] | tuple[str, ...]
    contains: tuple[str, ...] = ()          # substrings of the error line (bad value, choices)
    after: Callable[[Ctx], None] | None = None  # extra checks once the run failed


def _text(ctx: Ctx, content: str | None) -> list[str]:
    path = ctx.tmp / "corpus.txt"
    if content is not None:
        path.write_text(content)
    return ["data=text_file", f"data.path={path}"]


def _bad_ground_truth(ctx: Ctx) -> list[str]:
    """A copy of the GPT-2 benchmark (config folders symlinked) whose first valid_ppl is 'abc'."""
    source = ctx.data_root / "random_GPT2_wt103"
    copy = ctx.tmp / "bench" / "random_GPT2_wt103"
    copy.mkdir(parents=True)
    for item in source.iterdir():
        if item.name != "ppl_summary.yaml":
            (copy / item.name).symlink_to(item)
    text = (source / "ppl_summary.yaml").read_text()
    bad, n = re.subn(r"valid_ppl: [0-9.eE+-]+", "valid_ppl: abc", text, count=1)
    assert n == 1
    (copy / "ppl_summary.yaml").write_text(bad)
    return [f"search_space.benchmark={copy}"]


def _checksum_server(ctx: Ctx) -> list[str]:
    """A local server whose data/BERT_benchmark.json is not the published file."""
    served = ctx.tmp / "served"
    (served / "data").mkdir(parents=True)
    (served / "data" / "BERT_benchmark.json").write_text('{"tampered": true}\n')
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ctx.env["_server"] = server
    ctx.env.update({"LPZERO_FW_DATA": "", "LPZERO_FW_NO_SIBLING_DATA": "1"})
    return [
        "search_space=flexibert",
        f"benchmark.base_url=http://127.0.0.1:{server.server_address[1]}",
        f"benchmark.cache_dir={ctx.tmp / 'downloads'}",
    ]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


def _no_partial_download(ctx: Ctx) -> None:
    leftovers = [p for p in (ctx.tmp / "downloads").rglob("*") if p.is_file()]
    assert not leftovers, f"partial download left behind: {leftovers}"


def _file_as_cache_dir(ctx: Ctx) -> list[str]:
    path = ctx.tmp / "not-a-dir"
    path.write_text("x")
    return [f"cache.dir={path}"]


CASES = {
    "malformed_formula": Case(("task=rank", "proxy='sum(W,'"), ("sum(W,", "end of text")),
    "unknown_operator": Case(
        ("task=rank", "proxy='sum(nope(W),A)'"), ("'nope'", "unary operator", "square")),
    "unknown_input": Case(
        ("task=rank", "proxy='sum(log(X),A)'"), ("'X'", "statistic input", "A, G, H, J, S, W")),
    "unknown_search_space": Case(("search_space=nope",), ("search_space=nope is not an option", "gpt2")),
    "unknown_experiment": Case(("experiment=nope",), ("experiment=nope is not an option", "paper_gpt2")),
    "run_setting_of_wrong_type": Case(("search.n_unary=x",), ("search.n_unary=x", "Integer")),
    "unknown_run_setting": Case(("cache.budgte=1",), ("cache.budgte", "no such setting", "budget")),
    "non_integer_seed": Case(("seed=abc",), ("seed='abc'", "integer")),
    "unknown_strategy": Case(("strategy.name=nope",), ("'nope'", "evolution, random")),
    "unknown_rule": Case(("pruning.rules=[nope]",), ("'nope'", "pruning.rules", "non_finite_score")),
    "population_too_small": Case(("strategy.population=1",), ("strategy.population=1", ">= 2")),
    "tournament_ratio_zero": Case(("strategy.tournament_ratio=0",), ("tournament_ratio=0", "(0, 1]")),
    "tournament_ratio_above_one": Case(("strategy.tournament_ratio=1.5",), ("tournament_ratio=1.5", "(0, 1]")),
    "n_archs_above_benchmark": Case(("search.n_archs=500",), ("n_archs=500", "200")),
    "n_unary_zero": Case(("search.n_unary=0",), ("n_unary=0", ">= 1")),
    "missing_benchmark_root": Case(("benchmark.root=/nonexistent",), ("/nonexistent",)),
    "download_checksum_mismatch": Case(_checksum_server, ("checksum mismatch", "BERT_benchmark.json"),
                                       after=_no_partial_download),
    "non_numeric_ground_truth": Case(_bad_ground_truth, ("'abc'", "valid_ppl", "expected a number")),
    "empty_text_file": Case(lambda ctx: _text(ctx, "  \n\n"), ("corpus.txt", "is empty")),
    "missing_text_file": Case(lambda ctx: _text(ctx, None), ("corpus.txt", "does not exist")),
    "seq_len_above_positions": Case(("data.seq_len=500",), ("seq_len=500", "192 positions")),
    "negative_batch_size": Case(("data.batch_size=-1",), ("batch_size=-1", "positive integer")),
    "cache_dir_in_proc": Case(("cache.dir=/proc/forbidden",), ("/proc/forbidden", "not a writable directory")),
    "cache_dir_is_a_file": Case(_file_as_cache_dir, ("not-a-dir", "not a writable directory")),
    "zero_threads": Case(("threads=0",), ("threads=0", "positive integer")),
    "unknown_logger_mode": Case(("logger=wandb", "logger.mode=nope"), ("'nope'", "offline, online, disabled")),
    # registry.build: an option the component does not take, named with the valid ones
    "unknown_strategy_option": Case(("+strategy.foo=1",), ("strategy.foo", "strategy=evolution", "population")),
    "unknown_space_option": Case(("+search_space.foo=1",), ("search_space.foo", "search_space=gpt2", "word_grads")),
    "unknown_logger_option": Case(("logger=wandb", "+logger.foo=1"), ("logger.foo", "logger=wandb", "project")),
    # typed option schemas (registry.store_schemas): a value of the wrong type stops composition
    "strategy_option_of_wrong_type": Case(("strategy.iterations=abc",), ("'abc'", "Integer", "strategy.iterations")),
    "logger_option_of_wrong_type": Case(("logger=wandb", "logger.project=[a,b]"), ("logger.project",)),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_clean_line(case: Case, tmp_path, data_root, corpus_root):
    ctx = Ctx(tmp_path, data_root, corpus_root)
    run = tmp_path / "run"
    run.mkdir()
    sentinel = run / "result.json"
    sentinel.write_text(SENTINEL)
    before = sorted(p.name for p in run.iterdir())
    args = list(case.args(ctx) if callable(case.args) else case.args)
    server = ctx.env.pop("_server", None)
    # a cache of its own: a case that wrongly proceeds writes nothing shared
    defaults = [*SMALL, f"hydra.run.dir={run}"]
    if not any(a.startswith("cache.dir=") for a in args):
        defaults.append(f"cache.dir={tmp_path / 'stats'}")
    env = {k: v for k, v in ctx.env.items()}
    try:
        result = run_app(*defaults, *args, env=env)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    stderr = result.stderr
    assert result.returncode != 0, f"accepted: {args}\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert result.returncode == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line:\n{stderr}"
    message = lines[0]
    for needle in case.contains:
        assert needle in message, f"{needle!r} missing from: {message}"
    assert sentinel.read_text() == SENTINEL
    # nothing written but Hydra's own job record
    assert sorted(p.name for p in run.iterdir() if p.name not in HYDRA_FILES) == before
    if case.after is not None:
        case.after(ctx)
    # validation happens before the slow part: no architecture was extracted
    extracted = list((tmp_path / "stats").glob("*.safetensors"))
    assert not extracted, f"statistics extracted before the error: {extracted[:3]}"


# ------------------------------------------------------------------ faulty architectures
@pytest.fixture(scope="module")
def gpt2_space(data_root):
    return SEARCH_SPACES.get("gpt2")(
        benchmark=str(data_root / "random_GPT2_wt103"),
        data={"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0},
    )


@pytest.fixture(scope="module")
def small_ids(gpt2_space):
    """The ten smallest architectures (analytic parameter counts): cheap to extract."""
    ids = gpt2_space.arch_ids()
    return sorted(ids, key=lambda a: gpt2_space.param_counts(a)["total"])[:10]


def _faulty_space(space, broken=(), full_batch_broken=()):
    """The real GPT-2 space, with simulated out-of-memory failures."""
    base = type(space)

    class Faulty(base):
        builds: dict[str, int] = {}

        def build_model(self, arch_id, seed=0):
            Faulty.builds[arch_id] = Faulty.builds.get(arch_id, 0) + 1
            if arch_id in broken:
                raise RuntimeError("simulated OOM")
            model = super().build_model(arch_id, seed=seed)
            if arch_id in full_batch_broken:
                forward = model.forward

                def micro_batches_only(*args, **kwargs):
                    ids = kwargs.get("input_ids", args[0] if args else None)
                    if ids is not None and ids.shape[0] == 4:
                        raise RuntimeError("simulated OOM on the full batch")
                    return forward(*args, **kwargs)

                model.forward = micro_batches_only
            return model

    faulty = Faulty.__new__(Faulty)
    faulty.__dict__.update(space.__dict__)
    return faulty


def test_full_batch_failure_is_retried_in_micro_batches(gpt2_space, tmp_path):
    space = _faulty_space(gpt2_space, full_batch_broken=(SMALLEST,))
    store = StatsStore(space, directory=tmp_path, budget=256, dtype="float16")
    with pytest.warns(RuntimeWarning, match="retrying in 2 micro-batches"):
        stats = store.get_many([SMALLEST])
    assert SMALLEST in stats and not store.skipped
    assert type(space).builds[SMALLEST] == 2  # full batch, then one model for two micro-batches
    healthy = StatsStore(gpt2_space, enabled=False, budget=256, dtype="float16").get(SMALLEST)
    assert set(stats[SMALLEST]) == set(healthy)
    for symbol in healthy:  # micro-batches give the same shapes (values differ only by rounding)
        assert [v.x.shape for v in stats[SMALLEST][symbol]] == [v.x.shape for v in healthy[symbol]]
    # W is also sampled where G's tails and G's order statistics are, and G's rounding moves
    # them (a near-tie at 1e-12 decides a tail position, and with it which drawn positions
    # the order statistics skip): W's exact facts match, its spread closely, and nearly every
    # tail slot
    retried, whole = stats[SMALLEST]["W"][0], healthy["W"][0]
    torch.testing.assert_close(retried.mean_of(retried.x), whole.mean_of(whole.x))
    torch.testing.assert_close(retried.x.amax(dim=1), whole.x.amax(dim=1))
    torch.testing.assert_close(retried.x.amin(dim=1), whole.x.amin(dim=1))
    spread = [v.mean_of(v.x.square()) - v.mean_of(v.x).square() for v in (retried, whole)]
    torch.testing.assert_close(*spread, rtol=2e-2, atol=0)
    slots = 3 * tail_size(256) * 2
    same = torch.isclose(retried.x[:, :slots], whole.x[:, :slots], rtol=1.3e-6, atol=1e-5)
    assert same.float().mean() > 0.99, f"only {same.float().mean():.3f} of W's slots agree"


def _store_with_seeded(space, healthy, directory):
    """A store where ``healthy`` archs (but the smallest) are already in memory:
    extraction is slow on CPU and the skip logic does not depend on which healthy
    arch is extracted, so only the smallest is really run."""
    store = StatsStore(space, directory=directory, budget=64, dtype="float16")
    template = StatsStore(space, enabled=False, budget=64, dtype="float16").get(SMALLEST)
    store.memory.update({a: template for a in healthy if a != SMALLEST})
    return store


def test_persistent_failure_is_skipped_with_a_warning(gpt2_space, small_ids, tmp_path):
    ids = small_ids
    assert ids[0] == SMALLEST
    space = _faulty_space(gpt2_space, broken=(ids[3],))
    store = _store_with_seeded(space, [a for a in ids if a != ids[3]], tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = store.get_many(ids)  # 1 of 10 = 10%: still allowed
    messages = [str(w.message) for w in caught]
    assert any("retrying in 2 micro-batches" in m and ids[3] in m for m in messages)
    assert any(m.startswith(f"skipping architecture {ids[3]}") and "simulated OOM" in m for m in messages)
    assert type(space).builds[ids[3]] == 2  # full batch, then the micro-batches (fail again)
    assert list(store.skipped) == [ids[3]] and "simulated OOM" in store.skipped[ids[3]]
    assert sorted(stats) == sorted(set(ids) - {ids[3]})
    assert store.path(SMALLEST).exists() and not store.path(ids[3]).exists()


def test_too_many_failures_stop_the_run(gpt2_space, small_ids, tmp_path):
    ids = small_ids
    broken = (ids[2], ids[5])
    space = _faulty_space(gpt2_space, broken=broken)
    store = _store_with_seeded(space, [a for a in ids if a not in broken], tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(LPZeroError, match=r"2 of 10 architectures failed .*simulated OOM") as info:
            store.get_many(ids)
    assert "\n" not in str(info.value)
    assert set(store.skipped) == set(broken)


# ----------------------------------------------------------------- the six statistic inputs
@pytest.mark.parametrize("arch_id", [SMALLEST, LARGEST])
def test_six_inputs_are_distinct_and_well_formed(gpt2_space, arch_id):
    from lpzero_fw.stats.extract import extract_raw

    raw = extract_raw(gpt2_space, arch_id, gpt2_space.make_batch())
    assert set(raw) == {"A", "G", "H", "J", "S", "W"}
    for symbol, layers in raw.items():
        assert layers and all(t.numel() > 0 for t in layers), f"{symbol} is empty"
        assert all(torch.isfinite(t).all() for t in layers), f"{symbol} has non-finite values"

    n_head = gpt2_space.config(arch_id).n_head
    n_layer = len(raw["H"])
    heads = list(n_head) if isinstance(n_head, (list, tuple)) else [n_head] * n_layer
    assert len(heads) == n_layer and len(raw["S"]) == n_layer
    raw_cfg = gpt2_space.bench.config(arch_id)
    assert heads == list(raw_cfg["n_head"])[:n_layer]  # the benchmark's own per-layer head counts
    batch, tokens = gpt2_space.make_batch()["input_ids"].shape
    for layer, (h, s) in enumerate(zip(raw["H"], raw["S"])):
        assert h.dim() == 4 and h.shape[:3] == (batch, heads[layer], tokens), h.shape
        assert s.dim() == 4 and s.shape == (batch, heads[layer], tokens, tokens), s.shape
        torch.testing.assert_close(s.sum(-1), torch.ones(s.shape[:-1]), atol=1e-4, rtol=0)
    # G is read after backward: a real gradient, not zeros
    assert sum(float(g.abs().sum()) for g in raw["G"]) > 0
    assert all(g.shape == w.shape for g, w in zip(raw["G"], raw["W"]))
    # pairwise distinct (the reference returned activations as H; guard that too)
    symbols = sorted(raw)
    for i, a in enumerate(symbols):
        for b in symbols[i + 1:]:
            same = len(raw[a]) == len(raw[b]) and all(
                x.shape == y.shape and torch.equal(x, y) for x, y in zip(raw[a], raw[b]))
            assert not same, f"{a} and {b} hold the same tensors"
    assert [t.shape for t in raw["A"]] != [t.shape for t in raw["H"]] or not all(
        torch.equal(x, y) for x, y in zip(raw["A"], raw["H"]))
