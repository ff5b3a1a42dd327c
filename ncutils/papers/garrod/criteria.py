"""Garrod & Keating (2024): G1-G3 as first registered, pure functions of a layer's Hessian and gradient spectra."""

from __future__ import annotations

from typing import Any

from ncutils.theory import ufm

__all__ = ["g1_equal_outliers", "g2_gradient_alignment", "g3_unequal_outliers"]


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
