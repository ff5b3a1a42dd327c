"""Rangamani et al. (2023): R1 and R2 as pure functions of layer-sweep tables, with their nulls' helpers."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncutils import verdicts
from ncutils.rank_stats import spearman

__all__ = ["alignment_exclusions", "consumer_input_dims", "depth_trend", "nc_layer", "r1_depth_run", "r1_run", "r2_run", "random_subspace_alignment", "training_drop", "verdict"]

# --------------------------------------------------------------------------- helpers
def consumer_input_dims(model: nn.Module) -> dict[str, int]:
    """Probe point name -> the dimension of the space the alignment lives in: ``in_features``
    of a Linear consumer, ``in_channels`` of a Conv2d consumer (the official reshape)."""
    modules = dict(model.named_modules())
    dims = {}
    for point in model.probe_points:
        if point.consumer is None:
            continue
        layer = modules[point.consumer]
        dims[point.name] = int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)
    return dims


@functools.lru_cache(maxsize=256)
def random_subspace_alignment(n: int, k: int, *, draws: int = 2000, seed: int = 0) -> float:
    """Expected mean cosine of the principal angles between two independent uniformly
    random k-dimensional subspaces of R^n (Monte Carlo, ``draws`` pairs, fixed seed).

    This is also the expected alignment of a Gaussian random matrix of any shape with
    ``n`` inputs against fixed class means: its top-k singular subspace in R^n is uniformly
    distributed (rotation invariance), so the value depends only on (n, k). 1 when k >= n.
    Memoised: the chapter asks for the same (n, k) for every run and null (seconds each at
    n = 2,048).

    Examples
    --------
    >>> round(random_subspace_alignment(32, 10, draws=500), 2)
    0.49
    """
    if k < 1 or n < 1:
        raise ValueError(f"n and k must be >= 1, got n={n}, k={k}")
    if k >= n:
        return 1.0
    generator = torch.Generator().manual_seed(seed)
    first = torch.linalg.qr(torch.randn(draws, n, k, generator=generator, dtype=torch.float64))[0]
    second = torch.linalg.qr(torch.randn(draws, n, k, generator=generator, dtype=torch.float64))[0]
    cosines = torch.linalg.svdvals(first.transpose(1, 2) @ second).clamp(max=1.0)
    return float(cosines.mean())


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; it has {list(frame.columns)}")


def _ordered(sweep: pd.DataFrame) -> pd.DataFrame:
    if "epoch" in sweep.columns and sweep["epoch"].nunique() > 1:
        raise ValueError("pass one epoch of one run (several epochs found)")
    return sweep.sort_values("layer").reset_index(drop=True)


def nc_layer(sweep: pd.DataFrame, *, threshold: float = 0.2) -> str | None:
    """The official "NC layer": the first probe point with CDNV below ``threshold``
    (``get_nc_layer``), or None."""
    _require(sweep, ["layer", "name", "cdnv"], "nc_layer")
    rows = _ordered(sweep)
    below = rows.loc[rows["cdnv"] < threshold, "name"]
    return None if below.empty else str(below.iloc[0])


# --------------------------------------------------------------------------- R1
def depth_trend(last: pd.DataFrame, *, metric: str = "relative_within_trace",
                max_spearman: float = -0.7) -> dict[str, Any]:
    """Spearman(layer, log ``metric``) over every probe point (input to penultimate) of
    one run's last-epoch sweep; passes when at most ``max_spearman``."""
    _require(last, ["layer", metric], "depth_trend")
    rows = _ordered(last)
    values = rows[metric].to_numpy(dtype=float)
    if len(values) < 3 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        return {"spearman": math.nan, "passed": False}
    rho = spearman(rows["layer"].to_numpy(dtype=float), np.log(values))
    return {"spearman": rho, "passed": bool(rho <= max_spearman)}


def training_drop(initial: pd.DataFrame, last: pd.DataFrame, *, metric: str = "relative_within_trace",
                  min_factor: float = 10.0) -> dict[str, Any]:
    """At the last hidden layer (the last probe point), ``metric`` at epoch 0 over its value
    at the last epoch; passes when at least ``min_factor``."""
    _require(initial, ["layer", metric], "training_drop")
    _require(last, ["layer", metric], "training_drop")
    before = float(_ordered(initial)[metric].iloc[-1])
    after = float(_ordered(last)[metric].iloc[-1])
    factor = before / after if after > 0 else math.inf
    return {"initial": before, "final": after, "factor": factor,
            "passed": bool(math.isfinite(before) and factor >= min_factor)}


def r1_run(initial: pd.DataFrame, last: pd.DataFrame, *, metric: str = "relative_within_trace",
           max_spearman: float = -0.7, min_factor: float = 10.0) -> dict[str, Any]:
    """R1 for one run: :func:`depth_trend` at the last epoch and :func:`training_drop`."""
    trend = depth_trend(last, metric=metric, max_spearman=max_spearman)
    drop = training_drop(initial, last, metric=metric, min_factor=min_factor)
    return {"spearman": trend["spearman"], "initial": drop["initial"], "final": drop["final"],
            "factor": drop["factor"], "depth_passed": trend["passed"], "drop_passed": drop["passed"],
            "passed": bool(trend["passed"] and drop["passed"])}


def r1_depth_run(initial: pd.DataFrame, last: pd.DataFrame, *, metric: str = "relative_within_trace",
                 max_spearman: float = -0.7) -> dict[str, Any]:
    """R1 as amended on 2026-12-06, for one run: the depth trend of the trained network.

    Passes when :func:`depth_trend` passes at the last epoch and fails on the same network at
    initialisation (epoch 0): a trend the untrained network already shows is not one training
    made. The fall over training at the last hidden layer (:func:`training_drop`) is returned
    beside, not judged.

    Returns
    -------
    dict
        ``spearman`` (last epoch), ``untrained_spearman`` (epoch 0), ``trained_passed``,
        ``untrained_passed``, ``factor`` (the fall at the last hidden layer), ``passed``.
    """
    trained = depth_trend(last, metric=metric, max_spearman=max_spearman)
    untrained = depth_trend(initial, metric=metric, max_spearman=max_spearman)
    drop = training_drop(initial, last, metric=metric)
    return {"spearman": trained["spearman"], "untrained_spearman": untrained["spearman"],
            "trained_passed": trained["passed"], "untrained_passed": untrained["passed"],
            "factor": drop["factor"], "passed": bool(trained["passed"] and not untrained["passed"])}


# --------------------------------------------------------------------------- R2
def alignment_exclusions(dims: Mapping[str, int], k: int, *, max_random: float = 0.5,
                         draws: int = 2000) -> pd.DataFrame:
    """Per probe point with a consumer: its dimension ``n``, the random-subspace expected
    alignment at ``k`` and why it is left out of R2 (``"trivial: n <= k"``, ``"random
    baseline > max_random"``: a random matrix would already align that well) or ``""`` when it
    counts."""
    rows = []
    for name, n in dims.items():
        baseline = random_subspace_alignment(n, k, draws=draws)
        reason = ("trivial: n <= k" if n <= k else
                  f"random baseline {baseline:.2f} > {max_random:g}" if baseline > max_random else "")
        rows.append({"name": name, "n": n, "random": baseline, "excluded": reason})
    return pd.DataFrame(rows, columns=["name", "n", "random", "excluded"])


def r2_run(initial: pd.DataFrame, last: pd.DataFrame, dims: Mapping[str, int], *, k: int,
           top_threshold: float = 0.2, min_alignment: float = 0.9, min_margin: float = 0.2,
           max_random: float = 0.5, draws: int = 2000, stationarity: pd.DataFrame | None = None,
           max_stationarity: float = 0.1) -> dict[str, Any]:
    """R2 for one run at rank ``k`` (the sweeps' ``alignment`` column must be at that rank).

    Top layers: probe points whose ``relative_within_trace`` at the last epoch is below
    ``top_threshold``. Each top layer that counts (:func:`alignment_exclusions`) must have an
    alignment of at least ``min_alignment`` that exceeds both its value at epoch 0 and the
    random-matrix expectation by at least ``min_margin``. A run with no counted top layer is
    not evaluable (``passed`` None).

    With ``stationarity`` (:func:`ncutils.train.stationarity` at the last epoch, ``name`` the
    probe point whose consumer it judges), the amendment of 2026-12-06: a counted layer whose
    loss is scale-invariant (a BatchNorm follows it, so no stationary point with weight decay
    exists) is left out with that reason; each remaining one must be stationary (``ratio`` at
    most ``max_stationarity``) or the run is not evaluable (``passed`` None, ``status`` "not
    converged"): the alignment argument holds at a stationary point of training with weight
    decay. Without it (``None``), the criterion as first registered.

    Returns
    -------
    dict
        ``layers`` (a table of the top layers, with ``stationarity`` and ``scale_invariant``
        where given), ``counted``, ``excluded`` (names with reasons), ``min_alignment``,
        ``min_margin_init``, ``min_margin_random``, ``max_stationarity`` (largest ratio over
        the counted layers), ``status`` ("pass", "fail", "not converged" or "no counted layer")
        and ``passed``.
    """
    for frame in (initial, last):
        _require(frame, ["layer", "name", "alignment", "relative_within_trace"], "r2_run")
    first, final = _ordered(initial), _ordered(last)
    exclusions = alignment_exclusions(dims, k, max_random=max_random, draws=draws).set_index("name")
    init_alignment = dict(zip(first["name"], first["alignment"]))
    gate = None if stationarity is None else stationarity.set_index("name")
    rows = []
    for row in final.itertuples():
        if not row.relative_within_trace < top_threshold or row.name not in exclusions.index:
            continue
        info = exclusions.loc[row.name]
        reason = info["excluded"] or ("" if math.isfinite(row.alignment) else "alignment not defined")
        ratio, invariant = math.nan, False
        if gate is not None:
            if row.name not in gate.index:
                raise ValueError(f"stationarity has no row for the top layer {row.name!r}")
            ratio, invariant = float(gate.loc[row.name, "ratio"]), bool(gate.loc[row.name, "scale_invariant"])
            if not reason and invariant:
                reason = "scale-invariant: a BatchNorm follows, no stationary point with weight decay"
        rows.append({"name": row.name, "relative_within_trace": row.relative_within_trace,
                     "n": int(info["n"]), "alignment": row.alignment,
                     "alignment_init": init_alignment.get(row.name, math.nan),
                     "random": float(info["random"]), "stationarity": ratio, "scale_invariant": invariant,
                     "excluded": reason})
    layers = pd.DataFrame(rows, columns=["name", "relative_within_trace", "n", "alignment", "alignment_init",
                                         "random", "stationarity", "scale_invariant", "excluded"])
    counted = layers[layers["excluded"] == ""].copy()
    counted["passed"] = ((counted["alignment"] >= min_alignment)
                         & (counted["alignment"] - counted["alignment_init"] >= min_margin)
                         & (counted["alignment"] - counted["random"] >= min_margin))
    excluded = [f"{r.name} ({r.excluded})" for r in layers.itertuples() if r.excluded]
    if counted.empty:
        return {"layers": layers, "counted": [], "excluded": excluded, "min_alignment": math.nan,
                "min_margin_init": math.nan, "min_margin_random": math.nan, "max_stationarity": math.nan,
                "status": "no counted layer", "passed": None}
    largest = float(counted["stationarity"].max()) if gate is not None else math.nan
    converged = gate is None or bool((counted["stationarity"] <= max_stationarity).all())
    passed = bool(counted["passed"].all())
    return {
        "layers": layers, "counted": list(counted["name"]), "excluded": excluded,
        "min_alignment": float(counted["alignment"].min()),
        "min_margin_init": float((counted["alignment"] - counted["alignment_init"]).min()),
        "min_margin_random": float((counted["alignment"] - counted["random"]).min()),
        "max_stationarity": largest,
        "status": ("pass" if passed else "fail") if converged else "not converged",
        "passed": passed if converged else None,
    }


def verdict(passed: Sequence[bool | None], *, reason_none: str = "no run could be evaluated") -> verdicts.Outcome:
    """The runs combined, over the evaluable ones (``None`` entries are left out): reproduced at
    >= 2/3 of at least 2 runs, not reproduced at <= 1/3, inconclusive otherwise."""
    evaluable = [bool(flag) for flag in passed if flag is not None]
    if not evaluable:
        return verdicts.inconclusive(reason_none, passed_runs=0, eligible_runs=0)
    return verdicts.combine_runs(evaluable)
