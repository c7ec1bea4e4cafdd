"""GPT-2 search space: the Lite Transformer Search (LTS) benchmark of trained GPT-2 variants.

Benchmark: an LTS folder (default ``random_GPT2_wt103``: 200 architectures trained on
WikiText-103), read by :class:`lpzero_fw.data.lts.LTSBenchmark`; any folder in the same
layout (e.g. ``random_GPT2_lm1b``) works. Ground truth: ``valid_ppl`` (lower is better).
Models: :mod:`lpzero_fw.search_spaces.models.gpt2_lts` (adaptive input / softmax GPT-2,
per-layer heads and FFN widths; docstring lists the layers, counts and taps).
Batches: :func:`lpzero_fw.data.batches.make_token_ids`, inputs ``ids[:, :-1]`` and labels
``ids[:, 1:]``; ``make_batch(seed)`` uses ``data.seed + seed``.
Speed (as Transformer-XL): with ``word_grads=False`` (default) the word tables get no
gradient (no statistic or baseline reads it); the tables are drawn once per seed and
vocabulary geometry (9 in the benchmark) and copied. Together: -11 % extraction CPU on
the 40 smallest-id archs at the default batch (28.6 -> 25.5 s).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from lpzero_fw.data.lts import LTSBenchmark
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace, Taps
from lpzero_fw.search_spaces.models.gpt2_lts import (
    GPT2LTSConfig,
    GPT2LTSModel,
    analytic_param_counts,
    build_gpt2_lts,
    gpt2_taps,
)

DEFAULT_FOLDER = "random_GPT2_wt103"
DEFAULT_DATA = {"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0}


@SEARCH_SPACES.register(
    "gpt2",
    description="GPT-2 (LTS): 200 adaptive-softmax GPT-2 variants trained on WikiText-103, valid perplexity",
)
class GPT2Space(SearchSpace):
    """LTS GPT-2 benchmark (``valid_ppl``, lower is better)."""

    higher_is_better = False
    metric_name = "valid_ppl"
    family = "gpt2"

    def __init__(
        self,
        benchmark: str | None = None,
        data: dict | None = None,
        max_positions: int | None = None,
        word_grads: bool = False,
    ) -> None:
        if not isinstance(word_grads, bool):
            raise LPZeroError(f"search_space.word_grads={word_grads!r} must be true or false")
        self.word_grads = word_grads
        self._tables: dict = {}  # word tables per (seed, vocabulary geometry): see build_gpt2_lts
        if benchmark is None:
            from lpzero_fw.data.locate import resolve_root

            benchmark = str(resolve_root(folders=(DEFAULT_FOLDER,)) / DEFAULT_FOLDER)
        if max_positions is not None and (
            isinstance(max_positions, bool) or not isinstance(max_positions, int) or max_positions < 1
        ):
            raise LPZeroError(f"search_space.max_positions={max_positions!r} must be a positive integer or null")
        self.bench = LTSBenchmark(benchmark, family=self.family)
        self.benchmark = str(self.bench.folder)
        self.data = dict(DEFAULT_DATA if data is None else data)
        self.max_positions = max_positions
        self._cfgs: dict[str, GPT2LTSConfig] = {}
        self._ids = self.bench.arch_ids()

    # -- benchmark -----------------------------------------------------------------
    def arch_ids(self) -> list[str]:
        return list(self._ids)

    def ground_truth(self, arch_id: str) -> float:
        return self.bench.valid_ppl(arch_id)

    def config(self, arch_id: str) -> GPT2LTSConfig:
        """The parsed model config (cached), with ``max_positions`` applied."""
        cfg = self._cfgs.get(arch_id)
        if cfg is None:
            raw = self.bench.config(arch_id)
            where = f"{self.bench.name}/{arch_id} model_config.yaml"
            cfg = GPT2LTSConfig.from_dict(raw, n_positions=self.max_positions, where=where)
            self._cfgs[arch_id] = cfg
        return cfg

    def positions(self) -> int:
        """Position-table size of the models (``max_positions``, else the smallest tgt_len)."""
        return min(self.config(a).n_positions for a in self._ids)

    def vocab_size(self) -> int:
        """The smallest ``n_token`` of the benchmark (token ids must fit every model)."""
        return min(self.config(a).n_token for a in self._ids)

    # -- models --------------------------------------------------------------------
    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        return build_gpt2_lts(self.config(arch_id), seed=seed, word_grads=self.word_grads, table_cache=self._tables)

    def param_counts(self, arch_id: str) -> dict[str, int]:
        """Analytic counts (no model allocated); equal ``params_summary.yaml`` at default positions."""
        return analytic_param_counts(self.config(arch_id))

    def taps(self, model: nn.Module) -> Taps:
        if not isinstance(model, GPT2LTSModel):
            raise LPZeroError(f"gpt2 taps need a model built by GPT2Space, got {type(model).__name__}")
        return gpt2_taps(model)

    # -- batches -------------------------------------------------------------------
    def make_batch(self, seed: int = 0) -> Batch:
        from lpzero_fw.data.batches import make_token_ids

        seq_len = self.data.get("seq_len")
        limit = self.positions()
        if isinstance(seq_len, int) and not isinstance(seq_len, bool) and seq_len > limit:
            raise LPZeroError(
                f"data.seq_len={seq_len} exceeds the models' {limit} positions; "
                f"use seq_len <= {limit} or set search_space.max_positions"
            )
        data: dict[str, Any] = {**self.data, "seed": int(self.data.get("seed", 0)) + int(seed)}
        ids = make_token_ids(data, vocab_size=self.vocab_size(), tokenizer="gpt2")
        return {"input_ids": ids[:, :-1].contiguous(), "labels": ids[:, 1:].contiguous()}

    def describe(self) -> dict:
        data = dict(self.data)
        if data.get("name") == "wikitext2" and not data.get("path"):
            from lpzero_fw.data.batches import default_wikitext2_path

            data["path"] = str(default_wikitext2_path())
        return {
            "name": "gpt2",
            "benchmark": self.bench.name,
            "max_positions": self.max_positions,
            "data": data,
        }
