"""Dynamic pruning rules: reject a proxy while it is being scored.

A dynamic rule sees the numpy array of the proxy's scores computed so far (one per
architecture, in scoring order) and is asked again after every architecture, so an
anomalous proxy stops after a few evaluations instead of all of them.

``non_finite_score``  a score is nan or ±inf (overflow, log of 0, inf - inf, ...).
``constant_scores``   at least ``MIN_SCORES`` (3) scores and all equal: the largest
                      difference is at most ``RTOL`` (1e-6) times the largest
                      magnitude (all exactly 0 counts as equal). The proxy cannot
                      rank architectures; stopping after 3 equal scores is a
                      heuristic (a proxy whose first three scores tie is dropped).
``huge_magnitude``    a score above ``MAX_MAGNITUDE`` (1e30) in absolute value: such
                      proxies sit at the edge of float32 overflow, so on other
                      architectures they turn into inf and produce ties.
"""
from __future__ import annotations

import math

import numpy as np

from lpzero_fw.registry import RULES
from lpzero_fw.rules.base import PruningRule

MIN_SCORES = 3
RTOL = 1e-6
MAX_MAGNITUDE = 1e30


def _array(scores) -> np.ndarray:
    if isinstance(scores, np.ndarray) and scores.dtype == np.float64 and scores.ndim == 1:
        return scores
    return np.asarray(scores, dtype=np.float64).reshape(-1)


@RULES.register("non_finite_score", description="a score is nan or infinite")
class NonFiniteScore(PruningRule):
    """Some architecture's score is nan or ±inf."""

    stage = "dynamic"
    example = [0.5, float("nan")]
    near_miss = [0.5, 1e20]

    def rejects(self, scores) -> bool:
        return not bool(np.isfinite(_array(scores)).all())


@RULES.register("constant_scores", description=f"the first {MIN_SCORES}+ scores are all equal (rtol {RTOL})")
class ConstantScores(PruningRule):
    """At least 3 scores so far, all equal up to a relative tolerance of 1e-6."""

    stage = "dynamic"
    example = [2.0, 2.0, 2.0]
    near_miss = [2.0, 2.0, 2.001]

    def rejects(self, scores) -> bool:
        values = _array(scores)
        if values.size < MIN_SCORES:
            return False
        lo, hi = float(values.min()), float(values.max())  # nan propagates
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return False
        return hi - lo <= RTOL * max(abs(lo), abs(hi))


@RULES.register("huge_magnitude", description=f"a score exceeds {MAX_MAGNITUDE:g} in absolute value")
class HugeMagnitude(PruningRule):
    """|score| > 1e30 (near float32 overflow)."""

    stage = "dynamic"
    example = [1.0, -3e31]
    near_miss = [1.0, -3e29]

    def rejects(self, scores) -> bool:
        values = _array(scores)
        if values.size == 0:
            return False
        largest = float(np.abs(values).max())
        if math.isfinite(largest):
            return largest > MAX_MAGNITUDE
        finite = values[np.isfinite(values)]  # rare: nan/inf present
        return bool(finite.size) and float(np.abs(finite).max()) > MAX_MAGNITUDE
