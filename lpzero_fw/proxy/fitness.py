"""Scoring proxies on cached statistics: rules, early rejection, rank correlation."""
from __future__ import annotations

from collections import Counter

import numpy as np
from scipy import stats
from lpzero_fw.proxy.evaluate import ABSENT_INPUT, Evaluator, InvalidProxy
from lpzero_fw.formula.genotype import Formula
from lpzero_fw.rules.apply import RuleSet


class ProxyScorer:
    """Fitness of proxies on a fixed set of architectures.

    Static rules run first (free), then the proxy is evaluated arch by arch with the
    dynamic rules checked after each one, so an anomalous proxy stops early. The
    fitness is Spearman rho against oriented quality; a proxy whose rho is undefined
    (constant or non-finite scores) is invalid. Results are memoised by formula.
    An architecture lacking an input the proxy reads has no score (``nan``) and is left
    out of that proxy's rules and correlation; see "Absent inputs" in
    :mod:`lpzero_fw.proxy.evaluate`. ``evaluated`` records every architecture id the
    scorer ever computed a proxy on: the held-out guarantee of a search is checked against it.
    """

    def __init__(self, stats: dict, quality: dict[str, float], rules: RuleSet, evaluator: Evaluator | None = None):
        self.stats = stats
        self.quality = quality
        self.rules = rules
        self.evaluator = evaluator or Evaluator()
        self.memo: dict[str, float | None] = {}
        self.rejected: Counter = Counter()
        self.evaluations = 0  # proxy x arch evaluations performed
        self.scored = 0  # distinct proxies scored (not statically rejected)
        self._quality_ranks: dict[tuple, np.ndarray] = {}
        self.evaluated: set[str] = set()

    def scores(self, proxy: Formula, arch_ids: list[str], dynamic: bool = True) -> np.ndarray:
        """Raw proxy scores on ``arch_ids``; raises :class:`InvalidProxy`.

        Dynamic rules look at the scores after the first 3 and 10 archs (early stop)
        and at the end; rejection verdicts equal checking after every arch. Archs
        lacking an input of the proxy get ``nan`` (see :meth:`defined_scores`).
        """
        return self.defined_scores(proxy, arch_ids, dynamic)[0]

    def defined_scores(self, proxy: Formula, arch_ids: list[str], dynamic: bool = True):
        """``(scores, defined)``: :meth:`scores` and the mask of archs that have every input."""
        values = np.empty(len(arch_ids))
        defined = np.ones(len(arch_ids), dtype=bool)
        checkpoints = {3, 10, len(arch_ids)} if dynamic else set()
        for i, arch_id in enumerate(arch_ids):
            self.evaluated.add(arch_id)
            try:
                values[i] = self.evaluator.score(proxy, arch_id, self.stats[arch_id])
            except InvalidProxy as invalid:
                if invalid.rule != ABSENT_INPUT:
                    raise
                values[i], defined[i] = np.nan, False  # no score here; not a verdict
            self.evaluations += 1
            if i + 1 in checkpoints:
                seen = values[: i + 1][defined[: i + 1]]
                rule = self.rules.dynamic_reject(seen) if seen.size else None
                if rule is not None:
                    raise InvalidProxy(rule)
        if 2 * int(defined.sum()) < len(arch_ids):
            raise InvalidProxy(ABSENT_INPUT, f"defined on {int(defined.sum())} of {len(arch_ids)} archs")
        return values, defined

    def _spearman(self, values: np.ndarray, arch_ids: list[str]) -> float:
        """Spearman rho with the quality ranks computed once per arch set."""
        key = tuple(arch_ids)
        ranks = self._quality_ranks.get(key)
        if ranks is None:
            ranks = stats.rankdata([self.quality[a] for a in arch_ids])
            ranks = self._quality_ranks[key] = (ranks - ranks.mean()) / np.linalg.norm(ranks - ranks.mean())
        if not np.all(np.isfinite(values)) or np.ptp(values) == 0:
            return float("nan")
        r = stats.rankdata(values)
        r = r - r.mean()
        return float(np.dot(r, ranks) / np.linalg.norm(r))

    def static_ok(self, proxy: Formula) -> bool:
        """The acceptance filter handed to strategies (counts rejections)."""
        return _static_ok(self.rules, self.rejected, proxy)

    def rho(self, proxy: Formula, arch_ids: list[str]) -> float:
        """Spearman rho of ``proxy`` on the ``arch_ids`` it is defined on (dynamic rules on);
        raises :class:`InvalidProxy`."""
        values, defined = self.defined_scores(proxy, arch_ids)
        if not defined.all():
            values, arch_ids = values[defined], [a for a, d in zip(arch_ids, defined) if d]
        rho = self._spearman(values, arch_ids)
        if not np.isfinite(rho):
            raise InvalidProxy("undefined_correlation")
        return rho

    def fitness(self, proxy: Formula, arch_ids: list[str]) -> float | None:
        key = str(proxy)
        if key in self.memo:
            return self.memo[key]
        self.scored += 1
        try:
            result: float | None = self.rho(proxy, arch_ids)
        except InvalidProxy as invalid:
            self.rejected[invalid.rule] += 1
            result = None
        self.memo[key] = result
        return result


class MultiScorer:
    """One fitness over several benchmarks: ``aggregate`` (min | mean) of their Spearman rho.

    ``parts`` maps a benchmark label to (its :class:`ProxyScorer`, its fitness sample).
    A proxy invalid on any benchmark is invalid; when the reason is an input that
    benchmark lacks (``empty_input``), the rejection is counted as
    ``unavailable_on_benchmark``. Offers the attributes search and checkpoints read.
    """

    AGGREGATES = {"min": min, "mean": lambda values: float(np.mean(values))}

    def __init__(self, parts: dict, rules: RuleSet, aggregate: str = "min") -> None:
        self.parts = parts
        self.rules = rules
        self.aggregate = self.AGGREGATES[aggregate]
        self.memo: dict[str, float | None] = {}
        self.rejected: Counter = Counter()
        self.evaluations = 0
        self.scored = 0

    @property
    def evaluated(self) -> dict[str, set[str]]:
        """Per benchmark label: every architecture id its scorer computed a proxy on."""
        return {label: scorer.evaluated for label, (scorer, _) in self.parts.items()}

    def static_ok(self, proxy: Formula) -> bool:
        return _static_ok(self.rules, self.rejected, proxy)

    def fitness(self, proxy: Formula, arch_ids=None) -> float | None:
        """Aggregate rho (``arch_ids`` is ignored: each benchmark has its own sample)."""
        key = str(proxy)
        if key in self.memo:
            return self.memo[key]
        self.scored += 1
        rhos, result = [], None
        try:
            for scorer, sample in self.parts.values():
                before = scorer.evaluations
                try:
                    rhos.append(scorer.rho(proxy, sample))
                finally:
                    self.evaluations += scorer.evaluations - before
            result = self.aggregate(rhos)
        except InvalidProxy as invalid:
            self.rejected["unavailable_on_benchmark" if invalid.rule == "empty_input" else invalid.rule] += 1
        self.memo[key] = result
        return result


def _static_ok(rules: RuleSet, rejected: Counter, proxy: Formula) -> bool:
    """Whether the static rules accept ``proxy``; a rejection is counted under its rule."""
    rule = rules.static_reject(proxy)
    if rule is not None:
        rejected[rule] += 1
        return False
    return True
