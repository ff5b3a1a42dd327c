"""The Parker et al. (2023) criteria as amended on 2026-12-06, and the reasons of P1-P4's verdicts.

Two amendments, written after the cpu verdicts of the amended criteria of 2026-12-01
(:mod:`ncutils.papers.parker.amended`) had been seen, each correcting what is tested, not a
threshold:

- **P2** gets a guard (:func:`guarded_shallow_drop`). The share of the log drop of NC1 reached
  at a third of the hidden layers is a ratio to the total drop; where NC1 hardly falls, it
  reads noise as "almost all of the fall" (an untrained MLP gave a share of 2.25: NC1 falls
  a little, then rises). The amended criterion asks NC1 to fall at least ``min_drop_factor``
  times from the first to the last hidden layer, and the same network at initialisation to
  fail the whole criterion. The share on a linear scale (:func:`linear_share_at`) is reported
  beside the log share: it cannot tell a uniform decline from an early one at falls of 100x
  and more (:func:`uniform_linear_share`), which is why the criterion reads logs.
- **P3** is judged by the rule for claims that say "every" or "consistently": every eligible
  run must pass (:func:`p3_readings` gives that verdict and the 2/3 rule's side by side).

Each ``*_reason`` function turns a chapter's table into the one sentence its record carries:
the numbers the verdict rests on against the thresholds it asks.

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden Layers of
Classification Neural Networks", arXiv:2308.02760.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ncutils import verdicts
from ncutils.papers.parker.amended import shallow_drop
from ncutils.papers.parker.criteria import _positive, _require_columns, hidden_layers

__all__ = [
    "SECOND_AMENDMENT_DATE",
    "guarded_shallow_drop",
    "linear_share_at",
    "p1_reason",
    "p2_reason",
    "p3_readings",
    "p3_reason",
    "p4_reason",
    "run_label",
    "uniform_linear_share",
    "with_reason",
]

#: The day the P2 and P3 criteria were amended a second time (after the cpu verdicts were seen).
SECOND_AMENDMENT_DATE = "2026-12-06"


def linear_share_at(values: np.ndarray, position: float) -> float:
    """Share of the first-to-last fall of ``values`` on a *linear* scale, read at a relative position.

    The share at hidden layer h is ``(v_1 - v_h) / (v_1 - v_L)``, placed at ``(h-1)/(L-1)`` and
    read at ``position`` by linear interpolation, as
    :func:`~ncutils.papers.parker.amended.drop_share_at` does for logs. Reported only: after a
    fall of 100x a uniform log decline already reaches 0.79 of the linear fall at a third of
    the way (:func:`uniform_linear_share`), so a linear share near 1 does not say that the fall
    is early.

    Example
    -------
    >>> round(linear_share_at(np.array([1.0, 0.5, 0.0]), 0.5), 6)
    0.5
    >>> round(linear_share_at(np.array([1.0, 0.1, 0.01, 0.001]), 1 / 3), 3)  # uniform log decline
    0.901
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"values must hold at least 2 layers, got shape {values.shape}")
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must lie in [0, 1], got {position}")
    total = values[0] - values[-1]
    if not total > 0:
        return float("nan")
    shares = (values[0] - values) / total
    return float(np.interp(position, np.linspace(0.0, 1.0, values.size), shares))


def uniform_linear_share(drop_factor: float, position: float) -> float:
    """The linear-scale share a *uniform* log decline by ``drop_factor`` reaches at ``position``.

    A uniform decline from 1 to ``1/R`` is ``R**-p`` at relative position ``p``; its linear
    share there is ``(1 - R**-p) / (1 - 1/R)``. With ``R = 100`` and ``p = 1/3`` that is 0.79:
    at the falls of trained networks a linear share cannot tell a uniform decline from an early one.

    Example
    -------
    >>> round(uniform_linear_share(100.0, 1 / 3), 2)
    0.79
    >>> round(uniform_linear_share(1.0001, 1 / 3), 3)  # hardly any fall: close to the position itself
    0.333
    """
    if not drop_factor > 1.0:
        return float("nan")
    return float((1.0 - drop_factor ** -position) / (1.0 - 1.0 / drop_factor))


def _guard(sweep: pd.DataFrame, *, position: float, min_share: float, min_excess: float,
           min_drop_factor: float, metric: str) -> dict[str, Any]:
    result = shallow_drop(sweep, position=position, min_share=min_share, min_excess=min_excess, metric=metric)
    drop_factor = math.exp(result["total_log_drop"])
    values = _positive(hidden_layers(sweep)[metric], metric)
    return {**result, "drop_factor": drop_factor, "linear_share": linear_share_at(values, position),
            "passed": bool(result["passed"] and drop_factor >= min_drop_factor)}


def guarded_shallow_drop(trained: pd.DataFrame, untrained: pd.DataFrame, *, position: float = 1 / 3,
                         min_share: float = 0.8, min_excess: float = 0.3, min_drop_factor: float = 10.0,
                         metric: str = "nc1") -> dict[str, Any]:
    """P2 as amended on 2026-12-06: an early fall of NC1 that is a real fall, and that training made.

    Over the hidden layers of the trained run: the share of the log drop of ``metric`` reached
    at ``position`` is at least ``min_share`` and exceeds a uniform decline's (``position``) by
    ``min_excess`` (:func:`~ncutils.papers.parker.amended.shallow_drop`), **and** the metric
    falls at least ``min_drop_factor`` times from the first to the last hidden layer; the same
    network at initialisation must not meet these conditions.

    Parameters
    ----------
    trained, untrained : DataFrame
        One sweep each (one run at one epoch): after training, and at epoch 0.
    position, min_share, min_excess, min_drop_factor : float
        The chapter: 1/3, 0.8, 0.3 and 10.
    metric : str
        The variability measure (``nc1``).

    Returns
    -------
    dict
        ``share``, ``excess``, ``drop_factor``, ``linear_share``, ``uniform_linear_share`` (a
        uniform decline by this run's ``drop_factor``), ``passed_trained``, ``untrained_share``,
        ``untrained_drop_factor``, ``untrained_fails`` and ``passed``.

    Example
    -------
    >>> depth = [0, .2, .4, .6, .8, 1]
    >>> trained = pd.DataFrame({"depth": depth, "nc1": [5, 1, .02, .015, .012, .01]})
    >>> untrained = pd.DataFrame({"depth": depth, "nc1": [5, 1, .98, .97, 1.01, .99]})
    >>> guarded_shallow_drop(trained, untrained)["passed"], guarded_shallow_drop(untrained, untrained)["passed"]
    (True, False)
    """
    _require_columns(trained, ["depth", metric], "trained sweep")
    _require_columns(untrained, ["depth", metric], "untrained sweep")
    options = dict(position=position, min_share=min_share, min_excess=min_excess,
                   min_drop_factor=min_drop_factor, metric=metric)
    after, before = _guard(trained, **options), _guard(untrained, **options)
    return {
        "share": after["share"], "excess": after["excess"], "drop_factor": after["drop_factor"],
        "linear_share": after["linear_share"],
        "uniform_linear_share": uniform_linear_share(after["drop_factor"], position),
        "passed_trained": after["passed"],
        "untrained_share": before["share"], "untrained_drop_factor": before["drop_factor"],
        "untrained_fails": not before["passed"],
        "passed": bool(after["passed"] and not before["passed"]),
    }


# ----------------------------------------------------------------------------- verdicts and reasons
def with_reason(outcome: verdicts.Outcome, reason: str) -> verdicts.Outcome:
    """The same outcome (state, counts, rule) with its reason replaced by a computed sentence."""
    return replace(outcome, reason=reason)


def run_label(row: Any) -> str:
    """``"mlp (tanh) on digits, seed 0"`` for a row of a per-run table (``activation`` optional)."""
    activation = getattr(row, "activation", None)
    extra = f" ({activation})" if activation not in (None, "relu") else ""
    return f"{row.architecture}{extra} on {row.dataset}, seed {row.seed}"


def _labels(rows: pd.DataFrame) -> str:
    return "; ".join(run_label(row) for row in rows.itertuples())


def _factor(value: float) -> str:
    """A fall as a reader says it: ``7.4``, ``51``, ``2,300``."""
    return f"{value:.2g}" if value < 10 else f"{float(f'{value:.2g}'):,.0f}"


def _range(values: Sequence[float], fmt: Any) -> str:
    write = fmt if callable(fmt) else (lambda value: format(value, fmt))
    low, high = write(min(values)), write(max(values))
    return low if low == high else f"{low} to {high}"


def _counted(table: pd.DataFrame) -> str:
    return f"{int(table['passed'].sum())} of {len(table)} eligible runs pass"


def _flags(table: pd.DataFrame, column: str) -> pd.Series:
    """A column of pass/fail flags as booleans: a table concatenated with an empty one (every
    activation run ineligible) holds them as objects, where ``~`` would give -1 and -2."""
    return table[column].astype(bool)


def p1_reason(table: pd.DataFrame, *, max_spearman: float, min_reduction: float) -> str:
    """P1's reason: how far NC1 falls with depth in the runs, and why the failing runs fail.

    ``table``: :func:`~ncutils.papers.parker.amended.per_run_against_initial` with
    :func:`~ncutils.papers.parker.amended.depth_collapse_beyond_initial`.

    Example
    -------
    >>> t = pd.DataFrame({"architecture": ["mlp", "mlp"], "dataset": ["digits"] * 2, "activation": ["relu", "tanh"],
    ...                   "seed": [0, 0], "spearman": [-1.0, -1.0], "reduction": [50.0, 7.4],
    ...                   "passed_trained": [True, False], "untrained_fails": [True, True], "passed": [True, False]})
    >>> p1_reason(t, max_spearman=-0.7, min_reduction=10)
    '1 of 2 eligible runs pass: NC1 falls 50x from the first to the last hidden layer (Spearman -1.00) where the criterion asks 10x and at most -0.7 and the untrained network must not; failing: mlp (tanh) on digits, seed 0 (falls 7.4x)'
    """
    if table.empty:
        return "no eligible run"
    passing = table[_flags(table, "passed")]
    shown = passing if len(passing) else table
    text = (f"{_counted(table)}: NC1 falls {_range(shown['reduction'], _factor)}x from the first to the last hidden "
            f"layer (Spearman {_range(shown['spearman'], '.2f')}) where the criterion asks {min_reduction:g}x and at "
            f"most {max_spearman:g} and the untrained network must not")
    failing = table[~_flags(table, "passed")]
    if len(failing):
        why = []
        for row in failing.itertuples():
            if not row.passed_trained:
                why.append(f"{run_label(row)} (falls {_factor(row.reduction)}x, Spearman {row.spearman:.2f})"
                           if row.spearman > max_spearman else f"{run_label(row)} (falls {_factor(row.reduction)}x)")
            else:
                why.append(f"{run_label(row)} (its untrained network passes too)")
        text += "; failing: " + "; ".join(why)
    return text


def p2_reason(table: pd.DataFrame, *, min_share: float, min_drop_factor: float, position: float) -> str:
    """P2's reason: where the fall of NC1 happens, against the shares asked, and what the guard removed.

    ``table``: :func:`~ncutils.papers.parker.amended.per_run_against_initial` with
    :func:`guarded_shallow_drop`.

    Example
    -------
    >>> t = pd.DataFrame({"share": [0.31, 0.15], "drop_factor": [51.0, 2300.0], "linear_share": [0.7, 0.9],
    ...                   "untrained_drop_factor": [0.7, 1.19], "untrained_fails": [True, True],
    ...                   "passed": [False, False]})
    >>> p2_reason(t, min_share=0.8, min_drop_factor=10, position=1/3)
    '0 of 2 eligible runs pass: at a third of the hidden layers NC1 has made 0.15 to 0.31 of its log fall (51 to 2,300x in all), where the criterion asks 0.8 and a uniform decline gives 0.33; on a linear scale 0.7 to 0.9; every untrained network fails (its NC1 falls at most 1.2x, 10x asked)'
    """
    if table.empty:
        return "no eligible run"
    where = "a third" if abs(position - 1 / 3) < 1e-9 else f"{position:.3g}"
    text = (f"{_counted(table)}: at {where} of the hidden layers NC1 has made {_range(table['share'], '.2f')} of its "
            f"log fall ({_range(table['drop_factor'], _factor)}x in all), where the criterion asks {min_share:g} and a "
            f"uniform decline gives {position:.2f}; on a linear scale {_range(table['linear_share'], '.2g')}")
    if table["untrained_fails"].all():
        text += (f"; every untrained network fails (its NC1 falls at most {_factor(table['untrained_drop_factor'].max())}x, "
                 f"{min_drop_factor:g}x asked)")
    else:
        text += f"; the untrained network passes too in {_labels(table[~_flags(table, 'untrained_fails')])}"
    return text


def p3_readings(passed: Sequence[bool], *, min_runs: int = 2) -> dict[str, verdicts.Outcome]:
    """P3's verdict by the rule for "consistently" (every run) and by the 2/3 rule, side by side.

    Example
    -------
    >>> readings = p3_readings([True] * 7 + [False] * 3)
    >>> readings["every"].state, readings["two_thirds"].state
    ('not reproduced', 'reproduced')
    """
    flags = list(passed)
    return {"every": verdicts.combine_runs(flags, every=True, min_runs=min_runs),
            "two_thirds": verdicts.combine_runs(flags, min_runs=min_runs)}


def p3_reason(table: pd.DataFrame, readings: dict[str, verdicts.Outcome], *, max_spearman: float,
              max_ratio: float) -> str:
    """P3's reason: the runs that fail the per-run conditions, and the verdict by both rules.

    ``table``: :func:`~ncutils.papers.parker.amended.per_run_against_initial` with
    :func:`~ncutils.papers.parker.amended.coherence_fall`.
    """
    if table.empty:
        return "no eligible run"
    text = (f"{_counted(table)} (coherence falls with depth, Spearman at most {max_spearman:g}, to at most "
            f"{max_ratio:g} of the first hidden layer's, where the untrained network does not)")
    failing = table[~_flags(table, "passed")]
    if len(failing):
        text += "; failing: " + "; ".join(
            f"{run_label(row)} (Spearman {row.spearman:.2f}, ratio {row.ratio:.2f}"
            + (", untrained passes too" if not row.untrained_fails else "") + ")" for row in failing.itertuples())
    every, two_thirds = readings["every"], readings["two_thirds"]
    return (text + f"; 'consistently' read as every run: {every.state}; read as the layers of one network, by the "
            f"2/3 rule: {two_thirds.state}")


def p4_reason(pairs: pd.DataFrame, needed: pd.DataFrame, *, min_datasets: int, min_spearman: float,
              min_hardest_depth: float) -> str:
    """P4's reason: what each evaluable (architecture, seed) pair shows, and how much the test rests on.

    Parameters
    ----------
    pairs : DataFrame
        One row per architecture and seed (:func:`~ncutils.papers.parker.amended.hardest_needs_depth`).
    needed : DataFrame
        The eligible runs' depth-needed (``architecture``, ``dataset``, ``seed``).
    min_datasets, min_spearman, min_hardest_depth
        The chapter's values.

    Example
    -------
    >>> pairs = pd.DataFrame({"architecture": ["mlp", "vgg"], "seed": [0, 0], "n_datasets": [3, 2],
    ...                       "spearman": [0.87, float("nan")], "hardest": ["mnist1d", "mnist5k"],
    ...                       "hardest_depth": [0.5, 0.4], "evaluable": [True, False], "passed": [False, False]})
    >>> needed = pd.DataFrame({"architecture": ["mlp"] * 3 + ["vgg"] * 2, "seed": [0] * 5,
    ...                        "dataset": ["digits", "mnist5k", "mnist1d", "digits", "mnist5k"]})
    >>> p4_reason(pairs, needed, min_datasets=3, min_spearman=0.7, min_hardest_depth=0.8)
    '0 of 1 evaluable pairs pass: mlp seed 0 orders its datasets with Spearman 0.87 (0.7 asked) but its hardest, mnist1d, is learned by depth 0.50 (0.8 asked); a weak test: it rests on one architecture (mlp) and 3 datasets, vgg has 2 (3 needed), so the gpu and paper profiles, with 4 datasets, settle it'
    """
    evaluable = pairs[pairs["evaluable"].astype(bool)]
    if evaluable.empty:
        return f"no architecture has eligible runs on {min_datasets} datasets of distinct difficulty"
    parts = []
    for row in evaluable.itertuples():
        order = "orders" if row.spearman >= min_spearman else "misorders"
        depth_ok = row.hardest_depth >= min_hardest_depth
        parts.append(f"{row.architecture} seed {row.seed} {order} its datasets with Spearman {row.spearman:.2f} "
                     f"({min_spearman:g} asked) {'and' if depth_ok else 'but'} its hardest, {row.hardest}, is learned "
                     f"by depth {row.hardest_depth:.2f} ({min_hardest_depth:g} asked)")
    text = f"{int(evaluable['passed'].sum())} of {len(evaluable)} evaluable pairs pass: " + "; ".join(parts)
    architectures = sorted(set(evaluable["architecture"]))
    datasets = sorted(set(needed.loc[needed["architecture"].isin(architectures), "dataset"]))
    untested = pairs[~pairs["evaluable"].astype(bool)].drop_duplicates("architecture")
    if len(architectures) < 2 or len(datasets) < 4:
        text += (f"; a weak test: it rests on {'one architecture' if len(architectures) == 1 else f'{len(architectures)} architectures'} "
                 f"({', '.join(architectures)}) and {len(datasets)} datasets")
        if len(untested):
            text += ", " + ", ".join(f"{row.architecture} has {row.n_datasets} ({min_datasets} needed)"
                                     for row in untested.itertuples())
        text += ", so the gpu and paper profiles, with 4 datasets, settle it"
    return text
