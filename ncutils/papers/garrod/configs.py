"""Garrod & Keating (2024): the paper's deep UFM settings, the chapter's two models and its parameter checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.papers._validation import error_text, seed_problems
from ncutils.theory import ufm
from ncutils.theory.ufm.training import _plan

__all__ = ["G3_AMENDMENT_DATE", "G3_MAX_GRAD_NORM", "PAPER_SETTINGS", "chapter_configs", "validate_parameters"]


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
