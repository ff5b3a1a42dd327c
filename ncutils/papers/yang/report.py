"""Yang et al. (2023), Y1-Y2: what the chapter says about its verdicts, from the criteria tables.

Pure functions of :func:`~ncutils.papers.yang.criteria.y1_table` and
:func:`~ncutils.papers.yang.criteria.y2_table`: :func:`y1_facts` / :func:`y2_facts` give the
numbers and texts the chapter's prose quotes (its glue keys), and :func:`y1_finding` /
:func:`y2_finding` the record of each finding (the arguments of
:func:`ncutils.book.findings.record` but its id and the parameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ncutils.chapter import Criterion
from ncutils.papers.yang.criteria import (_check_columns, y1_grid_outcome, y1_outcome, y1_table, y2_outcome,
                                          y2_stand_in_outcome)

__all__ = [
    "y1_facts",
    "y1_finding",
    "y1_grid_display",
    "y1_grid_facts",
    "y1_original_result",
    "y2_facts",
    "y2_finding",
]


def y1_facts(table: pd.DataFrame, *, shuffled_seeds: Sequence[int] = ()) -> dict[str, Any]:
    """The Y1 numbers the chapter quotes (``Y1_*`` glue keys), over :func:`y1_table`'s eligible runs.

    Passing and collapsed runs ("k of n"), the range of the recovered fraction of the
    reference, the mean recovered accuracies (true and predicted coarse class), the reference,
    the largest coarse NC1 ratio, the baselines' means and margins (raw input, initialisation,
    the shuffled-label network and its train accuracy per dataset, ``shuffled_seeds``), the
    null's largest accuracy and smallest tolerance, and the runs excluded for train accuracy.

    Parameters
    ----------
    table : DataFrame
        :func:`~ncutils.papers.yang.criteria.y1_table`.
    shuffled_seeds : sequence of int
        The seeds of the shuffled-label networks (for the text; none: ``"none"``).
    """
    _check_columns(table, ["eligible", "passed", "fraction", "dataset", "shuffled_train_acc"], "table")
    eligible = table[table["eligible"]]
    return {
        "Y1_runs": f"{int(eligible['passed'].sum())} of {len(eligible)}",
        "Y1_fraction_min": float(eligible["fraction"].min()),
        "Y1_fraction_max": float(eligible["fraction"].max()),
        "Y1_recovered_mean": float(eligible["recovered_test"].mean()),
        "Y1_recovered_predicted_mean": float(eligible["recovered_test_predicted"].mean()),
        "Y1_reference_mean": float(eligible["reference"].mean()),
        "Y1_nc1_ratio_max": float(eligible["nc1_ratio"].max()),
        "Y1_collapsed": f"{int(eligible['collapsed'].sum())} of {len(eligible)}",
        "Y1_input_mean": float(eligible["input_test"].mean()),
        "Y1_init_mean": float(eligible["init_test"].mean()),
        "Y1_shuffled_mean": float(eligible["shuffled_test"].mean()),
        "Y1_shuffled_margin_min": float(eligible["shuffled_margin"].min()),
        "Y1_shuffled_margin_max": float(eligible["shuffled_margin"].max()),
        "Y1_shuffled_train": ", ".join(f"{value:.3f} ({name})" for name, value in
                                       table.groupby("dataset")["shuffled_train_acc"].first().items()),
        "Y1_shuffled_seeds": ", ".join(str(seed) for seed in shuffled_seeds) or "none",
        "Y1_margin_min": float(eligible["baseline_margin"].min()),
        "Y1_margin_max": float(eligible["baseline_margin"].max()),
        "Y1_null_max": float(eligible["null_test"].max()),
        "Y1_null_upper": float(eligible["null_upper"].min()),
        "Y1_null_at_chance": f"{int(eligible['null_at_chance'].sum())} of {len(eligible)}",
        "Y1_excluded": ", ".join(f"{r.dataset}/{r.pairing}/seed {r.seed}"
                                 for r in table[~table["eligible"]].itertuples()) or "none",
    }


def y1_original_result(recoveries: Sequence[pd.DataFrame], runs: Sequence[pd.DataFrame],
                       criterion: Criterion,
                       group_cols: Sequence[str] = ("dataset", "lr", "weight_decay")) -> str:
    """What the criterion of 2026-12-01 gives on every Y1 run of the page (for the amendment card).

    The recovery rows and run tables of several grids (the chapter's point and the grid) are
    stacked, a run both hold counted once, and judged by :func:`y1_table` with ``criterion``'s
    thresholds and :func:`y1_outcome` (at least 2/3 of at least 2 eligible runs).

    Example
    -------
    >>> rec = pd.DataFrame({"dataset": "d", "lr": 0.1, "weight_decay": 5e-4, "pairing": "mod5", "seed": 0,
    ...     "source": ["trained", "init", "input", "trained"], "labels": ["fine", "fine", "fine", "random"],
    ...     "test_accuracy": [0.7, 0.8, 0.85, 0.52], "train_accuracy": 0.7, "test_accuracy_predicted": 0.7,
    ...     "coarse_nc1": [0.05, 1.0, 1.2, 0.05], "chance_test_upper": 0.56})
    >>> runs = pd.DataFrame({"dataset": "d", "lr": 0.1, "weight_decay": 5e-4, "pairing": ["mod5", "fine"],
    ...                      "seed": 0, "train_acc": 1.0, "test_acc": [0.97, 0.95]})
    >>> c = Criterion("2026-12-01", "x", {"min_train_acc": 0.99, "max_nc1_ratio": 0.1, "min_fraction": 0.9})
    >>> y1_original_result([rec, rec], [runs, runs], c)
    'inconclusive: only 1 eligible run (at least 2 needed) (recovered / fine-trained test accuracy 0.74-0.74, coarse NC1 last/init at most 0.050)'
    """
    keys = [*group_cols, "pairing", "seed"]
    recovery = pd.concat(list(recoveries), ignore_index=True).drop_duplicates(keys + ["source", "labels"])
    trained = pd.concat(list(runs), ignore_index=True).drop_duplicates(keys)
    table = y1_table(recovery, trained, min_train_acc=criterion["min_train_acc"],
                     max_nc1_ratio=criterion["max_nc1_ratio"], min_fraction=criterion["min_fraction"],
                     group_cols=group_cols)
    outcome = y1_outcome(table)
    eligible = table[table["eligible"].astype(bool)]
    if eligible.empty:
        return f"{outcome.state}: {outcome.reason}"
    return (f"{outcome.state}: {outcome.reason} (recovered / fine-trained test accuracy "
            f"{eligible['fraction'].min():.2f}-{eligible['fraction'].max():.2f}, coarse NC1 last/init at most "
            f"{eligible['nc1_ratio'].max():.3f})")


def y1_grid_display(table: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Every grid point with both halves of the criterion in every seed: the table the chapter shows.

    One row per grid point (learning rate, weight decay; dataset and pairing when several):
    the coarse NC1 ratio (last / initialisation) and the recovered / fine-trained fraction of
    each seed, the lowest coarse train accuracy, the fine-trained reference, and the verdict
    columns of :func:`y1_grid_points`.

    Example
    -------
    >>> t = pd.DataFrame({"dataset": "d", "pairing": "mod5", "lr": 0.1, "weight_decay": 5e-4, "seed": [0, 1],
    ...     "nc1_ratio": [0.05, 0.06], "fraction": [0.7, 0.72]})
    >>> p = pd.DataFrame({"dataset": "d", "pairing": "mod5", "lr": [0.1], "weight_decay": [5e-4],
    ...     "train_acc_min": 1.0, "reference": 0.97, "eligible": True, "collapsed": True, "recovered": False,
    ...     "passed": False})
    >>> list(y1_grid_display(t, p).columns)
    ['lr', 'weight_decay', 'NC1 last/init, seed 0', 'NC1 last/init, seed 1', 'recovered / fine-trained, seed 0', 'recovered / fine-trained, seed 1', 'train acc (min)', 'fine-trained test acc', 'eligible', 'collapsed', 'recovered', 'passed']
    """
    point_cols = [c for c in ("dataset", "pairing", "lr", "weight_decay")
                  if c in ("lr", "weight_decay") or points[c].nunique() > 1]
    wide = table.pivot_table(index=["dataset", "pairing", "lr", "weight_decay"], columns="seed",
                             values=["nc1_ratio", "fraction"], aggfunc="first")
    wide.columns = [f"{'NC1 last/init' if name == 'nc1_ratio' else 'recovered / fine-trained'}, seed {seed}"
                    for name, seed in wide.columns]
    ordered = sorted(wide.columns, key=lambda c: (not c.startswith("NC1"), c))
    frame = points.merge(wide[ordered].reset_index(), on=["dataset", "pairing", "lr", "weight_decay"])
    frame = frame.rename(columns={"train_acc_min": "train acc (min)", "reference": "fine-trained test acc"})
    columns = point_cols + ordered + ["train acc (min)", "fine-trained test acc", "eligible", "collapsed",
                                      "recovered", "passed"]
    return frame.sort_values(["lr", "weight_decay"], ascending=False)[columns].reset_index(drop=True)


def y1_grid_facts(points: pd.DataFrame) -> dict[str, Any]:
    """The numbers of the grid the chapter quotes (``Y1_grid_*`` glue keys).

    Example
    -------
    >>> points = pd.DataFrame({"dataset": "digits", "lr": [0.1, 0.01], "weight_decay": 5e-4, "seeds": 2,
    ...     "eligible": [True, False], "collapsed": [True, False], "recovered": [False, True],
    ...     "passed": False, "fraction_min": [0.7, 0.95], "nc1_ratio_max": [0.05, 0.5]})
    >>> facts = y1_grid_facts(points)
    >>> facts["Y1_grid_passed"], facts["Y1_grid_collapsed"], facts["Y1_grid_size"]
    ('0 of 2', '1 of 1', '2 (learning rate 0.1, 0.01 x weight decay 0.0005 on digits)')
    """
    _check_columns(points, ["dataset", "lr", "weight_decay", "eligible", "collapsed", "recovered", "passed",
                            "fraction_min", "nc1_ratio_max"], "points")
    eligible = points[points["eligible"].astype(bool)]

    def listed(column: str) -> str:
        return ", ".join(f"{value:g}" for value in dict.fromkeys(points[column]))

    return {
        "Y1_grid_size": (f"{len(points)} (learning rate {listed('lr')} x weight decay {listed('weight_decay')} "
                         f"on {', '.join(dict.fromkeys(points['dataset']))})"),
        "Y1_grid_passed": f"{int(eligible['passed'].sum())} of {len(points)}",
        "Y1_grid_eligible": f"{len(eligible)} of {len(points)}",
        "Y1_grid_collapsed": f"{int(eligible['collapsed'].sum())} of {len(eligible)}",
        "Y1_grid_recovered": f"{int(eligible['recovered'].sum())} of {len(eligible)}",
        "Y1_grid_fraction_max": float(eligible["fraction_min"].max()) if len(eligible) else float("nan"),
        "Y1_grid_nc1_ratio_min": float(eligible["nc1_ratio_max"].min()) if len(eligible) else float("nan"),
    }


def y1_finding(table: pd.DataFrame, facts: Mapping[str, Any], series_facts: Mapping[str, Any],
               points: pd.DataFrame, *, criteria: Sequence[Criterion], architecture: str,
               pairings: Sequence[str], seeds: Sequence[int], reference_seeds: Sequence[int],
               shuffled_seeds: Sequence[int], original_result: str) -> dict[str, Any]:
    """Y1's record: the grid's verdict (:func:`y1_grid_outcome`), with the single point's numbers beside it.

    Parameters
    ----------
    table : DataFrame
        :func:`~ncutils.papers.yang.criteria.y1_table` of the chapter's own point (with its
        baselines and null): reported, not judged.
    facts : mapping
        :func:`y1_facts` of ``table``.
    series_facts : mapping
        :func:`~ncutils.papers.yang.recovery.epoch_series_facts` of the series across training.
    points : DataFrame
        :func:`~ncutils.papers.yang.criteria.y1_grid_points` of the grid's runs: what is judged.
    criteria : sequence of Criterion
        The finding's criteria, earliest first (the last decides; its thresholds are read here).
    architecture, pairings, seeds, reference_seeds, shuffled_seeds
        What was trained (for the texts).
    original_result : str
        What the earlier criterion gives on the same runs (:func:`y1_original_result`).
    """
    criterion = criteria[-1]
    outcome = y1_grid_outcome(points, max_nc1_ratio=criterion["max_nc1_ratio"],
                              min_fraction=criterion["min_fraction"])
    grid = y1_grid_facts(points)
    eligible = points[points["eligible"].astype(bool)]
    datasets = ", ".join(dict.fromkeys(points["dataset"])) or "no dataset"
    value = (f"grid: {grid['Y1_grid_passed']} points pass; where collapsed, recovered / fine-trained at most "
             f"{eligible.loc[eligible['collapsed'].astype(bool), 'fraction_min'].max():.2f}"
             if eligible["collapsed"].astype(bool).any() else f"grid: {grid['Y1_grid_passed']} points pass; "
             "no eligible grid point collapsed")
    return {
        "claim": f"At some learning rate and weight decay of the grid, a {architecture} trained on coarse labels "
                 f"(pairs {', '.join(pairings)} merged) collapses on them (coarse NC1 <= "
                 f"{criterion['max_nc1_ratio']:g} x its initial value) while k-means inside each coarse class "
                 f"recovers the fine test labels to >= {criterion['min_fraction']:.0%} of the fine-trained "
                 "network's accuracy, in every seed.",
        "value": value,
        "criterion": criterion.render(),
        "outcome": outcome,
        "tested": f"{architecture} on {datasets}: grid of {grid['Y1_grid_size']}, pairings {', '.join(pairings)}, "
                  f"seeds {list(seeds)}, reference seeds {list(reference_seeds)} ({len(eligible)} eligible grid "
                  "points)",
        "details": {"grid": points.astype(object).to_dict("records"), "grid_facts": grid,
                    "original": {"criterion": criteria[0].render(), "result": original_result},
                    "point": {"runs": table.drop(columns=["eligible"]).astype(object).to_dict("records"),
                              "fraction": [facts.get("Y1_fraction_min"), facts.get("Y1_fraction_max")],
                              "nc1_ratio_max": facts.get("Y1_nc1_ratio_max")},
                    "baselines": {"input_mean": facts["Y1_input_mean"], "init_mean": facts["Y1_init_mean"],
                                  "shuffled_mean": facts["Y1_shuffled_mean"],
                                  "shuffled_seeds": list(shuffled_seeds),
                                  "shuffled_train_acc": facts["Y1_shuffled_train"],
                                  "margin_min": facts["Y1_margin_min"]},
                    "series": dict(series_facts),
                    "null": {"max": facts["Y1_null_max"], "upper_min": facts["Y1_null_upper"]},
                    "thresholds": dict(criterion.thresholds)},
    }


def _judged(table: pd.DataFrame, role: str) -> pd.DataFrame:
    return table[(table["role"] == role) & table["eligible"]]


def y2_facts(table: pd.DataFrame) -> dict[str, Any]:
    """The Y2 numbers the chapter quotes (``Y2_*`` glue keys), over :func:`y2_table`'s eligible rows.

    Passing seeds ("k of n", :func:`y2_outcome`); where separated, the range of the recovered
    accuracy, the raw input's mean, the largest coarse NC1 ratio and the range of the
    fine-structure statistic kept; where not, the largest recovered accuracy and the smallest
    chance tolerance.
    """
    _check_columns(table, ["role", "eligible", "recovered_test", "chance_upper"], "table")
    outcome = y2_outcome(table)
    separated, unseparated = _judged(table, "separated"), _judged(table, "unseparated")
    return {
        "Y2_runs": f"{outcome.passed_runs} of {outcome.eligible_runs}",
        "Y2_separated_accuracy_min": float(separated["recovered_test"].min()),
        "Y2_separated_accuracy_max": float(separated["recovered_test"].max()),
        "Y2_separated_input": float(separated["input_test"].mean()),
        "Y2_nc1_ratio_max": float(separated["nc1_ratio"].max()),
        "Y2_kept_min": float(separated["statistic_kept"].min()),
        "Y2_kept_max": float(separated["statistic_kept"].max()),
        "Y2_unseparated_accuracy_max": float(unseparated["recovered_test"].max()),
        "Y2_chance_upper": float(unseparated["chance_upper"].min()),
    }


def y2_finding(table: pd.DataFrame, facts: Mapping[str, Any], *, criteria: Sequence[Criterion],
               separations: Sequence[float], separated: Sequence[float], unseparated: Sequence[float],
               epochs: Sequence[int], seeds: Sequence[int], arch_kwargs: Mapping[str, Any],
               data: Mapping[str, Any]) -> dict[str, Any]:
    """Y2's record, as :func:`y1_finding`: inconclusive (:func:`y2_stand_in_outcome`), the stand-in's
    numbers in its reason and value; ``facts`` is :func:`y2_facts` of ``table``, ``criteria`` the
    finding's (the last decides, and its thresholds are the stand-in checks')."""
    criterion = criteria[-1]
    longest = max(epochs)
    return {
        "claim": "In the paper's simplified synthetic setting, fine labels are recoverable from coarse-label "
                 "features (the setting could not be read; the chapter's stand-in: a hierarchical Gaussian "
                 f"mixture, fine clusters separated ({list(separated)}) or not ({list(unseparated)}))",
        "value": (f"on our model: separated: recovered {facts['Y2_separated_accuracy_min']:.2f}-"
                  f"{facts['Y2_separated_accuracy_max']:.2f}, statistic kept {facts['Y2_kept_min']:.2f}-"
                  f"{facts['Y2_kept_max']:.2f}; unseparated: max {facts['Y2_unseparated_accuracy_max']:.3f}"
                  if len(_judged(table, "separated")) else "no eligible run"),
        "criterion": criterion.render(),
        "outcome": y2_stand_in_outcome(table, max_nc1_ratio=criterion["max_nc1_ratio"],
                                       min_keep=criterion["min_keep"], min_accuracy=criterion["min_accuracy"]),
        "tested": f"our stand-in: MLP {dict(arch_kwargs)} on gaussian {dict(data)}, fine_separation "
                  f"{list(separations)}, seeds {list(seeds)}, {longest} epochs",
        "details": {"rows": table.astype(object).to_dict("records"),
                    "original": {"criterion": criteria[0].render(),
                                 "result": f"{y2_outcome(table).state}: {y2_outcome(table).reason}"},
                    "thresholds": dict(criterion.thresholds)},
    }
