"""Neural Collapse metrics: pure functions from class statistics (and weights) to numbers.

Why one module of this size: it is one concept, the metrics, each in its two forms (raw
features and statistics) beside its convention; splitting by metric would scatter the shared
conventions below and the naive-dense references its tests check against.

Every metric exists in two forms: from raw ``(features, labels)`` and from
statistics (``*_from_stats(class_stats, ...)``, the form layer sweeps use).
Features are ``(N, D)`` or ``(N, C, H, W)`` (flattened channel-major), torch
tensors or numpy arrays, any real dtype; labels are integers of shape ``(N,)``,
possibly non-contiguous. All arithmetic is float64.

Conventions (the book's conventions page, book/conventions.md), shared by every function here:

* ``mu_c``: class means; ``mu_G``: the *unweighted* mean of the class means
  (Papyan et al. 2020); ``M = [mu_c - mu_G]`` (D x C); ``C`` the number of
  classes present; ``N`` the number of samples.
* ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` (sample-weighted);
  ``Sigma_B = M M^T / C``.
* A class with a single sample is allowed: its within-class spread is zero
  (its mean is the sample), so it contributes nothing to ``Sigma_W`` and has
  ``sigma_c^2 = 0`` in the CDNV.
* Metrics that compare classes need at least two classes; a single class,
  NaN/inf features, empty input or mismatched lengths raise ``ValueError``.
* Degenerate geometry is reported, not hidden: a ratio whose denominator is
  zero is ``inf`` (``nan`` for 0/0), and quantities undefined when a centred
  class mean is zero (angles, equinorm with all means equal) are ``nan``.

References
----------
Papyan, Han, Donoho (2020), "Prevalence of neural collapse during the terminal
phase of deep learning training", PNAS 117(40). (NC1-NC4)
Galanti, Gyorgy, Hutter (2022), "On the role of neural collapse in transfer
learning", ICLR. (CDNV)
Rangamani, Lindegaard, Galanti, Poggio (2023), "Feature learning in deep
classifiers through intermediate neural collapse", ICML. (trace ratios, alignment)
Kothapalli (2023), "Neural collapse: a review on modelling principles and
generalization", TMLR. (ETF error, trace quotient)
Parker, Onal, Stengel, Intrater (2023), "Neural collapse in the intermediate
hidden layers of classification neural networks". (NC1 without the 1/C)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ncutils._alignment import alignment_request
from ncutils._checks import (
    as_tensor,
    check_features_labels,
    check_finite,
    check_labels,
    check_min_classes,
    flatten_features,
)
# the cutoff lives with the statistics, so that code needing only it (the LE-SDE simulator)
# imports no metric
from ncutils.stats import DEFAULT_RCOND, ClassStats, ProjectedScatter, nearest_centre_labels

ArrayLike = torch.Tensor | np.ndarray

__all__ = [
    "DEFAULT_RCOND",
    "nc1",
    "nc1_from_stats",
    "trace_ratio",
    "trace_ratio_from_stats",
    "relative_within_trace",
    "relative_within_trace_from_stats",
    "within_total_ratio",
    "within_total_ratio_from_stats",
    "cdnv",
    "cdnv_from_stats",
    "equinorm",
    "equinorm_from_stats",
    "equiangularity",
    "equiangularity_from_stats",
    "etf_error",
    "etf_error_from_stats",
    "mean_pairwise_angle",
    "mean_pairwise_angle_from_stats",
    "self_duality",
    "self_duality_from_stats",
    "ncc_predict",
    "ncc_mismatch",
    "ncc_mismatch_from_stats",
    "ncc_accuracy",
    "ncc_accuracy_from_stats",
    "subspace_alignment",
    "summary",
    "summary_from_stats",
]


# --------------------------------------------------------------------------- helpers
def _stats_with_classes(class_stats: ClassStats, what: str) -> ClassStats:
    if not isinstance(class_stats, ClassStats):
        raise ValueError(f"{what} needs ClassStats, got {type(class_stats).__name__}")
    if class_stats.n == 0:
        raise ValueError(f"{what} needs non-empty ClassStats (call update first)")
    check_min_classes(class_stats.classes, 2, what)
    return class_stats


def _validated(features: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a raw ``(features, labels)`` set once (values included; at least two classes)."""
    features, labels = check_features_labels(features, labels)
    check_min_classes(torch.unique(labels), 2, "Neural Collapse metrics")
    return features, labels


def _class_stats(features: Any, labels: Any) -> ClassStats:
    """Validated pass-1 statistics of a raw ``(features, labels)`` set (needs two classes)."""
    return ClassStats.from_features(*_validated(features, labels))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` with ``inf`` for x/0 (x > 0) and ``nan`` for 0/0."""
    if denominator == 0.0:
        return math.nan if numerator == 0.0 else math.inf
    return numerator / denominator


def _traces(class_stats: ClassStats) -> tuple[float, float]:
    """``(tr Sigma_W, tr Sigma_B)`` with the module's conventions."""
    trace_within = float(class_stats.within_ss.sum()) / class_stats.n
    trace_between = float(class_stats.centered_means().pow(2).sum()) / class_stats.num_classes
    return trace_within, trace_between


def _cosine_matrix(class_stats: ClassStats) -> torch.Tensor | None:
    """Cosines between centred class means (C x C), or ``None`` when a centred mean is zero."""
    gram = class_stats.centered_means().T @ class_stats.centered_means()
    norms = gram.diagonal().sqrt()
    if bool((norms == 0).any()):
        return None
    return (gram / torch.outer(norms, norms)).clamp_(-1.0, 1.0)


def _off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    mask = ~torch.eye(matrix.shape[0], dtype=torch.bool, device=matrix.device)
    return matrix[mask]


def _upper_pairs(matrix: torch.Tensor) -> torch.Tensor:
    rows, cols = torch.triu_indices(matrix.shape[0], matrix.shape[0], offset=1, device=matrix.device)
    return matrix[rows, cols]


def _pairwise_sq_distances(means: torch.Tensor) -> torch.Tensor:
    """``||mu_c - mu_c'||^2`` (C x C) from explicit differences (no Gram cancellation).

    One row at a time, so memory stays O(C D).
    """
    return torch.stack([(means - means[row]).pow(2).sum(dim=1) for row in range(means.shape[0])])


def _check_predictions(predictions: Any, n_samples: int, name: str = "predictions") -> torch.Tensor:
    predictions = check_labels(predictions, name)
    if predictions.shape[0] != n_samples:
        raise ValueError(
            f"features and {name} have mismatched lengths: {n_samples} samples but "
            f"{predictions.shape[0]} {name}"
        )
    return predictions


# --------------------------------------------------------------------------- NC1
def nc1_from_stats(
    class_stats: ClassStats, scatter: ProjectedScatter, rcond: float = DEFAULT_RCOND
) -> float:
    """Exact NC1 ``tr(Sigma_W Sigma_B^+) / C`` without any D x D matrix.

    With the C x C Gram ``G = M^T M = V L V^T`` (eigenvalues above ``rcond`` times the
    largest kept), ``Sigma_B^+ = C M V L^-2 V^T M^T``, hence

    ``NC1 = tr(Sigma_W Sigma_B^+) / C = tr(L^-2 V^T S V)``,  ``S = M^T Sigma_W M``,

    where ``S`` is the pass-2 :class:`~ncutils.stats.ProjectedScatter`. Cost: O(C^3)
    here, O(N D C) for the two passes, O(D C) memory. Equal to the dense
    ``np.trace(Sigma_W @ np.linalg.pinv(Sigma_B, rcond)) / C`` up to round-off.

    Parameters
    ----------
    class_stats : ClassStats
        Pass-1 statistics (at least two classes).
    scatter : ProjectedScatter
        Pass-2 scatter built from ``class_stats``.
    rcond : float, default :data:`DEFAULT_RCOND`
        Relative eigenvalue cutoff on ``M^T M`` (same as numpy's ``pinv`` cutoff on
        ``Sigma_B``). Must be at least ``4 C eps`` (about 1e-14 for C = 10): smaller
        eigenvalues are round-off, e.g. the direction ``1`` that centring always removes.

    Returns
    -------
    float
        NC1 (0 at perfect collapse). ``nan`` when all class means coincide (``Sigma_B = 0``).
        Multiply by C for Parker et al.'s convention, which omits the ``/C``.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS, NC1 definition. Parker et al. (2023) omit ``/C``.

    Examples
    --------
    >>> import torch
    >>> features, labels = torch.randn(100, 16), torch.arange(100) % 4
    >>> stats = ClassStats.from_features(features, labels)
    >>> scatter = ProjectedScatter(stats).update(features, labels)
    >>> nc1_from_stats(stats, scatter) > 0
    True
    """
    _stats_with_classes(class_stats, "nc1")
    if not isinstance(scatter, ProjectedScatter):
        raise ValueError(f"nc1 needs a ProjectedScatter, got {type(scatter).__name__}")
    round_off = 4 * class_stats.num_classes * float(torch.finfo(torch.float64).eps)
    if not round_off <= rcond < 1.0:
        raise ValueError(
            f"rcond must be in [{round_off:.1e}, 1), got {rcond}: below 4 C eps the eigenvalues "
            f"of M^T M are float64 round-off and would count as between-class directions"
        )
    if not scatter.matches(class_stats):
        raise ValueError("the ProjectedScatter was built from different ClassStats")
    centered = class_stats.centered_means()
    eigenvalues, eigenvectors = torch.linalg.eigh(centered.T @ centered)
    largest = float(eigenvalues.max())
    if largest <= 0.0:
        return math.nan
    keep = eigenvalues > rcond * largest
    basis = eigenvectors[:, keep]
    projected_scatter = basis.T @ scatter.scatter.to(basis.device) @ basis
    return float((projected_scatter.diagonal() / eigenvalues[keep].pow(2)).sum())


def nc1(features: ArrayLike, labels: ArrayLike, rcond: float = DEFAULT_RCOND) -> float:
    """Exact NC1 ``tr(Sigma_W Sigma_B^+) / C`` of raw features (two passes, O(D C) memory).

    See :func:`nc1_from_stats` for the formula, convention and references.

    Examples
    --------
    >>> import torch
    >>> nc1(torch.randn(100, 16), torch.arange(100) % 4) > 0
    True
    """
    features, labels = _validated(features, labels)
    class_stats = ClassStats.from_features(features, labels)
    scatter = ProjectedScatter(class_stats).update(features, labels)
    return nc1_from_stats(class_stats, scatter, rcond=rcond)


# --------------------------------------------------------------------------- traces
def trace_ratio_from_stats(class_stats: ClassStats) -> float:
    """Trace quotient ``tr Sigma_W / tr Sigma_B``.

    ``tr Sigma_W = (1/N) sum_c sum_{i in c} ||h_i - mu_c||^2``,
    ``tr Sigma_B = (1/C) sum_c ||mu_c - mu_G||^2`` (unweighted ``mu_G``). Rangamani et al.'s
    code weights classes equally in ``Sigma_W`` and uses the sample mean for ``mu_G``; both
    agree with ours for balanced classes.

    References
    ----------
    Rangamani et al. (2023), ICML; Kothapalli (2023), TMLR ("quotient").

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.randn(40, 5), torch.arange(40) % 4)
    >>> trace_ratio_from_stats(stats) > 0
    True
    """
    trace_within, trace_between = _traces(_stats_with_classes(class_stats, "trace_ratio"))
    return _ratio(trace_within, trace_between)


def trace_ratio(features: ArrayLike, labels: ArrayLike) -> float:
    """``tr Sigma_W / tr Sigma_B`` of raw features; see :func:`trace_ratio_from_stats`."""
    return trace_ratio_from_stats(_class_stats(features, labels))


def relative_within_trace_from_stats(class_stats: ClassStats) -> float:
    """Relative within-class trace ``tr Sigma_W / (tr Sigma_W + tr Sigma_B)`` in [0, 1].

    Traces as in :func:`trace_ratio_from_stats`. This bounded form is what Rangamani et
    al. plot per layer.

    References
    ----------
    Rangamani et al. (2023), ICML.

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.randn(40, 5), torch.arange(40) % 4)
    >>> 0 < relative_within_trace_from_stats(stats) < 1
    True
    """
    trace_within, trace_between = _traces(_stats_with_classes(class_stats, "relative_within_trace"))
    return _ratio(trace_within, trace_within + trace_between)


def relative_within_trace(features: ArrayLike, labels: ArrayLike) -> float:
    """``tr Sigma_W / (tr Sigma_W + tr Sigma_B)``; see :func:`relative_within_trace_from_stats`."""
    return relative_within_trace_from_stats(_class_stats(features, labels))


def within_total_ratio_from_stats(class_stats: ClassStats) -> float:
    """Share of the total variance that is within-class: ``tr Sigma_W / tr Sigma_T``.

    ``Sigma_T = (1/N) sum_i (h_i - mu)(h_i - mu)^T`` about the *sample* mean ``mu``; by the
    law of total variance ``tr Sigma_T = tr Sigma_W + (1/N) sum_c n_c ||mu_c - mu||^2``, so the
    ratio is in [0, 1] and needs only pass-1 statistics. (It differs from
    :func:`relative_within_trace` for imbalanced classes, whose ``Sigma_B`` weights classes
    equally.)

    References
    ----------
    Rangamani et al. (2023), ICML (within vs total variability).

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.randn(40, 5), torch.arange(40) % 4)
    >>> 0 < within_total_ratio_from_stats(stats) < 1
    True
    """
    _stats_with_classes(class_stats, "within_total_ratio")
    offsets = class_stats.means - class_stats.global_mean(weighted=True)
    between_weighted = float(class_stats.counts.to(torch.float64) @ offsets.pow(2).sum(dim=1))
    within = float(class_stats.within_ss.sum())
    return _ratio(within, within + between_weighted)


def within_total_ratio(features: ArrayLike, labels: ArrayLike) -> float:
    """``tr Sigma_W / tr Sigma_T``; see :func:`within_total_ratio_from_stats`."""
    return within_total_ratio_from_stats(_class_stats(features, labels))


# --------------------------------------------------------------------------- CDNV
def cdnv_from_stats(class_stats: ClassStats) -> float:
    """Class-distance normalised variance, averaged over pairs of classes.

    ``CDNV = mean_{c < c'} (sigma_c^2 + sigma_c'^2) / (2 ||mu_c - mu_c'||^2)``, with
    ``sigma_c^2 = (1/n_c) sum_{i in c} ||h_i - mu_c||^2`` (0 for a one-sample class).
    Variances come from the cancellation-free pass-1 sums; distances from explicit
    differences. ``inf`` when two class means coincide.

    References
    ----------
    Galanti, Gyorgy, Hutter (2022), ICLR; used per layer by Rangamani et al. (2023).

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.randn(40, 5), torch.arange(40) % 4)
    >>> cdnv_from_stats(stats) > 0
    True
    """
    _stats_with_classes(class_stats, "cdnv")
    variances = class_stats.class_variances
    distances = _upper_pairs(_pairwise_sq_distances(class_stats.means))
    spreads = _upper_pairs(variances.unsqueeze(0) + variances.unsqueeze(1))
    if bool((distances == 0).any()):
        return math.inf
    return float((spreads / (2.0 * distances)).mean())


def cdnv(features: ArrayLike, labels: ArrayLike) -> float:
    """CDNV of raw features; see :func:`cdnv_from_stats`."""
    return cdnv_from_stats(_class_stats(features, labels))


# --------------------------------------------------------------------------- NC2
def equinorm_from_stats(class_stats: ClassStats) -> float:
    """NC2 equinorm: coefficient of variation of the centred class-mean norms.

    ``std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||`` with the unbiased (n - 1) standard
    deviation, as ``torch.std`` in Papyan et al.'s and Parker et al.'s code. 0 at collapse.
    ``nan`` when every class mean equals ``mu_G``.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS; Parker et al. (2023).

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.eye(3).repeat(2, 1), torch.arange(6) % 3)
    >>> round(equinorm_from_stats(stats), 12)
    0.0
    """
    _stats_with_classes(class_stats, "equinorm")
    norms = class_stats.centered_means().pow(2).sum(dim=0).sqrt()
    return _ratio(float(norms.std(unbiased=True)), float(norms.mean()))


def equinorm(features: ArrayLike, labels: ArrayLike) -> float:
    """NC2 equinorm of raw features; see :func:`equinorm_from_stats`."""
    return equinorm_from_stats(_class_stats(features, labels))


def equiangularity_from_stats(class_stats: ClassStats) -> float:
    """NC2 equiangularity: ``mean_{c != c'} |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(C-1)|``.

    0 for a simplex ETF (all cosines ``-1/(C-1)``). ``nan`` if a centred mean is zero.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS; "coherence" in Parker et al. (2023).

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.eye(3).repeat(2, 1), torch.arange(6) % 3)
    >>> round(equiangularity_from_stats(stats), 12)
    0.0
    """
    _stats_with_classes(class_stats, "equiangularity")
    cosines = _cosine_matrix(class_stats)
    if cosines is None:
        return math.nan
    shift = 1.0 / (class_stats.num_classes - 1)
    return float(_off_diagonal(cosines).add(shift).abs().mean())


def equiangularity(features: ArrayLike, labels: ArrayLike) -> float:
    """NC2 equiangularity of raw features; see :func:`equiangularity_from_stats`."""
    return equiangularity_from_stats(_class_stats(features, labels))


def etf_error_from_stats(class_stats: ClassStats) -> float:
    """Distance of the normalised Gram of centred means from the simplex ETF.

    ``|| G / ||G||_F - (I - 11^T / C) / sqrt(C - 1) ||_F`` with ``G = M^T M``. Both terms have
    unit Frobenius norm, so the value is in [0, 2]; 0 exactly for a simplex ETF of any scale.
    ``nan`` when ``G = 0``.

    References
    ----------
    Kothapalli (2023), TMLR (simplex ETF error); Papyan et al. (2020), PNAS.

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.eye(3).repeat(2, 1), torch.arange(6) % 3)
    >>> round(etf_error_from_stats(stats), 12)
    0.0
    """
    _stats_with_classes(class_stats, "etf_error")
    centered = class_stats.centered_means()
    gram = centered.T @ centered
    gram_norm = float(torch.linalg.matrix_norm(gram))
    if gram_norm == 0.0:
        return math.nan
    size = class_stats.num_classes
    identity = torch.eye(size, dtype=torch.float64, device=gram.device)
    simplex = (identity - 1.0 / size) / math.sqrt(size - 1)
    return float(torch.linalg.matrix_norm(gram / gram_norm - simplex))


def etf_error(features: ArrayLike, labels: ArrayLike) -> float:
    """Simplex-ETF error of raw features; see :func:`etf_error_from_stats`."""
    return etf_error_from_stats(_class_stats(features, labels))


def mean_pairwise_angle_from_stats(class_stats: ClassStats) -> float:
    """Mean angle, in degrees, between centred class means over pairs ``c < c'``.

    ``mean_{c<c'} arccos cos(mu_c - mu_G, mu_c' - mu_G)``. For a simplex ETF every angle is
    ``arccos(-1/(C-1))`` (120 degrees for C = 3, about 96.4 for C = 10); Parker et al. track
    this angular separation per layer. ``nan`` if a centred mean is zero.

    References
    ----------
    Parker et al. (2023); Papyan, Han, Donoho (2020), PNAS.

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.eye(3).repeat(2, 1), torch.arange(6) % 3)
    >>> round(mean_pairwise_angle_from_stats(stats), 6)
    120.0
    """
    _stats_with_classes(class_stats, "mean_pairwise_angle")
    cosines = _cosine_matrix(class_stats)
    if cosines is None:
        return math.nan
    return float(torch.rad2deg(torch.arccos(_upper_pairs(cosines))).mean())


def mean_pairwise_angle(features: ArrayLike, labels: ArrayLike) -> float:
    """Mean pairwise angle (degrees) of raw features; see :func:`mean_pairwise_angle_from_stats`."""
    return mean_pairwise_angle_from_stats(_class_stats(features, labels))


# --------------------------------------------------------------------------- NC3
def _classifier_rows(classifier_weight: Any, class_stats: ClassStats) -> torch.Tensor:
    """Rows of the classifier weight for ``class_stats.classes``, float64 (C, D).

    Logit index = label value when the weight has enough rows (rows ``classes`` are taken,
    so absent classes are skipped); otherwise a weight with exactly C rows is read in
    ``classes`` order.
    """
    weight = as_tensor(classifier_weight, "classifier_weight")
    if weight.ndim != 2:
        raise ValueError(
            f"classifier_weight must have shape (outputs, D), got {tuple(weight.shape)}"
        )
    if weight.shape[1] != class_stats.dim:
        raise ValueError(
            f"classifier_weight has input dimension {weight.shape[1]} but the features have "
            f"dimension {class_stats.dim}"
        )
    weight = weight.to(device=class_stats.means.device, dtype=torch.float64)
    if not bool(torch.isfinite(weight).all()):
        raise ValueError("classifier_weight contains NaN or infinite values")
    classes = class_stats.classes
    if int(classes.min()) >= 0 and int(classes.max()) < weight.shape[0]:
        return weight[classes]
    if weight.shape[0] == classes.numel():
        return weight
    raise ValueError(
        f"classifier_weight has {weight.shape[0]} rows, which match neither the label values "
        f"{classes.tolist()} nor their number"
    )


def self_duality_from_stats(class_stats: ClassStats, classifier_weight: ArrayLike) -> float:
    """NC3 self-duality: ``|| W^T / ||W||_F - M / ||M||_F ||_F^2``.

    ``W`` is the last layer's weight restricted to the present classes (C x D; a weight with
    one row per label value is indexed by label), ``M`` the centred class means (D x C). 0 when
    the classifiers are the centred means up to scale; at most 4. Applies to the classifier's
    input only. The bias is ignored.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS (NC3); Kothapalli (2023), TMLR.

    Examples
    --------
    >>> import torch
    >>> features, labels = torch.randn(30, 6), torch.arange(30) % 3
    >>> stats = ClassStats.from_features(features, labels)
    >>> weight = 2.0 * stats.centered_means().T
    >>> round(self_duality_from_stats(stats, weight), 12)
    0.0
    """
    _stats_with_classes(class_stats, "self_duality")
    weight = _classifier_rows(classifier_weight, class_stats)
    centered = class_stats.centered_means()
    weight_norm = float(torch.linalg.matrix_norm(weight))
    means_norm = float(torch.linalg.matrix_norm(centered))
    if weight_norm == 0.0 or means_norm == 0.0:
        return math.nan
    return float((weight.T / weight_norm - centered / means_norm).pow(2).sum())


def self_duality(features: ArrayLike, labels: ArrayLike, classifier_weight: ArrayLike) -> float:
    """NC3 self-duality of raw features; see :func:`self_duality_from_stats`."""
    return self_duality_from_stats(_class_stats(features, labels), classifier_weight)


# --------------------------------------------------------------------------- NC4 / NCC
def ncc_predict(features: ArrayLike, class_means: ArrayLike, classes: ArrayLike) -> torch.Tensor:
    """Nearest-class-centre labels: ``argmin_c ||h - mu_c||^2 = argmin_c ||mu_c||^2 - 2 h.mu_c``.

    Computed in float64 by row blocks (memory O(block D + C D)); no N x C x D broadcast.
    Ties go to the smallest label.

    Parameters
    ----------
    features : (N, D) or (N, C, H, W)
    class_means : (C, D) float
    classes : (C,) ints, the label of each row of ``class_means``

    Returns
    -------
    LongTensor (N,) of values from ``classes``, on the features' device.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS (NC4: the NCC rule).

    Examples
    --------
    >>> import torch
    >>> ncc_predict(torch.tensor([[0.1], [4.0]]), torch.tensor([[0.0], [5.0]]), torch.tensor([3, 8]))
    tensor([3, 8])
    """
    features = flatten_features(features)
    means = flatten_features(class_means, "class_means")
    classes = check_labels(classes, "classes")
    if means.shape[0] != classes.shape[0]:
        raise ValueError(
            f"class_means has {means.shape[0]} rows but classes has {classes.shape[0]} labels"
        )
    if features.shape[1] != means.shape[1]:
        raise ValueError(
            f"features have dimension {features.shape[1]} but class_means have "
            f"dimension {means.shape[1]}"
        )
    if features.shape[0] == 0:
        raise ValueError("features are empty: need at least one sample")
    check_finite(features, "features")
    check_finite(means, "class_means")
    return nearest_centre_labels(features, means, classes)


def _ncc_agreement(class_stats: ClassStats, features: Any, targets: Any, name: str) -> float:
    """Fraction of samples whose NCC label (means of ``class_stats``) equals ``targets``."""
    _stats_with_classes(class_stats, "NCC")
    features, targets = check_features_labels(features, targets, labels_name=name)
    if features.shape[1] != class_stats.dim:
        raise ValueError(
            f"features have dimension {features.shape[1]} but the class statistics have "
            f"dimension {class_stats.dim}"
        )
    predicted = nearest_centre_labels(features, class_stats.means, class_stats.classes)
    return float((predicted == targets).to(torch.float64).mean())


def ncc_accuracy_from_stats(class_stats: ClassStats, features: ArrayLike, labels: ArrayLike) -> float:
    """Accuracy of the nearest-class-centre rule against true labels, with given class means.

    The means come from ``class_stats`` (e.g. the training set) and are applied to
    ``(features, labels)`` (e.g. the test set), as in Rangamani et al.'s per-layer NCC
    accuracy. Samples whose label is not among ``class_stats.classes`` count as errors.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS; Rangamani et al. (2023), ICML.

    Examples
    --------
    >>> import torch
    >>> train = ClassStats.from_features(torch.tensor([[0.0], [5.0]]), torch.tensor([0, 1]))
    >>> ncc_accuracy_from_stats(train, torch.tensor([[1.0], [4.0]]), torch.tensor([0, 0]))
    0.5
    """
    return _ncc_agreement(class_stats, features, labels, "labels")


def ncc_accuracy(features: ArrayLike, labels: ArrayLike) -> float:
    """NCC accuracy with class means estimated from the same ``(features, labels)``.

    See :func:`ncc_accuracy_from_stats` to apply means from another set.
    """
    features, labels = check_features_labels(features, labels)
    return ncc_accuracy_from_stats(_class_stats(features, labels), features, labels)


def ncc_mismatch_from_stats(
    class_stats: ClassStats, features: ArrayLike, predictions: ArrayLike
) -> float:
    """NC4: fraction of samples where the NCC label differs from the network's prediction.

    ``mean_i 1[argmin_c ||h_i - mu_c|| != prediction_i]`` with the means of ``class_stats``
    (normally the training features of the penultimate layer). 0 at NC4.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS; ``NCC_mismatch`` in Parker et al. (2023).

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.tensor([[0.0], [5.0]]), torch.tensor([0, 1]))
    >>> ncc_mismatch_from_stats(stats, torch.tensor([[1.0], [4.0]]), torch.tensor([0, 0]))
    0.5
    """
    return 1.0 - _ncc_agreement(class_stats, features, predictions, "predictions")


def ncc_mismatch(features: ArrayLike, labels: ArrayLike, predictions: ArrayLike) -> float:
    """NC4 mismatch with class means from ``(features, labels)``; see :func:`ncc_mismatch_from_stats`."""
    features, labels = check_features_labels(features, labels)
    _check_predictions(predictions, features.shape[0])
    return ncc_mismatch_from_stats(_class_stats(features, labels), features, predictions)


# --------------------------------------------------------------------------- alignment
def _top_left_singular(matrix: torch.Tensor, k: int) -> torch.Tensor:
    left, _, _ = torch.linalg.svd(matrix, full_matrices=False)
    return left[:, :k]


def subspace_alignment(weight: ArrayLike, class_means: ArrayLike, k: int | None = None) -> float:
    """Rangamani's alignment of a layer's weight with the class means at its input.

    Mean cosine of the principal angles between the top-k right singular subspace of the
    weight ``W`` (out x in) and the top-k left singular subspace of the *uncentred*
    class-mean matrix of the layer's input (in x C):
    ``mean(svdvals(V_W[:, :k]^T U_M[:, :k]))`` in [0, 1] (1 = aligned).

    Conv layers: the weight (out, in, kh, kw) is reshaped to (in, out*kh*kw) and the class
    means (C, in, H, W), or flat channel-major (C, in*H*W), to (in, C*H*W); their top-k left
    singular subspaces (in R^in) are compared.

    Parameters
    ----------
    weight : (out, in) or (out, in, kh, kw)
    class_means : (C, in), (C, in, H, W) or (C, in*H*W) for conv weights; uncentred
    k : int, optional
        Subspace dimension. Default C, clipped to the largest rank both reshaped matrices
        can have (``min(in, columns of each)``); an explicit larger k raises. When k equals
        ``in`` both subspaces are all of R^in and the value is trivially 1.

    Returns
    -------
    float

    References
    ----------
    Rangamani, Lindegaard, Galanti, Poggio (2023), ICML ("AngleBetweenSubspaces").

    Examples
    --------
    >>> import torch
    >>> means = torch.randn(3, 8)
    >>> weight = torch.randn(5, 3) @ means     # rows span the class means
    >>> round(subspace_alignment(weight, means), 6)
    1.0
    """
    weight = as_tensor(weight, "weight")
    class_means = as_tensor(class_means, "class_means")
    for tensor, name in ((weight, "weight"), (class_means, "class_means")):
        if tensor.dtype == torch.bool or not tensor.is_floating_point():
            raise ValueError(f"{name} must be floating point, got dtype {tensor.dtype}")
        if tensor.numel() == 0:
            raise ValueError(f"{name} is empty")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    weight_matrix, means_matrix, k = alignment_request(weight, class_means, k)
    weight_basis = _top_left_singular(weight_matrix, k)
    means_basis = _top_left_singular(means_matrix, k)
    cosines = torch.linalg.svdvals(weight_basis.T @ means_basis).clamp_(max=1.0)
    return float(cosines.mean())


# --------------------------------------------------------------------------- summaries
def summary_from_stats(
    class_stats: ClassStats,
    scatter: ProjectedScatter | None = None,
    *,
    classifier_weight: ArrayLike | None = None,
    rcond: float = DEFAULT_RCOND,
) -> dict[str, float]:
    """Every metric that the given statistics allow, as ``{name: value}``.

    Always: ``trace_ratio``, ``relative_within_trace``, ``within_total_ratio``, ``cdnv``,
    ``equinorm``, ``equiangularity``, ``etf_error``, ``mean_pairwise_angle``. With
    ``scatter``: ``nc1``. With ``classifier_weight``: ``self_duality``. Conventions and
    sources are those of the individual functions.

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.randn(40, 5), torch.arange(40) % 4)
    >>> sorted(summary_from_stats(stats))[:3]
    ['cdnv', 'equiangularity', 'equinorm']
    """
    _stats_with_classes(class_stats, "summary")
    values: dict[str, float] = {}
    if scatter is not None:
        values["nc1"] = nc1_from_stats(class_stats, scatter, rcond=rcond)
    values["trace_ratio"] = trace_ratio_from_stats(class_stats)
    values["relative_within_trace"] = relative_within_trace_from_stats(class_stats)
    values["within_total_ratio"] = within_total_ratio_from_stats(class_stats)
    values["cdnv"] = cdnv_from_stats(class_stats)
    values["equinorm"] = equinorm_from_stats(class_stats)
    values["equiangularity"] = equiangularity_from_stats(class_stats)
    values["etf_error"] = etf_error_from_stats(class_stats)
    values["mean_pairwise_angle"] = mean_pairwise_angle_from_stats(class_stats)
    if classifier_weight is not None:
        values["self_duality"] = self_duality_from_stats(class_stats, classifier_weight)
    return values


def summary(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    classifier_weight: ArrayLike | None = None,
    predictions: ArrayLike | None = None,
    rcond: float = DEFAULT_RCOND,
) -> dict[str, float]:
    """Every metric that applies to ``(features, labels)``, as ``{name: value}``.

    The keys of :func:`summary_from_stats` with ``nc1`` (exact, two passes), plus
    ``ncc_accuracy`` (means from the same data), ``self_duality`` when
    ``classifier_weight`` is given and ``ncc_mismatch`` when the network's
    ``predictions`` are given. All inputs are validated before any work starts.

    Examples
    --------
    >>> import torch
    >>> values = summary(torch.randn(40, 5), torch.arange(40) % 4)
    >>> "nc1" in values and "ncc_accuracy" in values
    True
    """
    features, labels = _validated(features, labels)
    if predictions is not None:
        predictions = _check_predictions(predictions, features.shape[0])
    class_stats = ClassStats.from_features(features, labels)
    if classifier_weight is not None:
        _classifier_rows(classifier_weight, class_stats)
    scatter = ProjectedScatter(class_stats).update(features, labels)
    values = summary_from_stats(
        class_stats, scatter, classifier_weight=classifier_weight, rcond=rcond
    )
    values["ncc_accuracy"] = ncc_accuracy_from_stats(class_stats, features, labels)
    if predictions is not None:
        values["ncc_mismatch"] = ncc_mismatch_from_stats(class_stats, features, predictions)
    return values


# --------------------------------------------------------------------------- Rangamani's weighting
def class_weighted_relative_traces_from_stats(class_stats: ClassStats) -> tuple[float, float]:
    """Relative traces with Rangamani et al.'s class weighting: ``(within, between)``.

    ``tr Sigma_W = (1/C) sum_c sigma_c^2`` with ``sigma_c^2 = (1/n_c) sum_{i in c} ||h_i - mu_c||^2``
    (every class weighs the same, not every sample), ``tr Sigma_B = (1/C) sum_c ||mu_c - mu||^2``
    about the *sample* mean ``mu``; returns ``tr Sigma_W / (tr Sigma_W + tr Sigma_B)`` and
    ``tr Sigma_B / (tr Sigma_W + tr Sigma_B)`` (``nan`` for 0/0). For balanced classes both
    agree with :func:`relative_within_trace_from_stats` (sample-weighted ``Sigma_W``,
    unweighted ``mu_G``).

    References
    ----------
    Rangamani et al. (2023), ICML; official ``src/Measurer.py`` ``TraceMeasure`` (branch ICML2023).

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats.from_features(torch.randn(40, 5), torch.arange(40) % 4)
    >>> within, between = class_weighted_relative_traces_from_stats(stats)
    >>> round(within + between, 12)
    1.0
    """
    _stats_with_classes(class_stats, "class_weighted_relative_traces")
    trace_within = float(class_stats.class_variances.mean())
    offsets = class_stats.means - class_stats.global_mean(weighted=True)
    trace_between = float(offsets.pow(2).sum(dim=1).mean())
    total = trace_within + trace_between
    return _ratio(trace_within, total), _ratio(trace_between, total)


def class_weighted_relative_traces(features: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Rangamani-weighted ``(within, between)`` relative traces of raw features; see
    :func:`class_weighted_relative_traces_from_stats`."""
    return class_weighted_relative_traces_from_stats(_class_stats(features, labels))


__all__ += ["class_weighted_relative_traces", "class_weighted_relative_traces_from_stats"]
