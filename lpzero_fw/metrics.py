"""Rank correlations, always oriented: positive = agrees with trained quality."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def spearman(scores, quality) -> float:
    """Spearman rho of proxy scores vs oriented quality (NaN when undefined)."""
    scores, quality = np.asarray(scores, float), np.asarray(quality, float)
    if len(scores) < 2 or np.ptp(scores) == 0 or not np.all(np.isfinite(scores)):
        return math.nan
    return float(stats.spearmanr(scores, quality).statistic)


def kendall(scores, quality) -> float:
    """Kendall tau-b of proxy scores vs oriented quality (NaN when undefined)."""
    scores, quality = np.asarray(scores, float), np.asarray(quality, float)
    if len(scores) < 2 or np.ptp(scores) == 0 or not np.all(np.isfinite(scores)):
        return math.nan
    return float(stats.kendalltau(scores, quality).statistic)


def correlations(scores, quality) -> dict:
    """The contract's correlation record: kendall_tau, spearman_rho, n_archs."""
    return {
        "kendall_tau": kendall(scores, quality),
        "spearman_rho": spearman(scores, quality),
        "n_archs": int(len(scores)),
    }
