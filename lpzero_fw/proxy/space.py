"""The proxy search space and its genetic operators.

A proxy's genes, in order: left input, the left branch's ``n_unary`` ops (innermost
first), right input, the right branch's ops, the binary op. Sampling is uniform over
each gene independently, so every proxy of the space is equally likely; all draws
come from the ``random.Random`` passed in, so a seed fixes the whole search.
"""
from __future__ import annotations

import random
from typing import Iterable

from lpzero_fw.formula.genotype import Branch, Formula
from lpzero_fw.registry import BINARY_OPS, CORE_ORIGIN, LAYER_REDUCTIONS, STATS, UNARY_OPS, LPZeroError, Registry


def _choices(values: Iterable[str] | str | None, registry: Registry, key: str,
             op_set: str | None = None) -> tuple[str, ...]:
    """Names chosen for ``search.<key>``: ``None``/``"core"`` = the built-in components,
    ``"all"`` = every registered one (installed plugins' included), else a list. With an
    operator set (``search.ops``, see ``ops/reference.py``) core/all keep that set's ops."""
    if values is None or values == "core" or values == "all":
        names = tuple(registry.names()) if values == "all" else tuple(
            e.name for e in registry.entries() if e.origin == CORE_ORIGIN)
        if op_set is None:
            return names
        from lpzero_fw.ops.reference import op_names

        in_set = set(op_names(registry, op_set))
        return tuple(n for n in names if n in in_set)
    if isinstance(values, str):
        values = (values,)
    chosen = tuple(dict.fromkeys(values))  # de-duplicated, order kept
    if not chosen:
        raise LPZeroError(f"search.{key} is empty; choose from: {', '.join(registry.names())} (or core / all)")
    for name in chosen:
        if name not in registry:
            raise LPZeroError(f"search.{key}: {registry.unknown_message(name)}")
    return chosen


class FormulaSpace:
    """All proxies ``binary(u_n(...u_1(X)), v_n(...v_1(Y)))`` over the given choices.

    ``inputs``: statistic symbols; ``unary`` / ``binary``: operator names. Each may be
    a list, ``"core"`` (the built-in components; ``None`` means the same) or ``"all"``
    (plugins' components too), so an installed plugin never changes a default search:
    its components join when named. For operators, core/all mean those of the operator
    set ``ops`` (``lpzero_fw`` or ``reference``, see ``ops/reference.py``).
    ``n_unary``: ops per branch (>= 1).
    """

    def __init__(
        self,
        inputs: Iterable[str] | str | None = ("A", "J", "G", "H", "W", "S"),
        unary: Iterable[str] | str | None = None,
        binary: Iterable[str] | str | None = None,
        n_unary: int = 2,
        layers: Iterable[str] = ("mean",),
        ops: str = "lpzero_fw",
    ) -> None:
        if isinstance(n_unary, bool) or not isinstance(n_unary, int) or n_unary < 1:
            raise LPZeroError(f"search.n_unary={n_unary!r} must be an integer >= 1")
        self.layers = tuple(layers)
        bad = [r for r in self.layers if r not in LAYER_REDUCTIONS] or ([] if self.layers else ["(empty)"])
        if bad:
            raise LPZeroError(
                f"search.layers={list(self.layers)} has {bad[0]!r}; choose from: {', '.join(LAYER_REDUCTIONS.names())}"
            )
        self.inputs = _choices(inputs, STATS, "inputs")
        self.ops = ops
        self.unary = _choices(unary, UNARY_OPS, "unary", ops)
        self.binary = _choices(binary, BINARY_OPS, "binary", ops)
        self.n_unary = n_unary

    def __repr__(self) -> str:
        return (
            f"FormulaSpace(inputs={self.inputs}, unary={len(self.unary)} ops, "
            f"binary={self.binary}, n_unary={self.n_unary})"
        )

    def describe(self) -> dict:
        """The components this space draws from, each with its origin (``core`` or the
        plugin's distribution and version), for result.json and the config digest."""
        def origins(names: tuple[str, ...], registry: Registry) -> dict[str, str]:
            return {name: registry.entry(name).origin for name in names}

        return {
            "inputs": origins(self.inputs, STATS),
            "unary": origins(self.unary, UNARY_OPS),
            "binary": origins(self.binary, BINARY_OPS),
            "n_unary": self.n_unary,
            "layers": list(self.layers),
        }

    def size(self) -> int:
        """Number of distinct proxies (genotypes) in the space."""
        branches = len(self.inputs) * len(self.unary) ** self.n_unary
        return branches * branches * len(self.binary) * len(self.layers)

    def __contains__(self, proxy: object) -> bool:
        if not isinstance(proxy, Formula) or proxy.binary not in self.binary or proxy.layers not in self.layers:
            return False
        return all(
            b.input in self.inputs and len(b.ops) == self.n_unary and all(o in self.unary for o in b.ops)
            for b in (proxy.left, proxy.right)
        )

    # -- genetic operators ----------------------------------------------------------
    def _branch(self, rng: random.Random) -> Branch:
        symbol = rng.choice(self.inputs)
        return Branch(symbol, tuple(rng.choice(self.unary) for _ in range(self.n_unary)))

    def sample(self, rng: random.Random) -> Formula:
        """A uniformly random proxy."""
        left = self._branch(rng)
        right = self._branch(rng)
        binary = rng.choice(self.binary)
        return Formula(left, right, binary, self._layers(rng))

    def _layers(self, rng: random.Random) -> str:
        # a single choice draws nothing, so mean-only spaces keep the paper's RNG stream
        return self.layers[0] if len(self.layers) == 1 else rng.choice(self.layers)

    def _mutate_branch(self, branch: Branch, rng: random.Random, prob: float) -> Branch:
        symbol = rng.choice(self.inputs) if rng.random() < prob else branch.input
        ops = tuple(rng.choice(self.unary) if rng.random() < prob else op for op in branch.ops)
        return Branch(symbol, ops)

    def mutate(self, proxy: Formula, rng: random.Random, prob: float) -> Formula:
        """Re-sample each gene independently with probability ``prob``."""
        if not 0 <= prob <= 1:
            raise LPZeroError(f"mutation probability {prob} must lie in [0, 1]")
        left = self._mutate_branch(proxy.left, rng, prob)
        right = self._mutate_branch(proxy.right, rng, prob)
        binary = rng.choice(self.binary) if rng.random() < prob else proxy.binary
        layers = proxy.layers
        if len(self.layers) > 1 and rng.random() < prob:
            layers = self._layers(rng)
        return Formula(left, right, binary, layers)

    @staticmethod
    def _cross_branch(a: Branch, b: Branch, rng: random.Random) -> Branch:
        symbol = a.input if rng.random() < 0.5 else b.input
        if len(a.ops) != len(b.ops):  # different lengths: inherit one parent's whole chain
            return Branch(symbol, a.ops if rng.random() < 0.5 else b.ops)
        return Branch(symbol, tuple(x if rng.random() < 0.5 else y for x, y in zip(a.ops, b.ops)))

    def crossover(self, a: Formula, b: Formula, rng: random.Random) -> Formula:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 0.5."""
        left = self._cross_branch(a.left, b.left, rng)
        right = self._cross_branch(a.right, b.right, rng)
        binary = a.binary if rng.random() < 0.5 else b.binary
        layers = a.layers
        if a.layers != b.layers:
            layers = a.layers if rng.random() < 0.5 else b.layers
        return Formula(left, right, binary, layers)
