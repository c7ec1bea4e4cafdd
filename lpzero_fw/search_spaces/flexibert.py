"""FlexiBERT search space: 500 heterogeneous ELECTRA-style encoders scored on GLUE.

Benchmark: ``data/BERT_benchmark.json`` (the LPZero authors' copy of the FlexiBERT /
NAS-Bench-BERT results), a list of entries with ``id``, ``scores.glue`` (higher is better)
and the architecture in ``hparams.model_hparam_overrides`` (``hidden_size``,
``nas_config.encoder_layers``). Architecture ids are ``"flexibert_<id>"``; lookups also
accept the bare ``"<id>"``.

Models: :mod:`lpzero_fw.search_spaces.models.flexibert` (see its docstring for the
layers, the masked-token loss and the taps). ``reference_quirks=True`` builds every
model with the reference's fixed sizes (hidden 256, intermediate 1024).

Batches: ``make_token_ids`` gives (batch, seq_len + 1) token ids (text data: WordPiece,
see :mod:`lpzero_fw.data.batches`); the last column is
dropped, then a seeded ``mask_prob`` fraction of positions is replaced by ``[MASK]``
(id 103 in the BERT/ELECTRA uncased vocabulary) and becomes the ``labels`` (-100
elsewhere). With ``objective="hidden_sum"`` the labels are still built but unused.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lpzero_fw.data.lts import require_family
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace, Taps
from lpzero_fw.search_spaces.models.flexibert import (
    MAX_POSITIONS,
    OBJECTIVES,
    VOCAB_SIZE,
    FlexiBertArch,
    FlexiBertModel,
    build_flexibert,
    count_parameters,
    flexibert_taps,
    parse_arch,
)

BENCHMARK_FILE = "data/BERT_benchmark.json"
ARCH_PREFIX = "flexibert_"
MASK_TOKEN_ID = 103
IGNORE_INDEX = -100
DEFAULT_DATA = {"name": "synthetic", "batch_size": 16, "seq_len": 128, "seed": 0}


def load_benchmark(path: str | Path) -> list[tuple[int, float, FlexiBertArch]]:
    """(id, GLUE score, arch) per entry of a ``BERT_benchmark.json``; errors are LPZeroError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LPZeroError(f"flexibert benchmark file {str(path)!r} does not exist")
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LPZeroError(f"flexibert benchmark file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise LPZeroError(
            f"flexibert benchmark file {str(path)!r} must hold a non-empty JSON list of entries"
        )
    out: list[tuple[int, float, FlexiBertArch]] = []
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        where = f"{path.name} entry {index}"
        if not isinstance(entry, dict):
            raise LPZeroError(f"{where}: expected a mapping, got {type(entry).__name__}")
        arch_id = entry.get("id", index)
        if isinstance(arch_id, bool) or not isinstance(arch_id, int) or arch_id in seen:
            raise LPZeroError(f"{where}: id {arch_id!r} is not a unique integer")
        seen.add(arch_id)
        scores = entry.get("scores")
        glue = scores.get("glue") if isinstance(scores, dict) else None
        if isinstance(glue, bool) or not isinstance(glue, (int, float)):
            raise LPZeroError(f"{where}: scores.glue must be a number, got {glue!r}")
        out.append((arch_id, float(glue), parse_arch(entry, where)))
    return out


@SEARCH_SPACES.register(
    "flexibert",
    description="FlexiBERT: 500 heterogeneous ELECTRA-style encoders (SA/LT/DSC layers), GLUE score",
)
class FlexiBERTSpace(SearchSpace):
    """FlexiBERT / NAS-Bench-BERT (500 archs, ``scores.glue``, higher is better)."""

    higher_is_better = True
    metric_name = "glue"
    family = "flexibert"
    #: text batches are tokenised like the models' vocabulary (uncased WordPiece, [MASK] = 103)
    tokenizer = "wordpiece"

    def __init__(
        self,
        benchmark: str | None = None,
        data: dict | None = None,
        reference_quirks: bool = False,
        objective: str = "mlm",
        mask_prob: float = 0.15,
    ) -> None:
        if benchmark is None:
            from lpzero_fw.data.locate import resolve_root

            benchmark = str(resolve_root(folders=("data",)) / BENCHMARK_FILE)
        if objective not in OBJECTIVES:
            raise LPZeroError(
                f"flexibert objective {objective!r} is unknown; choose one of: {', '.join(OBJECTIVES)}"
            )
        if not 0.0 < float(mask_prob) <= 1.0:
            raise LPZeroError(f"flexibert mask_prob must be in (0, 1], got {mask_prob!r}")
        self.benchmark = str(benchmark)
        self.data = dict(DEFAULT_DATA if data is None else data)
        seq_len = self.data.get("seq_len")
        if seq_len is not None and (not isinstance(seq_len, int) or not 1 <= seq_len <= MAX_POSITIONS):
            raise LPZeroError(
                f"data.seq_len={seq_len!r} is invalid for flexibert; "
                f"use 1..{MAX_POSITIONS} (position table size)"
            )
        self.reference_quirks = bool(reference_quirks)
        self.objective = objective
        self.mask_prob = float(mask_prob)
        if Path(self.benchmark).expanduser().is_dir():  # an LTS folder: name its search space
            require_family(self.benchmark, self.family)
        records = load_benchmark(self.benchmark)
        self._ids = [f"{ARCH_PREFIX}{i}" for i, _, _ in records]
        self._glue = {f"{ARCH_PREFIX}{i}": g for i, g, _ in records}
        self._archs = {f"{ARCH_PREFIX}{i}": a for i, _, a in records}

    # -- benchmark -----------------------------------------------------------------
    def _key(self, arch_id: Any) -> str:
        key = str(arch_id)
        if not key.startswith(ARCH_PREFIX):
            key = ARCH_PREFIX + key
        if key not in self._archs:
            raise LPZeroError(
                f"unknown flexibert arch {arch_id!r}; valid ids are {self._ids[0]} … {self._ids[-1]} "
                f"({len(self._ids)} archs)"
            )
        return key

    def arch_ids(self) -> list[str]:
        return list(self._ids)

    def ground_truth(self, arch_id: str) -> float:
        return self._glue[self._key(arch_id)]

    def arch(self, arch_id: str) -> FlexiBertArch:
        """The parsed architecture as the benchmark describes it (sizes not yet quirked)."""
        return self._archs[self._key(arch_id)]

    # -- models --------------------------------------------------------------------
    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        return build_flexibert(
            self.arch(arch_id),
            seed=seed,
            reference_quirks=self.reference_quirks,
            objective=self.objective,
        )

    def param_counts(self, arch_id: str) -> dict[str, int]:
        """Analytic counts; ``total`` is what the reference CSV's ``Number of Parameters`` counted."""
        return count_parameters(self.arch(arch_id), self.reference_quirks)

    def taps(self, model: nn.Module) -> Taps:
        if not isinstance(model, FlexiBertModel):
            raise LPZeroError(
                f"flexibert taps need a model built by FlexiBERTSpace, got {type(model).__name__}"
            )
        return flexibert_taps(model)

    # -- batches -------------------------------------------------------------------
    def make_batch(self, seed: int = 0) -> Batch:
        from lpzero_fw.data.batches import make_token_ids

        effective_seed = int(self.data.get("seed", 0)) + int(seed)
        data = {**self.data, "seed": effective_seed}
        kwargs: dict[str, Any] = {"vocab_size": VOCAB_SIZE, "tokenizer": self.tokenizer}
        if "seed" in inspect.signature(make_token_ids).parameters:
            kwargs["seed"] = effective_seed
        ids = torch.as_tensor(make_token_ids(data, **kwargs), dtype=torch.long)
        if ids.dim() != 2 or ids.shape[1] < 2:
            raise LPZeroError(
                f"flexibert needs (batch, seq_len + 1) token ids, got shape {tuple(ids.shape)}"
            )
        ids = ids[:, :-1].contiguous()
        if int(ids.min()) < 0 or int(ids.max()) >= VOCAB_SIZE:
            raise LPZeroError(
                f"flexibert token ids must lie in [0, {VOCAB_SIZE}), "
                f"got {int(ids.min())}..{int(ids.max())}"
            )
        return self.mask_tokens(ids, effective_seed)

    def loss_weights(self, parts: list[Batch]) -> list[float]:
        """``mlm``: a mean over the masked positions, so each piece weighs its share of
        them; ``hidden_sum``: a sum, so every piece weighs 1."""
        if self.objective == "hidden_sum":
            return [1.0] * len(parts)
        counts = [int((part["labels"] != IGNORE_INDEX).sum()) for part in parts]
        return [count / sum(counts) for count in counts]

    def mask_tokens(self, ids: torch.Tensor, seed: int) -> Batch:
        """Replace a seeded ``mask_prob`` fraction of positions by [MASK]; labels = originals."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        mask = torch.rand(ids.shape, generator=gen) < self.mask_prob
        if not bool(mask.any()):
            mask.view(-1)[0] = True
        labels = torch.where(mask, ids, torch.full_like(ids, IGNORE_INDEX))
        input_ids = torch.where(mask, torch.full_like(ids, MASK_TOKEN_ID), ids)
        return {"input_ids": input_ids, "labels": labels}

    def describe(self) -> dict:
        return {
            "name": "flexibert",
            "reference_quirks": self.reference_quirks,
            "objective": self.objective,
            "mask_prob": self.mask_prob,
            "mask_token_id": MASK_TOKEN_ID,
            "tokenizer": self.tokenizer,
            "data": dict(self.data),
        }
