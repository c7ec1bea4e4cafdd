"""Bring-your-own search space: a benchmark table of transformers causal LMs.

Benchmark: a CSV/JSONL table (:mod:`lpzero_fw.data.table`) with one row per trained
architecture: ``id``, config fields of ``family`` (scalars or per-layer lists) and the
``metric`` column (``higher_is_better`` orients it). ``base`` holds config fields shared
by every row (a row overrides them). Models: :func:`build_causal_lm` offline from
``AutoConfig.for_model(family, ...)`` with eager attention; taps:
:mod:`lpzero_fw.search_spaces.models.hf_taps`. Batches: the data config's GPT-2 BPE
windows of ``seq_len + 1`` tokens (ids ``% vocab_size`` when the vocabulary is smaller);
the model shifts labels itself, so it learns on all ``seq_len`` next-token targets.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from lpzero_fw.data.table import BenchmarkTable
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace, Taps
from lpzero_fw.search_spaces.models.hf_taps import (
    CausalLMLoss,
    build_causal_lm,
    config_keys,
    family_config,
    hf_taps,
)

DEFAULT_DATA = {"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0}
#: columns the builder writes besides config and metric (allowed in every table)
BUILDER_COLUMNS = ("valid_ppl", "valid_loss", "train_loss", "params", "steps", "seconds")


@SEARCH_SPACES.register(
    "hf_causal_lm",
    description="bring your own: a CSV/JSONL table of transformers causal LMs (search_space.family)",
)
class HFCausalLMSpace(SearchSpace):
    """Rows of a benchmark table built as ``family`` causal LMs."""

    #: the transformers model type; None = taken from ``search_space.family``
    family: ClassVar[str | None] = None

    def __init__(
        self,
        benchmark: str,
        family: str | None = None,
        metric: str = "valid_ppl",
        higher_is_better: bool = False,
        base: dict | None = None,
        extra_columns: list[str] | tuple[str, ...] = (),
        data: dict | None = None,
    ) -> None:
        declared = type(self).family
        family = family or declared
        if not family:
            raise LPZeroError("search_space.family is required: a transformers model type such as llama or gpt2")
        if declared and family != declared:
            raise LPZeroError(f"search_space.family={family!r}: the {declared} preset only builds {declared}")
        if not isinstance(higher_is_better, bool):
            raise LPZeroError(f"search_space.higher_is_better={higher_is_better!r} must be true or false")
        self.family_name = family
        self._defaults = None
        self.keys = config_keys(family)
        self.base = dict(base or {})
        for key in self.base:
            if key not in self.keys:
                raise LPZeroError(f"search_space.base.{key}: unknown {family} config key")
        self.metric = metric
        self.metric_name = metric
        self.higher_is_better = higher_is_better
        self.table = BenchmarkTable(
            benchmark,
            metric=metric,
            config_keys=self.keys,
            family=family,
            extra=(*BUILDER_COLUMNS, *extra_columns),
        )
        self.benchmark = str(Path(benchmark))
        self.data = dict(DEFAULT_DATA if data is None else data)
        self._ids = self.table.ids()
        for arch in self._ids:
            self._check_lists(arch)

    # -- benchmark -----------------------------------------------------------------
    def arch_ids(self) -> list[str]:
        return list(self._ids)

    def ground_truth(self, arch_id: str) -> float:
        return self.table.value(arch_id)

    def config(self, arch_id: str) -> dict[str, Any]:
        """The architecture's config fields: ``base`` overridden by its row."""
        return {**self.base, **self.table.config(arch_id)}

    def _check_lists(self, arch_id: str) -> None:
        fields = self.config(arch_id)
        depth = fields.get("num_hidden_layers", fields.get("n_layer"))
        for key, value in fields.items():
            if isinstance(value, list) and depth is not None and len(value) != depth:
                raise LPZeroError(
                    f"{self.table.path.name} id={arch_id}, column {key!r}: {len(value)} per-layer values "
                    f"for {depth} layers"
                )

    def vocab_size(self) -> int:
        """The smallest vocabulary of the benchmark (token ids must fit every model)."""
        default = getattr(self._default_config(), "vocab_size", 50257)
        return min(int(self.config(a).get("vocab_size", default)) for a in self._ids)

    def positions(self) -> int | None:
        """The smallest declared position limit of the benchmark (None: the family has none)."""
        default = getattr(self._default_config(), "max_position_embeddings", None)
        limits = [self.config(a).get("max_position_embeddings", self.config(a).get("n_positions", default))
                  for a in self._ids]
        limits = [int(v) for v in limits if v is not None]
        return min(limits) if limits else None

    def _default_config(self):
        if self._defaults is None:
            self._defaults = family_config(self.family_name)
        return self._defaults

    # -- models --------------------------------------------------------------------
    def build_lm(self, arch_id: str, seed: int = 0) -> nn.Module:
        """The bare transformers causal LM (what the benchmark builder trains)."""
        try:
            return build_causal_lm(self.family_name, self.config(arch_id), seed=seed)
        except LPZeroError as exc:
            raise LPZeroError(f"id={arch_id}: {exc}") from None

    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        model = CausalLMLoss(self.build_lm(arch_id, seed=seed))
        hf_taps(model)
        return model

    def taps(self, model: nn.Module) -> Taps:
        if not hasattr(getattr(model, "lm", model), "config"):
            raise LPZeroError(f"{self.family_name} taps need a transformers model, got {type(model).__name__}")
        return hf_taps(model)

    # -- batches -------------------------------------------------------------------
    def make_batch(self, seed: int = 0) -> Batch:
        from lpzero_fw.data.batches import make_token_ids

        seq_len = self.data.get("seq_len")
        limit = self.positions()
        if isinstance(seq_len, int) and not isinstance(seq_len, bool) and limit and seq_len + 1 > limit:
            raise LPZeroError(
                f"data.seq_len={seq_len}: windows of seq_len + 1 tokens exceed the models' "
                f"max_position_embeddings={limit}; use seq_len <= {limit - 1}"
            )
        data: dict[str, Any] = {**self.data, "seed": int(self.data.get("seed", 0)) + int(seed)}
        ids = make_token_ids(data, vocab_size=self.vocab_size(), tokenizer="gpt2")
        return {"input_ids": ids.contiguous()}

    def describe(self) -> dict:
        data = dict(self.data)
        if data.get("name") == "wikitext2" and not data.get("path"):
            from lpzero_fw.data.batches import default_wikitext2_path

            data["path"] = str(default_wikitext2_path())
        configs = json.dumps({a: self.config(a) for a in self._ids}, sort_keys=True, default=str)
        return {
            "name": "hf_causal_lm",
            "family": self.family_name,
            "configs": hashlib.sha256(configs.encode()).hexdigest()[:16],
            "data": data,
        }
