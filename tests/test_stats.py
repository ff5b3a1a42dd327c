"""Tests of ncutils.stats against naive numpy loops.

Tolerance: the accumulators work in float64 from the same input values the naive
reference casts to float64, so agreement is to float64 round-off (rtol 1e-10).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncutils.stats as stats_module
from ncutils.stats import ClassStats, ProjectedScatter

RTOL = 1e-10


def make_data(n_per_class, dim, label_values, dtype=np.float64, seed=0, offset=0.0):
    """Gaussian clusters, one per label value, ``n_per_class[c]`` samples each, shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(len(label_values), dim))
    labels = np.repeat(np.asarray(label_values), n_per_class)
    rows = np.repeat(np.arange(len(label_values)), n_per_class)
    features = centres[rows] + rng.normal(size=(labels.size, dim)) + offset
    order = rng.permutation(labels.size)
    return features[order].astype(dtype), labels[order]


def naive_moments(features, labels):
    """Per-class counts, means and within sums of squares with explicit loops (float64)."""
    features = np.asarray(features, dtype=np.float64)
    classes = np.unique(labels)
    counts, means, within = [], [], []
    for value in classes:
        members = features[labels == value]
        mean = members.mean(axis=0)
        counts.append(len(members))
        means.append(mean)
        within.append(sum(float(np.sum((row - mean) ** 2)) for row in members))
    return classes, np.array(counts), np.array(means), np.array(within)


CASES = {
    "balanced-contiguous-D>C-f64": ([20, 20, 20], 9, [0, 1, 2], np.float64),
    "imbalanced-noncontiguous-D<C-f32": ([3, 40, 7, 1, 12, 25], 4, [3, 7, 9, 12, 40, 41], np.float32),
    "imbalanced-negative-labels-f32": ([15, 2, 30], 6, [-5, 0, 8], np.float32),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request):
    n_per_class, dim, label_values, dtype = CASES[request.param]
    return make_data(n_per_class, dim, label_values, dtype=dtype)


def assert_stats_close(actual: ClassStats, classes, counts, means, within):
    assert actual.classes.tolist() == list(classes)
    assert actual.counts.tolist() == list(counts)
    assert actual.means.dtype == torch.float64 and actual.within_ss.dtype == torch.float64
    np.testing.assert_allclose(actual.means.numpy(), means, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(actual.within_ss.numpy(), within, rtol=RTOL, atol=1e-12)


def test_class_stats_match_naive_loops(case):
    features, labels = case
    result = ClassStats().update(torch.from_numpy(features), torch.from_numpy(labels))
    assert_stats_close(result, *naive_moments(features, labels))
    assert result.n == len(labels) and result.dim == features.shape[1]


def test_float32_input_is_accumulated_in_float64():
    # 1e4 offsets make float32 accumulation lose ~3 digits; float64 keeps them.
    features, labels = make_data([400, 600], 5, [1, 4], dtype=np.float32, offset=1e4)
    result = ClassStats().update(features, labels)
    assert_stats_close(result, *naive_moments(features, labels))


def test_within_ss_free_of_cancellation_at_large_offset():
    # E||h||^2 - ||mu||^2 at offset 1e8 loses every digit of a unit variance in float64
    features, labels = make_data([50, 50], 3, [0, 1], offset=1e8)
    reference = naive_moments(features - 1e8, labels)[3]
    result = ClassStats().update(features[:37], labels[:37]).update(features[37:], labels[37:])
    np.testing.assert_allclose(result.within_ss.numpy(), reference, rtol=1e-6)


def test_numpy_and_conv_maps_accepted():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(12, 2, 3, 3))
    labels = np.arange(12) % 3
    from_maps = ClassStats().update(maps, labels)
    from_flat = ClassStats().update(torch.from_numpy(maps.reshape(12, -1)), torch.from_numpy(labels))
    assert from_maps.dim == 18
    assert torch.equal(from_maps.means, from_flat.means)


def test_single_sample_class_has_zero_spread():
    features, labels = make_data([1, 5], 4, [2, 6])
    result = ClassStats().update(features, labels)
    single = result.classes.tolist().index(2)
    assert result.counts[single] == 1
    assert result.within_ss[single] == 0.0 and result.class_variances[single] == 0.0
    np.testing.assert_array_equal(result.means[single].numpy(), features[labels == 2][0])


def test_absent_classes_in_batches_are_merged_in_order():
    features, labels = make_data([5, 6, 7], 3, [3, 7, 9])
    first = labels != 7
    result = ClassStats().update(features[first], labels[first]).update(features[~first], labels[~first])
    assert_stats_close(result, *naive_moments(features, labels))


def test_global_and_centered_means():
    features, labels = make_data([3, 30, 9], 4, [0, 5, 6])
    result = ClassStats().update(features, labels)
    _, counts, means, _ = naive_moments(features, labels)
    np.testing.assert_allclose(result.global_mean().numpy(), means.mean(axis=0), rtol=RTOL)
    np.testing.assert_allclose(result.global_mean(weighted=True).numpy(), features.mean(axis=0), rtol=RTOL)
    np.testing.assert_allclose(result.centered_means().numpy(), (means - means.mean(axis=0)).T, rtol=RTOL, atol=1e-12)


def test_row_blocks_give_the_same_result(monkeypatch, case):
    features, labels = case
    whole = ClassStats().update(features, labels)
    scatter_whole = ProjectedScatter(whole).update(features, labels).scatter
    # force tiny row blocks so the multi-block path (and its Chan merges) runs
    monkeypatch.setattr(stats_module, "row_chunks", lambda n_rows, row_bytes, **_: range(0, n_rows, 7))
    blocked = ClassStats().update(features, labels)
    assert_stats_close(blocked, *naive_moments(features, labels))
    scatter_blocked = ProjectedScatter(blocked).update(features, labels).scatter
    np.testing.assert_allclose(scatter_blocked.numpy(), scatter_whole.numpy(), rtol=RTOL, atol=1e-12)


def test_projected_scatter_matches_dense_product(case):
    features, labels = case
    classes, _, means, _ = naive_moments(features, labels)
    residuals = features.astype(np.float64) - means[np.searchsorted(classes, labels)]
    sigma_w = residuals.T @ residuals / len(labels)
    centered = (means - means.mean(axis=0)).T
    result = ClassStats().update(features, labels)
    scatter = ProjectedScatter(result).update(features, labels)
    assert scatter.n == len(labels) and scatter.classes.tolist() == list(classes)
    np.testing.assert_allclose(scatter.scatter.numpy(), centered.T @ sigma_w @ centered, rtol=1e-9, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(1, 79), max_size=5, unique=True),
)
def test_merge_over_shuffled_rebatched_data_is_identical(seed, cuts):
    features, labels = make_data([30, 5, 25, 20], 6, [1, 4, 5, 11], seed=seed)
    whole = ClassStats().update(features, labels)
    whole_scatter = ProjectedScatter(whole).update(features, labels)
    order = np.random.default_rng(seed + 1).permutation(len(labels))
    shuffled_features, shuffled_labels = features[order], labels[order]
    bounds = [0, *sorted(cuts), len(labels)]
    parts = [
        ClassStats().update(shuffled_features[lo:hi], shuffled_labels[lo:hi])
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert torch.equal(merged.classes, whole.classes) and torch.equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.means.numpy(), whole.means.numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(merged.within_ss.numpy(), whole.within_ss.numpy(), rtol=RTOL)
    scatters = [
        ProjectedScatter(whole).update(shuffled_features[lo:hi], shuffled_labels[lo:hi])
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
    merged_scatter = scatters[0]
    for part in scatters[1:]:
        merged_scatter = merged_scatter.merge(part)
    assert merged_scatter.n == whole_scatter.n
    np.testing.assert_allclose(merged_scatter.scatter.numpy(), whole_scatter.scatter.numpy(), rtol=RTOL, atol=1e-12)


def test_merge_leaves_operands_unchanged_and_handles_empty():
    features, labels = make_data([4, 4], 3, [0, 1])
    first = ClassStats().update(features[:5], labels[:5])
    means_before = first.means.clone()
    merged = first.merge(ClassStats().update(features[5:], labels[5:]))
    assert torch.equal(first.means, means_before) and merged.n == 8
    assert torch.equal(ClassStats().merge(first).means, first.means)
    assert ClassStats().merge(ClassStats()).n == 0


def test_update_returns_self_and_scatter_copies_means():
    features, labels = make_data([4, 4], 3, [0, 1])
    accumulator = ClassStats()
    assert accumulator.update(features, labels) is accumulator
    scatter = ProjectedScatter(accumulator)
    accumulator.update(features + 1.0, labels)
    assert not scatter.matches(accumulator)


@pytest.mark.parametrize(
    "features, labels, message",
    [
        (np.full((4, 2), np.nan), np.arange(4) % 2, "NaN or infinite"),
        (np.array([[0.0, np.inf], [1.0, 1.0]]), np.array([0, 1]), "NaN or infinite"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "empty"),
        (np.zeros((4, 3)), np.arange(3), "mismatched lengths"),
        (np.zeros((4, 3)), np.arange(4) * 0.5, "must be integers"),
        (np.zeros(4), np.arange(4), r"shape \(N, D\)"),
        (np.zeros((4, 3)), np.zeros((4, 1), dtype=int), r"shape \(N,\)"),
    ],
)
def test_bad_input_raises_value_error(features, labels, message):
    accumulator = ClassStats()
    with pytest.raises(ValueError, match=message):
        accumulator.update(features, labels)
    assert accumulator.n == 0


def test_bad_values_leave_accumulators_unchanged():
    features, labels = make_data([4, 4], 3, [0, 1])
    accumulator = ClassStats().update(features, labels)
    means_before = accumulator.means.clone()
    scatter = ProjectedScatter(accumulator).update(features, labels)
    scatter_before = scatter.scatter.clone()
    poisoned = features.copy()
    poisoned[3, 1] = np.nan
    for target in (accumulator, scatter):
        with pytest.raises(ValueError, match="NaN or infinite"):
            target.update(poisoned, labels)
    with pytest.raises(ValueError, match="overflow"):
        ClassStats().update(np.array([[1e200, 0.0], [-1e200, 0.0]]), np.array([0, 0]))
    assert torch.equal(accumulator.means, means_before) and accumulator.n == 8
    assert torch.equal(scatter.scatter, scatter_before) and scatter.n == 8


def test_inconsistent_use_raises_value_error():
    features, labels = make_data([4, 4], 3, [0, 1])
    result = ClassStats().update(features, labels)
    with pytest.raises(ValueError, match="dimension"):
        result.update(np.zeros((2, 5)), np.array([0, 1]))
    with pytest.raises(ValueError, match="dimension"):
        result.merge(ClassStats().update(np.zeros((2, 5)), np.array([0, 1])))
    with pytest.raises(ValueError, match=r"labels \[7\] are not among"):
        ProjectedScatter(result).update(features[:2], np.array([0, 7]))
    with pytest.raises(ValueError, match="empty"):
        ClassStats().means
    with pytest.raises(ValueError, match="non-empty"):
        ProjectedScatter(ClassStats())
    with pytest.raises(ValueError, match="empty"):
        ProjectedScatter(result).scatter
    other = ClassStats().update(features + 1.0, labels)
    with pytest.raises(ValueError, match="different pass-1"):
        ProjectedScatter(result).merge(ProjectedScatter(other))


# ----------------------------------------------------------------------------- fixed classes
def fixed_stats(features, labels, classes=None, num_classes=None, batch=13):
    """ClassStats with classes fixed up front, fed in batches of ``batch`` rows."""
    accumulator = ClassStats(classes=classes, num_classes=num_classes)
    for start in range(0, len(labels), batch):
        accumulator.update(features[start:start + batch], labels[start:start + batch])
    return accumulator


def test_fixed_classes_match_naive_loops_and_the_discovered_route(case):
    features, labels = case
    classes = np.unique(labels)[::-1].copy()  # any order: sorted inside
    result = fixed_stats(features, labels, classes=classes)
    assert_stats_close(result, *naive_moments(features, labels))
    discovered = ClassStats().update(features, labels)
    scatter = ProjectedScatter(result)
    for start in range(0, len(labels), 11):
        scatter.update(features[start:start + 11], labels[start:start + 11])
    expected = ProjectedScatter(discovered).update(features, labels).scatter
    np.testing.assert_allclose(scatter.scatter.numpy(), expected.numpy(), rtol=RTOL, atol=1e-12)
    assert result.fixed_classes.tolist() == sorted(classes.tolist()) and discovered.fixed_classes is None


def test_fixed_classes_absent_from_a_batch_or_from_all_data():
    # class 7 is missing from the first batches, class 40 from all data: 40 is left out of
    # the results (every metric covers the classes present), as the discovered route does
    features, labels = make_data([30, 6, 20], 5, [3, 7, 9])
    order = np.argsort(labels == 7, kind="stable")
    features, labels = features[order], labels[order]
    result = fixed_stats(features, labels, classes=[3, 7, 9, 40], batch=10)
    assert_stats_close(result, *naive_moments(features, labels))
    assert result.num_classes == 3 and result.n == 56 and result.fixed_classes.tolist() == [3, 7, 9, 40]
    by_count = fixed_stats(features - 1.0, labels - 3, num_classes=41)
    assert by_count.classes.tolist() == [0, 4, 6]
    np.testing.assert_allclose(by_count.means.numpy(), result.means.numpy() - 1.0, rtol=RTOL)


def test_fixed_classes_unknown_label_names_the_update_and_samples():
    features, labels = make_data([15, 15], 3, [0, 1])
    labels = labels.copy()
    labels[27] = 5
    accumulator = fixed_stats(features, labels, classes=[0, 1], batch=10)  # no error yet
    with pytest.raises(ValueError, match=r"label 5 \(first seen in update 2, samples 20:30 .*\[0, 1\]"):
        accumulator.means
    with pytest.raises(ValueError, match="label 5"):  # stays poisoned
        accumulator.finalize()


def test_fixed_classes_non_finite_values_name_the_update_and_samples():
    features, labels = make_data([10, 10], 3, [0, 1])
    poisoned = features.copy()
    poisoned[14, 2] = np.nan
    accumulator = fixed_stats(poisoned, labels, num_classes=2, batch=5)
    with pytest.raises(ValueError, match=r"NaN or infinite .*update 2, samples 10:15"):
        accumulator.counts
    poisoned[14, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fixed_stats(poisoned, labels, num_classes=2, batch=5).finalize()
    with pytest.raises(ValueError, match="too large"):
        ClassStats(num_classes=1).update(np.array([[1e200, 0.0], [-1e200, 0.0]]), np.array([0, 0])).means
    stats = fixed_stats(features, labels, num_classes=2)
    scatter = ProjectedScatter(stats).update(features, labels).update(poisoned[10:], labels[10:])
    with pytest.raises(ValueError, match=r"NaN or infinite .*update 1, samples 20:30 of those passed to this "
                                         r"ProjectedScatter"):
        scatter.scatter
    with pytest.raises(ValueError, match=r"label 3 .*update 0"):
        ProjectedScatter(stats).update(features[:2], np.array([0, 3])).scatter


def test_fixed_classes_merge_and_results_do_not_change_under_the_caller():
    features, labels = make_data([12, 9, 15], 4, [1, 2, 6])
    whole = ClassStats().update(features, labels)
    first = fixed_stats(features[:20], labels[:20], classes=[1, 2, 6])
    means_before = first.means.clone()
    held = first.means
    second = fixed_stats(features[20:], labels[20:], classes=[1, 2, 6])
    merged = first.merge(second)
    assert merged.fixed_classes.tolist() == [1, 2, 6] and torch.equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.within_ss.numpy(), whole.within_ss.numpy(), rtol=RTOL)
    mixed = first.merge(ClassStats().update(features[20:], labels[20:]))
    assert mixed.fixed_classes is None and torch.equal(mixed.counts, whole.counts)
    first.update(features[20:], labels[20:])
    assert torch.equal(held, means_before)  # results handed out are not updated in place
    np.testing.assert_allclose(first.means.numpy(), whole.means.numpy(), rtol=RTOL)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(classes=[0, 1], num_classes=2), "not both"),
        (dict(num_classes=0), "num_classes"),
        (dict(num_classes=2.0), "num_classes"),
        (dict(classes=[1, 1, 2]), "repeat"),
        (dict(classes=[0.5, 1.0]), "integers"),
    ],
)
def test_fixed_classes_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        ClassStats(**arguments)
