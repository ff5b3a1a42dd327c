"""Garrod & Keating (2024): G3 as amended on 2026-12-06 (eligible solutions, a convergence rule a kinked loss can meet) and the reasons."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ncutils import verdicts
from ncutils.theory import ufm
from ncutils.papers.garrod.criteria import g3_unequal_outliers
from ncutils.papers.garrod.solutions import deep_nc_check, kink_check, select_g3_solutions

__all__ = ["fitted_classes", "g1_reason", "g2_reason", "g3_eligible_verdict", "loss_convergence", "outliers_above_bulk", "solution_table"]


# ----------------------------------------------------------------------------- G3 as amended on 2026-12-06
def fitted_classes(state: ufm.UFMState, config: ufm.UFMConfig) -> dict[str, Any]:
    """How many of the ``K`` classes a UFM solution fits: train accuracy of the output's argmax.

    Returns
    -------
    dict
        ``train_accuracy`` (share of the ``K n`` columns whose output's argmax is their class)
        and ``classes_fitted`` (classes all of whose columns are classified right).

    Examples
    --------
    >>> config = ufm.UFMConfig(width=6, per_class=2, depth=3)
    >>> fitted_classes(ufm.dnc_state(config), config)
    {'train_accuracy': 1.0, 'classes_fitted': 3}
    """
    labels = ufm.targets(config.num_classes, config.per_class)[1]
    right = ufm.forward(state.detach(), config.activation)[-1].argmax(dim=0) == labels
    fitted = sum(bool(right[labels == c].all()) for c in range(config.num_classes))
    return {"train_accuracy": float(right.double().mean()), "classes_fitted": int(fitted)}

def loss_convergence(history: pd.DataFrame, final_loss: float, *, window: float) -> float:
    """Relative change of the loss over the last ``window`` of a run's steps, the polish included.

    From the first logged gradient-descent step at or after ``(1 - window)`` of the steps to
    the final loss (after the L-BFGS polish, if any): ``|L_start - L_final| / |L_final|``. Unlike
    the gradient norm, it can vanish at a minimiser where the ReLU's kink makes the loss
    non-differentiable.

    Examples
    --------
    >>> history = pd.DataFrame({"step": [0, 80, 90, 100], "phase": ["gd"] * 4, "loss": [1.0, 0.5, 0.4, 0.4]})
    >>> loss_convergence(history, 0.4, window=0.1)
    0.0
    """
    if not 0 < window <= 1:
        raise ValueError(f"window must lie in (0, 1], got {window!r}")
    descent = history[history["phase"] == "gd"]
    start = descent[descent["step"] >= (1 - window) * descent["step"].max()].iloc[0]
    return float(abs(start["loss"] - final_loss) / abs(final_loss))

def outliers_above_bulk(eigenvalues: np.ndarray, bulk: float, *, rtol: float = 0.01) -> int:
    """How many eigenvalues stand above the bulk ``bulk`` (``lambda_W``) by more than ``rtol`` of it.

    Examples
    --------
    >>> outliers_above_bulk(np.array([0.17, 0.0101, 0.01, 0.01]), 0.01)
    1
    """
    return int((np.asarray(eigenvalues) > bulk * (1 + rtol)).sum())

def solution_table(runs_by_seed: Mapping[int, Any], *, num_classes: int, depth: int, min_separation: float,
                   min_ratio: float, window: float) -> pd.DataFrame:
    """One row per ReLU solution: what the G3 criteria of 2026-12-01 and 2026-12-06 read.

    Columns: ``loss``, ``grad_norm``, ``loss_change`` (:func:`loss_convergence`),
    ``train_accuracy``, ``classes_fitted``, ``weight_ranks``, ``min_rank``, ``is_deep_nc``,
    ``kink_fraction``, ``outliers`` (eigenvalues above the bulk ``lambda_W``), ``separation``,
    ``outlier_ratio`` and ``passed`` (:func:`g3_unequal_outliers`); the index is ``"seed s"``.
    """
    rows = {}
    for seed, run in runs_by_seed.items():
        config = run.config
        kind = deep_nc_check(ufm.layer_metrics(run.state, config), ufm.weight_gram_spectra(run.state, config),
                             num_classes=num_classes, depth=depth, max_nc1=1e-3, max_frame_error=0.05)
        criterion = g3_unequal_outliers(run.final, min_separation=min_separation, min_ratio=min_ratio)
        rows[f"seed {seed}"] = {
            "loss": run.final_loss, "grad_norm": run.final_grad_norm,
            "loss_change": loss_convergence(run.history, run.final_loss, window=window),
            **fitted_classes(run.state, config), "weight_ranks": str(kind["weight_ranks"]),
            "min_rank": min(kind["weight_ranks"]), "is_deep_nc": kind["is_deep_nc"],
            "kink_fraction": kink_check(ufm.kink_fractions(run.state, config))["largest_kink_fraction"],
            "outliers": outliers_above_bulk(run.final.eigenvalues, config.lambda_w),
            "separation": criterion["separation"], "outlier_ratio": criterion["outlier_ratio"],
            "passed": criterion["passed"], "GD steps": run.steps_run, "L-BFGS iterations": run.polish_iterations,
        }
    return pd.DataFrame.from_dict(rows, orient="index")

def _solution_text(label: str, row: Any, num_classes: int, max_change: float) -> str:
    fits = ("fits all classes" if row.classes_fitted == num_classes
            else f"fits {row.classes_fitted} of {num_classes} classes")
    moved = (f"its loss still moved {row.loss_change:.1e}" if row.loss_change > max_change
             else f"its loss settled (change {row.loss_change:.0e})")
    return f"{label} (loss {row.loss:.3g}) {fits} with weight ranks {row.weight_ranks} and {moved}"

def g3_eligible_verdict(solutions: pd.DataFrame, *, num_classes: int, min_train_acc: float,
                        max_rel_loss_change: float, window: float, min_separation: float = 10.0,
                        min_ratio: float = 1.5) -> dict[str, Any]:
    """G3 as amended on 2026-12-06: the criterion on eligible, converged ReLU solutions only.

    A solution is **eligible** when it fits all ``K`` classes: train accuracy at least
    ``min_train_acc`` and every ``W_l`` of numerical rank at least ``K`` (a solution that
    collapses the classes onto fewer directions is not the configuration the claim is about).
    It is **converged** when its loss changed by at most ``max_rel_loss_change`` (relative)
    over the last ``window`` of its steps (:func:`loss_convergence`): a rule a minimiser at the
    ReLU's kink can meet, where a gradient norm bound cannot. The criterion (column ``passed``)
    is then judged as :func:`g3_verdict` does, on the lowest-loss eligible converged solution
    and the lowest-loss deep-NC one; with none, the verdict is **inconclusive** and its reason
    says, solution by solution, what each lacked.

    Parameters
    ----------
    solutions : DataFrame
        :func:`solution_table` (``loss``, ``grad_norm``, ``loss_change``, ``train_accuracy``,
        ``classes_fitted``, ``min_rank``, ``weight_ranks``, ``is_deep_nc``, ``passed``).
    num_classes : int
        ``K``.
    min_train_acc, max_rel_loss_change, window : float
        The chapter: 1, 1e-10 and 0.1.
    min_separation, min_ratio : float
        The thresholds ``passed`` was judged by, quoted in the reason (the chapter: 10 and 1.5).

    Returns
    -------
    dict
        As :func:`g3_verdict`: ``outcome``, ``tested``, ``table`` (with ``eligible``,
        ``loss_converged``, ``converged`` and ``tested`` columns).

    Examples
    --------
    >>> table = pd.DataFrame({"loss": [0.15, 0.39], "grad_norm": [3e-2, 1e-16], "loss_change": [5e-4, 0.0],
    ...                       "train_accuracy": [1.0, 1 / 3], "classes_fitted": [3, 1], "min_rank": [2, 1],
    ...                       "weight_ranks": ["[2, 3]", "[1, 1]"], "is_deep_nc": [False, False],
    ...                       "passed": [False, False]}, index=["seed 0", "seed 1"])
    >>> result = g3_eligible_verdict(table, num_classes=3, min_train_acc=1.0, max_rel_loss_change=1e-10, window=0.1)
    >>> result["outcome"].state, result["tested"]
    ('inconclusive', [])
    """
    table = solutions.copy()
    table["eligible"] = (table["train_accuracy"] >= min_train_acc) & (table["min_rank"] >= num_classes)
    table["loss_converged"] = table["loss_change"] <= max_rel_loss_change
    table["eligible_converged"] = table["eligible"] & table["loss_converged"]
    choice = select_g3_solutions(table, max_grad_norm=0.0, converged="eligible_converged")
    if choice["lowest_loss"] is None:
        reason = (f"no ReLU solution both fits all {num_classes} classes with weights of rank >= {num_classes} and has "
                  f"a loss that moved by at most {max_rel_loss_change:g} over the last {window:.0%} of its steps: "
                  + "; ".join(_solution_text(label, row, num_classes, max_rel_loss_change)
                              for label, row in zip(table.index, table.itertuples())))
        return {**choice, "outcome": verdicts.inconclusive(reason), "tested": []}
    tested = list(dict.fromkeys(label for label in (choice["lowest_loss"], choice["deep_nc"]) if label is not None))
    held = [label for label in tested if bool(choice["table"].loc[label, "passed"])]
    failed = [label for label in tested if label not in held]
    numbers = "; ".join(f"{label}: separation {choice['table'].loc[label, 'separation']:.3g} (>= {min_separation:g} asked), "
                        f"outlier ratio {choice['table'].loc[label, 'outlier_ratio']:.3g} (>= {min_ratio:g} asked)" for label in tested)
    if not failed:
        state = verdicts.REPRODUCED
    elif not held:
        state = verdicts.NOT_REPRODUCED
    else:
        state = verdicts.INCONCLUSIVE
    return {**choice, "outcome": verdicts.Outcome(state, f"tested on the eligible converged solutions: {numbers}"),
            "tested": tested}

def g1_reason(result: Mapping[str, Any], *, min_separation: float, max_ratio: float, min_alignment: float,
              num_outliers: int) -> str:
    """G1's reason in one sentence, from :func:`g1_equal_outliers`'s numbers and thresholds.

    Examples
    --------
    >>> g1_reason({"separation": 17.3, "outlier_ratio": 1.0, "alignment_min": 0.99999}, min_separation=10,
    ...           max_ratio=1.05, min_alignment=0.95, num_outliers=9)
    'the 9 largest eigenvalues stand 17.3x above the next (10x asked), their max/min ratio is 1.000000 (at most 1.05 asked) and the smallest eigenvector alignment is 1.0000 (at least 0.95 asked)'
    """
    return (f"the {num_outliers} largest eigenvalues stand {result['separation']:.3g}x above the next "
            f"({min_separation:g}x asked), their max/min ratio is {result['outlier_ratio']:.6f} (at most {max_ratio:g} "
            f"asked) and the smallest eigenvector alignment is {result['alignment_min']:.4f} (at least "
            f"{min_alignment:g} asked)")

def g2_reason(result: Mapping[str, Any], *, max_diagonal_deviation: float, max_off_diagonal: float) -> str:
    """G2's reason in one sentence, from :func:`g2_gradient_alignment`'s numbers and thresholds.

    Examples
    --------
    >>> g2_reason({"diagonal_deviation": 1.4e-15, "off_diagonal_max": 2e-31}, max_diagonal_deviation=0.05,
    ...           max_off_diagonal=0.05)
    'the squared gradient coefficients deviate from 1/K by at most 1.4e-15 on the diagonal (0.05 allowed) and reach at most 2.0e-31 off it (0.05 allowed)'
    """
    return (f"the squared gradient coefficients deviate from 1/K by at most {result['diagonal_deviation']:.1e} on the "
            f"diagonal ({max_diagonal_deviation:g} allowed) and reach at most {result['off_diagonal_max']:.1e} off it "
            f"({max_off_diagonal:g} allowed)")
