"""One proxy score per model, through the search's own path: build → statistics → formula.

:class:`CandidateSpace` presents an architecture space's genomes as a
:class:`~lpzero_fw.search_spaces.base.SearchSpace` whose ids are canonical genome keys,
so a :class:`~lpzero_fw.stats.cache.StatsStore` extracts candidates exactly as it extracts
benchmark architectures, and :class:`ProxyScore` evaluates formulas with
:func:`~lpzero_fw.proxy.evaluate.evaluate` (baselines with their own runner).
"""
from __future__ import annotations

import math

from torch import nn

from lpzero_fw.nas.space import ArchSpace, Genome
from lpzero_fw.registry import BASELINES, LPZeroError
from lpzero_fw.search_spaces.base import Batch, SearchSpace, Taps


class CandidateSpace(SearchSpace):
    """Genomes of an :class:`ArchSpace` as architecture ids (no trained metric)."""

    def __init__(self, arch: ArchSpace, freeze_unread: bool = False) -> None:
        self.arch = arch
        self.freeze_unread = freeze_unread  # only for formula proxies: baselines may read any gradient
        self.genomes: dict[str, Genome] = {}

    def add(self, genome: Genome) -> str:
        key = self.arch.key(genome)
        self.genomes.setdefault(key, genome)
        return key

    def arch_ids(self) -> list[str]:
        return list(self.genomes)

    def ground_truth(self, arch_id: str) -> float:
        raise LPZeroError("NAS candidates have no trained metric; use nas.candidates=benchmark to grade picks")

    def build_model(self, arch_id: str, seed: int = 0) -> nn.Module:
        model = self.arch.build(self.genomes[arch_id], seed=seed)
        return self.arch.freeze_unread(model) if self.freeze_unread else model

    def make_batch(self, seed: int = 0) -> Batch:
        return self.arch.make_batch(seed=seed)

    def taps(self, model: nn.Module) -> Taps:
        return self.arch.taps(model)

    def param_counts(self, arch_id: str) -> dict[str, int]:
        return self.arch.param_counts(self.genomes[arch_id])

    def describe(self) -> dict:
        return {"name": f"nas-{self.arch.family}", "base": self.arch.base.describe()}


def resolve_proxy(spec) -> tuple[str, str]:
    """``("formula", text)`` or ``("baseline", name)`` for ``proxy=<formula | name>``."""
    from lpzero_fw.baselines.reference import NAMED_FORMULAS
    from lpzero_fw.formula.parse import parse

    if not isinstance(spec, str) or not spec.strip():
        raise LPZeroError(f"proxy={spec!r} must be one formula or name")
    spec = spec.strip()
    if spec in NAMED_FORMULAS:
        return "formula", NAMED_FORMULAS[spec]
    if spec in BASELINES:
        return "baseline", spec
    if "(" in spec:
        return "formula", str(parse(spec))
    choices = ", ".join([*BASELINES.names(), *NAMED_FORMULAS])
    raise LPZeroError(f"unknown proxy {spec!r}; give a formula or one of: {choices}")


def proxy_inputs(spec) -> tuple[str, ...] | None:
    """The statistic inputs a formula reads (``None`` for a baseline: it needs its own pass)."""
    kind, name = resolve_proxy(spec)
    if kind != "formula":
        return None
    from lpzero_fw.formula.parse import parse

    proxy = parse(name)
    return tuple(sorted({proxy.left.input, proxy.right.input}))


class ProxyScore:
    """Scores architecture ids of ``space`` with one proxy, oriented: higher = predicted better.

    Formulas read the statistics of ``store`` (which extracts with ``store.space``);
    baselines run their own pass on ``store.batch``. An architecture the proxy cannot
    score gets ``nan``.
    """

    def __init__(self, spec, store) -> None:
        self.kind, self.name = resolve_proxy(spec)
        self.store = store
        if self.kind == "formula":
            from lpzero_fw.formula.parse import parse

            self.proxy = parse(self.name)
            self.sign = 1.0
        else:
            self.sign = 1.0 if BASELINES.get(self.name).higher_is_better else -1.0

    def __call__(self, arch_id: str) -> float:
        from lpzero_fw.proxy.evaluate import InvalidProxy, evaluate

        if self.kind == "formula":
            try:
                return float(evaluate(self.proxy, self.store.get(arch_id)))
            except InvalidProxy:
                return math.nan
        from lpzero_fw.baselines.runner import score_baselines

        value = score_baselines(self.store.space, arch_id, self.store.batch, [self.name])[self.name]
        return self.sign * float(value)
