"""Tests of ncutils.synthetic (features with known collapse, the dense reference NC1) and
ncutils.timing (best_time, the exact-vs-dense timing tables)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ncutils import metrics, synthetic, timing


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("num_classes, dim", [(2, 2), (4, 16), (10, 10)])
def test_simplex_etf_has_equal_norms_simplex_cosines_and_zero_mean(num_classes, dim):
    etf = synthetic.simplex_etf(num_classes, dim, 1.5, generator())
    assert etf.shape == (dim, num_classes) and etf.dtype == torch.float64
    assert torch.allclose(etf.norm(dim=0), torch.full((num_classes,), 1.5, dtype=torch.float64))
    gram = etf.T @ etf / 1.5**2
    off = gram[~torch.eye(num_classes, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, -1 / (num_classes - 1)), atol=1e-12)
    assert float(etf.sum(dim=1).abs().max()) < 1e-12


def test_simplex_etf_rejects_too_few_dimensions():
    with pytest.raises(ValueError, match="num_classes <= dim"):
        synthetic.simplex_etf(5, 4, 1.0, generator())


def test_collapsed_classes_measure_as_their_known_values():
    num_classes = 5
    etf = synthetic.simplex_etf(num_classes, 12, 1.0, generator())
    means, index, labels = synthetic.collapsed_classes(etf, 3, generator(1))
    assert labels.tolist() == [1] * 3 + [4] * 3 + [7] * 3 + [10] * 3 + [13] * 3
    assert synthetic.label_values(num_classes).tolist() == [1, 4, 7, 10, 13]
    measured = metrics.summary(means[index], labels, classifier_weight=etf.T)
    table = synthetic.known_table(measured, synthetic.known_etf_values(num_classes))
    assert list(table.columns) == ["metric", "measured", "known", "abs. difference"]
    assert set(table["metric"]) == set(synthetic.known_etf_values(num_classes))
    assert table["abs. difference"].max() < 1e-10


def test_recentred_noise_keeps_every_class_mean_and_has_the_asked_spread():
    index = torch.arange(3).repeat_interleave(400)
    noise = synthetic.recentred_noise(index, 3, 6, 0.5, generator())
    for c in range(3):
        assert float(noise[index == c].mean(dim=0).abs().max()) < 1e-14
    assert float(noise.std()) == pytest.approx(0.5, rel=0.05)


def test_mixture_expectations_match_the_average_of_many_draws():
    num_classes, dim, per_class, radius, sigma = 3, 5, 10, 1.0, 0.3
    etf = synthetic.simplex_etf(num_classes, dim, radius, generator())
    means, index, labels = synthetic.collapsed_classes(etf, per_class, generator(1))
    draws = generator(2)
    values = {name: [] for name in synthetic.MIXTURE_METRICS}
    for _ in range(300):
        noisy = means[index] + synthetic.recentred_noise(index, num_classes, dim, sigma, draws)
        summary = metrics.summary(noisy, labels)
        for name in values:
            values[name].append(summary[name])
    expected = synthetic.mixture_expectations(sigma, num_classes=num_classes, dim=dim,
                                              n_samples=index.numel(), radius=radius)
    for name, (mean, relative_sd) in expected.items():
        # the mean of 300 draws is within 4 standard errors of the closed form
        assert np.mean(values[name]) == pytest.approx(mean, abs=4 * mean * relative_sd / math.sqrt(300))
        assert np.std(values[name]) / mean == pytest.approx(relative_sd, rel=0.25)


def test_mixture_sweep_rows_and_z_scores():
    etf = synthetic.simplex_etf(4, 8, 1.0, generator())
    means, index, labels = synthetic.collapsed_classes(etf, 20, generator())
    sweep = synthetic.mixture_sweep(means, index, labels, [0.1, 1.0], radius=1.0, generator=generator(3))
    assert len(sweep) == 2 * 6
    judged = sweep[sweep["metric"].isin(synthetic.MIXTURE_METRICS)]
    assert judged["z"].abs().max() <= 4
    assert sweep.loc[sweep["metric"] == "equiangularity", "measured"].abs().max() < 1e-10
    # the same generator state gives the same numbers: the sweep draws nothing else
    again = synthetic.mixture_sweep(means, index, labels, [0.1, 1.0], radius=1.0, generator=generator(3))
    pd.testing.assert_frame_equal(sweep, again)


def test_gaussian_classes_shapes_labels_and_imbalance():
    features, labels = synthetic.gaussian_classes(4, 7, 4000, generator(),
                                                  label_values=synthetic.label_values(4))
    assert features.shape == (4000, 7) and features.dtype == torch.float32
    counts = torch.bincount(labels)[synthetic.label_values(4)]
    assert set(labels.unique().tolist()) == {1, 4, 7, 10}
    assert counts[0] < counts[-1]  # weights 1 .. 2


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_nc1_is_metrics_nc1(seed):
    features, labels = synthetic.gaussian_classes(5, 12, 300, generator(seed), label_values=synthetic.label_values(5))
    assert synthetic.dense_nc1(features, labels) == pytest.approx(metrics.nc1(features, labels), rel=1e-9)


def test_dense_nc1_float32_and_torch_default_cutoff_agree_roughly():
    features, labels = synthetic.gaussian_classes(3, 10, 200, generator())
    exact = synthetic.dense_nc1(features, labels)
    assert synthetic.dense_nc1(features, labels, None, dtype=torch.float32) == pytest.approx(exact, rel=1e-3)


def test_dense_nc1_uses_the_pinv_cutoff():
    # two classes whose centred means span one direction: Sigma_B has rank 1 whatever D is
    features, labels = synthetic.gaussian_classes(2, 6, 100, generator())
    assert synthetic.dense_nc1(features, labels, 1e-10) == pytest.approx(metrics.nc1(features, labels), rel=1e-9)


def test_best_time_keeps_the_minimum_and_the_last_value():
    calls = []

    def function():
        calls.append(len(calls))
        return len(calls)

    seconds, value = timing.best_time(function, repeats=4)
    assert value == 4 and len(calls) == 4 and 0 <= seconds < 1
    with pytest.raises(ValueError, match="repeats"):
        timing.best_time(function, repeats=0)


def test_nc1_timings_and_route_comparison():
    timings = timing.nc1_timings([8, 16, 32], num_classes=3, samples=90, repeats=1, dense_max_dim=16,
                                 generator=generator())
    assert list(timings.columns) == ["dim", "method", "seconds", "nc1", "largest matrix (MB)"]
    assert timings.groupby("dim")["method"].apply(list).to_dict() == {
        8: [timing.EXACT, timing.DENSE], 16: [timing.EXACT, timing.DENSE], 32: [timing.EXACT]}
    comparison = timing.route_comparison(timings)
    assert list(comparison.index) == [8, 16]
    assert comparison["relative difference"].max() < 1e-8
    assert (comparison["speedup (dense / exact time)"] > 0).all()
