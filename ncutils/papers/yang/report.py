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

from ncutils.papers.yang.criteria import _check_columns, y1_outcome, y2_outcome

__all__ = [
    "y1_facts",
    "y1_finding",
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


def y1_finding(table: pd.DataFrame, facts: Mapping[str, Any], series_facts: Mapping[str, Any], *,
               architecture: str, pairings: Sequence[str], seeds: Sequence[int],
               reference_seeds: Sequence[int], shuffled_seeds: Sequence[int], min_train_acc: float,
               max_nc1_ratio: float, min_fraction: float) -> dict[str, Any]:
    """Y1's record: claim, value, criterion, outcome (:func:`y1_outcome`), tested and details.

    Parameters
    ----------
    table : DataFrame
        :func:`~ncutils.papers.yang.criteria.y1_table`.
    facts : mapping
        :func:`y1_facts` of ``table``.
    series_facts : mapping
        :func:`~ncutils.papers.yang.recovery.epoch_series_facts` of the series across training.
    architecture, pairings, seeds, reference_seeds, shuffled_seeds
        What was trained (for the texts).
    min_train_acc, max_nc1_ratio, min_fraction : float
        The thresholds of :func:`y1_table`.
    """
    eligible = table[table["eligible"]]
    tested = ", ".join(sorted(set(eligible["dataset"]))) or "no dataset"
    return {
        "claim": f"A {architecture} trained on coarse labels (pairs {', '.join(pairings)} merged) collapses on them "
                 f"(coarse NC1 <= {max_nc1_ratio:g} x its initial value) and k-means inside each coarse class "
                 f"recovers the fine test labels to >= {min_fraction:.0%} of the fine-trained network's accuracy.",
        "value": (f"recovered / fine-trained test accuracy {facts['Y1_fraction_min']:.2f}-"
                  f"{facts['Y1_fraction_max']:.2f}; coarse NC1 last/init <= {facts['Y1_nc1_ratio_max']:.3f}"
                  if len(eligible) else "no eligible run"),
        "criterion": f"per run: coarse NC1 (penultimate, last epoch) <= {max_nc1_ratio:g} x initial and recovered "
                     f"fine test accuracy (true coarse class) >= {min_fraction:g} x fine-trained test accuracy; "
                     f"eligible: >= {min_train_acc:.0%} coarse train accuracy; >= 2/3 of >= 2 eligible runs",
        "outcome": y1_outcome(table),
        "tested": f"{architecture} on {tested}, pairings {', '.join(pairings)}, seeds {list(seeds)} "
                  f"({len(eligible)} eligible runs), reference seeds {list(reference_seeds)}",
        "details": {"runs": table.drop(columns=["eligible"]).astype(object).to_dict("records"),
                    "baselines": {"input_mean": facts["Y1_input_mean"], "init_mean": facts["Y1_init_mean"],
                                  "shuffled_mean": facts["Y1_shuffled_mean"],
                                  "shuffled_seeds": list(shuffled_seeds),
                                  "shuffled_train_acc": facts["Y1_shuffled_train"],
                                  "margins": {name: [float(eligible[f"{name}_margin"].min()),
                                                     float(eligible[f"{name}_margin"].max())]
                                              for name in ("input", "init", "shuffled")},
                                  "margin_min": facts["Y1_margin_min"]},
                    "series": dict(series_facts),
                    "null": {"max": facts["Y1_null_max"], "upper_min": facts["Y1_null_upper"]},
                    "thresholds": {"min_train_acc": min_train_acc, "max_nc1_ratio": max_nc1_ratio,
                                   "min_fraction": min_fraction}},
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


def y2_finding(table: pd.DataFrame, facts: Mapping[str, Any], *, separations: Sequence[float],
               separated: Sequence[float], unseparated: Sequence[float], epochs: Sequence[int],
               seeds: Sequence[int], arch_kwargs: Mapping[str, Any], data: Mapping[str, Any],
               max_nc1_ratio: float, min_keep: float, min_accuracy: float,
               chance_quantile: float) -> dict[str, Any]:
    """Y2's record, as :func:`y1_finding`; ``facts`` is :func:`y2_facts` of ``table``, the rest
    what was trained (for the texts) and the thresholds of :func:`y2_table`."""
    longest = max(epochs)
    return {
        "claim": f"In a hierarchical Gaussian mixture, an MLP trained on the coarse labels collapses them "
                 f"(coarse NC1 >= {1 / max_nc1_ratio:g}x down) while keeping >= {min_keep:g} of its initial "
                 f"fine-structure statistic and recovering >= {min_accuracy:g} fine test accuracy where the fine "
                 f"clusters are separated (fine_separation {list(separated)}), and chance where not "
                 f"({list(unseparated)}).",
        "value": (f"separated: recovered {facts['Y2_separated_accuracy_min']:.2f}-"
                  f"{facts['Y2_separated_accuracy_max']:.2f}, statistic kept {facts['Y2_kept_min']:.2f}-"
                  f"{facts['Y2_kept_max']:.2f}; unseparated: max {facts['Y2_unseparated_accuracy_max']:.3f}"
                  if len(_judged(table, "separated")) else "no eligible run"),
        "criterion": f"per seed at {longest} epochs: separated -> coarse NC1 <= {max_nc1_ratio:g} x initial, "
                     f"statistic >= {min_keep:g} x initial, recovered >= {min_accuracy:g}; unseparated -> "
                     f"recovered <= {chance_quantile:g} quantile of the permutation null; >= 2/3 of >= 2 "
                     "eligible seeds",
        "outcome": y2_outcome(table),
        "tested": f"MLP {dict(arch_kwargs)} on gaussian {dict(data)}, fine_separation {list(separations)}, "
                  f"seeds {list(seeds)}, {longest} epochs",
        "details": {"rows": table.astype(object).to_dict("records"),
                    "thresholds": {"max_nc1_ratio": max_nc1_ratio, "min_keep": min_keep,
                                   "min_accuracy": min_accuracy, "chance_quantile": chance_quantile}},
    }
