"""Yang et al. (2023), Y1-Y2: the pre-registered criteria, pure functions of the recovery tables.

:func:`y1_table` / :func:`y1_outcome` and :func:`y2_table` / :func:`y2_outcome`, with every
threshold an argument, fixed before the results; the runs are combined by
:func:`ncutils.verdicts.combine_runs` (reproduced when at least 2/3 of at least 2 eligible runs
pass, not reproduced at most 1/3, inconclusive otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ncutils import verdicts
from ncutils.papers.yang.configs import FINE, SHUFFLED

__all__ = [
    "y1_outcome",
    "y1_table",
    "y2_outcome",
    "y2_table",
]

# ----------------------------------------------------------------------------- criteria
def _pick(recovery: pd.DataFrame, keys: list[str], source: str, labels: str,
          columns: Mapping[str, str]) -> pd.DataFrame:
    part = recovery[(recovery["source"] == source) & (recovery["labels"] == labels)]
    return part[keys + list(columns)].rename(columns=dict(columns))


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def y1_table(recovery: pd.DataFrame, runs: pd.DataFrame, *, min_train_acc: float,
             max_nc1_ratio: float, min_fraction: float,
             group_cols: Sequence[str] = ("dataset", "lr", "weight_decay")) -> pd.DataFrame:
    """Y1 per coarse-trained run: did collapse happen, and are the fine labels recovered?

    A run is *eligible* when its coarse train accuracy is at least ``min_train_acc``. It
    *passes* when both halves hold: **collapse** — coarse NC1 of the
    penultimate features at the last epoch is at most ``max_nc1_ratio`` times its value at
    initialisation — and **recovery** — the fine test accuracy recovered by clustering (test
    points inside their true coarse class) is at least ``min_fraction`` times the reference:
    the mean test accuracy of the fine-trained runs of the same group (``group_cols``) that
    reach ``min_train_acc``. The baselines (raw input, initialisation, and the network of the
    same group trained on shuffled coarse labels: ``source="shuffled"`` rows, mean over its
    seeds) and the null (random fine labels) are reported with their margins; they are no
    condition (raw k-means can be strong without saying anything about survival).

    Parameters
    ----------
    recovery : DataFrame
        Rows of :func:`measure` with the run's ``group_cols``, ``pairing`` and ``seed``.
    runs : DataFrame
        One row per trained run (:attr:`ncutils.grid.GridResult.runs`): ``group_cols``,
        ``pairing`` (``"fine"`` for references, ``"shuffled"`` for the shuffled-label
        baselines), ``seed``, ``train_acc``, ``test_acc``.
    min_train_acc, max_nc1_ratio, min_fraction : float
        The pre-registered thresholds.
    group_cols : sequence of str

    Returns
    -------
    DataFrame
        One row per coarse run: keys, ``train_acc``, ``eligible``, ``nc1_init``,
        ``nc1_final``, ``nc1_ratio``, ``collapsed``, ``recovered_test``,
        ``recovered_test_predicted``, ``recovered_train``, ``reference``, ``fraction``,
        ``recovered``, ``passed``, ``input_test``, ``init_test``, ``shuffled_test`` (NaN
        without a shuffled-label network), ``shuffled_train_acc`` (its train accuracy on the
        shuffled labels), ``input_margin``, ``init_margin``, ``shuffled_margin`` (recovered
        minus each baseline), ``best_baseline`` (the largest of the three), ``baseline_margin``,
        ``null_test``, ``null_upper``, ``null_at_chance``.

    Example
    -------
    >>> rec = pd.DataFrame({"dataset": "d", "pairing": "mod5", "seed": 0,
    ...     "source": ["trained", "init", "input", "trained"],
    ...     "labels": ["fine", "fine", "fine", "random"], "test_accuracy": [0.9, 0.8, 0.85, 0.52],
    ...     "train_accuracy": [0.9, 0.8, 0.85, 0.53], "test_accuracy_predicted": 0.88,
    ...     "coarse_nc1": [0.05, 1.0, 1.2, 0.05], "chance_test_upper": 0.56})
    >>> runs = pd.DataFrame({"dataset": "d", "pairing": ["mod5", "fine"], "seed": 0,
    ...                      "train_acc": 1.0, "test_acc": [0.97, 0.95]})
    >>> row = y1_table(rec, runs, min_train_acc=0.99, max_nc1_ratio=0.1, min_fraction=0.9,
    ...                group_cols=["dataset"]).iloc[0]
    >>> bool(row.passed), round(float(row.fraction), 3), round(float(row.baseline_margin), 2)
    (True, 0.947, 0.05)
    """
    group_cols = list(group_cols)
    keys = group_cols + ["pairing", "seed"]
    _check_columns(recovery, keys + ["source", "labels", "test_accuracy", "coarse_nc1",
                                     "train_accuracy", "test_accuracy_predicted",
                                     "chance_test_upper"], "recovery")
    _check_columns(runs, keys + ["train_acc", "test_acc"], "runs")
    coarse_runs = runs[~runs["pairing"].isin([FINE, SHUFFLED])][keys + ["train_acc"]]
    table = coarse_runs.merge(
        _pick(recovery, keys, "trained", "fine", {"coarse_nc1": "nc1_final",
                                                  "test_accuracy": "recovered_test",
                                                  "test_accuracy_predicted": "recovered_test_predicted",
                                                  "train_accuracy": "recovered_train"}), on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "init", "fine", {"coarse_nc1": "nc1_init",
                                                               "test_accuracy": "init_test"}),
                        on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "input", "fine", {"test_accuracy": "input_test"}),
                        on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "trained", "random", {"test_accuracy": "null_test",
                                                                    "chance_test_upper": "null_upper"}),
                        on=keys, how="left")
    shuffled = recovery[(recovery["source"] == SHUFFLED) & (recovery["labels"] == "fine")]
    table = table.merge(shuffled.groupby(group_cols + ["pairing"], as_index=False)["test_accuracy"].mean()
                        .rename(columns={"test_accuracy": "shuffled_test"}), on=group_cols + ["pairing"],
                        how="left")
    shuffled_runs = runs[runs["pairing"] == SHUFFLED].groupby(group_cols, as_index=False)["train_acc"].mean()
    table = table.merge(shuffled_runs.rename(columns={"train_acc": "shuffled_train_acc"}), on=group_cols,
                        how="left")
    references = runs[(runs["pairing"] == FINE) & (runs["train_acc"] >= min_train_acc)]
    reference = references.groupby(group_cols, as_index=False)["test_acc"].mean().rename(
        columns={"test_acc": "reference"})
    table = table.merge(reference, on=group_cols, how="left")
    table["eligible"] = table["train_acc"] >= min_train_acc
    table["nc1_ratio"] = table["nc1_final"] / table["nc1_init"]
    table["collapsed"] = table["nc1_ratio"] <= max_nc1_ratio
    table["fraction"] = table["recovered_test"] / table["reference"]
    table["recovered"] = table["fraction"] >= min_fraction
    table["passed"] = table["collapsed"] & table["recovered"]
    for baseline in ("input", "init", "shuffled"):
        table[f"{baseline}_margin"] = table["recovered_test"] - table[f"{baseline}_test"]
    table["best_baseline"] = table[["input_test", "init_test", "shuffled_test"]].max(axis=1)
    table["baseline_margin"] = table["recovered_test"] - table["best_baseline"]
    table["null_at_chance"] = table["null_test"] <= table["null_upper"]
    order = keys + ["train_acc", "eligible", "nc1_init", "nc1_final", "nc1_ratio", "collapsed",
                    "recovered_test", "recovered_test_predicted", "recovered_train", "reference",
                    "fraction", "recovered", "passed", "input_test", "init_test", "shuffled_test",
                    "shuffled_train_acc", "input_margin", "init_margin", "shuffled_margin",
                    "best_baseline", "baseline_margin", "null_test", "null_upper", "null_at_chance"]
    return table[order]


def y1_outcome(table: pd.DataFrame) -> verdicts.Outcome:
    """Combine :func:`y1_table`'s eligible runs (reproduced at >= 2/3 of >= 2); inconclusive without a reference.

    Example
    -------
    >>> t = pd.DataFrame({"eligible": [True, True, False], "passed": [True, True, False],
    ...                   "reference": [0.9, 0.9, 0.9]})
    >>> y1_outcome(t).state
    'reproduced'
    """
    _check_columns(table, ["eligible", "passed", "reference"], "table")
    eligible = table[table["eligible"]]
    if not eligible.empty and eligible["reference"].isna().all():
        return verdicts.inconclusive("no fine-label reference network reached the train accuracy "
                                     "required", passed_runs=0, eligible_runs=len(eligible))
    eligible = eligible[eligible["reference"].notna()]
    return verdicts.combine_runs([bool(flag) for flag in eligible["passed"]])


def y2_table(recovery: pd.DataFrame, runs: pd.DataFrame, *, separated: Sequence[float],
             unseparated: Sequence[float], min_train_acc: float, max_nc1_ratio: float,
             min_keep: float, min_accuracy: float) -> pd.DataFrame:
    """Y2 per (fine separation, seed) at the longest training: the chapter's pre-registered checks.

    Where the fine clusters are ``separated`` in input space: coarse NC1 falls at least
    ``1 / max_nc1_ratio`` times from initialisation, the fine-structure statistic keeps at
    least ``min_keep`` of its value at initialisation, and the recovered fine test accuracy is
    at least ``min_accuracy``. Where they are ``unseparated``: the recovered accuracy stays at
    chance (at most the upper permutation quantile). Other separations are ``shown`` only (the
    transition). A row is eligible when its coarse train accuracy is at least
    ``min_train_acc``.

    Parameters
    ----------
    recovery : DataFrame
        Rows of :func:`measure` with ``fine_separation``, ``epochs`` and ``seed``.
    runs : DataFrame
        ``fine_separation``, ``epochs``, ``seed``, ``train_acc``.
    separated, unseparated : sequence of float
        Values of ``fine_separation`` (disjoint).
    min_train_acc, max_nc1_ratio, min_keep, min_accuracy : float

    Returns
    -------
    DataFrame
        One row per (``fine_separation``, ``seed``): ``role``, ``epochs``, ``train_acc``,
        ``eligible``, ``nc1_init``, ``nc1_final``, ``nc1_ratio``, ``statistic_init``,
        ``statistic_final``, ``statistic_kept``, ``recovered_test``, ``chance_upper``,
        ``input_test``, ``passed`` (NaN-free bool; ``True`` for shown rows).

    Example
    -------
    >>> rec = pd.DataFrame({"fine_separation": [4.0, 4.0, 0.0, 0.0], "epochs": 50, "seed": 0,
    ...     "source": ["trained", "init"] * 2, "labels": "fine", "coarse_nc1": [0.05, 1.0, 0.05, 1.0],
    ...     "fine_statistic": [2.0, 3.0, 0.01, 0.01], "test_accuracy": [0.97, 0.9, 0.51, 0.5],
    ...     "chance_test_upper": [0.56, 0.56, 0.56, 0.56]})
    >>> runs = pd.DataFrame({"fine_separation": [4.0, 0.0], "epochs": 50, "seed": 0, "train_acc": 1.0})
    >>> y2_table(rec, runs, separated=[4.0], unseparated=[0.0], min_train_acc=0.99,
    ...          max_nc1_ratio=0.1, min_keep=0.5, min_accuracy=0.9)["passed"].tolist()
    [True, True]
    """
    separated, unseparated = [float(s) for s in separated], [float(s) for s in unseparated]
    if set(separated) & set(unseparated):
        raise ValueError(f"separated and unseparated overlap: {sorted(set(separated) & set(unseparated))}")
    if not separated or not unseparated:
        raise ValueError("Y2 needs at least one separated and one unseparated setting")
    keys = ["fine_separation", "epochs", "seed"]
    _check_columns(recovery, keys + ["source", "labels", "coarse_nc1", "fine_statistic",
                                     "test_accuracy", "chance_test_upper"], "recovery")
    _check_columns(runs, keys + ["train_acc"], "runs")
    longest = runs.groupby(["fine_separation", "seed"], as_index=False)["epochs"].max()
    table = longest.merge(runs[keys + ["train_acc"]], on=keys)
    table = table.merge(_pick(recovery, keys, "trained", "fine", {
        "coarse_nc1": "nc1_final", "fine_statistic": "statistic_final",
        "test_accuracy": "recovered_test", "chance_test_upper": "chance_upper"}), on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "init", "fine", {
        "coarse_nc1": "nc1_init", "fine_statistic": "statistic_init"}), on=keys, how="left")
    if (recovery["source"] == "input").any():
        table = table.merge(_pick(recovery, keys, "input", "fine", {"test_accuracy": "input_test"}),
                            on=keys, how="left")
    else:
        table["input_test"] = np.nan
    table["role"] = np.where(table["fine_separation"].isin(separated), "separated",
                             np.where(table["fine_separation"].isin(unseparated), "unseparated", "shown"))
    table["eligible"] = table["train_acc"] >= min_train_acc
    table["nc1_ratio"] = table["nc1_final"] / table["nc1_init"]
    table["statistic_kept"] = table["statistic_final"] / table["statistic_init"]
    sep_ok = ((table["nc1_ratio"] <= max_nc1_ratio) & (table["statistic_kept"] >= min_keep)
              & (table["recovered_test"] >= min_accuracy))
    chance_ok = table["recovered_test"] <= table["chance_upper"]
    table["passed"] = np.where(table["role"] == "separated", sep_ok,
                               np.where(table["role"] == "unseparated", chance_ok, True)).astype(bool)
    order = ["fine_separation", "seed", "role", "epochs", "train_acc", "eligible", "nc1_init",
             "nc1_final", "nc1_ratio", "statistic_init", "statistic_final", "statistic_kept",
             "recovered_test", "chance_upper", "input_test", "passed"]
    return table[order].sort_values(["fine_separation", "seed"]).reset_index(drop=True)


def y2_outcome(table: pd.DataFrame) -> verdicts.Outcome:
    """One run of Y2 is one seed: it passes when every judged setting passes (runs combined at >= 2/3 of >= 2).

    A seed is eligible when every judged (separated or unseparated) setting is eligible.

    Example
    -------
    >>> t = pd.DataFrame({"seed": [0, 0, 1, 1], "role": ["separated", "unseparated"] * 2,
    ...                   "eligible": True, "passed": [True, True, False, True]})
    >>> y2_outcome(t).reason
    'mixed: 1 of 2'
    """
    _check_columns(table, ["seed", "role", "eligible", "passed"], "table")
    judged = table[table["role"] != "shown"]
    per_seed = judged.groupby("seed").agg(eligible=("eligible", "all"), passed=("passed", "all"))
    return verdicts.combine_runs([bool(flag) for flag in per_seed.loc[per_seed["eligible"], "passed"]])
