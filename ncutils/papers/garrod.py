"""Garrod & Keating (2024), chapter G1-G3: the chapter's UFM settings and its pre-registered criteria.

Two halves. *Configurations*: :data:`PAPER_SETTINGS` (the paper's model sizes) and
:func:`chapter_configs` (the linear and the ReLU :class:`~ncutils.theory.ufm.UFMConfig` of the
chapter, with the analysed layers checked). *Judgements*: pure functions of what
:mod:`ncutils.theory.ufm` measures (a :class:`~ncutils.theory.ufm.LayerAnalysis`, the tables of
:func:`~ncutils.theory.ufm.layer_metrics`, :func:`~ncutils.theory.ufm.weight_gram_spectra` and
:func:`~ncutils.theory.ufm.kink_fractions`):

- :func:`g1_equal_outliers` -- Theorem 4.1: ``K^2`` separated, equal outliers with eigenvectors
  ``mu_c^(l+1) kron mu_c'^(l)``;
- :func:`g2_gradient_alignment` -- Theorem 4.3: squared gradient coefficients ``1/K`` on the
  diagonal, ``0`` off it;
- :func:`g3_unequal_outliers` -- the ReLU claim: outliers still separated, no longer equal;
- :func:`deep_nc_check` and :func:`kink_check` -- which kind of solution a run reached, and
  whether its gradient norm can be read as a convergence measure;
- :func:`select_g3_solutions` -- the ruling for G3 over several seeds: which of the
  solutions reached the claim is tested on;
- :func:`g3_verdict` -- the amended G3 (2026-12-01): the criterion on the selected converged
  solutions, ``inconclusive`` with the gradient norms when none converged;
- :func:`g3_eligible_verdict` -- G3 as amended on 2026-12-06: only solutions that fit all ``K``
  classes (:func:`fitted_classes`, weight ranks) and whose loss has stopped moving
  (:func:`loss_convergence`, a rule a kinked loss can meet) are tested;
- :func:`g1_reason`, :func:`g2_reason` -- the one-sentence reasons of G1 and G2's records.

Every threshold is an argument whose default is the value the chapter states in its
pre-registered criteria (the notebook passes them explicitly); nothing here is tuned to a
result, and nothing trains or plots.

References
----------
C. Garrod and J. P. Keating, "Unifying Low Dimensional Observations in Deep Learning Through
the Deep Linear Unconstrained Feature Model", arXiv:2404.06106 (2024), Theorems 4.1 and 4.3,
Section 5.
P. Súkeník, M. Mondelli and C. Lampert, "Neural Collapse versus Low-rank Bias: Is Deep Neural
Collapse Really Optimal?" (2024) -- deep-UFM solutions that are not deep NC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ncutils import store, verdicts
from ncutils.chapter import Budget, Chapter, Criterion, Finding
from ncutils.papers._validation import error_text, seed_problems
from ncutils.theory import ufm
from ncutils.theory.ufm.training import _plan

__all__ = [
    "kink_text",
    "layer_tables",
    "optimum_table",
    "run_summary",
    "solution_text",
    "CHAPTER",
    "PAPER_SETTINGS",
    "chapter_configs",
    "g1_equal_outliers",
    "g2_gradient_alignment",
    "g3_unequal_outliers",
    "deep_nc_check",
    "kink_check",
    "select_g3_solutions",
    "g3_verdict",
    "G3_AMENDMENT_DATE",
    "G3_MAX_GRAD_NORM",
    "fitted_classes",
    "g1_reason",
    "g2_reason",
    "g3_eligible_verdict",
    "loss_convergence",
    "outliers_above_bulk",
    "solution_table",
    "validate_parameters",
]

#: The day G3's criterion was amended (a convergence condition and several seeds).
G3_AMENDMENT_DATE = "2026-12-01"
#: The amended G3's convergence condition, fixed before any amended result: the final gradient
#: norm of the full loss over all parameters of a converged ReLU solution.
G3_MAX_GRAD_NORM = 1e-6

# ----------------------------------------------------------------------------- configurations
#: The paper's deep UFM (Section 5): K, n, L, the decays, and the width and analysed layer of
#: the linear and of the ReLU model. The chapter's cpu defaults are these sizes.
PAPER_SETTINGS: dict[str, Any] = {
    "num_classes": 3,
    "per_class": 40,
    "depth": 5,
    "lambda_w": 1e-2,
    "lambda_h": 1e-2,
    "linear_width": 60,
    "linear_layer": 3,
    "relu_width": 65,
    "relu_layer": 4,
}


def chapter_configs(
    *, num_classes: int, per_class: int, depth: int, lambda_w: float, lambda_h: float,
    linear_width: int, linear_layer: int, relu_width: int, relu_layer: int, seed: int = 0,
) -> dict[str, ufm.UFMConfig]:
    """The chapter's two models: the deep linear and the deep ReLU UFM of the same size.

    Parameters
    ----------
    num_classes, per_class, depth : int
        ``K``, ``n`` and ``L``, shared by both models.
    lambda_w, lambda_h : float
        The weight decays, shared by both models.
    linear_width, relu_width : int
        ``d`` of the linear and of the ReLU model.
    linear_layer, relu_layer : int
        The analysed ``W_l`` of each model; it must be a hidden layer (``1 <= l < L``) so that
        ``W_l`` is square (``d x d``), as in the paper.
    seed : int
        Seed of both initialisations.

    Returns
    -------
    dict
        ``{"linear": UFMConfig, "relu": UFMConfig}``.

    Raises
    ------
    ValueError
        If a layer is not hidden, or (from :class:`~ncutils.theory.ufm.UFMConfig`) a size or
        decay is invalid.

    Examples
    --------
    >>> configs = chapter_configs(**PAPER_SETTINGS)
    >>> configs["relu"].width, configs["relu"].activation
    (65, 'relu')
    """
    configs = {
        activation: ufm.UFMConfig(num_classes, per_class, depth, width, lambda_w, lambda_h, activation, seed=seed)
        for activation, width in (("linear", linear_width), ("relu", relu_width))
    }
    for name, layer in (("linear_layer", linear_layer), ("relu_layer", relu_layer)):
        if not 1 <= layer < depth:
            raise ValueError(f"{name} must be a hidden layer in 1..{depth - 1} (W_l square, d x d), got {layer}")
    return configs


def validate_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with the Garrod chapter's parameters, before anything is optimised.

    Builds the two configs (:func:`chapter_configs`) and checks every training option of
    the linear and the ReLU runs, and the seeds, with the checks and messages of
    :func:`ncutils.theory.ufm.train` (which runs them again before its first step).

    Examples
    --------
    >>> validate_parameters({**PAPER_SETTINGS, "linear_steps": 10, "linear_lr": 0.1, "linear_polish": 0,
    ...                      "relu_steps": 10, "relu_lr": -1.0, "relu_polish": 0, "relu_seeds": [0],
    ...                      "momentum": 0.9, "snapshots": 2, "checkpoint_every": 5, "relu_workers": 1})
    ['relu: lr must be a positive finite number, got -1.0']
    """
    problems = seed_problems(parameters.get("relu_seeds"), "relu_seeds")
    workers = parameters.get("relu_workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        problems.append(f"relu_workers must be a positive integer, got {workers!r}")
    names = ("num_classes", "per_class", "depth", "lambda_w", "lambda_h", "linear_width", "linear_layer",
             "relu_width", "relu_layer")
    missing = [name for name in names if name not in parameters]
    if missing:
        return problems + [f"missing parameters {missing}"]
    try:
        configs = chapter_configs(**{name: parameters[name] for name in names}, seed=parameters.get("seed", 0))
    except (TypeError, ValueError) as error:
        return problems + [error_text(error)]
    for model in ("linear", "relu"):
        try:
            steps = parameters[f"{model}_steps"]
            _plan(configs[model], layer=parameters[f"{model}_layer"], steps=steps, lr=parameters[f"{model}_lr"],
                  momentum=parameters.get("momentum", 0.9), polish_iterations=parameters[f"{model}_polish"],
                  snapshot_steps=ufm.snapshot_schedule(steps, parameters.get("snapshots", 10)),
                  checkpoint_every=parameters.get("checkpoint_every", 10_000))
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"{model}: {error_text(error)}")
    return problems


# ----------------------------------------------------------------------------- criteria
def g1_equal_outliers(
    analysis: ufm.LayerAnalysis, *, min_separation: float = 10.0, max_ratio: float = 1.05,
    min_alignment: float = 0.95,
) -> dict[str, Any]:
    """G1: the ``K^2`` largest layer-Hessian eigenvalues stand out, are equal, and have the predicted eigenvectors.

    Criterion (pre-registered in the chapter): separation ``lambda_{K^2} / lambda_{K^2+1} >=
    min_separation``, outlier ratio ``lambda_1 / lambda_{K^2} <= max_ratio`` and every alignment
    ``f_cc' >= min_alignment``; all three must hold.

    Parameters
    ----------
    analysis : LayerAnalysis
        The layer of the linear model at the end of training (:func:`ncutils.theory.ufm.analyse_layer`).
    min_separation, max_ratio, min_alignment : float
        The thresholds (the chapter uses 10, 1.05 and 0.95).

    Returns
    -------
    dict
        ``separation``, ``outlier_ratio``, ``alignment_min``, ``passed_separation``,
        ``passed_ratio``, ``passed_alignment`` and ``passed``.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorem 4.1.

    Examples
    --------
    >>> config = ufm.UFMConfig(width=6, per_class=2, depth=3)
    >>> g1_equal_outliers(ufm.analyse_layer(ufm.dnc_state(config), config, 2))["passed"]
    True
    """
    summary = analysis.summary()
    result = {
        "separation": analysis.separation,
        "outlier_ratio": analysis.outlier_ratio,
        "alignment_min": summary["alignment_min"],
    }
    result["passed_separation"] = bool(result["separation"] >= min_separation)
    result["passed_ratio"] = bool(result["outlier_ratio"] <= max_ratio)
    result["passed_alignment"] = bool(result["alignment_min"] >= min_alignment)
    result["passed"] = result["passed_separation"] and result["passed_ratio"] and result["passed_alignment"]
    return result


def g2_gradient_alignment(
    analysis: ufm.LayerAnalysis, *, max_diagonal_deviation: float = 0.05, max_off_diagonal: float = 0.05,
) -> dict[str, Any]:
    """G2: the data gradient lies on the diagonal outlier vectors, with squared coefficients ``1/K``.

    Criterion (pre-registered in the chapter): ``max_c |a_cc - 1/K| <= max_diagonal_deviation``
    and ``max_{c != c'} a_cc' <= max_off_diagonal``, with ``a_cc'`` the squared coefficients of
    the data gradient on the normalised basis ``mu_c^(l+1) kron mu_c'^(l)``
    (:func:`ncutils.theory.ufm.gradient_coefficients`).

    Parameters
    ----------
    analysis : LayerAnalysis
        The layer of the linear model at the end of training.
    max_diagonal_deviation, max_off_diagonal : float
        The thresholds (the chapter uses 0.05 and 0.05).

    Returns
    -------
    dict
        ``diagonal_deviation``, ``off_diagonal_max``, ``passed_diagonal``, ``passed_off_diagonal``
        and ``passed``.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorem 4.3.

    Examples
    --------
    >>> config = ufm.UFMConfig(width=6, per_class=2, depth=3)
    >>> g2_gradient_alignment(ufm.analyse_layer(ufm.dnc_state(config), config, 2))["passed"]
    True
    """
    summary = analysis.summary()
    result = {"diagonal_deviation": summary["grad_diag_max_dev"], "off_diagonal_max": summary["grad_off_max"]}
    result["passed_diagonal"] = bool(result["diagonal_deviation"] <= max_diagonal_deviation)
    result["passed_off_diagonal"] = bool(result["off_diagonal_max"] <= max_off_diagonal)
    result["passed"] = result["passed_diagonal"] and result["passed_off_diagonal"]
    return result


def g3_unequal_outliers(
    analysis: ufm.LayerAnalysis, *, min_separation: float = 10.0, min_ratio: float = 1.5,
) -> dict[str, Any]:
    """G3: in the ReLU model the ``K^2`` largest eigenvalues still stand out but are not equal.

    Criterion (pre-registered in the chapter): separation ``lambda_{K^2} / lambda_{K^2+1} >=
    min_separation`` and outlier ratio ``lambda_1 / lambda_{K^2} >= min_ratio``.

    Parameters
    ----------
    analysis : LayerAnalysis
        The layer of the ReLU model the claim is tested on (see :func:`select_g3_solutions`).
    min_separation, min_ratio : float
        The thresholds (the chapter uses 10 and 1.5).

    Returns
    -------
    dict
        ``separation``, ``outlier_ratio``, ``passed_separation``, ``passed_ratio`` and ``passed``;
        also ``alignment_min`` (the smallest ``f_cc'``), reported but not part of the criterion.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Section 5.2 (the ReLU UFM).

    Examples
    --------
    >>> config = ufm.UFMConfig(width=6, per_class=2, depth=3)  # linear deep NC: equal outliers
    >>> g3_unequal_outliers(ufm.analyse_layer(ufm.dnc_state(config), config, 2))["passed_ratio"]
    False
    """
    result = {"separation": analysis.separation, "outlier_ratio": analysis.outlier_ratio,
              "alignment_min": analysis.summary()["alignment_min"]}
    result["passed_separation"] = bool(result["separation"] >= min_separation)
    result["passed_ratio"] = bool(result["outlier_ratio"] >= min_ratio)
    result["passed"] = result["passed_separation"] and result["passed_ratio"]
    return result


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


# ----------------------------------------------------------------------------- the chapter
#: Parameters that do not change a checkpointed ReLU UFM run (the linear run is never
#: checkpointed: the ``linear_`` parameters do not count either).
_UFM_IGNORED = ("profile", "relu_workers", "relu_checkpoint", "checkpoint_every")


# ----------------------------------------------------------------------------- the chapter's tables
def optimum_table(condition: Mapping[str, Any], optimum: Mapping[str, Any]) -> pd.DataFrame:
    """The regularisation condition and the deep-NC optimum's quantities, one row each.

    ``condition`` is :func:`ncutils.theory.ufm.regularisation_condition`'s result, ``optimum``
    :func:`ncutils.theory.ufm.dnc_optimum`'s.
    """
    return pd.DataFrame({
        "quantity": ["condition lhs (K n lambda_W^L lambda_H)^(1/L)", "condition rhs (L-1)^((L-1)/L) / (K L^2)",
                     "condition satisfied", "singular value s of every W_l", "norm of a class mean of H_1",
                     "fitted output s^L m (target 1)", "loss at the deep-NC optimum",
                     "Hessian outliers m^2 s^(2(L-1)) / K + lambda_W", "Hessian bulk lambda_W"],
        "value": [condition["lhs"], condition["rhs"], condition["satisfied"], optimum["singular_value"],
                  optimum["feature_norm"], optimum["output_scale"], optimum["loss"],
                  optimum["hessian_outlier"], optimum["hessian_bulk"]],
    })


def run_summary(run: ufm.UFMRun, optimum_loss: float) -> dict[str, Any]:
    """How far one UFM run got: steps, final loss against the deep-NC optimum, gradient norm, and the
    agreement of the dense and Jacobian Hessian routes."""
    final = run.final
    return {
        "GD steps": run.steps_run, "L-BFGS iterations": run.polish_iterations,
        "final loss": run.final_loss, "deep-NC optimum loss": optimum_loss,
        "loss - optimum": run.final_loss - optimum_loss, "final gradient norm": run.final_grad_norm,
        "dense vs Jacobian route (max abs. eigenvalue difference)": final.dense_max_abs_error,
    }


def layer_tables(run: ufm.UFMRun, num_classes: int) -> dict[str, pd.DataFrame]:
    """The analysed layer of a run, by title: the largest Hessian eigenvalues, the alignment and
    gradient coefficients per class pair, and the Gauss-Newton split."""
    final = run.final
    outliers = num_classes**2
    labels = [f"c={c}" for c in range(1, num_classes + 1)]
    columns = [f"c'={c}" for c in range(1, num_classes + 1)]
    top = pd.Series(final.eigenvalues[: outliers + 3], index=range(1, outliers + 4), name="eigenvalue")
    return {
        "largest Hessian eigenvalues": top.to_frame(),
        "alignment f (rows: output-side class c, columns: input-side class c')":
            pd.DataFrame(final.alignment, index=labels, columns=columns),
        "gradient coefficients a (rows c, columns c')":
            pd.DataFrame(final.gradient_coefficients, index=labels, columns=columns),
        "Gauss-Newton split (theory at deep NC: ranks 0, K(K-1), K)":
            pd.DataFrame({"numerical rank": final.split_ranks, "share of tr G": final.split_traces}),
    }


def solution_text(kind: Mapping[str, Any], gap: float) -> str:
    """What kind of solution a ReLU run reached, in words (``kind`` from :func:`deep_nc_check`,
    ``gap`` its loss minus the deep-NC optimum's)."""
    if kind["is_deep_nc"]:
        return "close to deep NC (collapsed features, orthogonal class means, rank-K weights)"
    return (f"**not** deep NC: the largest orthogonal-frame error of the hidden features is "
            f"{kind['max_frame_error']:.2f}, the numerical ranks of W_1..W_L are {kind['weight_ranks']}, and its "
            f"loss is {'below' if gap < 0 else 'above'} the deep-NC optimum by {abs(gap):.2e}")


def kink_text(kink: Mapping[str, Any]) -> str:
    """What :func:`kink_check` found, in words: whether the gradient norm can measure convergence."""
    if kink["at_kink"]:
        return (f"in the trained ReLU model up to {kink['largest_kink_fraction']:.0%} of the pre-activations of a "
                "hidden layer sit at the kink of the ReLU (within 1e-6 of zero, relative to the layer's largest), so "
                "the gradient norm need not vanish at a minimiser and the loss is the better guide to convergence")
    return ("no pre-activation of the trained ReLU model sits at the kink of the ReLU (within 1e-6 of zero, "
            "relative to the layer's largest), so its final gradient norm measures how far training is "
            "from a stationary point")


def ufm_fingerprint(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What keys the chapter's stored UFM runs and dense Hessians: its settings and the UFM code."""
    return {"settings": {name: value for name, value in parameters.items() if name not in _UFM_IGNORED},
            "source": {**ufm.RUN_CODE.source(), **ufm.ANALYSIS_CODE.source()},
            "packages": {name: store.package_version(name) for name in ("torch", "numpy")}}


def scale(parameters: Mapping[str, Any]) -> str:
    """What the chapter optimises at these parameters, in one line.

    Examples
    --------
    >>> scale(CHAPTER.defaults)
    'K = 3, n = 40, L = 5; linear UFM d = 60, 3000 steps; ReLU UFM d = 65, 20000 steps, 4 seeds'
    """
    return (f"K = {parameters['num_classes']}, n = {parameters['per_class']}, L = {parameters['depth']}; "
            f"linear UFM d = {parameters['linear_width']}, {parameters['linear_steps']} steps; "
            f"ReLU UFM d = {parameters['relu_width']}, {parameters['relu_steps']} steps, "
            f"{len(parameters['relu_seeds'])} seeds")


CHAPTER = Chapter(
    stem="garrod_ufm",
    title="Low-dimensional spectra from deep neural collapse (Garrod & Keating)",
    defaults={
        "seed": 0, "num_classes": 3, "per_class": 40, "depth": 5, "lambda_w": 0.01, "lambda_h": 0.01,
        "linear_width": 60, "linear_layer": 3, "linear_steps": 3000, "linear_lr": 0.1, "linear_polish": 0,
        "relu_width": 65, "relu_layer": 4, "relu_steps": 20000, "relu_lr": 0.1, "relu_polish": 200,
        "relu_seeds": [0, 1, 2, 3], "relu_workers": 2, "relu_checkpoint": False, "checkpoint_every": 10000,
        "momentum": 0.9, "snapshots": 10, "dense_hessian": True,
    },
    findings=(
        Finding("G1", "garrod2024", r"At the deep-NC optimum of the deep linear UFM the layer Hessian has $K^2$ equal "
                                    r"outlier eigenvalues, eigenvectors $\mu_c^{(l+1)} \otimes \mu_{c'}^{(l)}$, over a bulk.",
                criteria=(Criterion(
                    "2026-11-22", "separation lambda_{{K^2}}/lambda_{{K^2+1}} >= {min_separation:g}, outlier ratio "
                    "lambda_1/lambda_{{K^2}} <= {max_ratio:g}, every f >= {min_alignment:g}",
                    {"min_separation": 10.0, "max_ratio": 1.05, "min_alignment": 0.95}),)),
        Finding("G2", "garrod2024", "The gradient aligns with the Hessian's outlier eigenspace (coefficients $1/K$ "
                                    "on the diagonal, 0 off it).",
                criteria=(Criterion(
                    "2026-11-22", "max |a_cc - 1/K| <= {max_diagonal_deviation:g} and max_{{c != c'}} a_cc' <= "
                    "{max_off_diagonal:g}", {"max_diagonal_deviation": 0.05, "max_off_diagonal": 0.05}),)),
        Finding("G3", "garrod2024", "In the ReLU UFM the Hessian keeps its outliers but they are no longer equal.",
                criteria=(
                    Criterion("2026-11-22", "ReLU UFM, one run: separation lambda_{{K^2}}/lambda_{{K^2+1}} >= "
                              "{min_separation:g} and outlier ratio lambda_1/lambda_{{K^2}} >= {min_ratio:g} at the end "
                              "of training", {"min_separation": 10.0, "min_ratio": 1.5}),
                    Criterion(G3_AMENDMENT_DATE,
                              "separation >= {min_separation:g} and outlier ratio >= {min_ratio:g} on the lowest-loss "
                              "ReLU solution (and the lowest-loss deep-NC one, when reached) among those of several "
                              "seeds whose final gradient norm is <= {max_grad_norm:g}; inconclusive when none "
                              "converged or the two disagree",
                              {"min_separation": 10.0, "min_ratio": 1.5, "max_grad_norm": G3_MAX_GRAD_NORM},
                              reason="the original run had not converged (gradient norm about 3e-2 to 6e-2) and its "
                                     "numbers differed between machines; the ReLU model has several solutions and the "
                                     "paper does not say which its claim is about",
                              seen="the original criterion's results on two machines"),
                    Criterion("2026-12-06",
                              "separation >= {min_separation:g} and outlier ratio >= {min_ratio:g} on the lowest-loss "
                              "eligible, converged ReLU solution among several seeds (and the lowest-loss deep-NC one, "
                              "when reached); eligible: it fits all K classes (train accuracy >= {min_train_acc:g} and "
                              "every W_l of rank >= K); converged: its loss moved by at most {max_rel_loss_change:g} "
                              "(relative) over the last {window:.0%} of its steps; inconclusive when no solution is both",
                              {"min_separation": 10.0, "min_ratio": 1.5, "min_train_acc": 1.0,
                               "max_rel_loss_change": 1e-10, "window": 0.1},
                              reason="only degenerate solutions met the gradient bound of 2026-12-01: every weight of "
                                     "rank 1, one class of three fitted, a zero gradient because the ReLUs of the "
                                     "other classes are dead, and one eigenvalue above the bulk (the tested outlier "
                                     "ratio 17.32 is that single outlier over the bulk). The lower-loss solutions "
                                     "(seed 0: loss 0.151, ranks [2, 2, 2, 3, 3], 8 eigenvalues above the bulk, "
                                     "gradient norm 2.9e-2) sit at the ReLU's kink, where the gradient norm need not "
                                     "vanish at a minimiser: a bound of 1e-6 can never be met there. The claim is "
                                     "about solutions that fit every class, and convergence must be judged by a rule "
                                     "a kinked loss can meet",
                              seen="the results of the criterion of 2026-12-01 at the cpu profile (not reproduced, "
                                   "tested on seed 2) and a review's numbers of the same runs, quoted in the reason; "
                                   "no result of this criterion had been computed"),
                )),
    ),
    budget=Budget("Garrod G1-G3", 90.0),
    validate=validate_parameters,
    trains_nothing="G1-G3 optimise the unconstrained features model (ncutils.theory.ufm, own checkpoints), "
                   "not a TrainConfig grid",
    fingerprint=ufm_fingerprint,
    scale=scale,
    paper_setting="K = 3, n = 40, L = 5, d = 65 (ReLU); 10^6 gradient-descent steps",
)
