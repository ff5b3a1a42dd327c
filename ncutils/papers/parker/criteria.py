"""The criteria of the Parker et al. (2023) chapters P1-P4 as first pre-registered (2026-11-22).

Pure functions of sweep tables. A review (2026-12-01) found that two of them cannot fail
(see :mod:`ncutils.papers.parker.amended`); they stay here unchanged, because each chapter
shows the original criterion and its result beside the amended one.

Each function turns layer-sweep tables (the DataFrames of :func:`ncutils.sweep.layer_sweep`,
one row per probe point, ``depth`` 0 = input and 1 = penultimate features) into the numbers a
chapter's verdict rests on, plus pass/fail against thresholds that are *arguments*: the
chapter writes its thresholds in the prose, then passes the same values here. Nothing in this
module knows a threshold a chapter did not give it, and nothing is tuned to a result.

Vocabulary used throughout:

- *hidden layers*: every probe point except the input (``depth > 0``), in depth order; the
  last hidden layer is the penultimate representation (``depth == 1``).
- *run*: one (architecture, dataset) pair, identified by the columns ``group_cols``.
- criteria are evaluated at the last swept epoch of a run unless a function says otherwise.

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden Layers of
Classification Neural Networks", arXiv:2308.02760.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

# shared by several papers' criteria: it lives in the core floor
from ncutils.rank_stats import spearman

__all__ = [
    "GROUP_COLS",
    "simplex_angle",
    "spearman",
    "last_epoch",
    "hidden_layers",
    "eligible_runs",
    "depth_collapse",
    "variance_half_drop",
    "log_drop_fractions",
    "angle_growth",
    "depth_needed",
    "difficulty_ordering",
    "per_run",
    "overall_verdict",
]

GROUP_COLS: tuple[str, ...] = ("architecture", "dataset")


# ----------------------------------------------------------------------------- small helpers
def simplex_angle(num_classes: int) -> float:
    """Angle in degrees between any two vertices of a centred regular simplex of C points.

    Parameters
    ----------
    num_classes : int
        Number of classes C (at least 2).

    Returns
    -------
    float
        ``degrees(arccos(-1 / (C - 1)))``: 180 for C = 2, about 96.38 for C = 10.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS: the simplex equiangular tight frame (NC2).

    Example
    -------
    >>> round(simplex_angle(3), 6)
    120.0
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return math.degrees(math.acos(-1.0 / (int(num_classes) - 1)))


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{what} is empty")


def last_epoch(sweeps: pd.DataFrame, *, group_cols: Sequence[str] = GROUP_COLS,
               epoch_col: str = "epoch") -> pd.DataFrame:
    """Keep, for each run, only the rows of its last swept epoch.

    Parameters
    ----------
    sweeps : DataFrame
        Layer sweeps of one or more runs with an ``epoch_col`` column.
    group_cols : sequence of str
        Columns identifying a run; columns absent from ``sweeps`` are ignored.
    epoch_col : str
        Name of the epoch column.

    Returns
    -------
    DataFrame
        The rows of ``sweeps`` whose epoch is the largest of their run, index reset.

    Example
    -------
    >>> df = pd.DataFrame({"epoch": [1, 1, 2, 2], "depth": [0, 1, 0, 1]})
    >>> last_epoch(df)["epoch"].tolist()
    [2, 2]
    """
    _require_columns(sweeps, [epoch_col], "sweeps")
    keys = [c for c in group_cols if c in sweeps.columns]
    if keys:
        latest = sweeps.groupby(keys, dropna=False)[epoch_col].transform("max")
    else:
        latest = sweeps[epoch_col].max()
    return sweeps[sweeps[epoch_col] == latest].reset_index(drop=True)


def hidden_layers(sweep: pd.DataFrame, *, min_layers: int = 3) -> pd.DataFrame:
    """Rows of one run's sweep at one epoch that are hidden layers, in depth order.

    Parameters
    ----------
    sweep : DataFrame
        One layer sweep (one run, one epoch) with a ``depth`` column (0 = input).
    min_layers : int
        Fewest hidden layers a depth trend can be computed from.

    Returns
    -------
    DataFrame
        Rows with ``depth > 0`` sorted by depth.

    Raises
    ------
    ValueError
        When depths repeat (several epochs or runs mixed together) or when fewer than
        ``min_layers`` hidden layers are present.
    """
    _require_columns(sweep, ["depth"], "sweep")
    if sweep["depth"].duplicated().any():
        raise ValueError("sweep has repeated depths: pass one run at one epoch (see last_epoch)")
    hidden = sweep[sweep["depth"] > 0].sort_values("depth")
    if len(hidden) < min_layers:
        raise ValueError(f"sweep has {len(hidden)} hidden layers; at least {min_layers} are needed")
    return hidden


def _input_row(sweep: pd.DataFrame) -> pd.Series:
    inputs = sweep[sweep["depth"] == 0]
    if len(inputs) != 1:
        raise ValueError(f"sweep must hold exactly one input row (depth == 0), found {len(inputs)}")
    return inputs.iloc[0]


def _positive(values: pd.Series, column: str) -> np.ndarray:
    array = values.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"column {column!r} must be finite and positive to take its log, got {array}")
    return array


# ----------------------------------------------------------------------------- eligibility
def eligible_runs(history: pd.DataFrame, *, min_train_acc: float = 0.99,
                  group_cols: Sequence[str] = GROUP_COLS,
                  epoch_col: str = "epoch") -> pd.DataFrame:
    """Final train/test accuracy of each run and whether it entered the criteria.

    Parameters
    ----------
    history : DataFrame
        Training histories with columns ``group_cols``, ``epoch_col``, ``train_acc`` and
        ``test_acc`` (fractions in [0, 1]).
    min_train_acc : float
        A run whose train accuracy at its last epoch is below this is excluded from every
        criterion (Parker's findings are about networks trained to (near) zero error).
    group_cols, epoch_col : as in :func:`last_epoch`.

    Returns
    -------
    DataFrame
        One row per run: ``group_cols``, ``epoch``, ``train_acc``, ``test_acc``,
        ``difficulty`` (1 - test accuracy) and the bool ``eligible``.
    """
    if not 0.0 < min_train_acc <= 1.0:
        raise ValueError(f"min_train_acc must lie in (0, 1], got {min_train_acc}")
    _require_columns(history, [*group_cols, epoch_col, "train_acc", "test_acc"], "history")
    final = last_epoch(history, group_cols=group_cols, epoch_col=epoch_col)
    final = final.drop_duplicates(subset=list(group_cols), keep="last")
    table = final[[*group_cols, epoch_col, "train_acc", "test_acc"]].copy()
    table["difficulty"] = 1.0 - table["test_acc"].astype(np.float64)
    table["eligible"] = table["train_acc"].astype(np.float64) >= min_train_acc
    return table.reset_index(drop=True)


# ----------------------------------------------------------------------------- P1
def depth_collapse(sweep: pd.DataFrame, *, max_spearman: float = -0.7,
                   min_reduction: float = 10.0, metric: str = "nc1") -> dict[str, Any]:
    """P1: does NC1 decrease with depth across the hidden layers?

    Criterion (pre-registered in chapter P1): over the hidden layers of one run,
    ``Spearman(depth, log NC1) <= max_spearman`` and
    ``NC1(first hidden) / NC1(last hidden) >= min_reduction``.

    Parameters
    ----------
    sweep : DataFrame
        One run at one epoch (``depth`` and ``metric`` columns).
    max_spearman : float
        Largest admissible rank correlation (the chapter uses -0.7).
    min_reduction : float
        Smallest admissible first-to-last ratio (the chapter uses 10).
    metric : str
        Column holding NC1 (Papyan's tr(Sigma_W Sigma_B^+)/C; the ratio and the rank
        correlation do not depend on the /C that Parker's code omits).

    Returns
    -------
    dict
        ``spearman``, ``first_hidden``, ``last_hidden``, ``reduction`` (first / last),
        ``n_hidden``, ``passed_spearman``, ``passed_reduction``, ``passed``.

    References
    ----------
    Parker et al. (2023), finding "NC emerges in most hidden layers and grows with depth".

    Example
    -------
    >>> sweep = pd.DataFrame({"depth": [0, .25, .5, .75, 1], "nc1": [9, 8, 4, 1, .5]})
    >>> depth_collapse(sweep)["passed"]
    True
    """
    _require_columns(sweep, ["depth", metric], "sweep")
    hidden = hidden_layers(sweep)
    values = _positive(hidden[metric], metric)
    rho = spearman(hidden["depth"], np.log(values))
    reduction = float(values[0] / values[-1])
    passed_spearman = bool(np.isfinite(rho) and rho <= max_spearman)
    passed_reduction = bool(reduction >= min_reduction)
    return {
        "spearman": rho,
        "first_hidden": float(values[0]),
        "last_hidden": float(values[-1]),
        "reduction": reduction,
        "n_hidden": int(len(hidden)),
        "passed_spearman": passed_spearman,
        "passed_reduction": passed_reduction,
        "passed": passed_spearman and passed_reduction,
    }


# ----------------------------------------------------------------------------- P2
def _drop_fractions(v_input: float, v_hidden: np.ndarray) -> np.ndarray:
    """(log v_0 - log v_l) / (log v_0 - log v_L) for each hidden layer l (NaN if no drop)."""
    total = math.log(v_input) - math.log(v_hidden[-1])
    if not total > 0:
        return np.full(v_hidden.shape, np.nan)
    return (math.log(v_input) - np.log(v_hidden)) / total


def log_drop_fractions(sweeps: pd.DataFrame, *, metric: str = "within_total_ratio",
                       group_cols: Sequence[str] = GROUP_COLS,
                       epoch_col: str = "epoch") -> pd.DataFrame:
    """Share of the input-to-last-layer log drop of ``metric`` reached at every probe point.

    For each run and epoch, ``drop_fraction = (log v_0 - log v_l) / (log v_0 - log v_L)``,
    0 at the input and 1 at the last hidden layer; NaN for every layer of a run and epoch
    whose total drop is not positive. This is the curve that :func:`variance_half_drop`
    reads at the middle hidden layer.

    Parameters
    ----------
    sweeps : DataFrame
        Layer sweeps with ``group_cols``, ``epoch_col``, ``depth`` and ``metric``.
    metric : str
        The quantity v_l (default ``within_total_ratio``, tr Sigma_W / tr Sigma_T).
    group_cols, epoch_col : as in :func:`last_epoch` (absent columns are ignored).

    Returns
    -------
    DataFrame
        ``sweeps`` with a ``drop_fraction`` column, sorted by run, epoch and depth.

    Example
    -------
    >>> sweep = pd.DataFrame({"epoch": 1, "depth": [0, .5, 1], "within_total_ratio": [1, .1, .01]})
    >>> log_drop_fractions(sweep)["drop_fraction"].round(3).tolist()
    [0.0, 0.5, 1.0]
    """
    _require_columns(sweeps, ["depth", epoch_col, metric], "sweeps")
    keys = [c for c in group_cols if c in sweeps.columns] + [epoch_col]
    parts = []
    for _, sweep in sweeps.groupby(keys, sort=True):
        hidden = hidden_layers(sweep, min_layers=1)
        v_input = float(_positive(pd.Series([_input_row(sweep)[metric]]), metric)[0])
        fractions = _drop_fractions(v_input, _positive(hidden[metric], metric))
        ordered = sweep.sort_values("depth").copy()
        ordered["drop_fraction"] = np.concatenate([[0.0 if np.isfinite(fractions).all() else np.nan],
                                                   fractions])
        parts.append(ordered)
    return pd.concat(parts, ignore_index=True)


def variance_half_drop(sweep: pd.DataFrame, *, min_fraction: float = 0.5,
                       metric: str = "within_total_ratio") -> dict[str, Any]:
    """P2: is most of the within-class variance reduction done by the middle hidden layer?

    With ``v_l = tr Sigma_W / tr Sigma_T`` at probe point l (l = 0 the input, l = L the last
    hidden layer), the cumulative drop fraction at layer l is
    ``(log v_0 - log v_l) / (log v_0 - log v_L)``. The *middle hidden layer* is hidden layer
    number ``ceil(L / 2)`` counted from 1 (layer 3 of 5 or of 6). The *half-drop layer* is the
    first hidden layer whose cumulative fraction reaches ``min_fraction``.

    Criterion (pre-registered in chapter P2): the total drop is positive and the half-drop
    layer is no deeper than the middle hidden layer.

    Parameters
    ----------
    sweep : DataFrame
        One run at one epoch with ``depth`` and ``metric`` columns, including the input row.
    min_fraction : float
        Fraction of the total log drop that must be reached (the chapter uses 0.5).
    metric : str
        Column holding v_l (``within_total_ratio``).

    Returns
    -------
    dict
        ``v_input``, ``v_last``, ``total_log_drop``, ``middle_layer`` (1-based index),
        ``middle_depth``, ``fraction_at_middle``, ``half_drop_layer`` (1-based, or None),
        ``half_drop_depth`` (relative depth, NaN if never reached), ``passed``.

    References
    ----------
    Parker et al. (2023), finding (1): "almost all of the reduction in within-class
    variance happens in the shallow layers".

    Example
    -------
    >>> sweep = pd.DataFrame({"depth": [0, .25, .5, .75, 1],
    ...                       "within_total_ratio": [.9, .2, .1, .08, .07]})
    >>> variance_half_drop(sweep)["half_drop_layer"]
    1
    """
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must lie in (0, 1], got {min_fraction}")
    _require_columns(sweep, ["depth", metric], "sweep")
    hidden = hidden_layers(sweep)
    v_input = float(_positive(pd.Series([_input_row(sweep)[metric]]), metric)[0])
    v_hidden = _positive(hidden[metric], metric)
    depths = hidden["depth"].to_numpy(dtype=np.float64)
    total = math.log(v_input) - math.log(v_hidden[-1])
    middle = math.ceil(len(hidden) / 2)
    if total > 0:
        fractions = _drop_fractions(v_input, v_hidden)
        reached = np.flatnonzero(fractions >= min_fraction)
        half_layer = int(reached[0]) + 1 if reached.size else None
        fraction_at_middle = float(fractions[middle - 1])
    else:  # no reduction at all: the fraction is undefined and the criterion fails
        half_layer, fraction_at_middle = None, float("nan")
    return {
        "v_input": v_input,
        "v_last": float(v_hidden[-1]),
        "total_log_drop": float(total),
        "middle_layer": middle,
        "middle_depth": float(depths[middle - 1]),
        "fraction_at_middle": fraction_at_middle,
        "half_drop_layer": half_layer,
        "half_drop_depth": float(depths[half_layer - 1]) if half_layer else float("nan"),
        "passed": bool(total > 0 and half_layer is not None and half_layer <= middle),
    }


# ----------------------------------------------------------------------------- P3
def angle_growth(sweep: pd.DataFrame, *, num_classes: int, min_spearman: float = 0.7,
                 max_gap_degrees: float = 5.0,
                 metric: str = "mean_pairwise_angle") -> dict[str, Any]:
    """P3: does the angle between centred class means grow with depth towards the simplex?

    Criterion (pre-registered in chapter P3): over the hidden layers of one run,
    ``Spearman(depth, mean pairwise angle) >= min_spearman`` and the last hidden layer's mean
    pairwise angle within ``max_gap_degrees`` of ``arccos(-1/(C-1))``.

    Parameters
    ----------
    sweep : DataFrame
        One run at one epoch with ``depth`` and ``metric`` (degrees) columns.
    num_classes : int
        C, which fixes the simplex angle.
    min_spearman : float
        Smallest admissible rank correlation (the chapter uses 0.7).
    max_gap_degrees : float
        Largest admissible ``|angle_L - simplex angle|`` in degrees (the chapter uses 5).
    metric : str
        Column holding the mean pairwise angle of the centred class means, in degrees.

    Returns
    -------
    dict
        ``spearman``, ``first_hidden``, ``last_hidden``, ``simplex_angle``, ``gap``
        (absolute, degrees), ``passed_spearman``, ``passed_gap``, ``passed``.

    References
    ----------
    Parker et al. (2023), finding (2); Papyan, Han, Donoho (2020) for the simplex ETF.

    Example
    -------
    >>> sweep = pd.DataFrame({"depth": [0, .5, .75, 1], "mean_pairwise_angle": [80, 85, 90, 96]})
    >>> angle_growth(sweep, num_classes=10)["passed"]
    True
    """
    if max_gap_degrees < 0:
        raise ValueError(f"max_gap_degrees must be non-negative, got {max_gap_degrees}")
    target = simplex_angle(num_classes)
    _require_columns(sweep, ["depth", metric], "sweep")
    hidden = hidden_layers(sweep)
    angles = hidden[metric].to_numpy(dtype=np.float64)
    rho = spearman(hidden["depth"], angles)
    gap = float(abs(angles[-1] - target))
    passed_spearman = bool(np.isfinite(rho) and rho >= min_spearman)
    passed_gap = bool(np.isfinite(gap) and gap <= max_gap_degrees)
    return {
        "spearman": rho,
        "first_hidden": float(angles[0]),
        "last_hidden": float(angles[-1]),
        "simplex_angle": target,
        "gap": gap,
        "passed_spearman": passed_spearman,
        "passed_gap": passed_gap,
        "passed": passed_spearman and passed_gap,
    }


# ----------------------------------------------------------------------------- P4
def depth_needed(sweep: pd.DataFrame, *, fraction: float = 0.99,
                 metric: str = "ncc_train_acc") -> dict[str, Any]:
    """P4 ingredient: the shallowest probe point that already separates the classes.

    depth-needed is the relative depth of the first probe point (the input included, at
    depth 0) whose NCC train accuracy reaches ``fraction`` times its value at the last hidden
    layer.

    Parameters
    ----------
    sweep : DataFrame
        One run at one epoch with ``depth`` and ``metric`` columns.
    fraction : float
        Share of the last hidden layer's NCC accuracy to reach (the chapter uses 0.99).
    metric : str
        Column holding the NCC accuracy (train split, train class means).

    Returns
    -------
    dict
        ``depth_needed`` (relative depth in [0, 1]), ``layer`` (its ``name`` when the sweep
        has one), ``target`` (the accuracy to reach), ``last_hidden`` (NCC accuracy there).

    Example
    -------
    >>> sweep = pd.DataFrame({"depth": [0, .5, 1], "ncc_train_acc": [.5, .995, 1.0]})
    >>> depth_needed(sweep)["depth_needed"]
    0.5
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    _require_columns(sweep, ["depth", metric], "sweep")
    hidden_layers(sweep, min_layers=1)  # validates one run at one epoch
    ordered = sweep.sort_values("depth")
    accuracy = ordered[metric].to_numpy(dtype=np.float64)
    target = fraction * accuracy[-1]
    first = int(np.flatnonzero(accuracy >= target)[0])  # the last layer always qualifies
    row = ordered.iloc[first]
    return {
        "depth_needed": float(row["depth"]),
        "layer": row["name"] if "name" in ordered.columns else first,
        "target": float(target),
        "last_hidden": float(accuracy[-1]),
    }


def difficulty_ordering(table: pd.DataFrame, *, min_spearman: float = 0.7, min_datasets: int = 3,
                        architecture_col: str = "architecture") -> pd.DataFrame:
    """P4: does depth-needed grow with dataset difficulty, architecture by architecture?

    Criterion (pre-registered in chapter P4): for each architecture,
    ``Spearman(difficulty, depth_needed) >= min_spearman`` across at least ``min_datasets``
    datasets; an architecture with fewer datasets is reported as not evaluable (``passed``
    False, ``evaluable`` False).

    Parameters
    ----------
    table : DataFrame
        One row per eligible run with ``architecture_col``, ``dataset``, ``difficulty``
        (1 - test accuracy) and ``depth_needed``.
    min_spearman : float
        Smallest admissible rank correlation (the chapter uses 0.7).
    min_datasets : int
        Fewest datasets a correlation is computed from (the chapter uses 3).

    Returns
    -------
    DataFrame
        One row per architecture: ``n_datasets``, ``datasets`` (easiest first),
        ``spearman``, ``evaluable``, ``passed``.

    Example
    -------
    >>> t = pd.DataFrame({"architecture": ["mlp"] * 3, "dataset": ["a", "b", "c"],
    ...                   "difficulty": [.01, .05, .2], "depth_needed": [.2, .4, 1.]})
    >>> bool(difficulty_ordering(t)["passed"].iloc[0])
    True
    """
    if min_datasets < 3:
        raise ValueError(f"min_datasets must be at least 3 for a rank correlation, got {min_datasets}")
    _require_columns(table, [architecture_col, "dataset", "difficulty", "depth_needed"], "table")
    rows = []
    for architecture, group in table.groupby(architecture_col, sort=True):
        group = group.sort_values("difficulty")
        n_datasets = int(group["dataset"].nunique())
        evaluable = n_datasets >= min_datasets
        rho = spearman(group["difficulty"], group["depth_needed"]) if evaluable else float("nan")
        rows.append({
            architecture_col: architecture,
            "n_datasets": n_datasets,
            "datasets": ", ".join(map(str, group["dataset"])),
            "spearman": rho,
            "evaluable": evaluable,
            "passed": bool(evaluable and np.isfinite(rho) and rho >= min_spearman),
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tables
def per_run(sweeps: pd.DataFrame, criterion: Callable[..., dict[str, Any]], *,
            group_cols: Sequence[str] = GROUP_COLS, epoch_col: str = "epoch",
            runs: pd.DataFrame | None = None, **criterion_kwargs: Any) -> pd.DataFrame:
    """Apply a per-run criterion to the last swept epoch of every run.

    Parameters
    ----------
    sweeps : DataFrame
        Layer sweeps of several runs (``group_cols``, ``epoch_col``, ``depth``, ...).
    criterion : callable
        One of :func:`depth_collapse`, :func:`variance_half_drop`, :func:`angle_growth`,
        :func:`depth_needed` (or any ``f(sweep, **kwargs) -> dict``).
    group_cols, epoch_col : as in :func:`last_epoch`.
    runs : DataFrame, optional
        The output of :func:`eligible_runs`; when given, only its eligible runs are
        evaluated and its ``train_acc``, ``test_acc``, ``difficulty`` columns are joined in.
    **criterion_kwargs
        Thresholds and options forwarded to ``criterion``. ``num_classes="column"`` reads C
        from the sweep's ``num_classes`` column (for :func:`angle_growth`).

    Returns
    -------
    DataFrame
        One row per evaluated run: ``group_cols`` then the criterion's keys.
    """
    _require_columns(sweeps, [*group_cols, epoch_col, "depth"], "sweeps")
    final = last_epoch(sweeps, group_cols=group_cols, epoch_col=epoch_col)
    keys = list(group_cols)
    if runs is not None:
        _require_columns(runs, [*keys, "eligible"], "runs")
        chosen = runs.loc[runs["eligible"], keys]
        final = final.merge(chosen, on=keys, how="inner")
    rows = []
    for values, sweep in final.groupby(keys, sort=True):
        kwargs = dict(criterion_kwargs)
        if kwargs.get("num_classes") == "column":
            _require_columns(sweep, ["num_classes"], "sweep")
            kwargs["num_classes"] = int(sweep["num_classes"].iloc[0])
        result = criterion(sweep, **kwargs)
        rows.append({**dict(zip(keys, values)), "epoch": int(sweep[epoch_col].iloc[0]), **result})
    table = pd.DataFrame(rows, columns=None if rows else [*keys, "epoch"])
    if runs is not None and rows:
        extra = [c for c in ("train_acc", "test_acc", "difficulty") if c in runs.columns]
        table = table.merge(runs[[*keys, *extra]], on=keys, how="left")
    return table


def overall_verdict(table: pd.DataFrame, *, passed_col: str = "passed") -> bool:
    """True when at least one run was evaluated and every evaluated run passed.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`per_run` or :func:`difficulty_ordering` (for the latter, only
        evaluable rows count; with none evaluable the verdict is False: nothing was tested).
    passed_col : str
        Name of the bool column.

    Returns
    -------
    bool
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame, got {type(table).__name__}")
    if table.empty:
        return False
    _require_columns(table, [passed_col], "table")
    if "evaluable" in table.columns:
        table = table[table["evaluable"]]
        if table.empty:
            return False
    return bool(table[passed_col].all())
