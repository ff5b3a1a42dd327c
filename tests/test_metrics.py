"""Tests of ncutils.metrics against naive dense implementations written here.

The references build the D x D matrices (numpy ``pinv``), loop over classes and
pairs explicitly, and use scipy's principal angles. Both sides compute in
float64 from the same input values (float32 inputs are cast by both), so the
stated tolerance is float64 round-off amplified by a pseudo-inverse: rtol 1e-7.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncutils import metrics
from ncutils.metrics import DEFAULT_RCOND
from ncutils.stats import ClassStats, ProjectedScatter

RTOL = 1e-7
ATOL = 1e-10


# --------------------------------------------------------------------------- data
def gaussian_classes(n_per_class, dim, label_values, dtype=np.float64, seed=0, spread=1.0):
    """Shuffled Gaussian clusters around random centres; returns (features, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(len(label_values), dim))
    rows = np.repeat(np.arange(len(label_values)), n_per_class)
    features = centres[rows] + spread * rng.normal(size=(rows.size, dim))
    order = rng.permutation(rows.size)
    return features[order].astype(dtype), np.asarray(label_values)[rows][order]


CASES = {
    "balanced-contiguous-D<C-f64": ([15] * 6, 3, [0, 1, 2, 3, 4, 5], np.float64),
    "imbalanced-noncontiguous-D<C-f32": ([4, 30, 9, 1, 12, 20], 4, [3, 7, 9, 12, 40, 41], np.float32),
    "balanced-noncontiguous-D>C-f32": ([12] * 4, 25, [2, 5, 6, 9], np.float32),
    "imbalanced-contiguous-D>C-f64": ([5, 40, 17, 2], 25, [0, 1, 2, 3], np.float64),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request):
    n_per_class, dim, label_values, dtype = CASES[request.param]
    return gaussian_classes(n_per_class, dim, label_values, dtype=dtype)


# --------------------------------------------------------------------------- naive references
class Dense:
    """Everything built the textbook way: D x D covariances, loops over classes and pairs."""

    def __init__(self, features, labels):
        self.features = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
        self.labels = np.asarray(labels)
        self.classes = np.unique(self.labels)
        self.num_classes = len(self.classes)
        self.means = np.array([self.features[self.labels == c].mean(axis=0) for c in self.classes])
        self.global_mean = self.means.mean(axis=0)
        self.centered = (self.means - self.global_mean).T  # D x C
        dim = self.features.shape[1]
        self.sigma_w = np.zeros((dim, dim))
        for row, label in zip(self.features, self.labels):
            residual = row - self.means[list(self.classes).index(label)]
            self.sigma_w += np.outer(residual, residual)
        self.sigma_w /= len(self.labels)
        self.sigma_b = sum(np.outer(m, m) for m in self.centered.T) / self.num_classes

    def nc1(self, rcond=DEFAULT_RCOND):
        return np.trace(self.sigma_w @ np.linalg.pinv(self.sigma_b, rcond=rcond)) / self.num_classes

    def trace_ratio(self):
        return np.trace(self.sigma_w) / np.trace(self.sigma_b)

    def relative_within_trace(self):
        return np.trace(self.sigma_w) / (np.trace(self.sigma_w) + np.trace(self.sigma_b))

    def within_total_ratio(self):
        centred = self.features - self.features.mean(axis=0)
        sigma_t = centred.T @ centred / len(self.labels)
        return np.trace(self.sigma_w) / np.trace(sigma_t)

    def cdnv(self):
        variances = [
            np.mean(np.sum((self.features[self.labels == c] - mean) ** 2, axis=1))
            for c, mean in zip(self.classes, self.means)
        ]
        values = [
            (variances[a] + variances[b]) / (2 * np.sum((self.means[a] - self.means[b]) ** 2))
            for a, b in itertools.combinations(range(self.num_classes), 2)
        ]
        return np.mean(values)

    def cosines(self):
        vectors = self.centered.T
        return [
            [np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)) for v in vectors] for u in vectors
        ]

    def equinorm(self):
        norms = np.linalg.norm(self.centered, axis=0)
        return np.std(norms, ddof=1) / np.mean(norms)

    def equiangularity(self):
        cosines = self.cosines()
        pairs = [(a, b) for a in range(self.num_classes) for b in range(self.num_classes) if a != b]
        return np.mean([abs(cosines[a][b] + 1 / (self.num_classes - 1)) for a, b in pairs])

    def etf_error(self):
        gram = self.centered.T @ self.centered
        size = self.num_classes
        target = (np.eye(size) - np.ones((size, size)) / size) / np.sqrt(size - 1)
        return np.linalg.norm(gram / np.linalg.norm(gram) - target)

    def mean_pairwise_angle(self):
        cosines = self.cosines()
        pairs = itertools.combinations(range(self.num_classes), 2)
        return np.mean([np.degrees(np.arccos(np.clip(cosines[a][b], -1, 1))) for a, b in pairs])

    def self_duality(self, weight_rows):
        weight_t = np.asarray(weight_rows, dtype=np.float64).T
        difference = weight_t / np.linalg.norm(weight_t) - self.centered / np.linalg.norm(self.centered)
        return np.sum(difference**2)

    def ncc_predict(self, features):
        features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        out = []
        for row in features:
            distances = [np.sum((row - mean) ** 2) for mean in self.means]
            out.append(self.classes[int(np.argmin(distances))])
        return np.array(out)


def naive_alignment(weight_input_major, means_input_major, k):
    """Mean cosine of scipy's principal angles between top-k left singular subspaces."""
    left_w = np.linalg.svd(weight_input_major, full_matrices=False)[0][:, :k]
    left_m = np.linalg.svd(means_input_major, full_matrices=False)[0][:, :k]
    return np.mean(np.cos(scipy.linalg.subspace_angles(left_w, left_m)))


STATS_METRICS = [
    "trace_ratio",
    "relative_within_trace",
    "within_total_ratio",
    "cdnv",
    "equinorm",
    "equiangularity",
    "etf_error",
    "mean_pairwise_angle",
]


# --------------------------------------------------------------------------- agreement with the naive forms
def test_nc1_matches_dense_pinv(case):
    features, labels = case
    dense = Dense(features, labels)
    assert metrics.nc1(features, labels) == pytest.approx(dense.nc1(), rel=RTOL, abs=ATOL)
    stats = ClassStats.from_features(features, labels)
    scatter = ProjectedScatter(stats).update(features, labels)
    assert metrics.nc1_from_stats(stats, scatter) == pytest.approx(dense.nc1(), rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("name", STATS_METRICS)
def test_statistics_metrics_match_naive(case, name):
    features, labels = case
    expected = getattr(Dense(features, labels), name)()
    raw = getattr(metrics, name)(torch.from_numpy(features), torch.from_numpy(labels))
    from_stats = getattr(metrics, f"{name}_from_stats")(ClassStats.from_features(features, labels))
    assert raw == pytest.approx(expected, rel=RTOL, abs=ATOL)
    assert from_stats == pytest.approx(expected, rel=RTOL, abs=ATOL)


def test_self_duality_matches_naive_with_label_indexed_rows(case):
    features, labels = case
    dense = Dense(features, labels)
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(int(labels.max()) + 2, features.shape[1]))  # one row per label value
    expected = dense.self_duality(weight[dense.classes])
    assert metrics.self_duality(features, labels, weight) == pytest.approx(expected, rel=RTOL)
    # a weight with exactly C rows is read in sorted-class order
    compact = weight[dense.classes]
    stats = ClassStats.from_features(features, labels)
    assert metrics.self_duality_from_stats(stats, compact) == pytest.approx(expected, rel=RTOL)


def test_ncc_predict_accuracy_and_mismatch_match_naive(case):
    features, labels = case
    train = Dense(features, labels)
    test_features, test_labels = gaussian_classes(
        [6] * train.num_classes, features.shape[1], list(train.classes), dtype=features.dtype, seed=9, spread=3.0
    )
    expected = train.ncc_predict(test_features)
    predicted = metrics.ncc_predict(test_features, train.means, train.classes)
    np.testing.assert_array_equal(predicted.numpy(), expected)
    stats = ClassStats.from_features(features, labels)
    accuracy = metrics.ncc_accuracy_from_stats(stats, test_features, test_labels)
    assert accuracy == pytest.approx(np.mean(expected == test_labels))
    assert metrics.ncc_accuracy(features, labels) == pytest.approx(
        np.mean(train.ncc_predict(features) == labels)
    )
    network = np.where(np.arange(len(labels)) % 3 == 0, labels, train.classes[0])
    assert metrics.ncc_mismatch(features, labels, network) == pytest.approx(
        np.mean(train.ncc_predict(features) != network)
    )


@pytest.mark.parametrize("in_dim, out_dim, num_classes", [(12, 7, 4), (5, 30, 8)])
def test_linear_alignment_matches_principal_angles(in_dim, out_dim, num_classes):
    rng = np.random.default_rng(in_dim)
    weight = rng.normal(size=(out_dim, in_dim))
    means = rng.normal(size=(num_classes, in_dim)) + 2.0  # uncentred on purpose
    k = min(num_classes, in_dim, out_dim)
    expected = naive_alignment(weight.T, means.T, k)
    assert metrics.subspace_alignment(weight, means) == pytest.approx(expected, rel=1e-9)
    assert metrics.subspace_alignment(torch.from_numpy(weight).float(), torch.from_numpy(means).float(), k=2) == (
        pytest.approx(naive_alignment(weight.T, means.T, 2), rel=1e-5)
    )


def test_conv_alignment_reshapes_as_documented():
    rng = np.random.default_rng(5)
    out_ch, in_ch, kernel, num_classes, height = 6, 4, 3, 3, 5
    weight = rng.normal(size=(out_ch, in_ch, kernel, kernel))
    means = rng.normal(size=(num_classes, in_ch, height, height))
    weight_matrix = np.zeros((in_ch, out_ch * kernel * kernel))
    means_matrix = np.zeros((in_ch, num_classes * height * height))
    for channel in range(in_ch):  # explicit reshape, one input channel per row
        weight_matrix[channel] = np.concatenate([weight[o, channel].ravel() for o in range(out_ch)])
        means_matrix[channel] = np.concatenate([means[c, channel].ravel() for c in range(num_classes)])
    expected = naive_alignment(weight_matrix, means_matrix, num_classes)
    assert metrics.subspace_alignment(weight, means) == pytest.approx(expected, rel=1e-9)
    flat_means = means.reshape(num_classes, -1)  # as ClassStats stores flattened conv maps
    assert metrics.subspace_alignment(weight, flat_means) == pytest.approx(expected, rel=1e-9)


def test_alignment_is_one_when_weight_rows_span_the_means():
    rng = np.random.default_rng(2)
    means = rng.normal(size=(3, 10))
    aligned = rng.normal(size=(6, 3)) @ means
    assert metrics.subspace_alignment(aligned, means) == pytest.approx(1.0, abs=1e-9)
    orthogonal_rows = scipy.linalg.null_space(means).T  # rows orthogonal to every mean
    assert metrics.subspace_alignment(orthogonal_rows, means) == pytest.approx(0.0, abs=1e-9)


def test_summary_has_every_applicable_metric(case):
    features, labels = case
    weight = np.random.default_rng(1).normal(size=(int(labels.max()) + 1, features.shape[1]))
    predictions = labels[::-1].copy()
    values = metrics.summary(features, labels, classifier_weight=weight, predictions=predictions)
    assert set(values) == {"nc1", "ncc_accuracy", "ncc_mismatch", "self_duality", *STATS_METRICS}
    for name in STATS_METRICS:
        assert values[name] == getattr(metrics, name)(features, labels)
    assert values["nc1"] == metrics.nc1(features, labels)
    assert values["ncc_mismatch"] == metrics.ncc_mismatch(features, labels, predictions)
    assert values["self_duality"] == metrics.self_duality(features, labels, weight)
    stats = ClassStats.from_features(features, labels)
    assert set(metrics.summary_from_stats(stats)) == set(STATS_METRICS)


# --------------------------------------------------------------------------- structure
def simplex_etf_features(num_classes, dim, copies, seed=0, scale=2.5):
    """Class means forming a rotated simplex ETF in R^dim, every sample exactly at its mean."""
    rng = np.random.default_rng(seed)
    simplex = np.eye(num_classes) - 1.0 / num_classes
    rotation = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:, :num_classes]
    means = scale * simplex @ rotation.T + rng.normal(size=dim)  # translated on purpose
    labels = np.repeat(np.arange(num_classes) * 3 + 1, copies)
    return np.repeat(means, copies, axis=0), labels


def test_simplex_etf_with_zero_spread_is_fully_collapsed():
    num_classes = 5
    features, labels = simplex_etf_features(num_classes, dim=8, copies=4)
    values = metrics.summary(features, labels)
    assert values["nc1"] == pytest.approx(0.0, abs=1e-20)
    assert values["etf_error"] == pytest.approx(0.0, abs=1e-12)
    assert values["equiangularity"] == pytest.approx(0.0, abs=1e-12)
    assert values["equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert values["mean_pairwise_angle"] == pytest.approx(
        math.degrees(math.acos(-1.0 / (num_classes - 1))), abs=1e-9
    )
    assert values["ncc_accuracy"] == 1.0


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-1e3, 1e3),
)
def test_nc1_invariant_to_rotation_translation_and_scale(seed, scale, shift):
    features, labels = gaussian_classes([10, 25, 5, 15], 6, [0, 2, 3, 8], seed=seed)
    rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(6, 6)))[0]
    transformed = scale * features @ rotation + shift
    assert metrics.nc1(transformed, labels) == pytest.approx(metrics.nc1(features, labels), rel=1e-7)


def test_gaussian_mixture_nc1_matches_closed_form():
    # Population: class c ~ N(mu_c, Sigma_c), proportions n_c / N. Then
    # Sigma_W = sum_c (n_c/N) Sigma_c and Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T.
    rng = np.random.default_rng(11)
    dim, counts = 4, np.array([6000, 9000, 12000])
    class_means = np.array([[0.0, 0, 0, 0], [3.0, 1, 0, 0], [0.0, 4, -1, 0]])
    covariances = []
    for scale in (0.5, 1.0, 2.0):
        factor = rng.normal(size=(dim, dim))
        covariances.append(scale * (factor @ factor.T / dim + np.eye(dim)))
    features = np.concatenate(
        [rng.multivariate_normal(mu, cov, size=n) for mu, cov, n in zip(class_means, covariances, counts)]
    )
    labels = np.repeat([0, 1, 2], counts)
    sigma_w = sum(n * cov for n, cov in zip(counts, covariances)) / counts.sum()
    centred = class_means - class_means.mean(axis=0)
    sigma_b = centred.T @ centred / 3
    expected = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / 3
    # With >= 6000 samples per class the relative sampling error of each covariance
    # entry is about sqrt(2/6000) ~ 2% at worst and smaller after averaging: 5% is
    # several standard errors, while the classic slips (omitting /C, weighting classes
    # equally, using sum instead of mean) are off by factors of 1.2x or more.
    assert metrics.nc1(features, labels) == pytest.approx(expected, rel=0.05)


def test_nc1_needs_no_dense_matrix_at_huge_dimension():
    # D = 200,000 (a dense Sigma_W would need 320 GB); zero-padding must not change NC1
    features, labels = gaussian_classes([10, 12, 8], 5, [1, 2, 4])
    padded = np.zeros((len(labels), 200_000), dtype=np.float32)
    padded[:, :5] = features
    assert metrics.nc1(padded, labels) == pytest.approx(metrics.nc1(features.astype(np.float32), labels), rel=1e-9)


def test_nc1_accurate_for_features_far_from_the_origin():
    # pass 2 projects h and mu separately; a 1e4 offset (ReLU-like positive features)
    # must not cost more than ~eps * offset / spread of relative accuracy
    features, labels = gaussian_classes([30, 20, 25], 8, [0, 1, 2], spread=0.1)
    shifted = features + 1e4
    assert metrics.nc1(shifted, labels) == pytest.approx(Dense(features, labels).nc1(), rel=1e-8)


def test_single_sample_class_is_handled():
    features, labels = gaussian_classes([1, 10, 6], 5, [0, 1, 2])
    dense = Dense(features, labels)
    assert metrics.nc1(features, labels) == pytest.approx(dense.nc1(), rel=RTOL)
    assert metrics.cdnv(features, labels) == pytest.approx(dense.cdnv(), rel=RTOL)


def test_rcond_cutoff_is_the_dense_pinv_cutoff():
    # Class means (0,0), (2,0), (1,1e-5): the third barely leaves the line, so the Gram
    # M^T M has an eigenvalue ~3e-11 of its largest. Symmetric within-class offsets keep
    # the means exact and put within-class spread along that thin direction.
    offsets = np.array([[0.0, 0.01], [0.0, -0.01], [0.01, 0.0], [-0.01, 0.0]])
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1e-5]])
    features = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    labels = np.repeat([0, 1, 2], len(offsets))
    dense = Dense(features, labels)
    dropped = metrics.nc1(features, labels, rcond=1e-10)
    kept = metrics.nc1(features, labels, rcond=1e-12)
    assert dropped == pytest.approx(dense.nc1(rcond=1e-10), rel=1e-6)
    assert kept == pytest.approx(dense.nc1(rcond=1e-12), rel=1e-3)
    assert kept > 1e3 * dropped  # the thin direction dominates once it is kept
    with pytest.raises(ValueError, match="round-off"):
        metrics.nc1(features, labels, rcond=1e-20)


# --------------------------------------------------------------------------- bad input
RAW_METRICS = [getattr(metrics, name) for name in ["nc1", "ncc_accuracy", *STATS_METRICS]]


@pytest.mark.parametrize("metric", RAW_METRICS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "features, labels, message",
    [
        (np.array([[np.nan, 0.0], [1.0, 1.0], [2.0, 0.0]]), np.array([0, 1, 1]), "NaN or infinite"),
        (np.array([[np.inf, 0.0], [1.0, 1.0], [2.0, 0.0]]), np.array([0, 1, 1]), "NaN or infinite"),
        (np.ones((4, 2)), np.zeros(4, dtype=int), "at least 2 classes"),
        (np.ones((4, 2)), np.array([0, 1, 0]), "mismatched lengths"),
        (np.ones((0, 2)), np.zeros(0, dtype=int), "empty"),
    ],
    ids=["nan", "inf", "single-class", "mismatched", "empty"],
)
def test_bad_input_raises_value_error_naming_the_problem(metric, features, labels, message):
    with pytest.raises(ValueError, match=message):
        metric(features, labels)


def test_bad_auxiliary_input_raises_value_error():
    features, labels = gaussian_classes([5, 5, 5], 4, [0, 1, 2])
    with pytest.raises(ValueError, match="mismatched lengths"):
        metrics.ncc_mismatch(features, labels, labels[:-1])
    with pytest.raises(ValueError, match="mismatched lengths"):
        metrics.summary(features, labels, predictions=labels[:-1])
    with pytest.raises(ValueError, match="input dimension"):
        metrics.self_duality(features, labels, np.ones((3, 5)))
    with pytest.raises(ValueError, match="rows"):
        metrics.self_duality(np.vstack([features]), labels + 10, np.ones((2, 4)))
    with pytest.raises(ValueError, match="dimension"):
        metrics.ncc_predict(features, np.ones((3, 5)), [0, 1, 2])
    with pytest.raises(ValueError, match="k must be"):
        metrics.subspace_alignment(np.ones((3, 4)), np.ones((2, 4)), k=4)
    with pytest.raises(ValueError, match="do not match"):
        metrics.subspace_alignment(np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.subspace_alignment(np.full((3, 4), np.nan), np.ones((2, 4)))
    with pytest.raises(ValueError, match="rcond"):
        metrics.nc1(features, labels, rcond=1.5)
    stats = ClassStats.from_features(features, labels)
    other = ClassStats.from_features(features + 1, labels)
    with pytest.raises(ValueError, match="different ClassStats"):
        metrics.nc1_from_stats(stats, ProjectedScatter(other).update(features, labels))
    with pytest.raises(ValueError, match="at least 2 classes"):
        metrics.cdnv_from_stats(ClassStats.from_features(features[labels == 0], labels[labels == 0]))


# --------------------------------------------------------------------------- Rangamani's class weighting
def _dense_class_weighted_traces(features, labels):
    """Rangamani's TraceMeasure, literally: D x D per-class covariances averaged over classes,
    between-class covariance about the sample mean averaged over classes."""
    features = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels)
    sample_mean = features.mean(axis=0)
    within = np.zeros((features.shape[1], features.shape[1]))
    between = np.zeros_like(within)
    classes = np.unique(labels)
    for value in classes:
        members = features[labels == value]
        centred = members - members.mean(axis=0)
        within += centred.T @ centred / len(members)
        offset = (members.mean(axis=0) - sample_mean)[:, None]
        between += offset @ offset.T
    within, between = np.trace(within) / len(classes), np.trace(between) / len(classes)
    return within / (within + between), between / (within + between)


def test_class_weighted_relative_traces_match_dense(case):
    features, labels = case
    expected = _dense_class_weighted_traces(features, labels)
    raw = metrics.class_weighted_relative_traces(features, labels)
    from_stats = metrics.class_weighted_relative_traces_from_stats(ClassStats.from_features(features, labels))
    assert raw == pytest.approx(expected, rel=RTOL, abs=ATOL)
    assert from_stats == pytest.approx(expected, rel=RTOL, abs=ATOL)
    # balanced classes: the same number as the book's relative_within_trace
    if len(set(np.bincount(np.searchsorted(np.unique(labels), labels)))) == 1:
        assert raw[0] == pytest.approx(metrics.relative_within_trace(features, labels), rel=1e-9)
    else:
        assert raw[0] != pytest.approx(metrics.relative_within_trace(features, labels), rel=1e-6)
