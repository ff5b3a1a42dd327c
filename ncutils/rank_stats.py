"""Rank statistics the papers' criteria share: Spearman's correlation, NaN where it is undefined.

Several papers' pre-registered criteria test a monotone trend (collapse over depth, over
epochs, against difficulty) with a rank correlation; each paper module imports it from
here, in the core floor, never from another paper's module.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

__all__ = ["spearman"]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of two sequences, NaN when it is undefined.

    A constant sequence (or fewer than 3 finite pairs) has no rank correlation; this returns
    NaN silently instead of SciPy's warning, and every criterion below treats NaN as *not
    passed*.

    Parameters
    ----------
    x, y : sequences of float
        Same length. Pairs where either value is not finite are dropped.

    Returns
    -------
    float
        ``scipy.stats.spearmanr(x, y).statistic`` (ties get average ranks), or NaN.

    Example
    -------
    >>> spearman([1, 2, 3], [30, 20, 10])
    -1.0
    """
    x_arr = np.asarray(x, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64)
    if x_arr.shape != y_arr.shape or x_arr.ndim != 1:
        raise ValueError(f"x and y must be 1-d of equal length, got shapes {x_arr.shape} and {y_arr.shape}")
    finite = np.isfinite(x_arr) & np.isfinite(y_arr)
    x_arr, y_arr = x_arr[finite], y_arr[finite]
    if x_arr.size < 3 or np.ptp(x_arr) == 0 or np.ptp(y_arr) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(scipy_stats.spearmanr(x_arr, y_arr).statistic)
