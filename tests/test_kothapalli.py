"""Tests of ncutils.papers.kothapalli: configs, and the K1/K2 criteria fed their nulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncutils import verdicts
from ncutils.papers import kothapalli
from ncutils.theory import lesde


def _history(onset=5, epochs=30, decay=True, mismatch=0.0, seed=0):
    rng = np.random.default_rng(seed)
    epoch = np.arange(1, epochs + 1)
    train_acc = np.where(epoch >= onset, 1.0, 0.5 + 0.5 * epoch / onset)
    frame = pd.DataFrame({"epoch": epoch, "train_acc": train_acc})
    for name in kothapalli.K1_METRICS:
        base = 1.0 * np.exp(-0.1 * epoch) if decay else np.ones(epochs)
        frame[name] = base * (1 + 0.01 * rng.random(epochs))
    frame["ll_ncc_mismatch"] = mismatch
    return frame


def test_k1_config_tracks_the_last_layer():
    config = kothapalli.k1_config("mlp", epochs=10, device="cpu")
    assert config.track_last_layer and config.save_at_train_acc == (1.0,) and 0 in config.sweep_epochs
    with pytest.raises(KeyError):
        kothapalli.k1_config("nope")


def test_k1_passes_a_collapsing_run():
    assert kothapalli.k1_run(_history())["passed"]


def test_k1_null_untrained_network_fails():
    # the network at initialisation: its metrics do not move over the epochs
    null = _history(decay=False)
    null["ll_ncc_mismatch"] = 0.3
    result = kothapalli.k1_run(null)
    assert result["eligible"] and not result["passed"]
    table, outcome = kothapalli.k1_verdict({"a": null, "b": _history(decay=False, seed=1)})
    assert outcome.state == verdicts.NOT_REPRODUCED


def test_k1_each_condition_can_fail():
    assert not kothapalli.k1_run(_history(onset=10, epochs=30))["passed"]   # TPT 21 < 3 x 9
    assert not kothapalli.k1_run(_history(mismatch=0.02))["passed"]
    never = _history()
    never["train_acc"] = 0.9
    result = kothapalli.k1_run(never)
    assert not result["eligible"] and not result["passed"]
    _, outcome = kothapalli.k1_verdict({"a": never, "b": _history()})
    assert outcome.state == verdicts.INCONCLUSIVE


def test_k2_passes_and_its_null_fails():
    rng = np.random.default_rng(0)
    good = {0.0: 1e-3 + 1e-4 * rng.standard_normal(20), 2 / 3: 1e-4 * rng.standard_normal(20)}
    assert kothapalli.k2_network(good)["passed"]
    # the null level behaving like clean labels: interval above 0 at p = 2/3 must fail
    null = {0.0: good[0.0], 2 / 3: good[0.0]}
    assert not kothapalli.k2_network(null)["passed"]
    # clean labels without alpha > beta fail too
    flat = {0.0: good[2 / 3], 2 / 3: good[2 / 3]}
    assert not kothapalli.k2_network(flat)["passed"]
    _, outcome = kothapalli.k2_verdict({"a": good, "b": null})
    assert outcome.state == verdicts.NOT_REPRODUCED


def test_k2_null_from_the_simulator_fails():
    # LE-ODE with alpha = beta (no same-class advantage) at every level: alpha-hat - beta-hat = 0
    per_trial = {}
    for p, (a, b) in {0.0: (0.0, 0.0), 2 / 3: (0.0, 0.0)}.items():
        X = lesde.simulate(a + 0.01, b + 0.01, steps=100, trials=20, seed=1)
        est = lesde.estimate_alpha_beta(X.mean(axis=4), window=11)
        per_trial[p] = est["alpha_minus_beta"][:, 0, 50:].mean(axis=1)
    assert not kothapalli.k2_network(per_trial)["passed"]


def test_phase_check_fails_on_a_wrong_diagram():
    table = lesde.phase_diagram([-0.3, 0.3], [-0.2, 0.0], steps=100, trials=2, samples_per_class=4)
    assert kothapalli.phase_check(table)["passed"]
    wrong = table.assign(separated=~table["separated"])
    assert not kothapalli.phase_check(wrong)["passed"]


def test_k1_runs_over_several_datasets():
    parameters = {"networks": ["vgg11", "resnet18"], "dataset": "cifar10", "extra_datasets": ["fashionmnist"],
                  "epochs": 350, "lr": 0.0679, "batch_size": 128, "seeds": [0, 1], "download": True}
    configs = kothapalli.k1_configs(parameters)
    assert [(c.dataset, c.arch, c.seed) for c in configs][:4] == [
        ("cifar10", "vgg", 0), ("cifar10", "vgg", 1), ("cifar10", "resnet18", 0), ("cifar10", "resnet18", 1)]
    assert {c.dataset for c in configs} == {"cifar10", "fashionmnist"} and len(configs) == 8
    assert all(c.epochs == 350 and c.batch_size == 128 and c.momentum == 0.9 and c.weight_decay == 5e-4
               for c in configs)
    grid = kothapalli.k1_grid(parameters)
    assert [entry.row for entry in grid.entries][-1] == {"dataset": "fashionmnist", "network": "resnet18", "length": 350, "seed": 1}
    assert [entry.config for entry in grid.entries] == configs
    # without extra_datasets: the runs of `dataset` alone, as before
    single = {key: value for key, value in parameters.items() if key != "extra_datasets"}
    assert kothapalli.k1_configs(single) == configs[:4]
    assert kothapalli.validate_k1_parameters(parameters) == []
    for bad in ({"extra_datasets": ["cifar10"]}, {"extra_datasets": "fashionmnist"}, {"dataset": ["cifar10"]}):
        assert kothapalli.validate_k1_parameters({**parameters, **bad})
    assert any("imagenet" in problem for problem in
               kothapalli.validate_k1_parameters({**parameters, "extra_datasets": ["imagenet"]}))


def test_k1_paper_networks_take_fashionmnist_images():
    import torch

    from ncutils.models import build_model

    for network in ("vgg11", "resnet18"):
        config = kothapalli.k1_config(network, "fashionmnist", device="cpu")
        model = build_model(config.arch, input_shape=(1, 28, 28), num_classes=10, **dict(config.arch_kwargs)).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_k1_lr_phases_multiply_to_the_criterion_ratio():
    history = _history(onset=5, epochs=30)
    history["lr"] = np.where(history["epoch"] <= 10, 0.1, np.where(history["epoch"] <= 20, 0.01, 0.001))
    history["loss"] = 1.0 / history["epoch"]
    phases = kothapalli.k1_lr_phases(history)
    assert list(phases["lr"]) == [0.1, 0.01, 0.001]
    assert list(zip(phases["start"], phases["end"])) == [(5, 10), (10, 20), (20, 30)]
    assert phases["epochs"].sum() == 30 - 5
    run = kothapalli.k1_run(history)
    for metric in kothapalli.K1_METRICS:
        assert np.prod(phases[f"{metric}_ratio"]) == pytest.approx(run[f"{metric}_ratio"], rel=1e-12)
    assert "x" in kothapalli.k1_lr_phases_text(phases) and "lr 0.001" in kothapalli.k1_lr_phases_text(phases)
    never = history.assign(train_acc=0.5)
    assert kothapalli.k1_lr_phases(never).empty


def test_phase_check_counts_grid_steps_equal_to_the_margin():
    # 0.5 - 0.4 = 0.09999999999999998 < 0.1: such points belong to |alpha - beta| >= 0.1
    table = pd.DataFrame({"alpha": [0.5, 0.3, -0.4, 0.2], "beta": [0.4, 0.3, -0.5, 0.1], "trial": 0,
                          "separated": [False, False, True, True]})
    check = kothapalli.phase_check(table, margin=0.1)
    assert check["points"] == 1 and check["points_all"] == 3 and check["passed"]
    assert check["rows_beta_positive"] == 2 and check["separated_beta_positive"] == 0.5


def test_k2_level_reads_a_trials_result():
    # an LE-ODE stands in for a network: alpha - beta = 0.02 per step, logged every 5 steps
    X = lesde.simulate(0.03, 0.01, steps=400, trials=6, samples_per_class=2, seed=1)[0][:, ::5].mean(axis=3)
    iterations = np.arange(0, 401, 5)
    result = lesde.TrialsResult(iterations, X, np.full((6, iterations.size), 0.9),
                                np.full((6, iterations.size), 1.0), 0.0, 1.5)
    row, per_trial = kothapalli.k2_level(result, window=11)
    assert per_trial.shape == (6,)
    np.testing.assert_allclose(per_trial, 0.02, atol=5e-4)
    assert row["low"] <= row["median"] <= row["high"] and row["median"] == pytest.approx(0.02, abs=5e-4)
    assert row["alpha_hat"] == pytest.approx(0.03, abs=5e-4) and row["beta_hat"] == pytest.approx(0.01, abs=5e-4)
    pooled = lesde.estimate_alpha_beta(X.mean(axis=0), window=11, delta=5)
    assert row["r_alpha"] == pytest.approx(float(lesde.tail_index(pooled["A_hat"], iterations)))
    assert row["val_acc"] == 0.9 and row["seconds"] == 1.5
    with pytest.raises(ValueError):
        kothapalli.k2_level(lesde.TrialsResult(iterations ** 2, X, result.val_accuracy, result.train_accuracy,
                                               0.0), window=11)


# --------------------------------------------------------------------------- train.py: track_last_layer

from ncutils import metrics as _metrics  # noqa: E402
from ncutils.measure import measure_run  # noqa: E402
from ncutils.probe import capture as _capture  # noqa: E402
from ncutils.series import LAST_LAYER_COLUMNS  # noqa: E402
from ncutils.train import TrainConfig, config_key, load_data, train  # noqa: E402


def _tiny(**overrides):
    settings = dict(dataset="gaussian", dataset_kwargs={"num_classes": 4, "dim": 8, "n_per_class": 20,
                                                        "n_test_per_class": 10},
                    arch="mlp", arch_kwargs={"depth": 3, "width": 16}, epochs=4, batch_size=16, lr=0.05,
                    device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def test_tracking_is_keyed_only_when_on():
    assert "track_last_layer" not in _tiny().training_fields()
    assert config_key(_tiny()) != config_key(_tiny(track_last_layer=True))
    with pytest.raises(ValueError):
        _tiny(track_last_layer=1)


def test_tracked_columns_equal_a_measurement_of_the_stored_weights(tmp_path):
    result = measure_run(train(_tiny(track_last_layer=True), runs_dir=tmp_path, progress=False))
    assert set(LAST_LAYER_COLUMNS) <= set(result.history.columns)
    model = result.model_at(4)
    train_data, _ = load_data(result.config)
    point = model.probe_points[-1].name
    features = _capture(model, train_data.inputs, [point])[point]
    weight = model.classifier.weight.detach()
    last = result.history.iloc[-1]
    assert last["ll_nc1"] == pytest.approx(_metrics.nc1(features, train_data.labels), rel=1e-9)
    assert last["ll_self_duality"] == pytest.approx(
        _metrics.self_duality(features, train_data.labels, weight), rel=1e-9)
    untracked = train(_tiny(), runs_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(untracked.history, result.history[untracked.history.columns])


class _Killed(Exception):
    pass


def test_tracked_series_survive_a_resume(tmp_path):
    config = _tiny(track_last_layer=True, epochs=5, checkpoint_every=2)
    reference = train(config, runs_dir=tmp_path / "whole", progress=False)

    def kill(epoch, row):
        if epoch == 3:
            raise _Killed

    with pytest.raises(_Killed):
        train(config, runs_dir=tmp_path / "killed", progress=False, callback=kill)
    resumed = train(config, runs_dir=tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(resumed.history, reference.history, check_exact=True)


def test_k1_schedule_facts_follow_the_numbers():
    # NC1 at its minimum and the loss flat before the drop (an equilibrium): the drops did not stop NC1
    settled = _history(onset=5, epochs=30)
    settled["lr"] = np.where(settled["epoch"] <= 10, 0.1, 0.01)
    settled["loss"] = np.where(settled["epoch"] <= 7, 1e-3, 2e-3)   # rises at the constant learning rate
    for name in kothapalli.K1_METRICS:  # constant from epoch 8 on
        settled.loc[settled["epoch"] > 8, name] = settled.loc[settled["epoch"] == 8, name].iloc[0]
    facts = kothapalli.k1_schedule_facts({"a": settled})
    assert facts["K1_low_lr_change"] == "0.0%"
    assert "before the learning rate is ever dropped" in facts["K1_schedule_reading"]
    assert "rises by more than 20% in a" in facts["K1_schedule_reading"]
    assert facts["K1_low_lr_epochs"] == "a: 20 of the 25 after the onset"
    equilibrium = kothapalli.k1_equilibrium(settled)
    assert equilibrium["drop"] == 10 and equilibrium["min_epoch"] <= 10 and equilibrium["loss_drop"] == 2e-3
    # still falling at the drop, with a falling loss: the schedule, not an equilibrium, ends the fall
    moving = _history(onset=5, epochs=30)  # keeps falling by exp(-0.1) per epoch
    moving["lr"] = np.where(moving["epoch"] <= 10, 0.1, 0.01)
    moving["loss"] = np.exp(-moving["epoch"] / 5.0)
    reading = kothapalli.k1_schedule_facts({"b": moving})["K1_schedule_reading"]
    assert reading.startswith("In b NC1 or the training loss was still falling")
    assert kothapalli.k1_equilibrium(moving.assign(train_acc=0.5)) == {}  # never fits the training set


def _heldout(rise: float, trials: int = 20, steps: int = 30, seed: int = 0, grow: float = 1.0):
    """A TrialsResult-like object whose held-out class means carry class structure ``rise``
    (added along the class directions over training) on top of structureless noise whose
    scale grows by ``grow`` over training."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    d = lesde.class_directions(3)
    t = np.linspace(0.0, 1.0, steps)[None, :, None, None]
    noise = rng.standard_normal((trials, 1, 3, 3)) + 0.2 * rng.standard_normal((trials, steps, 3, 3))
    means = noise * (1 + (grow - 1) * t) + rise * t * d
    return SimpleNamespace(val_class_means=means, val_accuracy=np.full((trials, steps), 0.5))


def test_k2_amended_fails_on_its_null_and_passes_a_constructed_positive():
    criterion = kothapalli.K2.finding("K2").criterion
    thresholds = {name: criterion[name] for name in ("level", "clean_above", "null_at_most")}
    # the null: held-out class means with no class structure at any p, whatever the logits' growth
    null = {0.0: kothapalli.k2_heldout_rise(_heldout(0.0, grow=100.0, seed=1)),
            2 / 3: kothapalli.k2_heldout_rise(_heldout(0.0, grow=100.0, seed=2))}
    result = kothapalli.k2_network(null, **thresholds)
    assert not result["passed"] and not result["clean_pass"]
    # a constructed positive: clean labels align the held-out class means, the null does not
    positive = {0.0: kothapalli.k2_heldout_rise(_heldout(5.0, seed=1)),
                2 / 3: kothapalli.k2_heldout_rise(_heldout(0.0, grow=100.0, seed=2))}
    assert kothapalli.k2_network(positive, **thresholds)["passed"]
    # the null level behaving like clean labels fails
    both = {0.0: positive[0.0], 2 / 3: positive[0.0]}
    assert not kothapalli.k2_network(both, **thresholds)["passed"]
    _, outcome = kothapalli.k2_verdict({"a": positive, "b": null}, **thresholds)
    assert outcome.state == verdicts.NOT_REPRODUCED
    table = kothapalli.k2_heldout_table({("m", 0.0): _heldout(5.0), ("m", 2 / 3): _heldout(0.0)})
    assert table.loc[0, "rise"] > 0.5 and abs(table.loc[1, "rise"]) < 0.3
    reason = kothapalli.k2_reason({"a": kothapalli.k2_network(positive, **thresholds)}, "rise")
    assert "on clean labels" in reason and reason.endswith("(all pass)")


def test_k2_criteria_are_declared_with_the_first_kept():
    first, amended = kothapalli.K2.finding("K2").criteria
    assert first.registered < amended.registered == "2026-12-06"
    assert amended.reason and amended.seen and "held-out" in amended.render()
    assert {k: first[k] for k in first.thresholds} == {k: amended[k] for k in amended.thresholds}
    assert kothapalli.K1.finding("K1").criterion["half"] == 0.5


def test_k2_levels_train_once_then_load(tmp_path, monkeypatch):
    from ncutils.papers import kothapalli
    from ncutils.theory import lesde

    data = kothapalli.k2_data("digits", [0, 1, 2])
    settings = dict(dataset="digits", classes=[0, 1, 2], label_noise=[0.0, 2 / 3], trials=2, iterations=40,
                    lr=0.01, log_every=5, probe_per_class=5, seed=0, window=5, runs_dir=tmp_path)
    networks = {"mlp": {"arch": "mlp", "depth": 2, "width": 8}}
    first_runs, first = kothapalli.k2_levels(networks, data, **settings)
    assert list(first["p"]) == [0.0, 2 / 3] and set(first_runs) == {("mlp", 0.0), ("mlp", 2 / 3)}

    def refuse(*args, **kwargs):
        raise AssertionError("stored trials were trained again")

    monkeypatch.setattr(lesde, "train_trials", refuse)
    _, again = kothapalli.k2_levels(networks, data, **settings)
    pd.testing.assert_frame_equal(again, first)
    with pytest.raises(AssertionError, match="trained again"):
        kothapalli.k2_levels(networks, data, **{**settings, "lr": 0.02})


def test_k1_network_kwargs_narrow_only_the_networks_they_name():
    from ncutils import store

    parameters = {**kothapalli.K1.defaults, "networks": ["vgg11", "resnet18"], "long_networks": [], "device": "cpu"}
    paper = kothapalli.k1_configs(parameters)
    narrow = kothapalli.k1_configs({**parameters, "network_kwargs": {"vgg11": {"width": 0.0625}}})
    assert dict(narrow[0].arch_kwargs) == {**dict(paper[0].arch_kwargs), "width": 0.0625}
    assert store.trained_key(narrow[0]) != store.trained_key(paper[0])
    # a network without an entry keeps its config, and with it its runs in the store
    assert narrow[1] == paper[1] and store.trained_key(narrow[1]) == store.trained_key(paper[1])
    assert kothapalli.k1_configs({**parameters, "network_kwargs": None}) == paper
    for bad in ({"cnn": {"width": 0.5}}, {"vgg11": 0.5}, ["vgg11"]):
        assert "network_kwargs" in kothapalli.validate_k1_parameters({**parameters, "network_kwargs": bad})[0]
    assert kothapalli.k1_scale({**parameters, "network_kwargs": {"vgg11": {"width": 0.0625}}}).startswith(
        "VGG11 (width 0.0625) and ResNet-18")
