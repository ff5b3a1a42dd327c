"""Rangamani et al. (2023): the texts and records of the chapter's verdicts, and its ladder of training lengths."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ncutils import verdicts
from ncutils.chapter import Finding
from ncutils.papers.rangamani.criteria import verdict
from ncutils.papers.rangamani.judging import ChapterCriteria, RUN_COLUMNS, _run_name, of_run

__all__ = ["ladder_facts", "ladder_table", "r1_finding", "r2_finding", "verdict_facts"]

# --------------------------------------------------------------------------- the verdicts' texts
def _run_names(frame: pd.DataFrame) -> str:
    return ", ".join(_run_name(r) for r in frame.itertuples()) or "no run"


def verdict_facts(per_run: pd.DataFrame) -> dict[str, str]:
    """The glue texts of the chapter's verdict prose, from :attr:`ChapterCriteria.per_run`.

    ``R1_nulls`` and ``R1_weighted`` (per eligible run: the untrained network's R1 numbers,
    R1 with Rangamani's weighting), ``R_weighting_gap`` (largest gap between the weightings,
    every run), ``R_nc_layers`` (every run's NC layer), ``R2_counted``, ``R2_excluded`` and
    ``R2_nulls`` (per eligible run: the top layers counted, those left out, and whether the
    untrained and random-matrix nulls pass).
    """
    eligible = per_run[per_run["eligible"]]
    return {
        "R1_nulls": ", ".join(f"Spearman {r.null_R1_spearman:.2f}, fall {r.null_R1_factor:.3g}x"
                              for r in eligible.itertuples()) or "none",
        "R1_weighted": ", ".join(
            f"Spearman {r.R1w_spearman:.2f}, fall {r.R1w_factor:.3g}x ({'pass' if r.R1w_passed else 'fail'})"
            for r in eligible.itertuples()) or "none",
        "R_weighting_gap": f"{per_run['weighting_gap'].max():.2g}",
        "R_nc_layers": ", ".join(f"{_run_name(r)}: {r.nc_layer}" for r in per_run.itertuples()),
        "R2_counted": "; ".join(f"{_run_name(r)}: {r.R2_counted}" for r in eligible.itertuples()) or "none",
        "R2_excluded": "; ".join(f"{_run_name(r)}: {r.R2_excluded}" for r in eligible.itertuples()) or "none",
        "R2_nulls": ", ".join(f"untrained {r.null_R2_untrained}, random {r.null_R2_random}"
                              for r in eligible.itertuples()) or "none",
    }


def _span(values: Sequence[float], fmt: str = "{:+.2f}") -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)} to {fmt.format(high)}"


def _with_reason(outcome: verdicts.Outcome, sentence: str) -> verdicts.Outcome:
    return dataclasses.replace(outcome, reason=f"{outcome.reason}; {sentence}" if outcome.reason else sentence)


def r1_finding(per_run: pd.DataFrame, finding: Finding, *, excluded: str) -> dict[str, Any]:
    """R1's amendment and record from :attr:`ChapterCriteria.per_run` (the verdict's length).

    ``finding.criteria[0]`` is the criterion first registered (depth trend and a fall of
    ``min_factor`` at the last hidden layer); ``finding.criterion`` the amendment of 2026-12-06
    (the depth trend of the trained network, which the untrained one must fail; the fall
    reported beside). ``excluded`` names the runs left out (:func:`training_facts`).

    Returns
    -------
    dict
        ``amendment``: the arguments of :func:`ncutils.book.findings.amendment` but the id
        (``original_result`` computed by the first criterion on the same runs); ``record``:
        those of :func:`ncutils.book.findings.record` but the id and the parameters (the
        outcome's reason a sentence computed from the numbers).
    """
    original, amended = finding.criteria[0], finding.criterion
    eligible = per_run[per_run["eligible"]]
    names = _run_names(eligible)
    falls = ", ".join(f"{v:.3g}x" for v in eligible["R1_factor"])
    first = verdict(list(eligible["R1_passed"]), reason_none="no eligible run")
    original_result = (f"{first.state} ({first.reason}): Spearman {_span(eligible['R1_spearman'])}, fall at the "
                       f"last hidden layer {falls} (asks >= {original['min_factor']:g}x)") if len(eligible) else \
        f"{first.state} ({first.reason})"
    if len(eligible):
        value = (f"{int(eligible['R1a_passed'].sum())}/{len(eligible)} runs pass; Spearman "
                 + ", ".join(f"{v:.2f}" for v in eligible["R1a_spearman"]) + "; untrained "
                 + ", ".join(f"{v:+.2f}" for v in eligible["R1a_untrained_spearman"])
                 + f"; fall over training at the last hidden layer {falls} (reported, not judged)")
        sentence = (f"Spearman {_span(eligible['R1a_spearman'])} at the last epoch (the criterion asks <= "
                    f"{amended['max_spearman']}), the untrained networks {_span(eligible['R1a_untrained_spearman'])}; "
                    f"the relative trace at the last hidden layer falls {_span(eligible['R1_factor'], '{:.3g}x')} "
                    "over training")
    else:
        value, sentence = "no eligible run", "no run reached the train accuracy asked"
    outcome = _with_reason(verdict(list(eligible["R1a_passed"]), reason_none="no eligible run"), sentence)
    return {
        "amendment": amended.amending(original, original_result),
        "record": {
            "claim": "As we move deeper into a trained network, the within-class covariance decreases relative to "
                     f"the between-class covariance (tested on {names}).",
            "value": value, "criterion": amended.render(), "outcome": outcome,
            "tested": f"{names} (eligible runs: train accuracy >= {amended['min_train_acc']:.0%})",
            "details": {"runs": per_run[["architecture", "dataset", "seed", "epochs", "R1a_spearman",
                                         "R1a_untrained_spearman", "R1a_passed", "R1_spearman", "R1_factor",
                                         "R1_passed", "R1w_spearman", "R1w_factor", "nc_layer"]].to_dict("records"),
                        "excluded": excluded, "original_result": original_result},
        },
    }


def r2_finding(per_run: pd.DataFrame, top_layers: pd.DataFrame, finding: Finding) -> dict[str, Any]:
    """R2's amendment and record, as :func:`r1_finding`: the first criterion on every counted top
    layer; the amendment of 2026-12-06 leaves out scale-invariant layers and asks each counted
    layer to be stationary, a run that is not being "not converged" (not evaluable: inconclusive,
    not a failure). ``top_layers`` from :attr:`ChapterCriteria.top_layers`."""
    original, amended = finding.criteria[0], finding.criterion
    eligible = per_run[per_run["eligible"]]
    first_runs = eligible[eligible["R2_passed"].notna()]
    first = verdict(list(eligible["R2_passed"]), reason_none="no eligible run with a top layer that counts")
    original_result = (f"{first.state} ({first.reason}): min alignment "
                       + ", ".join(f"{v:.3f}" for v in first_runs["R2_min_alignment"])
                       + f" (asks >= {original['min_alignment']})") if len(first_runs) else \
        f"{first.state} ({first.reason})"
    judged = eligible[eligible["R2a_status"] != "no counted layer"]
    value = "; ".join(f"{_run_name(r)}: {r.R2a_counted} alignment {r.R2a_min_alignment:.3f}, stationarity "
                      f"{r.R2a_stationarity:.3g} ({r.R2a_status})" for r in judged.itertuples()) or "no counted layer"
    unconverged = judged[judged["R2a_status"] == "not converged"]
    if len(judged) == 0:
        sentence = "no eligible run has a top layer that counts"
    else:
        sentence = (f"stationarity {_span(judged['R2a_stationarity'], '{:.3g}')} in the counted layers (the criterion "
                    f"asks <= {amended['max_stationarity']}; {len(unconverged)} of {len(judged)} runs not converged), "
                    f"alignment {_span(judged['R2a_min_alignment'], '{:.2f}')} (asks >= {amended['min_alignment']})")
    outcome = _with_reason(verdict(list(eligible["R2a_passed"]),
                                   reason_none="not converged: no eligible run is stationary in its counted layers"
                                   if len(unconverged) else "no eligible run with a top layer that counts"),
                           sentence)
    return {
        "amendment": amended.amending(original, original_result),
        "record": {
            "claim": "In the top layers the span of the class means aligns with the top singular vectors of the "
                     f"layer's weight (tested on {_run_names(judged)}).",
            "value": value, "criterion": amended.render(), "outcome": outcome,
            "tested": f"{_run_names(judged)} (eligible runs with a counted top layer)",
            "details": {"top_layers": top_layers.to_dict("records"),
                        "runs": per_run[["architecture", "dataset", "seed", "epochs", "R2a_counted", "R2a_excluded",
                                         "R2a_min_alignment", "R2a_stationarity", "R2a_status", "R2_passed",
                                         "null_R2_untrained", "null_R2_random"]].to_dict("records"),
                        "original_result": original_result},
        },
    }


def ladder_table(judged: Mapping[int, ChapterCriteria], runs: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """R1's and R2's numbers at every training length the chapter runs, one row per run and length.

    Parameters
    ----------
    judged : mapping
        Epochs -> :func:`judge_runs` of the runs of that length.
    runs : mapping
        Epochs -> :func:`runs_table` of the same runs.

    Returns
    -------
    DataFrame
        ``epochs``, :data:`RUN_COLUMNS`, ``train_acc``, ``spearman`` (R1 at the last epoch),
        ``untrained_spearman``, ``fall`` (at the last hidden layer), ``classifier_alignment`` (at
        rank C, last epoch; ``classifier_init`` at epoch 0) and ``classifier_stationarity`` of
        the classifier's input (the last probe point), ``R2_status`` (amended R2).
    """
    rows = []
    for epochs in sorted(judged):
        criteria, table = judged[epochs], runs[epochs]
        for row in criteria.per_run.itertuples():
            key = tuple(getattr(row, column) for column in RUN_COLUMNS)
            aligned = of_run(criteria.alignments, key)
            aligned = aligned[aligned["rank"] == aligned["rank"].min()] if "rank" in aligned else aligned
            last_point = aligned.loc[aligned["layer"].idxmax(), "name"] if len(aligned) else None
            at = {epoch: aligned[(aligned["name"] == last_point) & (aligned["epoch"] == epoch)]["alignment"]
                  for epoch in (0, row.epochs)}
            measured = of_run(criteria.stationarity, key) if len(criteria.stationarity) else criteria.stationarity
            ratio = (measured.loc[measured["name"] == last_point, "ratio"] if len(measured)
                     else pd.Series([], dtype=float))
            rows.append({"epochs": epochs, **dict(zip(RUN_COLUMNS, key)),
                         "train_acc": float(of_run(table, key)["train_acc"].iloc[0]),
                         "spearman": row.R1a_spearman, "untrained_spearman": row.R1a_untrained_spearman,
                         "fall": row.R1_factor,
                         "classifier_alignment": float(at[row.epochs].iloc[0]) if len(at[row.epochs]) else math.nan,
                         "classifier_init": float(at[0].iloc[0]) if len(at[0]) else math.nan,
                         "classifier_stationarity": float(ratio.iloc[0]) if len(ratio) else math.nan,
                         "R2_status": row.R2a_status})
    return pd.DataFrame(rows)


def ladder_facts(ladder: pd.DataFrame) -> dict[str, str]:
    """``R_ladder``: per architecture and training length, the fall at the last hidden layer,
    the classifier's alignment and its stationarity (every seed), as one sentence for the verdict."""
    parts = []
    for (architecture, epochs), group in ladder.groupby(["architecture", "epochs"], sort=False):
        parts.append(f"{architecture} at {epochs} epochs: fall " + ", ".join(f"{v:.3g}x" for v in group["fall"])
                     + "; classifier alignment " + ", ".join(f"{v:.2f}" for v in group["classifier_alignment"])
                     + " (init " + ", ".join(f"{v:.2f}" for v in group["classifier_init"]) + "), stationarity "
                     + ", ".join(f"{v:.3g}" for v in group["classifier_stationarity"]))
    return {"R_ladder": "; ".join(parts) or "none"}
