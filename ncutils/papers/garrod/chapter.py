"""Garrod & Keating (2024): the chapter's declaration (parameters, findings and criteria, budget, scale) and its store fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils import store
from ncutils.chapter import Budget, Chapter, Criterion, Finding
from ncutils.theory import ufm
from ncutils.papers.garrod.configs import G3_AMENDMENT_DATE, G3_MAX_GRAD_NORM, validate_parameters

__all__ = ["CHAPTER", "scale", "ufm_fingerprint"]


# ----------------------------------------------------------------------------- the chapter
#: Parameters that do not change a checkpointed ReLU UFM run (the linear run is never
#: checkpointed: the ``linear_`` parameters do not count either).
_UFM_IGNORED = ("profile", "relu_workers", "relu_checkpoint", "checkpoint_every")

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
