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
    assert np.all(np.isfinite(one.class_means))  # against plain SGD: test_a_trial_equals_plain_per_sample_sgd


def test_bootstrap_median_interval_contains_median():
    median, low, high = lesde.bootstrap_median(np.arange(21.0))
    assert low <= median <= high and median == 10.0


# --------------------------------------------------------------------------- the tail index r-hat


def test_tail_index_recovers_a_power_law():
    # A(t) = t^(1-r), t = iteration + 1 (the official convention): log A / log t = 1 - r exactly
    iterations = np.arange(0, 10_001, 25)
    for r in (0.3, 1.0, 1.4):
        series = (iterations + 1.0) ** (1 - r)
        assert lesde.tail_index(series, iterations) == pytest.approx(r, abs=1e-12)
        # negated series (more than half of the tail negative) give the same index
        assert lesde.tail_index(-series, iterations) == pytest.approx(r, abs=1e-12)


def test_tail_index_with_a_constant_factor_and_the_official_formula():
    # A = c t^(1-r): r-hat = r - mean(log c / log t) over the tail; on a series logged every
    # iteration with the official tail (last 1000 of 10000) this is estimate_tail_idx's formula
    iterations = np.arange(10_000)
    t = iterations + 1.0
    c, r = 2e-3, 0.5
    series = c * t ** (1 - r)
    expected = 1 - np.mean(np.log(series[-1000:]) / np.log(t[-1000:]))
    assert lesde.tail_index(series, iterations) == pytest.approx(expected, rel=1e-12)
    assert lesde.tail_index(series, iterations) == pytest.approx(r - np.mean(np.log(c) / np.log(t[-1000:])))


def test_tail_index_is_vectorised_and_skips_non_positive_points():
    iterations = np.arange(0, 1001, 10)
    series = np.stack([(iterations + 1.0) ** 0.5, (iterations + 1.0) ** 0.2])
    np.testing.assert_allclose(lesde.tail_index(series, iterations), [0.5, 0.8], atol=1e-12)
    holed = series[0].copy()
    holed[-3] = -1.0  # one negative point in a positive tail: left out
    assert lesde.tail_index(holed, iterations) == pytest.approx(0.5, abs=1e-12)
    assert np.isnan(lesde.tail_index(np.zeros_like(iterations, dtype=float), iterations))
    with pytest.raises(ValueError):
        lesde.tail_index(series, iterations[:-1])
    with pytest.raises(ValueError):
        lesde.tail_index(series, iterations, tail_fraction=0)


def test_tail_index_of_the_le_ode():
    # constant alpha in the LE-ODE: A-hat(t) ~ alpha t, so log A / log t = 1 + log(alpha) / log t
    alpha, beta = 0.02, -0.01
    X = lesde.simulate(alpha, beta, steps=2000, seed=3)[0, :1].mean(axis=3)   # (1, T+1, K, K)
    est = lesde.estimate_alpha_beta(X, window=21)
    iterations = np.arange(2001)
    tail = iterations >= 1800
    expected = 1 - np.mean(np.log(est["A_hat"][0, tail]) / np.log(iterations[tail] + 1.0))
    assert lesde.tail_index(est["A_hat"][0], iterations) == pytest.approx(expected, rel=1e-12)
    # and A-hat is alpha t to first order (K log(1 + x/K) = x - x^2/(2K) + ...)
    np.testing.assert_allclose(est["A_hat"][0, -1] / 2000, alpha, rtol=0.05)


# --------------------------------------------------------------------------- what the sign of alpha - beta decides


def test_mean_margin_follows_the_symmetric_mode():
    # the mean over classes c and k != c of the class-mean margin X_c[c] - X_c[k] is
    # s / (K-1), s = sum_c <Xbar_c, e_c - 1/K>, so it grows by 1 + (alpha-beta)/K per step
    for k in (3, 4):
        X = lesde.simulate(0.3, 0.2, num_classes=k, steps=5, seed=1).mean(axis=4)[0, 0]   # (T+1, K, K)
        own = X[:, np.arange(k), np.arange(k)]
        margin = (own[:, :, None] - X).sum(axis=(1, 2)) / (k * (k - 1))
        s, _ = lesde.mode_projections(X)
        np.testing.assert_allclose(margin, s / (k - 1), rtol=1e-12)
        sym, _ = lesde.mode_rates(0.3, 0.2, k)
        np.testing.assert_allclose(margin[1:] / margin[:-1], sym, rtol=1e-12)


def test_positive_beta_loses_separation_eventually():
    # alpha > beta > 0: the orthogonal modes grow faster than the symmetric one and turn a
    # class-mean margin negative, given time; beta < 0 keeps it
    lost = lesde.phase_diagram([0.1], [0.05], steps=600, trials=4, samples_per_class=3)
    kept = lesde.phase_diagram([0.1], [-0.05], steps=600, trials=4, samples_per_class=3)
    assert not lost["separated"].any() and kept["separated"].all()


# --------------------------------------------------------------------------- the trainer


def test_a_trial_equals_plain_per_sample_sgd():
    torch.manual_seed(0)
    x = torch.randn(40, 1, 4, 4)
    y = torch.arange(40) % 3
    x = x + y[:, None, None, None].float()
    build = lambda: build_model("mlp", input_shape=(1, 4, 4), num_classes=3, depth=2, width=8)
    result = lesde.train_trials(build, x, y, x[:12], y[:12], trials=3, iterations=15, lr=0.1, log_every=15,
                                probe_per_class=4, label_noise=0.3, seed=5)
    probe = torch.cat([torch.nonzero(y == c).flatten()[:4] for c in range(3)])
    for trial in range(3):
        torch.manual_seed(5 + trial)
        model = build().double()
        labels = torch.as_tensor(result.labels[trial])
        for it in range(15):
            i = int(result.order[it, trial])
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 1].double()), labels[i:i + 1])
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter -= 0.1 * parameter.grad
        with torch.no_grad():
            logits = model(x[probe].double())
        means = torch.stack([logits[labels[probe] == c].mean(0) for c in range(3)]).numpy()
        np.testing.assert_allclose(result.class_means[trial, -1], means, rtol=1e-10, atol=1e-12)
    assert result.settings["threads"] == 1 and torch.get_num_threads() >= 1


def test_class_alignment_is_scale_free_and_reads_the_symmetric_mode():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 3))
    a = lesde.class_alignment(x)
    np.testing.assert_allclose(lesde.class_alignment(40.0 * x + 3.0), a)          # scale and common shift
    s, _ = lesde.mode_projections(x[None])
    d = lesde.class_directions(3)
    np.testing.assert_allclose(a, s[0] / (np.linalg.norm(x @ d, axis=(1, 2)) * np.sqrt(2)))
    assert np.all(np.abs(a) <= 1 + 1e-12)
    assert abs(float(lesde.class_alignment(d)) - 1) < 1e-12


def test_train_trials_records_held_out_class_means_by_true_label():
    torch.manual_seed(0)
    x, y = torch.randn(60, 4), torch.arange(60) % 3
    build = lambda: torch.nn.Linear(4, 3)  # noqa: E731
    result = lesde.train_trials(build, x, y, x[:30], y[:30], trials=2, iterations=10, lr=0.05, log_every=5,
                                probe_per_class=5, label_noise=2 / 3)
    assert result.val_class_means.shape == (2, 3, 3, 3)
    with torch.no_grad():  # at iteration 0: trial 0's untouched initial weights
        torch.manual_seed(0)
        logits = build().double()(x[:30].double())
    expected = torch.stack([logits[y[:30] == c].mean(0) for c in range(3)]).numpy()
    np.testing.assert_allclose(result.val_class_means[0, 0], expected, atol=1e-12)
