"""Garrod & Keating (2024): which solution a ReLU UFM run reached (deep NC, kinks) and which the first G3 tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ncutils import verdicts

__all__ = ["deep_nc_check", "g3_verdict", "kink_check", "select_g3_solutions"]


# ----------------------------------------------------------------------------- which solution
def deep_nc_check(
    metrics: pd.DataFrame, grams: pd.DataFrame, *, num_classes: int, depth: int,
    max_nc1: float = 1e-3, max_frame_error: float = 0.05,
) -> dict[str, Any]:
    """Did a run reach deep NC? Collapsed hidden features, orthogonal class means, rank-``K`` weights.

    Deep NC needs, at every hidden layer ``h^(2) .. h^(L)``, ``NC1 < max_nc1`` and an
    orthogonal-frame error of the un-centred class means below ``max_frame_error``, and every
    ``W_l`` of numerical rank ``K``.

    Parameters
    ----------
    metrics : DataFrame
        :func:`ncutils.theory.ufm.layer_metrics` of the run (``layer``, ``nc1``,
        ``orthogonal_frame_error``).
    grams : DataFrame
        :func:`ncutils.theory.ufm.weight_gram_spectra` of the run (``rank``).
    num_classes, depth : int
        ``K`` and ``L``.
    max_nc1, max_frame_error : float
        The chapter's tolerances (1e-3 and 0.05).

    Returns
    -------
    dict
        ``is_deep_nc``, ``max_frame_error`` (the largest over the hidden layers) and
        ``weight_ranks`` (of ``W_1 .. W_L``).

    Examples
    --------
    >>> from ncutils.theory import ufm
    >>> config = ufm.UFMConfig(width=6, per_class=2, depth=3)
    >>> state = ufm.dnc_state(config)
    >>> deep_nc_check(ufm.layer_metrics(state, config), ufm.weight_gram_spectra(state, config),
    ...               num_classes=3, depth=3)["is_deep_nc"]
    True
    """
    hidden = metrics[(metrics["layer"] > 1) & (metrics["layer"] <= depth)]
    ranks = [int(rank) for rank in grams["rank"].tolist()]
    is_deep_nc = bool((hidden["nc1"] < max_nc1).all() and (hidden["orthogonal_frame_error"] < max_frame_error).all()
                      and all(rank == num_classes for rank in ranks))
    return {"is_deep_nc": is_deep_nc, "max_frame_error": float(hidden["orthogonal_frame_error"].max()),
            "weight_ranks": ranks}

def kink_check(kinks: pd.DataFrame, *, max_fraction: float = 0.01) -> dict[str, Any]:
    """Can a ReLU run's gradient norm be read as its distance from a stationary point?

    Not when more than ``max_fraction`` of the pre-activations of some hidden layer sit at the
    ReLU's kink (:func:`ncutils.theory.ufm.kink_fractions`): the loss is not differentiable
    there, and the gradient norm need not vanish even at a minimiser.

    Parameters
    ----------
    kinks : DataFrame
        :func:`ncutils.theory.ufm.kink_fractions` of the run.
    max_fraction : float
        The chapter's tolerance (0.01).

    Returns
    -------
    dict
        ``largest_kink_fraction`` and ``at_kink`` (``largest_kink_fraction > max_fraction``).

    Examples
    --------
    >>> kink_check(pd.DataFrame({"layer": [1, 2], "kink_fraction": [0.0, 0.25]}))["at_kink"]
    True
    """
    largest = float(kinks["kink_fraction"].max())
    return {"largest_kink_fraction": largest, "at_kink": bool(largest > max_fraction)}

def select_g3_solutions(
    solutions: pd.DataFrame, *, max_grad_norm: float, converged: str | None = None,
) -> dict[str, Any]:
    """Which of the ReLU solutions the seeds reached G3 is tested on.

    Every solution is reported with its loss and gradient norm; the claim is tested on the
    lowest-loss converged one and, when one was reached, on the lowest-loss converged deep-NC
    one (the paper does not say which solution its claim is about). A solution is converged
    when its gradient norm is at most ``max_grad_norm``, or, with ``converged``, where that
    bool column says so (e.g. a loss-based rule for runs at the ReLU's kink, see
    :func:`kink_check`).

    Parameters
    ----------
    solutions : DataFrame
        One row per solution (e.g. per seed), with ``loss``, ``grad_norm`` and ``is_deep_nc``
        columns (the last from :func:`deep_nc_check`); the index labels the solutions.
    max_grad_norm : float
        Largest gradient norm of a converged solution; no default: the chapter states it.
    converged : str, optional
        Name of a bool column that decides convergence instead of ``max_grad_norm``.

    Returns
    -------
    dict
        ``table`` (``solutions`` plus the bool column ``converged`` and ``tested``, the role:
        ``"lowest loss"``, ``"deep NC"``, ``"lowest loss, deep NC"`` or ``""``),
        ``lowest_loss`` and ``deep_nc`` (index labels, or ``None``) and ``reason`` (why nothing
        can be tested, or ``None``).

    Raises
    ------
    ValueError
        If a column is missing, the index repeats a label or ``max_grad_norm`` is not a
        non-negative number.

    Examples
    --------
    >>> table = pd.DataFrame({"loss": [0.10, 0.08, 0.09], "grad_norm": [1e-9, 0.2, 1e-10],
    ...                       "is_deep_nc": [True, False, False]}, index=["seed 0", "seed 1", "seed 2"])
    >>> choice = select_g3_solutions(table, max_grad_norm=1e-6)
    >>> choice["lowest_loss"], choice["deep_nc"]
    ('seed 2', 'seed 0')
    """
    required = ["loss", "grad_norm", "is_deep_nc"] + ([converged] if converged else [])
    missing = [column for column in required if column not in solutions.columns]
    if missing:
        raise ValueError(f"solutions lacks the columns {missing}; it has {list(solutions.columns)}")
    if not solutions.index.is_unique:
        raise ValueError("the index of solutions must label each solution once")
    if not (isinstance(max_grad_norm, (int, float)) and max_grad_norm >= 0):
        raise ValueError(f"max_grad_norm must be a non-negative number, got {max_grad_norm!r}")
    table = solutions.copy()
    if converged:
        table["converged"] = table[converged].astype(bool)
    else:
        table["converged"] = (table["grad_norm"] <= max_grad_norm) & np.isfinite(table["loss"])
    eligible = table[table["converged"]]
    deep = eligible[eligible["is_deep_nc"].astype(bool)]
    lowest = eligible["loss"].idxmin() if len(eligible) else None
    deep_nc = deep["loss"].idxmin() if len(deep) else None
    roles = {label: [] for label in table.index}
    if lowest is not None:
        roles[lowest].append("lowest loss")
    if deep_nc is not None:
        roles[deep_nc].append("deep NC")
    table["tested"] = [", ".join(roles[label]) for label in table.index]
    reason = None if lowest is not None else (
        f"no solution converged (gradient norm <= {max_grad_norm:g})" if not converged
        else f"no solution converged ({converged!r} is False everywhere)")
    return {"table": table, "lowest_loss": lowest, "deep_nc": deep_nc, "reason": reason}

def g3_verdict(solutions: pd.DataFrame, *, max_grad_norm: float) -> dict[str, Any]:
    """The amended G3 (2026-12-01): the criterion on the solutions :func:`select_g3_solutions` picks.

    A solution is converged when its final gradient norm is at most ``max_grad_norm``. The
    criterion (:func:`g3_unequal_outliers`, its result in the bool column ``passed``) is judged
    on the lowest-loss converged solution and, when one was reached, on the lowest-loss
    converged deep-NC one: **reproduced** when it holds on every tested solution, **not
    reproduced** when on none, **inconclusive** when they disagree ("mixed") or when no
    solution converged (the reason gives the gradient norms). Lower-loss solutions that did
    not converge are named in the reason: they are reported, not tested.

    Parameters
    ----------
    solutions : DataFrame
        One row per solution (seed), with ``loss``, ``grad_norm``, ``is_deep_nc`` and
        ``passed``; the index labels the solutions.
    max_grad_norm : float
        The convergence bound (the chapter's :data:`G3_MAX_GRAD_NORM`).

    Returns
    -------
    dict
        ``outcome`` (:class:`ncutils.verdicts.Outcome`), ``tested`` (index labels judged),
        ``table`` and ``lowest_loss`` / ``deep_nc`` as in :func:`select_g3_solutions`.

    Examples
    --------
    >>> table = pd.DataFrame({"loss": [0.15, 0.39], "grad_norm": [3e-2, 1e-16],
    ...                       "is_deep_nc": [False, False], "passed": [True, False]},
    ...                      index=["seed 0", "seed 1"])
    >>> result = g3_verdict(table, max_grad_norm=1e-6)
    >>> result["outcome"].state, result["tested"]
    ('not reproduced', ['seed 1'])
    >>> g3_verdict(table.iloc[:1], max_grad_norm=1e-6)["outcome"].reason
    'no ReLU solution converged: final gradient norm 3.0e-02 (bound 1e-06)'
    """
    if "passed" not in solutions.columns:
        raise ValueError(f"solutions lacks the column 'passed'; it has {list(solutions.columns)}")
    choice = select_g3_solutions(solutions, max_grad_norm=max_grad_norm)
    table = choice["table"]
    if choice["lowest_loss"] is None:
        norms = table["grad_norm"]
        spread = (f"{norms.min():.1e}" if len(norms) == 1 or norms.min() == norms.max()
                  else f"{norms.min():.1e} to {norms.max():.1e}")
        plural = "s" if len(norms) > 1 else ""
        reason = f"no ReLU solution converged: final gradient norm{plural} {spread} (bound {max_grad_norm:g})"
        return {**choice, "outcome": verdicts.inconclusive(reason), "tested": []}
    tested = list(dict.fromkeys(label for label in (choice["lowest_loss"], choice["deep_nc"]) if label is not None))
    passes = {label: bool(table.loc[label, "passed"]) for label in tested}

    def names(labels) -> str:
        return " and ".join(str(label) for label in labels)

    held = [label for label in tested if passes[label]]
    failed = [label for label in tested if not passes[label]]
    if not failed:
        state, reason = verdicts.REPRODUCED, f"holds at {names(held)}"
    elif not held:
        state, reason = verdicts.NOT_REPRODUCED, f"fails at {names(failed)}"
    else:
        state, reason = verdicts.INCONCLUSIVE, f"mixed: holds at {names(held)}, fails at {names(failed)}"
    lowest_loss = table.loc[choice["lowest_loss"], "loss"]
    lower = table[(~table["converged"]) & (table["loss"] < lowest_loss)]
    if len(lower):
        reason += ("; lower-loss solutions that did not converge, not tested: "
                   + ", ".join(f"{label} (loss {row.loss:.4g}, gradient norm {row.grad_norm:.1e})"
                               for label, row in lower.sort_values("loss").iterrows()))
    return {**choice, "outcome": verdicts.Outcome(state, reason), "tested": tested}
