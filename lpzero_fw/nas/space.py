"""The architecture-space contract: which configs a family may take, and how to build them.

A family's :class:`ArchSpace` declares its default ranges on the class (``defaults``);
``nas.space`` overrides any of them per key. A range is a list of choices, a
``{low, high}`` mapping (integers, both ends included) or a single value. A *genome*
is one point: a plain dict, JSON-serialisable, the same keys as the ranges (per-layer
keys hold one value per layer).
"""
from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

from torch import nn

from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import SearchSpace, Taps

Genome = dict[str, Any]


class Range:
    """One key's allowed values: finite choices or an inclusive integer interval."""

    def __init__(self, key: str, spec: Any) -> None:
        self.key = key
        if isinstance(spec, Mapping):
            if set(spec) != {"low", "high"}:
                raise LPZeroError(f"nas.space.{key}={dict(spec)} must be a list of choices or {{low, high}}")
            low, high = spec["low"], spec["high"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) or low > high:
                raise LPZeroError(f"nas.space.{key}: low={low!r} and high={high!r} must be integers with low <= high")
            self.low, self.high, self.choices = int(low), int(high), None
        else:
            values = list(spec) if isinstance(spec, (list, tuple)) else [spec]
            if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise LPZeroError(f"nas.space.{key}={spec!r} must be integers (a list of choices or {{low, high}})")
            self.choices = sorted(set(int(v) for v in values))
            self.low, self.high = self.choices[0], self.choices[-1]

    def sample(self, rng: random.Random) -> int:
        return rng.choice(self.choices) if self.choices is not None else rng.randint(self.low, self.high)

    def values(self) -> list[int]:
        """Every allowed value (intervals: both ends, for extreme-point checks)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def positive(self) -> None:
        if self.low < 1:
            raise LPZeroError(f"nas.space.{self.key} values must be positive, got {self.low}")

    def spec(self) -> Any:
        return list(self.choices) if self.choices is not None else {"low": self.low, "high": self.high}


class ArchSpace(ABC):
    """Architectures of one family (``family`` = its ``search_space`` name).

    It wraps the family's benchmark :class:`SearchSpace` for the input batch, the
    taps and the fixed settings (vocabulary, embedding clusters) every candidate shares.
    """

    family: ClassVar[str]
    #: the default range of every key (overridable per key with ``nas.space``)
    defaults: ClassVar[dict[str, Any]]
    #: keys whose genome value is a list with one entry per layer
    per_layer: ClassVar[tuple[str, ...]] = ()
    #: proxy used when ``proxy=`` is not given
    default_proxy: ClassVar[str] = ""
    #: file name of the chosen config (what the family's builder loads)
    config_file: ClassVar[str] = "chosen_config.yaml"

    def __init__(self, base: SearchSpace, ranges: Mapping[str, Any] | None = None) -> None:
        ranges = dict(ranges or {})
        unknown = sorted(set(ranges) - set(self.defaults))
        if unknown:
            raise LPZeroError(
                f"unknown nas.space key {unknown[0]!r} for {self.family}; choose from: {', '.join(self.defaults)}"
            )
        self.base = base
        self.ranges = {key: Range(key, ranges.get(key, default)) for key, default in self.defaults.items()}
        self.check()

    # -- what a family implements ------------------------------------------------------
    def check(self) -> None:
        """Reject range combinations that cannot build a model (default: positive values)."""
        for r in self.ranges.values():
            r.positive()

    @abstractmethod
    def sample(self, rng: random.Random) -> Genome:
        """A uniformly drawn genome."""

    @abstractmethod
    def mutate(self, genome: Genome, rng: random.Random) -> Genome:
        """A copy of ``genome`` with one gene redrawn (never the input itself)."""

    @abstractmethod
    def model_config(self, genome: Genome) -> dict:
        """The complete config the family's builder loads (written as :attr:`config_file`)."""

    @abstractmethod
    def param_counts(self, genome: Genome) -> dict[str, int]:
        """``total`` and ``nonembedding`` parameters, without building the model."""

    @abstractmethod
    def build(self, genome: Genome, seed: int = 0) -> nn.Module:
        """A freshly initialised model; ``model(**batch)`` returns the training loss."""

    @abstractmethod
    def smallest(self) -> Genome:
        """A genome with the fewest parameters the ranges allow (for unsatisfiable budgets)."""

    @abstractmethod
    def write_config(self, genome: Genome, path) -> None:
        """Write :meth:`model_config` in the builder's format."""

    def freeze_unread(self, model: nn.Module) -> nn.Module:
        """Stop gradients no statistic reads (default: none). Statistics read gradients of
        ``taps.linears`` and of each block's input only; freezing, e.g., vocabulary-sized
        embedding tables skips their gradients and leaves every statistic bit-identical."""
        return model

    # -- shared ----------------------------------------------------------------------
    def taps(self, model: nn.Module) -> Taps:
        return self.base.taps(model)

    def make_batch(self, seed: int = 0):
        return self.base.make_batch(seed=seed)

    @staticmethod
    def key(genome: Genome) -> str:
        """Canonical id of a genome (statistics-cache key, de-duplication)."""
        return json.dumps(genome, sort_keys=True, separators=(",", ":"))

    def describe(self) -> dict:
        return {key: r.spec() for key, r in self.ranges.items()}
