"""Garrod & Keating (2024): the chapter's tables and texts (the optimum, each run, each layer, the ReLU solution)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ncutils.theory import ufm

__all__ = ["kink_text", "layer_tables", "optimum_table", "run_summary", "solution_text"]


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
