"""The Parker et al. (2023) criteria as amended on 2026-12-01, before any result of them existed.

A review of the chapters against their own numbers (issue "Second pass on the existing
chapters") found that two criteria of 2026-11-22 (:mod:`ncutils.papers.parker.criteria`)
could not fail and one rested on a tie rule added after the results. The amended criteria
below are phrased on what the paper's code measures (``nc_main.py``, read in the project's
paper notes): the hidden layers only (the official hooks never see the raw input), NC1 and
*coherence* (the paper's "equiangularity": the mean over pairs of
``|cos(mu_i - mu_G, mu_j - mu_G) + 1/(C-1)|``; separation increasing with depth means
coherence falling). Each is a pure function of one run's sweep (or of a table of runs) with
its thresholds as arguments; the chapters state the values before computing, and
``tests/test_parker_amended.py`` feeds each its null and checks that it fails.

How runs combine into a verdict (book/method.md) is :func:`ncutils.verdicts.combine_runs`.

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden Layers of
Classification Neural Networks", arXiv:2308.02760.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ncutils.papers.parker.criteria import (
    GROUP_COLS,
    _positive,
    depth_collapse,
    _require_columns,
    hidden_layers,
    last_epoch,
    spearman,
)

__all__ = [
    "AMENDMENT_DATE",
    "coherence_fall",
    "depth_collapse_beyond_initial",
    "drop_share_at",
    "hardest_needs_depth",
    "layers_over_training",
    "per_run_against_initial",
    "shallow_drop",
]

#: The day the amended criteria were fixed (before any of their results was computed).
AMENDMENT_DATE = "2026-12-01"


def drop_share_at(values: np.ndarray, position: float) -> float:
    """Share of the first-to-last log drop of ``values`` reached at a relative position.

    The layers are placed at relative positions ``0, 1/(L-1), ..., 1`` (first to last hidden
    layer); the share at layer h is ``(log v_1 - log v_h) / (log v_1 - log v_L)`` and is read
    at ``position`` by linear interpolation between the two measured layers around it
    (with 6 hidden layers, 1/3 falls between the 2nd and the 3rd). A uniform
    decline (equal log steps) gives exactly ``position``.

    Parameters
    ----------
    values : array of shape (L,)
        Positive values, first hidden layer first (L >= 2).
    position : float
        Where to read the share, in [0, 1].

    Returns
    -------
    float
        The interpolated share; NaN when the total drop is not positive.

    Example
    -------
    >>> round(drop_share_at(np.array([1.0, 0.1, 0.01, 0.001]), 1 / 3), 6)  # uniform decline
    0.333333
    >>> round(drop_share_at(np.array([1.0, 0.01, 0.009, 0.008]), 1 / 3), 3)  # early drop
    0.954
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"values must hold at least 2 layers, got shape {values.shape}")
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must lie in [0, 1], got {position}")
    logs = np.log(values)
    total = logs[0] - logs[-1]
    if not total > 0:
        return float("nan")
    shares = (logs[0] - logs) / total
    positions = np.linspace(0.0, 1.0, values.size)
    return float(np.interp(position, positions, shares))


def shallow_drop(sweep: pd.DataFrame, *, position: float = 1 / 3, min_share: float = 0.8,
                 min_excess: float = 0.3, metric: str = "nc1") -> dict[str, Any]:
    """Amended P2: is almost all of the fall of ``metric`` done in the first third of the hidden layers?

    Along the hidden layers of one run (first hidden to last hidden, as the paper's code
    measures), the share of the total log drop of NC1 reached at relative position
    ``position`` (linear interpolation, :func:`drop_share_at`) must be at least
    ``min_share`` *and* exceed the share a uniform decline reaches there (``position``) by
    at least ``min_excess``.

    Parameters
    ----------
    sweep : DataFrame
        One run at one epoch (``depth`` and ``metric`` columns; the input row is ignored).
    position : float
        Where the share is read (the chapter: 1/3).
    min_share : float
        Smallest admissible share (the chapter: 0.8).
    min_excess : float
        Smallest admissible excess over a uniform decline (the chapter: 0.3).
    metric : str
        The variability measure (``nc1``; the chapter also reports ``within_total_ratio``).

    Returns
    -------
    dict
        ``share``, ``uniform_share`` (= ``position``), ``excess``, ``total_log_drop``,
        ``n_hidden``, ``passed``.

    Example
    -------
    >>> sweep = pd.DataFrame({"depth": [0, .2, .4, .6, .8, 1], "nc1": [5, 1, .02, .015, .012, .01]})
    >>> shallow_drop(sweep)["passed"]
    True
    """
    _require_columns(sweep, ["depth", metric], "sweep")
    values = _positive(hidden_layers(sweep)[metric], metric)
    share = drop_share_at(values, position)
    excess = share - position
    return {
        "share": share,
        "uniform_share": float(position),
        "excess": excess,
        "total_log_drop": float(math.log(values[0]) - math.log(values[-1])),
        "n_hidden": int(values.size),
        "passed": bool(np.isfinite(share) and share >= min_share and excess >= min_excess),
    }


def depth_collapse_beyond_initial(trained: pd.DataFrame, untrained: pd.DataFrame, *,
                                  max_spearman: float = -0.7, min_reduction: float = 10.0,
                                  metric: str = "nc1") -> dict[str, Any]:
    """Amended P1: :func:`~ncutils.papers.parker.criteria.depth_collapse` on the trained run, failed by its initialisation.

    The conditions are those first registered (Spearman(depth, log NC1) over the hidden
    layers at most ``max_spearman``, first-to-last ratio at least ``min_reduction``); the
    amendment adds that the same network at epoch 0 must *not* meet them (its null, book/method.md).

    Returns
    -------
    dict
        The keys of ``depth_collapse`` for the trained run, plus ``untrained_spearman``,
        ``untrained_reduction``, ``passed_trained``, ``untrained_fails``; ``passed`` is both.

    Example
    -------
    >>> trained = pd.DataFrame({"depth": [0, .25, .5, .75, 1], "nc1": [9, 8, 4, 1, .5]})
    >>> untrained = pd.DataFrame({"depth": [0, .25, .5, .75, 1], "nc1": [9, 9, 9.5, 9, 9.2]})
    >>> depth_collapse_beyond_initial(trained, untrained)["passed"]
    True
    """
    options = dict(max_spearman=max_spearman, min_reduction=min_reduction, metric=metric)
    result = depth_collapse(trained, **options)
    null = depth_collapse(untrained, **options)
    return {**result, "untrained_spearman": null["spearman"], "untrained_reduction": null["reduction"],
            "passed_trained": result["passed"], "untrained_fails": not null["passed"],
            "passed": result["passed"] and not null["passed"]}


def _coherence_trend(sweep: pd.DataFrame, metric: str) -> tuple[float, float]:
    hidden = hidden_layers(sweep)
    values = _positive(hidden[metric], metric)
    return spearman(hidden["depth"], values), float(values[-1] / values[0])


def coherence_fall(trained: pd.DataFrame, untrained: pd.DataFrame, *, max_spearman: float = -0.7,
                   max_ratio: float = 0.5, metric: str = "equiangularity") -> dict[str, Any]:
    """Amended P3: does the angular separation of the class means grow with depth, beyond chance?

    Coherence (the paper's equiangularity, column ``equiangularity``) must fall with depth
    over the hidden layers of the trained run (``Spearman(depth, coherence) <= max_spearman``)
    and end at the last hidden layer at most ``max_ratio`` times its value at the first hidden
    layer, while the same network at initialisation does *not* (its Spearman is above
    ``max_spearman`` or its ratio above ``max_ratio``).

    Parameters
    ----------
    trained, untrained : DataFrame
        One sweep each (one run at one epoch): after training, and at epoch 0.
    max_spearman, max_ratio : float
        The chapter: -0.7 and 0.5.
    metric : str
        The coherence column.

    Returns
    -------
    dict
        ``spearman``, ``ratio`` (last / first hidden), ``untrained_spearman``,
        ``untrained_ratio``, ``passed_trained``, ``untrained_fails``, ``passed``.

    Example
    -------
    >>> trained = pd.DataFrame({"depth": [0, .5, .75, 1], "equiangularity": [.3, .2, .1, .05]})
    >>> untrained = pd.DataFrame({"depth": [0, .5, .75, 1], "equiangularity": [.3, .3, .31, .3]})
    >>> coherence_fall(trained, untrained)["passed"]
    True
    """
    _require_columns(trained, ["depth", metric], "trained sweep")
    _require_columns(untrained, ["depth", metric], "untrained sweep")
    rho, ratio = _coherence_trend(trained, metric)
    rho0, ratio0 = _coherence_trend(untrained, metric)
    passed_trained = bool(np.isfinite(rho) and rho <= max_spearman and ratio <= max_ratio)
    untrained_fails = bool(not (np.isfinite(rho0) and rho0 <= max_spearman and ratio0 <= max_ratio))
    return {
        "spearman": rho,
        "ratio": ratio,
        "untrained_spearman": rho0,
        "untrained_ratio": ratio0,
        "passed_trained": passed_trained,
        "untrained_fails": untrained_fails,
        "passed": passed_trained and untrained_fails,
    }


def hardest_needs_depth(table: pd.DataFrame, *, min_datasets: int, min_spearman: float = 0.7,
                        min_hardest_depth: float = 0.8) -> dict[str, Any]:
    """Amended P4 for one architecture (and seed): harder datasets need deeper layers, the hardest nearly all.

    Over the eligible datasets of one architecture: at least ``min_datasets`` datasets of
    distinct difficulty, ``Spearman(difficulty, depth_needed) >= min_spearman`` (ranks of
    ties averaged, as :func:`ncutils.papers.parker.criteria.spearman` does; no other tie
    rule), and the hardest dataset's depth-needed at least ``min_hardest_depth``.

    Parameters
    ----------
    table : DataFrame
        One row per dataset: ``dataset``, ``difficulty`` (1 - test accuracy), ``depth_needed``.
    min_datasets : int
        The chapter: 4 on the gpu and paper profiles; 3 on cpu, reported as a weaker test.
    min_spearman, min_hardest_depth : float
        The chapter: 0.7 and 0.8.

    Returns
    -------
    dict
        ``n_datasets``, ``datasets`` (easiest first), ``spearman``, ``hardest``,
        ``hardest_depth``, ``evaluable``, ``passed``.

    Example
    -------
    >>> t = pd.DataFrame({"dataset": ["a", "b", "c"], "difficulty": [.01, .05, .2],
    ...                   "depth_needed": [.2, .5, 1.]})
    >>> hardest_needs_depth(t, min_datasets=3)["passed"]
    True
    """
    if min_datasets < 3:
        raise ValueError(f"min_datasets must be at least 3 for a rank correlation, got {min_datasets}")
    _require_columns(table, ["dataset", "difficulty", "depth_needed"], "table")
    ordered = table.sort_values("difficulty")
    n_distinct = int(ordered["difficulty"].round(12).nunique())
    evaluable = n_distinct >= min_datasets and ordered["dataset"].nunique() == len(ordered)
    rho = spearman(ordered["difficulty"], ordered["depth_needed"]) if evaluable else float("nan")
    hardest = ordered.iloc[-1] if len(ordered) else None
    hardest_depth = float(hardest["depth_needed"]) if hardest is not None else float("nan")
    return {
        "n_datasets": n_distinct,
        "datasets": ", ".join(map(str, ordered["dataset"])),
        "spearman": rho,
        "hardest": None if hardest is None else str(hardest["dataset"]),
        "hardest_depth": hardest_depth,
        "evaluable": bool(evaluable),
        "passed": bool(evaluable and np.isfinite(rho) and rho >= min_spearman
                       and hardest_depth >= min_hardest_depth),
    }


#: The keys each criterion returns: the columns of an empty table (no eligible run), so that a
#: chapter's selection of columns works whether or not any run was evaluated.
_RESULT_KEYS: dict[Any, tuple[str, ...]] = {
    depth_collapse_beyond_initial: ("spearman", "first_hidden", "last_hidden", "reduction", "n_hidden",
                                    "passed_spearman", "passed_reduction", "untrained_spearman",
                                    "untrained_reduction", "passed_trained", "untrained_fails", "passed"),
    coherence_fall: ("spearman", "ratio", "untrained_spearman", "untrained_ratio", "passed_trained",
                     "untrained_fails", "passed"),
}


def per_run_against_initial(sweeps: pd.DataFrame, criterion: Any, *, group_cols: Sequence[str] = GROUP_COLS,
                            runs: pd.DataFrame | None = None, epoch_col: str = "epoch",
                            **criterion_kwargs: Any) -> pd.DataFrame:
    """Apply ``criterion(trained, untrained, **kwargs)`` to every run: its last sweep against epoch 0.

    Parameters
    ----------
    sweeps : DataFrame
        Layer sweeps of several runs, each with an epoch-0 sweep (the network at
        initialisation, its null (book/method.md)).
    criterion : callable
        E.g. :func:`coherence_fall`.
    group_cols, epoch_col : as in :func:`ncutils.papers.parker.criteria.last_epoch`.
    runs : DataFrame, optional
        :func:`ncutils.papers.parker.criteria.eligible_runs` output: only its eligible runs
        are evaluated, and its accuracy columns are joined in.
    **criterion_kwargs
        Thresholds forwarded to ``criterion``.

    Returns
    -------
    DataFrame
        One row per evaluated run: ``group_cols``, ``epoch`` (the last) and the criterion's keys
        (which the table has even without rows, for the criteria of this module).

    Raises
    ------
    ValueError
        A run without an epoch-0 sweep.
    """
    keys = list(group_cols)
    _require_columns(sweeps, [*keys, epoch_col, "depth"], "sweeps")
    final = last_epoch(sweeps, group_cols=keys, epoch_col=epoch_col)
    initial = sweeps[sweeps[epoch_col] == 0]
    if runs is not None:
        _require_columns(runs, [*keys, "eligible"], "runs")
        final = final.merge(runs.loc[runs["eligible"], keys], on=keys, how="inner")
    rows = []
    for values, trained in final.groupby(keys, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        untrained = initial
        for column, value in zip(keys, values):
            untrained = untrained[untrained[column] == value]
        if untrained.empty:
            raise ValueError(f"run {dict(zip(keys, values))} has no sweep at epoch 0 (the untrained network)")
        rows.append({**dict(zip(keys, values)), "epoch": int(trained[epoch_col].iloc[0]),
                     **criterion(trained, untrained, **criterion_kwargs)})
    table = pd.DataFrame(rows, columns=None if rows else [*keys, "epoch", *_RESULT_KEYS.get(criterion, ())])
    if runs is not None and rows:
        extra = [c for c in ("train_acc", "test_acc", "difficulty") if c in runs.columns]
        table = table.merge(runs[[*keys, *extra]], on=keys, how="left")
    return table


def layers_over_training(sweeps: pd.DataFrame, *, seed: int | None = None,
                         group_cols: Sequence[str] = ("architecture", "dataset")) -> pd.DataFrame:
    """The hidden layers of each run over its swept epochs: the view of the paper's figures.

    Parker et al.'s figures plot each metric against the epoch, one line per layer, at the
    epochs where the train accuracy first passes 0.90, 0.95, 0.975 and 0.99 (and a few more);
    the runs keep their weights at those epochs and sweep them (see
    :data:`ncutils.papers.parker.configs.PAPER_ACCURACY_EPOCHS`).

    Parameters
    ----------
    sweeps : DataFrame
        Layer sweeps of several runs (``group_cols``, ``epoch``, ``depth``, ``name``, ...).
    seed : int, optional
        Keep one seed (a figure per seed would repeat itself); default all.
    group_cols : sequence of str
        The columns naming a run in the figure's panel titles.

    Returns
    -------
    DataFrame
        The hidden-layer rows with ``run`` (``"mlp / digits"``) and ``layer``
        (``"3: hidden3"``, sortable by depth) columns.
    """
    _require_columns(sweeps, [*group_cols, "epoch", "depth", "name", "layer"], "sweeps")
    frame = sweeps[sweeps["depth"] > 0]
    if seed is not None:
        _require_columns(frame, ["seed"], "sweeps")
        frame = frame[frame["seed"] == seed]
    frame = frame.sort_values([*group_cols, "layer", "epoch"])
    run = frame[list(group_cols)].astype(str).agg(" / ".join, axis=1)
    layer = frame["layer"].astype(int).map("{:02d}".format) + ": " + frame["name"].astype(str)
    return frame.assign(run=run, layer=layer)
