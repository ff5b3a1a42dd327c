"""Tests of ncutils.ufm: derivatives against independent routes, theory at a built deep-NC point."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncutils.theory import ufm

TINY = dict(num_classes=3, per_class=2, depth=3, width=5)


def tiny(activation: str = "linear", **overrides) -> ufm.UFMConfig:
    return ufm.UFMConfig(**{**TINY, "activation": activation, **overrides})


def random_state(config: ufm.UFMConfig) -> ufm.UFMState:
    # gain 2 keeps every ReLU pre-activation well away from 0 at this point
    return ufm.init_state(ufm.UFMConfig(**{**config.__dict__, "init_gain": 2.0}))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------- loss and gradient
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_loss_matches_the_formula_written_out(activation):
    config = tiny(activation, lambda_w=0.03, lambda_h=0.07)
    state = random_state(config)
    x = state.features.numpy()
    for index, weight in enumerate(state.weights, start=1):
        x = weight.numpy() @ x
        if activation == "relu" and index < config.depth:
            x = np.maximum(x, 0.0)
    y = np.kron(np.eye(3), np.ones((1, 2)))
    expected = (((x - y) ** 2).sum() / (2 * 3 * 2)
                + 0.03 / 2 * sum((w.numpy() ** 2).sum() for w in state.weights)
                + 0.07 / 2 * (state.features.numpy() ** 2).sum())
    assert float(ufm.ufm_loss(state, config)) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_gradient_matches_central_finite_differences(activation):
    config = tiny(activation)
    state = random_state(config)
    tensors = [t.clone().requires_grad_(True) for t in state.tensors()]
    loss = ufm.ufm_loss(ufm.UFMState(tensors[0], tensors[1:]), config)
    grads = torch.autograd.grad(loss, tensors)
    generator = torch.Generator().manual_seed(1)
    step = 1e-6
    for _ in range(3):
        directions = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in tensors]

        def loss_at(sign: float) -> float:
            moved = [t.detach() + sign * step * v for t, v in zip(tensors, directions)]
            return float(ufm.ufm_loss(ufm.UFMState(moved[0], moved[1:]), config))

        numeric = (loss_at(1.0) - loss_at(-1.0)) / (2 * step)
        analytic = float(sum((g * v).sum() for g, v in zip(grads, directions)))
        assert numeric == pytest.approx(analytic, rel=1e-6, abs=1e-9)


# --------------------------------------------------------------------------- layer Hessian
@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("layer", [1, 2, 3])
def test_layer_hessian_is_symmetric_and_equals_autograd_of_the_gradient(activation, layer):
    config = tiny(activation)
    state = random_state(config)
    hessian = ufm.layer_hessian(state, config, layer)
    weight = state.weights[layer - 1]
    loss_of = ufm.layer_loss_function(state, config, layer)
    reference = torch.autograd.functional.hessian(
        lambda flat: loss_of(flat.reshape(weight.shape)), weight.reshape(-1).clone())
    assert hessian.shape == (weight.numel(), weight.numel())
    torch.testing.assert_close(hessian, hessian.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(hessian, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_hessian_vector_products_agree_with_the_dense_hessian(activation):
    config = tiny(activation)
    state = random_state(config)
    layer = 2
    hessian = ufm.layer_hessian(state, config, layer)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        direction = torch.randn(5, 5, generator=generator, dtype=torch.float64)
        product = ufm.layer_hvp(state, config, layer, direction)
        torch.testing.assert_close(product.reshape(-1), hessian @ direction.reshape(-1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_hessian_is_gauss_newton_plus_decay_and_the_gram_route_gives_its_spectrum(activation):
    # the output is (piecewise) linear in one W_l, so the residual term vanishes
    config = tiny(activation, lambda_w=0.02)
    state = random_state(config)
    layer = 2
    hessian = ufm.layer_hessian(state, config, layer)
    factor = ufm.gauss_newton_factor(ufm.layer_jacobian(state, config, layer))
    torch.testing.assert_close(hessian, factor @ factor.T + 0.02 * torch.eye(25, dtype=torch.float64),
                               rtol=1e-10, atol=1e-12)
    dense = torch.linalg.eigvalsh(hessian).flip(0).numpy()
    np.testing.assert_allclose(ufm.hessian_spectrum_from_jacobian(
        ufm.layer_jacobian(state, config, layer), 0.02, 25), dense, rtol=1e-9, atol=1e-12)


def test_vec_order_is_row_major_so_the_linear_hessian_is_AtA_kron_feature_second_moment():
    config = tiny("linear", lambda_w=0.05)
    state = random_state(config)
    layer = 2
    layers = ufm.forward(state)
    above = state.weights[2]                    # A = W_3 for layer 2 of 3
    second_moment = layers[1] @ layers[1].T / config.num_samples
    expected = torch.kron(above.T @ above, second_moment) + 0.05 * torch.eye(25, dtype=torch.float64)
    torch.testing.assert_close(ufm.layer_hessian(state, config, layer), expected, rtol=1e-10, atol=1e-12)
    # and kron_basis(u, w) is vec(u w^T) in that same order
    u, w = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    basis = ufm.kron_basis(u, w, normalise=False)
    torch.testing.assert_close(basis[1, 2], torch.outer(u[:, 1], w[:, 2]).reshape(-1))
    torch.testing.assert_close(basis[1, 2], torch.kron(u[:, 1], w[:, 2]))


def test_gauss_newton_split_sums_to_the_gauss_newton_matrix():
    config = tiny("relu")
    state = random_state(config)
    jacobian = ufm.layer_jacobian(state, config, 2)
    parts = ufm.gauss_newton_split(jacobian, ufm.targets(3, 2)[1])
    factor = ufm.gauss_newton_factor(jacobian)
    total = sum(f @ f.T for f in parts.values())
    torch.testing.assert_close(total, factor @ factor.T, rtol=1e-10, atol=1e-12)
    assert parts["cross"].shape[1] == 6 and parts["class"].shape[1] == 3


def test_eigenvector_alignment_is_one_for_eigenvectors_and_below_one_otherwise():
    matrix = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    vectors = torch.tensor([[0.0, 2.0, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    f = ufm.eigenvector_alignment(lambda v: matrix @ v, vectors)
    assert f[0].item() == pytest.approx(1.0)
    assert f[1].item() == pytest.approx(25.0 / (2 * 13))


# --------------------------------------------------------------------------- theory
def test_regularisation_condition_values_and_its_agreement_with_the_reduced_problem():
    condition = ufm.regularisation_condition(3, 40, 5, 1e-2, 1e-2)
    assert condition["lhs"] == pytest.approx((3 * 40 * 1e-10 * 1e-2) ** 0.2)
    assert condition["rhs"] == pytest.approx(4**0.8 / 75)
    assert condition["satisfied"]
    # the condition is where the deep-NC optimum beats the zero solution (0.5)
    for k, n, depth, lambda_w, lambda_h in [(3, 40, 5, 1e-2, 1e-2), (2, 10, 3, 0.05, 0.2), (4, 5, 4, 0.03, 0.01)]:
        for scale in (0.5, 0.8, 1.25, 2.0, 8.0):
            lw, lh = lambda_w * scale, lambda_h * scale
            satisfied = ufm.regularisation_condition(k, n, depth, lw, lh)["satisfied"]
            optimum = ufm.dnc_optimum(k, n, depth, lw, lh)
            assert satisfied == (optimum["loss"] < 0.5 - 1e-9), (k, n, depth, lw, lh)


@pytest.mark.parametrize("frames", ["random", "coordinate"])
def test_built_deep_nc_point_is_stationary_and_has_the_predicted_loss(frames):
    config = ufm.UFMConfig(num_classes=3, per_class=4, depth=4, width=7, lambda_w=0.01, lambda_h=0.02)
    state = ufm.dnc_state(config, frames=frames)
    optimum = ufm.dnc_optimum(3, 4, 4, 0.01, 0.02)
    assert ufm.gradient_norm(state, config) < 1e-12
    assert float(ufm.ufm_loss(state, config)) == pytest.approx(optimum["loss"], rel=1e-12)
    # a gradient step from a nearby point returns downhill: it is a minimum, not a saddle of the scalar problem
    assert optimum["loss"] < optimum["zero_loss"]


def test_theory_closed_forms_hold_exactly_at_the_built_deep_nc_point():
    config = ufm.UFMConfig(num_classes=3, per_class=4, depth=4, width=7, lambda_w=0.01, lambda_h=0.02)
    state = ufm.dnc_state(config)
    optimum = ufm.dnc_optimum(3, 4, 4, 0.01, 0.02)
    k = 3
    for layer in (1, 2, 4):
        analysis = ufm.analyse_layer(state, config, layer, dense=True)
        # Theorem 4.1: K^2 equal outliers at the predicted value, bulk lambda_W
        np.testing.assert_allclose(analysis.eigenvalues[: k * k], optimum["hessian_outlier"], rtol=1e-10)
        np.testing.assert_allclose(analysis.eigenvalues[k * k:], 0.01, rtol=1e-10)
        assert analysis.outlier_ratio == pytest.approx(1.0, abs=1e-10)
        np.testing.assert_allclose(analysis.alignment, 1.0, rtol=1e-10)
        # Theorem 4.2: ranks 0, K(K-1), K
        assert analysis.split_ranks == {"within": 0, "cross": k * (k - 1), "class": k}
        # Theorem 4.3: gradient coefficients 1/K on the diagonal, 0 off it
        np.testing.assert_allclose(analysis.gradient_coefficients, np.eye(k) / k, atol=1e-12)
        assert analysis.dense_max_abs_error < 1e-12
    # Theorem 4.4: W_l^T W_l rank K with eigenvalues (lambda_H / lambda_W) n ||mu_c^(1)||^2 = s^2
    grams = ufm.weight_gram_spectra(state, config)
    assert (grams["rank"] == k).all()
    assert grams["max_rel_error"].max() < 1e-10
    np.testing.assert_allclose(grams[["eig_1", "eig_2", "eig_3"]].to_numpy(), optimum["weight_gram_eigenvalue"], rtol=1e-10)
    metrics = ufm.layer_metrics(state, config)
    assert metrics["nc1"].max() < 1e-20
    assert metrics["orthogonal_frame_error"].max() < 1e-12
    assert metrics["etf_error"].max() < 1e-12


def test_relu_deep_nc_with_disjoint_supports_keeps_only_the_class_part():
    # at an exact ReLU deep-NC point the masks cut every cross-class path: K outliers, not K^2
    config = ufm.UFMConfig(num_classes=3, per_class=4, depth=4, width=7, activation="relu")
    state = ufm.dnc_state(config, frames="coordinate")
    analysis = ufm.analyse_layer(state, config, 2)
    assert analysis.split_ranks == {"within": 0, "cross": 0, "class": 3}
    optimum = ufm.dnc_optimum(3, 4, 4, config.lambda_w, config.lambda_h)
    np.testing.assert_allclose(analysis.eigenvalues[:3], optimum["hessian_outlier"], rtol=1e-10)
    np.testing.assert_allclose(analysis.eigenvalues[3:], config.lambda_w, rtol=1e-10)


def test_gradient_coefficients_of_a_matrix_in_the_diagonal_span():
    means = torch.eye(4, 2, dtype=torch.float64) * torch.tensor([2.0, 5.0], dtype=torch.float64)
    gradient = torch.outer(means[:, 0], means[:, 0]) / 4 + 3 * torch.outer(means[:, 1], means[:, 1]) / 25
    coefficients = ufm.gradient_coefficients(gradient, means, means)
    np.testing.assert_allclose(coefficients.numpy(), np.diag([0.1, 0.9]), atol=1e-15)


# --------------------------------------------------------------------------- training
def test_training_reaches_the_deep_nc_optimum_on_a_tiny_linear_model():
    config = ufm.UFMConfig(num_classes=3, per_class=3, depth=3, width=6, seed=2)
    run = ufm.train(config, layer=2, steps=300, lr=0.1, polish_iterations=200,
                    snapshot_steps=[0, 100], progress=False)
    assert run.final_grad_norm < 1e-8
    assert run.history["loss"].iloc[-1] < run.history["loss"].iloc[0]
    assert list(run.snapshots["step"])[:2] == [0, 100] and set(run.spectra) == set(run.snapshots["step"])
    optimum = ufm.dnc_optimum(3, 3, 3, config.lambda_w, config.lambda_h)
    assert run.final_loss == pytest.approx(optimum["loss"], rel=1e-8)
    assert run.final.outlier_ratio == pytest.approx(1.0, abs=1e-5)
    assert run.condition["satisfied"]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("overrides, message", [
    ({"width": 2}, "width"),
    ({"lambda_w": -1.0}, "lambda_w"),
    ({"activation": "tanh"}, "activation"),
    ({"depth": 1}, "depth"),
])
def test_bad_configurations_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


def test_bad_layer_direction_and_training_arguments_raise():
    config = tiny()
    state = random_state(config)
    with pytest.raises(ValueError, match="layer"):
        ufm.layer_hessian(state, config, 4)
    with pytest.raises(ValueError, match="direction"):
        ufm.layer_hvp(state, config, 1, torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="snapshot_steps"):
        ufm.train(config, layer=1, steps=5, lr=0.1, snapshot_steps=[9], progress=False)
    with pytest.raises(ValueError, match="lr"):
        ufm.train(config, layer=1, steps=5, lr=-0.1, progress=False)
    with pytest.raises(ValueError, match="balanced"):
        ufm.gauss_newton_split(torch.zeros(3, 6, 25, dtype=torch.float64), torch.tensor([0, 0, 0, 1, 1, 2]))


def test_kink_fractions_count_the_zero_pre_activations_of_an_exact_relu_deep_nc_point():
    config = ufm.UFMConfig(num_classes=3, per_class=2, depth=3, width=5, activation="relu")
    table = ufm.kink_fractions(ufm.dnc_state(config, frames="coordinate"), config)
    # each sample has one nonzero coordinate out of d = 5
    np.testing.assert_allclose(table["kink_fraction"], 0.8)
    assert (ufm.kink_fractions(random_state(config), config)["kink_fraction"] == 0).all()


# --------------------------------------------------------------------------- hand-written step, checkpoints
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_hand_written_gradient_equals_autograd(activation):
    config = tiny(activation, lambda_w=0.03, lambda_h=0.07)
    state = random_state(config)
    tensors = [t.clone().requires_grad_(True) for t in state.tensors()]
    loss = ufm.ufm_loss(ufm.UFMState(tensors[0], tensors[1:]), config)
    expected = torch.autograd.grad(loss, tensors)
    y = ufm.targets(config.num_classes, config.per_class)[0]
    value, grads = ufm.loss_and_gradient(state.tensors(), config, y)
    assert float(value) == pytest.approx(float(loss.detach()), rel=1e-14)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert ufm.loss_and_gradient(state.tensors(), config, y, with_loss=False)[0] is None


def test_relu_gradient_at_the_kink_follows_torchs_zero_convention():
    config = ufm.UFMConfig(num_classes=3, per_class=2, depth=3, width=5, activation="relu")
    state = ufm.dnc_state(config, frames="coordinate")  # many pre-activations exactly 0
    tensors = [t.clone().requires_grad_(True) for t in state.tensors()]
    expected = torch.autograd.grad(ufm.ufm_loss(ufm.UFMState(tensors[0], tensors[1:]), config), tensors)
    grads = ufm.loss_and_gradient(state.tensors(), config, ufm.targets(3, 2)[0])[1]
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def _same_run(a: ufm.UFMRun, b: ufm.UFMRun) -> None:
    for x, z in zip(a.state.tensors(), b.state.tensors()):
        assert torch.equal(x, z)
    assert a.final_loss == b.final_loss and a.final_grad_norm == b.final_grad_norm
    assert a.history.equals(b.history)
    assert a.snapshots.drop(columns=[]).equals(b.snapshots)
    assert set(a.spectra) == set(b.spectra)
    for step in a.spectra:
        np.testing.assert_array_equal(a.spectra[step], b.spectra[step])


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_result(tmp_path, monkeypatch):
    from ncutils.theory.ufm import training

    config = ufm.UFMConfig(num_classes=3, per_class=3, depth=3, width=6, activation="relu", seed=4)
    options = dict(layer=2, steps=250, lr=0.1, momentum=0.9, polish_iterations=10,
                   snapshot_steps=[0, 10, 120, 250], log_every=7, progress=False)
    reference = ufm.train(config, **options)
    assert reference.resumed_from is None and reference.checkpoint is None

    saves, real_save = [], training._save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        saves.append(payload["step"])
        if payload["step"] == 200:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(training, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        ufm.train(config, **options, checkpoint_dir=tmp_path, checkpoint_every=100)
    assert saves == [100, 200]
    (path,) = tmp_path.glob("ufm-relu-seed4-*.pt")
    monkeypatch.setattr(training, "_save_checkpoint", real_save)
    resumed = ufm.train(config, **options, checkpoint_dir=tmp_path, checkpoint_every=100)
    assert resumed.resumed_from == 200 and resumed.checkpoint == str(path)
    _same_run(reference, resumed)
    # the finished checkpoint (step 250) is not retrained: the same result again
    again = ufm.train(config, **options, checkpoint_dir=tmp_path, checkpoint_every=100)
    assert again.resumed_from == 250
    _same_run(reference, again)
    # another run's arguments get another file; a foreign file under this run's name is refused
    other = ufm.train(config, **{**options, "lr": 0.05}, checkpoint_dir=tmp_path, checkpoint_every=100)
    assert other.checkpoint != str(path) and len(list(tmp_path.glob("*.pt"))) == 2
    payload = torch.load(path, weights_only=True)
    payload["key"] = {**payload["key"], "lr": 1.0}
    torch.save(payload, path)
    with pytest.raises(ValueError, match="another run"):
        ufm.train(config, **options, checkpoint_dir=tmp_path, checkpoint_every=100)


def test_training_is_deterministic_and_restores_torchs_settings():
    config = ufm.UFMConfig(num_classes=3, per_class=3, depth=3, width=6, activation="relu", seed=1)
    before = torch.are_deterministic_algorithms_enabled()
    runs = [ufm.train(config, layer=2, steps=60, lr=0.1, progress=False) for _ in range(2)]
    _same_run(*runs)
    assert torch.are_deterministic_algorithms_enabled() == before
    assert runs[0].threads == 1 and runs[0].cpu_capability


def test_converged_flag_compares_the_final_gradient_norm_with_the_bound():
    config = ufm.UFMConfig(num_classes=3, per_class=3, depth=3, width=6, seed=2)
    run = ufm.train(config, layer=2, steps=300, lr=0.1, polish_iterations=200, progress=False)
    assert run.converged(1e-6) and run.final_grad_norm < 1e-6
    short = ufm.train(config, layer=2, steps=3, lr=0.1, progress=False)
    assert not short.converged(1e-6) and short.converged(short.final_grad_norm)
    with pytest.raises(ValueError, match="max_grad_norm"):
        run.converged(-1.0)


def _no_training(monkeypatch):
    from ncutils.theory.ufm import training

    def trains(*args, **kwargs):
        raise AssertionError("trained instead of loading from the store")

    monkeypatch.setattr(training, "_train_loop", trains)


def test_train_many_gives_the_same_runs_in_worker_processes(tmp_path, monkeypatch, capfd):
    configs = [ufm.UFMConfig(num_classes=3, per_class=2, depth=3, width=5, activation="relu", seed=s)
               for s in (0, 1)]
    options = dict(layer=2, steps=40, lr=0.1, progress=False)
    here = ufm.train_many(configs, **options)
    # in worker processes, stored there, with the progress of both runs on one bar here
    apart = ufm.train_many(configs, workers=2, store=True, runs_dir=tmp_path, **{**options, "progress": True})
    assert [run.config.seed for run in apart] == [0, 1]
    for a, b in zip(here, apart):
        _same_run(a, b)
    err = capfd.readouterr().err
    assert "2 UFM runs in 2 processes" in err and "finished=2/2" in err
    assert "it/s" not in err  # no worker drew a bar of its own (they would interleave in a log)
    assert "trained relu UFM seed 1" in err
    events = (tmp_path / "events.log").read_text().splitlines()
    assert sum("computed" in line and "(ufm-run)" in line for line in events) == 2
    # the worker count is no part of the key: one process loads what two trained
    _no_training(monkeypatch)
    loaded = ufm.train_many(configs, workers=1, store=True, runs_dir=tmp_path, **options)
    for a, b in zip(here, loaded):
        _same_run(a, b)
    with pytest.raises(ValueError, match="workers"):
        ufm.train_many(configs, workers=0, **options)


# --------------------------------------------------------------------------- the results store
STORED = dict(layer=2, steps=30, lr=0.1, momentum=0.9, polish_iterations=5, snapshot_steps=[0, 10, 30],
              progress=False)


def test_a_stored_run_is_loaded_and_a_changed_option_trains_again(tmp_path, monkeypatch):
    config = tiny("relu", seed=3)
    first = ufm.train(config, **STORED, store=True, runs_dir=tmp_path)
    events = (tmp_path / "events.log").read_text()
    assert events.count("computed") == 1 and "(ufm-run)" in events
    _no_training(monkeypatch)
    again = ufm.train(config, **STORED, store=True, runs_dir=tmp_path)
    _same_run(first, again)
    assert again.seconds == first.seconds  # the stored run, not a new one
    assert "loaded computed" in (tmp_path / "events.log").read_text()
    # neither a checkpoint folder nor the progress bar is part of the key
    ufm.train(config, **{**STORED, "progress": True}, checkpoint_dir=tmp_path / "ck", checkpoint_every=7,
              store=True, runs_dir=tmp_path)
    for changed in ({"lr": 0.05}, {"polish_iterations": 0}, {"snapshot_steps": [0, 30]}):
        with pytest.raises(AssertionError, match="trained instead"):
            ufm.train(config, **{**STORED, **changed}, store=True, runs_dir=tmp_path)
    with pytest.raises(AssertionError, match="trained instead"):
        ufm.train(config, **STORED, store=True, runs_dir=tmp_path, force=True)
    with pytest.raises(AssertionError, match="trained instead"):  # without the store: trains
        ufm.train(config, **STORED)


def test_the_run_key_covers_every_training_option_and_the_ufm_code_not_metrics():
    from ncutils.theory.ufm import _store

    config = tiny("relu")
    base = ufm.run_payload(config, **STORED)
    same = [{"progress": True}, {"checkpoint_dir": "elsewhere", "checkpoint_every": 3},
            {"snapshot_steps": [30, 10, 0, 10]}, {"log_every": None}]
    for option in same:
        assert ufm.run_payload(config, **{**STORED, **option}) == base, option
    changed = [{"layer": 1}, {"steps": 31}, {"lr": 0.2}, {"momentum": 0.0}, {"polish_iterations": 6},
               {"snapshot_steps": [0, 30]}, {"dense_final": True}, {"num_eigenvalues": 12},
               {"log_every": 2}, {"threads": 2}]
    for option in changed:
        assert ufm.run_payload(config, **{**STORED, **option}) != base, option
    assert ufm.run_payload(tiny("relu", seed=1), **STORED) != base
    assert ufm.run_payload(tiny("linear"), **STORED) != base
    assert set(base["source"]) == set(_store.RUN.modules())
    assert {f"ncutils.{name}" for name in ("theory.ufm.training", "theory.ufm.spectra", "theory.ufm.model",
                                          "stats")} <= set(base["source"])
    assert "ncutils.metrics" not in base["source"]
    with pytest.raises(ValueError, match="lr"):  # checked before any look-up
        ufm.run_payload(config, **{**STORED, "lr": -1.0})


def test_train_many_loads_the_stored_runs_and_trains_only_the_others(tmp_path, monkeypatch):
    from ncutils.theory.ufm import training

    configs = [tiny("relu", seed=s) for s in (0, 1, 2)]
    stored = ufm.train_many(configs[:2], store=True, runs_dir=tmp_path, **STORED)
    trained, real_loop = [], training._train_loop

    def counting(config, *args, **kwargs):
        trained.append(config.seed)
        return real_loop(config, *args, **kwargs)

    monkeypatch.setattr(training, "_train_loop", counting)
    # two workers asked for, one run left to train: it is trained here, the others loaded
    runs = ufm.train_many(configs, workers=2, store=True, runs_dir=tmp_path, **STORED)
    assert trained == [2] and [run.config.seed for run in runs] == [0, 1, 2]
    for a, b in zip(stored, runs):
        _same_run(a, b)
    _no_training(monkeypatch)
    ufm.train_many(configs, workers=3, store=True, runs_dir=tmp_path, **STORED)


def test_a_stored_layer_analysis_is_keyed_by_the_state(tmp_path, monkeypatch):
    from ncutils.theory.ufm import spectra

    config = tiny("relu")
    state = random_state(config)
    first = ufm.analyse_layer(state, config, 2, dense=True, store=True, runs_dir=tmp_path)
    assert first.dense_max_abs_error is not None

    def computes(*args, **kwargs):
        raise AssertionError("computed instead of loading from the store")

    monkeypatch.setattr(spectra, "layer_jacobian", computes)
    again = ufm.analyse_layer(state.detach(), config, 2, dense=True, store=True, runs_dir=tmp_path)
    np.testing.assert_array_equal(first.eigenvalues, again.eigenvalues)
    assert again.dense_max_abs_error == first.dense_max_abs_error
    moved = state.detach()
    moved.weights[1][0, 0] += 1e-12
    for other, options in ((moved, {}), (state, {"dense": False}), (state, {"layer": 1}),
                           (state, {"rank_rtol": 1e-6})):
        options = {"layer": 2, "dense": True, **options}
        with pytest.raises(AssertionError, match="computed instead"):
            ufm.analyse_layer(other, config, options.pop("layer"), **options, store=True, runs_dir=tmp_path)
