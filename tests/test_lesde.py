"""Tests of ncutils.theory.lesde: the simulator against a hand-computed step and the official
update, the estimators on simulated trajectories, separation vs metrics.nc1, the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncutils import metrics
from ncutils.models import build_model
from ncutils.theory import lesde


def test_one_step_by_hand():
    # K = 3, one sample per class, x0 chosen so the projections are easy
    alpha, beta = 0.6, -0.3
    X = lesde.simulate(alpha, beta, steps=1, seed=3)
    x0, x1 = X[0, 0, 0, :, 0, :], X[0, 0, 1, :, 0, :]
    d = np.eye(3) - 1 / 3
    proj = [d[c] * (d[c] @ x0[c]) / (d[c] @ d[c]) for c in range(3)]
    expected = np.array([x0[c] + (alpha * proj[c] + beta * sum(proj[o] for o in range(3) if o != c)) / 3
                         for c in range(3)])
    np.testing.assert_allclose(x1, expected, rtol=0, atol=1e-14)


def _official_fwd_euler(x0, steps, alpha, beta):
    """zjiayao/le_sde src/utils.py fwd_euler (lines 89-104), one trial, fixed initial state."""
    I3 = np.eye(3)
    y = np.zeros((steps + 1, 3, 3))
    y[0] = x0
    for idx in range(1, steps + 1):
        others = [[1, 2], [0, 2], [0, 1]]
        for c in range(3):
            last = [np.outer(I3[cc] - 1 / 3, I3[cc] - 1 / 3) / (np.linalg.norm(I3[cc] - 1 / 3) ** 2)
                    @ y[idx - 1][cc] for cc in range(3)]
            y[idx][c] = y[idx - 1][c] + (alpha * last[c] + beta * sum(last[cc] for cc in others[c])) / 3
    return y


def test_matches_the_official_simulator():
    X = lesde.simulate(0.3, 0.1, steps=30, seed=1)
    reference = _official_fwd_euler(X[0, 0, 0, :, 0, :], 30, 0.3, 0.1)
    np.testing.assert_allclose(X[0, 0, :, :, 0, :], reference, atol=1e-12)


def test_seeded_and_vectorised():
    a = lesde.simulate([0.1, 0.2], [0.0, -0.1], steps=5, trials=3, samples_per_class=4, seed=7)
    b = lesde.simulate([0.1, 0.2], [0.0, -0.1], steps=5, trials=3, samples_per_class=4, seed=7)
    assert a.shape == (2, 3, 6, 3, 4, 3) and np.array_equal(a, b)
    # within-class deviations stay put without noise
    dev0 = a[:, :, 0] - a[:, :, 0].mean(axis=3, keepdims=True)
    dev5 = a[:, :, -1] - a[:, :, -1].mean(axis=3, keepdims=True)
    np.testing.assert_allclose(dev0, dev5, atol=1e-12)


@pytest.mark.parametrize("alpha,beta,k", [(0.02, -0.01, 3), (0.01, 0.015, 3), (0.03, 0.0, 4)])
def test_estimators_recover_alpha_and_beta(alpha, beta, k):
    X = lesde.simulate(alpha, beta, num_classes=k, steps=400, samples_per_class=3, trials=2, seed=2)
    est = lesde.estimate_alpha_beta(X.mean(axis=4), window=21)
    # K log(1 + r/K) = r - r^2/(2K) + ...: first-order exact
    np.testing.assert_allclose(np.median(est["alpha_hat"][..., 50:]), alpha, atol=2e-4)
    np.testing.assert_allclose(np.median(est["beta_hat"][..., 50:]), beta, atol=2e-4)
    np.testing.assert_allclose(est["alpha_minus_beta"], est["alpha_hat"] - est["beta_hat"], atol=1e-10)


def test_estimator_delta_scales_derivatives():
    X = lesde.simulate(0.02, -0.01, steps=200, seed=0)[:, :, ::5]  # logged every 5 steps
    est = lesde.estimate_alpha_beta(X.mean(axis=4), window=11, delta=5)
    np.testing.assert_allclose(np.median(est["alpha_hat"][..., 10:]), 0.02, atol=3e-4)


def test_mode_rates_match_the_simulation():
    X = lesde.simulate(0.3, 0.15, steps=2, seed=4)
    s, f = lesde.mode_projections(X.mean(axis=4))
    sym, other = lesde.mode_rates(0.3, 0.15, 3)
    np.testing.assert_allclose(s[..., 1] / s[..., 0], sym, rtol=1e-12)
    np.testing.assert_allclose(f[..., 1] / f[..., 0], other, rtol=1e-12)


def test_separation_nc1_agrees_with_metrics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 3)) + 3 * np.eye(3)[:, None, :]
    sep = lesde.separation(x)
    features = torch.tensor(x.reshape(-1, 3))
    labels = torch.arange(3).repeat_interleave(6)
    assert sep["nc1"] == pytest.approx(metrics.nc1(features, labels), rel=1e-8)
    assert sep["ncc_accuracy"] == pytest.approx(metrics.ncc_accuracy(features, labels))
    assert sep["accuracy"] == pytest.approx(float((features.argmax(1) == labels).double().mean()))


def test_phase_diagram_follows_the_analysis():
    table = lesde.phase_diagram([-0.3, 0.3], [-0.2, 0.2], steps=150, trials=3, samples_per_class=5)
    separated = table.groupby(["alpha", "beta"])["separated"].mean()
    assert separated[(0.3, -0.2)] == 1.0          # alpha > beta, beta < 0
    assert separated[(-0.3, -0.2)] == 0.0         # alpha < beta
    assert separated[(-0.3, 0.2)] == 0.0


def test_corrupt_labels_at_the_null_level_is_uniform():
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(30000, dtype=torch.long)
    corrupted = lesde.corrupt_labels(labels, 2 / 3, 3, g)
    np.testing.assert_allclose(torch.bincount(corrupted).double().numpy() / 30000, 1 / 3, atol=0.01)


def test_train_trials_runs_and_is_seeded():
    torch.manual_seed(0)
    x = torch.randn(60, 1, 4, 4)
    y = torch.arange(60) % 3
    x = x + y[:, None, None, None].float()
    build = lambda: build_model("mlp", input_shape=(1, 4, 4), num_classes=3, depth=2, width=8)
    one = lesde.train_trials(build, x, y, x[:30], y[:30], trials=3, iterations=20, lr=0.05, log_every=5,
                             probe_per_class=5)
    two = lesde.train_trials(build, x, y, x[:30], y[:30], trials=3, iterations=20, lr=0.05, log_every=5,
                             probe_per_class=5)
    assert one.class_means.shape == (3, 5, 3, 3)
    assert list(one.iterations) == [0, 5, 10, 15, 20]
    np.testing.assert_array_equal(one.class_means, two.class_means)
    # trial 0 equals a plain per-sample SGD loop on the same draws
    assert np.all(np.isfinite(one.class_means))


def test_bootstrap_median_interval_contains_median():
    median, low, high = lesde.bootstrap_median(np.arange(21.0))
    assert low <= median <= high and median == 10.0
