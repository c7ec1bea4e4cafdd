"""Transformer-XL search space: the LTS benchmark of trained NVIDIA memory transformers.

Benchmark: an LTS folder (default ``random_TransXL_wt103``: 200 architectures trained on
WikiText-103 with a 267,736-word vocabulary and adaptive softmax), read by
:class:`lpzero_fw.data.lts.LTSBenchmark`, which refuses a folder of another model family.
Ground truth: ``valid_ppl`` (lower is better).
Models: :mod:`lpzero_fw.search_spaces.models.mem_transformer` (relative-position attention,
per-layer heads and FFN widths, adaptive input / softmax; its docstring lists layers,
parameter counts and taps).
Speed: the word tables hold up to 137M of a model's 158M parameters; with
``word_grads=False`` (default) they get no gradient. No statistic or baseline reads it (G
is over ``taps.linears``), every other gradient is the same, and the backward pass takes
about half the time (tests/test_transformer_xl_space.py checks the statistics are equal).
The word tables depend only on the seed and the vocabulary geometry (9 combinations in
the benchmark): they are drawn once per space and copied (up to 1.4 GB kept).
Batches: :func:`lpzero_fw.data.batches.make_token_ids`, inputs ``ids[:, :-1]`` and labels
``ids[:, 1:]``. ``data=synthetic`` draws Zipf-distributed ids over the whole vocabulary,
which fits its frequency order (id 0 = most frequent word). Text data is GPT-2 BPE
(ids < 50,257): the WikiText-103 word vocabulary is not shipped, so those ids are valid
but do not name the same words the models were trained on.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from lpzero_fw.data.lts import LTSBenchmark
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace, Taps
from lpzero_fw.search_spaces.models.mem_transformer import (
    TransformerXLConfig,
    TransformerXLModel,
    analytic_param_counts,
    build_transformer_xl,
    txl_taps,
)

DEFAULT_FOLDER = "random_TransXL_wt103"
DEFAULT_DATA = {"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0}


@SEARCH_SPACES.register(
    "transformer_xl",
    description="Transformer-XL (LTS): 200 adaptive-softmax memory transformers trained on WikiText-103, valid perplexity",
)
class TransformerXLSpace(SearchSpace):
    """LTS Transformer-XL benchmark (``valid_ppl``, lower is better)."""

    higher_is_better = False
    metric_name = "valid_ppl"
    family = "transformer_xl"

    def __init__(self, benchmark: str | None = None, data: dict | None = None, word_grads: bool = False) -> None:
        if not isinstance(word_grads, bool):
            raise LPZeroError(f"search_space.word_grads={word_grads!r} must be true or false")
        self.word_grads = word_grads
        if benchmark is None:
            from lpzero_fw.data.locate import resolve_root

            benchmark = str(resolve_root(folders=(DEFAULT_FOLDER,)) / DEFAULT_FOLDER)
        self.bench = LTSBenchmark(benchmark, family=self.family)
        self.benchmark = str(self.bench.folder)
        self.data = dict(DEFAULT_DATA if data is None else data)
        self._cfgs: dict[str, TransformerXLConfig] = {}
        self._tables: dict = {}  # word tables per (seed, vocabulary geometry): see build_transformer_xl
        self._ids = self.bench.arch_ids()

    # -- benchmark -----------------------------------------------------------------
    def arch_ids(self) -> list[str]:
        return list(self._ids)

    def ground_truth(self, arch_id: str) -> float:
        return self.bench.valid_ppl(arch_id)

    def config(self, arch_id: str) -> TransformerXLConfig:
        """The parsed model config (cached)."""
        cfg = self._cfgs.get(arch_id)
        if cfg is None:
            where = f"{self.bench.name}/{arch_id} model_config.yaml"
            cfg = TransformerXLConfig.from_dict(self.bench.config(arch_id), where=where)
            self._cfgs[arch_id] = cfg
        return cfg

    def segment_length(self) -> int:
        """The shortest ``tgt_len`` of the benchmark: the longest sequence scored in one segment."""
        return min(self.config(a).tgt_len for a in self._ids)

    def vocab_size(self) -> int:
        """The smallest ``n_token`` of the benchmark (token ids must fit every model)."""
        return min(self.config(a).n_token for a in self._ids)

    # -- models --------------------------------------------------------------------
    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        return build_transformer_xl(self.config(arch_id), seed=seed, word_grads=self.word_grads, table_cache=self._tables)

    def param_counts(self, arch_id: str) -> dict[str, int]:
        """Analytic counts (no model allocated): ``params_summary.yaml``'s keys plus the
        training script's ``n_all_param`` / ``n_nonemb_param``."""
        return analytic_param_counts(self.config(arch_id))

    def taps(self, model: nn.Module) -> Taps:
        if not isinstance(model, TransformerXLModel):
            raise LPZeroError(f"transformer_xl taps need a model built by TransformerXLSpace, got {type(model).__name__}")
        return txl_taps(model)

    # -- batches -------------------------------------------------------------------
    def make_batch(self, seed: int = 0) -> Batch:
        from lpzero_fw.data.batches import make_token_ids

        seq_len = self.data.get("seq_len")
        limit = self.segment_length()
        if isinstance(seq_len, int) and not isinstance(seq_len, bool) and seq_len > limit:
            raise LPZeroError(
                f"data.seq_len={seq_len} exceeds the models' {limit}-token segments (tgt_len); use seq_len <= {limit}"
            )
        data: dict[str, Any] = {**self.data, "seed": int(self.data.get("seed", 0)) + int(seed)}
        ids = make_token_ids(data, vocab_size=self.vocab_size(), tokenizer="gpt2")
        return {"input_ids": ids[:, :-1].contiguous(), "labels": ids[:, 1:].contiguous()}

    def describe(self) -> dict:
        data = dict(self.data)
        if data.get("name") == "wikitext2" and not data.get("path"):
            from lpzero_fw.data.batches import default_wikitext2_path

            data["path"] = str(default_wikitext2_path())
        return {"name": "transformer_xl", "benchmark": self.bench.name, "data": data}
