"""Wall-clock timing: the best of repeated calls, and the exact NC1 timed against the dense route.

:func:`best_time` is the one timing helper of the measuring chapter and the benchmarks;
:func:`nc1_timings` times :func:`ncutils.metrics.nc1` (no ``D x D`` matrix) against the
reference :func:`ncutils.synthetic.dense_nc1` on the same features for growing ``D``, and
:func:`route_comparison` sets the two side by side.

Example
-------
>>> seconds, value = best_time(lambda: 1 + 1, repeats=3)
>>> value, seconds >= 0
(2, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pandas as pd
import torch

from ncutils import metrics
from ncutils.synthetic import dense_nc1, gaussian_classes

__all__ = ["DENSE", "EXACT", "best_time", "nc1_timings", "route_comparison"]

T = TypeVar("T")

#: The route names of :func:`nc1_timings` (its ``method`` column).
EXACT = "exact (ncutils)"
DENSE = "dense pinv"


def best_time(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    """The shortest wall time of ``repeats`` calls of ``function``, and the last call's value.

    The minimum, not the mean: it is the least disturbed by other work on the machine.
    ``function`` must return a host value (a float, not a device tensor) so that each call
    ends when the device has finished.

    Parameters
    ----------
    function : callable
        Called with no argument.
    repeats : int
        At least 1.

    Returns
    -------
    (float, object)
        Seconds, and what the last call returned.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seconds, value = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, value  # type: ignore[return-value]


def nc1_timings(dims: Sequence[int], *, num_classes: int, samples: int, repeats: int, dense_max_dim: int,
                generator: torch.Generator, label_values: torch.Tensor | None = None,
                device: str | torch.device = "cpu", warmup_dim: int = 32,
                progress: bool = False) -> pd.DataFrame:
    """Time the exact NC1 and the dense reference on the same features, for each dimension.

    First a warm-up call of each route on a small mixture (the first calls pay one-off
    costs); then, for each ``D`` in ``dims``, a non-collapsed mixture
    (:func:`ncutils.synthetic.gaussian_classes`, float32, drawn from ``generator`` in that
    order) on ``device``, and :func:`best_time` of each route: :func:`ncutils.metrics.nc1`
    always, :func:`ncutils.synthetic.dense_nc1` only where ``D <= dense_max_dim``.

    Parameters
    ----------
    dims : sequence of int
    num_classes, samples, repeats, dense_max_dim : int
    generator : torch.Generator
    label_values : torch.Tensor, optional
        The label of each class (default ``0 .. C-1``).
    device : str or torch.device
    warmup_dim : int, default 32
    progress : bool
        A tqdm bar over the dimensions.

    Returns
    -------
    DataFrame
        One row per (``dim``, ``method`` in {:data:`EXACT`, :data:`DENSE`}): ``seconds``,
        ``nc1`` and ``largest matrix (MB)`` (float64 ``D x C`` for the exact route,
        ``D x D`` for the dense one).
    """
    from tqdm.auto import tqdm

    def mixture(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        features, labels = gaussian_classes(num_classes, size, samples, generator, label_values=label_values)
        return features.to(device), labels.to(device)

    warm_features, warm_labels = mixture(warmup_dim)
    metrics.nc1(warm_features, warm_labels), dense_nc1(warm_features, warm_labels)
    rows: list[dict[str, Any]] = []
    for size in tqdm(dims, desc="dimensions", disable=not progress):
        features, labels = mixture(size)
        routes: dict[str, Callable[[], float]] = {EXACT: lambda: metrics.nc1(features, labels)}
        if size <= dense_max_dim:
            routes[DENSE] = lambda: dense_nc1(features, labels)
        for method, function in routes.items():
            seconds, value = best_time(function, repeats)
            largest_matrix = 8 * size * (num_classes if method == EXACT else size)
            rows.append({"dim": size, "method": method, "seconds": seconds, "nc1": value,
                         "largest matrix (MB)": largest_matrix / 2**20})
        del features  # the next, larger mixture should not sit beside this one
    return pd.DataFrame(rows)


def route_comparison(timings: pd.DataFrame) -> pd.DataFrame:
    """The two routes of :func:`nc1_timings` side by side, at every ``dim`` where both ran.

    Returns
    -------
    DataFrame
        Indexed by ``dim``: ``exact NC1``, ``dense NC1``, ``relative difference`` (over the
        dense value) and ``speedup (dense / exact time)``.

    Example
    -------
    >>> timings = pd.DataFrame({"dim": [4, 4, 8], "method": [EXACT, DENSE, EXACT],
    ...                         "seconds": [1.0, 3.0, 1.0], "nc1": [2.0, 2.0, 1.0]})
    >>> route_comparison(timings)["speedup (dense / exact time)"].tolist()
    [3.0]
    """
    both = timings.pivot(index="dim", columns="method", values=["seconds", "nc1"]).dropna()
    return pd.DataFrame({
        "exact NC1": both[("nc1", EXACT)],
        "dense NC1": both[("nc1", DENSE)],
        "relative difference": (both[("nc1", EXACT)] - both[("nc1", DENSE)]).abs() / both[("nc1", DENSE)].abs(),
        "speedup (dense / exact time)": both[("seconds", DENSE)] / both[("seconds", EXACT)],
    })
