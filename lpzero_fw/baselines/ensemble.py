"""Rank-average ensembles: the cheap control a searched proxy has to beat.

``ensemble(a, b, ...)`` ranks architectures by the mean of its members' ranks (each
member oriented first, so a higher rank always predicts a better model). It needs the
scores of a whole set of architectures, so it is a combination of per-arch proxies,
not a per-arch :class:`~lpzero_fw.baselines.base.BaselineProxy`. ``best2_ensemble``
picks its two members by Kendall τ on the *search pool* only; it is then evaluated on
whatever pool the caller asks for (the held-out one for out-of-sample figures).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from lpzero_fw import metrics
from lpzero_fw.registry import LPZeroError

PREFIX = "ensemble("
BEST2 = "best2_ensemble"


def split_members(spec: str) -> list[str]:
    """``"ensemble(a, f(x, y))"`` -> ``["a", "f(x, y)"]`` (commas inside brackets kept)."""
    text = spec.strip()
    if not (text.startswith(PREFIX) and text.endswith(")")):
        raise LPZeroError(f"ensemble spec {spec!r} must read ensemble(<proxy>, <proxy>, ...)")
    body, members, depth, current = text[len(PREFIX):-1], [], 0, ""
    for char in body:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            members.append(current.strip())
            current = ""
        else:
            current += char
    members.append(current.strip())
    members = [m for m in members if m]
    if len(members) < 2:
        raise LPZeroError(f"ensemble spec {spec!r} needs at least two members, e.g. ensemble(snip, synflow)")
    return members


def rank_mean(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Mean rank over oriented member columns; NaN for an arch any member could not score."""
    columns = [np.asarray(c, float) for c in columns]
    bad = np.zeros(len(columns[0]), bool)
    for column in columns:
        bad |= ~np.isfinite(column)
    out = np.full(len(columns[0]), np.nan)
    if (~bad).sum() == 0:
        return out
    out[~bad] = np.mean([stats.rankdata(c[~bad]) for c in columns], axis=0)
    return out


def pick_best(oriented: Mapping[str, np.ndarray], quality: np.ndarray, pool: np.ndarray, k: int = 2) -> list[str]:
    """The ``k`` candidates with the highest Kendall τ on the rows ``pool`` (boolean mask).

    Ties break by name so the choice is deterministic; undefined τ counts as lowest.
    """
    def tau(name: str) -> float:
        value = metrics.kendall(oriented[name][pool], quality[pool])
        return -math.inf if math.isnan(value) else value

    ranked = sorted(oriented, key=lambda n: (-tau(n), n))
    if len(ranked) < k:
        raise LPZeroError(f"{BEST2} needs at least {k} single baselines; got {ranked}")
    return ranked[:k]
