"""Tests of ncutils.train: config checks, the loop, sweeps, resume, the store, divergence.

The store's own tests (keys, measurements from stored weights, concurrency, CLI) are in
tests/test_runs.py.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from ncutils.store import keys as store_keys
from ncutils import train as train_module
from ncutils.data import load_dataset
from ncutils.sweep import layer_sweep
from ncutils.train import DivergedError, TrainConfig, config_key, train

from conftest import GAUSSIAN, edit_code, tiny_config as tiny, train_and_measure  # noqa: E402,F401


def _same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("overrides,error,match", [
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=2.5), ValueError, "epochs"),
    (dict(loss="hinge"), ValueError, "loss"),
    (dict(optimizer="lbfgs"), ValueError, "optimizer"),
    (dict(schedule="cosine"), ValueError, "schedule"),
    (dict(dataset="imagenet", dataset_kwargs={}), KeyError, "unknown dataset"),
    (dict(arch="transformer", arch_kwargs={}), KeyError, "unknown architecture"),
    (dict(arch_kwargs={"depthh": 3}), ValueError, "does not accept"),
    (dict(label_map="no-such-map"), KeyError, "unknown label map"),
    (dict(dataset_kwargs={"colour": 1}), ValueError, "does not accept"),
    (dict(dataset="digits", dataset_kwargs={"dim": 3}), ValueError, "takes no dataset_kwargs"),
    (dict(sweep_epochs=(4,)), ValueError, "sweep_epochs"),
    (dict(sweep_epochs=(-1,)), ValueError, "sweep_epochs"),
    (dict(sweep_epochs=(1, 1)), ValueError, "duplicates"),
    (dict(milestones=(5,)), ValueError, "milestones"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(weight_decay=-1e-4), ValueError, "weight_decay"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(limit_train=0), ValueError, "limit_train"),
    (dict(device="tpu-please"), ValueError, "device"),
    (dict(conv_policy="maxpool"), ValueError, "conv_policy"),
    (dict(arch_kwargs={"width": object()}), ValueError, "arch_kwargs"),
])
def test_invalid_config_fails_at_construction(overrides, error, match):
    with pytest.raises(error, match=match):
        tiny(**overrides)


def test_config_is_frozen_hashable_and_canonical():
    first = tiny(arch_kwargs={"width": 16, "depth": 3}, sweep_epochs=[3, 0])
    second = tiny(arch_kwargs=(("depth", 3), ("width", 16)), sweep_epochs=(0, 3))
    assert first == second and hash(first) == hash(second)
    assert first.arch_kwargs == (("depth", 3), ("width", 16)) and first.sweep_epochs == (0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.lr = 1.0
    vgg = TrainConfig(arch="vgg", arch_kwargs={"config": [8, "M"]})
    assert vgg.arch_kwargs == (("config", (8, "M")),)
    assert TrainConfig(epochs=9).milestones == (3, 6)


def test_key_covers_results_but_not_paths(monkeypatch):
    base = config_key(tiny())
    assert config_key(tiny(data_dir="/elsewhere", checkpoint_every=1)) == base
    assert config_key(tiny(conv_policy="avgpool")) == base  # a sweep option: measurements only
    assert config_key(tiny(lr=0.051)) != base
    assert config_key(tiny(seed=1)) != base
    assert config_key(tiny(data_seed=1)) != base
    assert config_key(tiny(save_at_train_acc=(0.9,))) != base
    real_version = store_keys.package_version
    monkeypatch.setattr(store_keys, "package_version",
                        lambda name: "999.0" if name == "torch" else real_version(name))
    assert config_key(tiny()) != base
    monkeypatch.undo()
    edit_code(monkeypatch, "train", b"# edit")
    assert config_key(tiny()) != base


# --------------------------------------------------------------------------- the run


def test_train_records_history_and_scheduled_sweeps(tmp_path):
    config = tiny(sweep_epochs=(0, 2, 3), epochs=3)
    result = train_and_measure(config, runs_dir=tmp_path, progress=False)
    assert not result.from_cache and result.key == config_key(config)
    assert result.history.columns.tolist() == ["epoch", "loss", "train_acc", "test_acc", "lr"]
    assert result.history.epoch.tolist() == [1, 2, 3]
    assert result.history[["train_acc", "test_acc"]].stack().between(0, 1).all()
    assert result.model.training is False
    names = [point.name for point in result.model.probe_points]
    assert result.sweeps.epoch.tolist() == [e for e in (0, 2, 3) for _ in names]
    assert result.sweeps.name.tolist() == names * 3
    # The last sweep is the sweep of the returned (final) model.
    train_data = load_dataset("gaussian", "train", **GAUSSIAN)
    test_data = load_dataset("gaussian", "test", **GAUSSIAN)
    expected = layer_sweep(result.model, train_data.inputs, train_data.labels,
                           test_inputs=test_data.inputs, test_labels=test_data.labels)
    last = result.sweeps[result.sweeps.epoch == 3].drop(columns="epoch").reset_index(drop=True)
    pd.testing.assert_frame_equal(last, expected, check_dtype=False, rtol=1e-9, atol=1e-12)
    # The recorded final train accuracy is the accuracy of the returned model.
    with torch.no_grad():
        predictions = result.model(train_data.inputs).argmax(1)
    assert result.history.train_acc.iloc[-1] == int((predictions == train_data.labels).sum()) / 80


def test_training_learns_a_separable_mixture(tmp_path):
    result = train(tiny(epochs=8, lr=0.1, schedule="constant"), runs_dir=tmp_path, progress=False)
    assert result.history.loss.iloc[-1] < result.history.loss.iloc[0]
    assert result.history.train_acc.iloc[-1] > 0.9


@pytest.mark.parametrize("overrides", [
    dict(loss="mse", optimizer="adam", lr=0.01, schedule="onecycle"),
    dict(label_map={0: 0, 1: 1, 2: 0, 3: 1}, schedule="multistep", milestones=(1,)),
])
def test_losses_optimizers_schedules_and_label_maps_run(tmp_path, overrides):
    result = train(tiny(**overrides), runs_dir=tmp_path, progress=False)
    classes = 2 if "label_map" in overrides else 4
    assert dict(result.model.named_modules())[result.model.classifier_name].out_features == classes
    if overrides["schedule"] == "multistep":
        assert result.history.lr.tolist() == pytest.approx([0.05, 0.005, 0.005])


def test_deterministic_on_cpu(tmp_path):
    config = tiny(arch_kwargs={"depth": 3, "width": 16, "batchnorm": True})
    first = train(config, runs_dir=tmp_path / "a", progress=False)
    second = train(config, runs_dir=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(first.history, second.history, check_exact=True)
    assert _same_weights(first.model, second.model)
    other_seed = train(dataclasses.replace(config, seed=1), runs_dir=tmp_path / "c", progress=False)
    assert not _same_weights(first.model, other_seed.model)


def test_seed_and_data_seed_are_separate(tmp_path, monkeypatch):
    seen = []
    real_load = train_module.load_dataset

    def recording_load(name, split, **kwargs):
        data = real_load(name, split, **kwargs)
        seen.append((kwargs["seed"], data.inputs.clone()))
        return data

    monkeypatch.setattr(train_module, "load_dataset", recording_load)
    train(tiny(seed=5, data_seed=0, limit_train=40), runs_dir=tmp_path, progress=False)
    train(tiny(seed=6, data_seed=0, limit_train=40), runs_dir=tmp_path, progress=False)
    train(tiny(seed=5, data_seed=1, limit_train=40), runs_dir=tmp_path, progress=False)
    assert [seed for seed, _ in seen] == [0, 0, 0, 0, 1, 1]
    assert torch.equal(seen[0][1], seen[2][1]) and not torch.equal(seen[0][1], seen[4][1])


def test_training_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(tiny(), runs_dir=tmp_path, progress=False)
    assert torch.equal(torch.rand(3), expected)


class _Killed(Exception):
    pass


def _kill_at(epoch_to_kill: int):
    def callback(epoch, row):
        if epoch == epoch_to_kill:
            raise _Killed(epoch)
    return callback


@pytest.mark.parametrize("kill_epoch,overrides", [
    # checkpoints at the sweep epochs only: killed after epoch 4, the last checkpoint is 2
    (4, dict(sweep_epochs=(2, 5), schedule="onecycle")),
    # checkpoints every 2 epochs, no sweeps, SGD momentum, step schedule, BatchNorm
    (3, dict(checkpoint_every=2, arch_kwargs={"depth": 3, "width": 16, "batchnorm": True},
             milestones=(3,))),
])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, kill_epoch, overrides):
    config = tiny(epochs=5, **overrides)
    reference = train_and_measure(config, runs_dir=tmp_path / "whole", progress=False)
    with pytest.raises(_Killed):
        train(config, runs_dir=tmp_path / "killed", progress=False, callback=_kill_at(kill_epoch))
    run_dir = tmp_path / "killed" / "trained" / reference.key
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "manifest.json").exists()
    epochs_run = []
    resumed = train_and_measure(config, runs_dir=tmp_path / "killed", progress=False,
                    callback=lambda epoch, row: epochs_run.append(epoch))
    assert epochs_run == [3, 4, 5]  # restarted after the checkpoint of epoch 2
    pd.testing.assert_frame_equal(resumed.history, reference.history, check_exact=True)
    pd.testing.assert_frame_equal(resumed.sweeps, reference.sweeps, check_exact=True)
    assert _same_weights(resumed.model, reference.model)
    assert not (run_dir / "checkpoint.pt").exists()


def test_unreadable_checkpoint_warns_and_trains_from_scratch(tmp_path):
    config = tiny(epochs=3, checkpoint_every=1)
    reference = train(config, runs_dir=tmp_path / "whole", progress=False)
    with pytest.raises(_Killed):
        train(config, runs_dir=tmp_path / "killed", progress=False, callback=_kill_at(2))
    (tmp_path / "killed" / "trained" / reference.key / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        result = train(config, runs_dir=tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(result.history, reference.history, check_exact=True)


# --------------------------------------------------------------------------- the store


def test_stored_run_is_loaded_without_training(tmp_path, monkeypatch):
    config = tiny(sweep_epochs=(3,))
    first = train_and_measure(config, runs_dir=tmp_path, progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(train_module, "run_epoch", no_training)
    second = train_and_measure(config, runs_dir=tmp_path, progress=False)
    assert second.from_cache and second.measured_from_cache
    assert not first.from_cache and not first.measured_from_cache
    pd.testing.assert_frame_equal(second.history, first.history, check_exact=True)
    pd.testing.assert_frame_equal(second.sweeps, first.sweeps, check_exact=True)
    assert _same_weights(second.model, first.model)
    manifest = json.loads((tmp_path / "trained" / first.key / "manifest.json").read_text())
    assert manifest["payload"]["packages"]["torch"] == torch.__version__
    assert manifest["payload"]["config"]["arch_kwargs"] == [["depth", 3], ["width", 16]]
    assert manifest["train_seconds"] > 0 and manifest["device_name"]
    assert {"git", "package_sha256"} <= set(manifest["provenance"])
    with pytest.raises(AssertionError, match="trained again"):
        train(config, runs_dir=tmp_path, progress=False, force=True)


def test_force_reruns(tmp_path):
    config = tiny()
    train(config, runs_dir=tmp_path, progress=False)
    again = train(config, runs_dir=tmp_path, progress=False, force=True)
    assert not again.from_cache


@pytest.mark.parametrize("damage", ["edit history", "truncate weights", "delete sweeps",
                                    "garble manifest"])
def test_corrupted_store_entry_is_detected_and_rebuilt(tmp_path, damage):
    config = tiny(sweep_epochs=(3,))
    original = train_and_measure(config, runs_dir=tmp_path, progress=False)
    run_dir = tmp_path / "trained" / original.key
    if damage == "edit history":
        (history,) = run_dir.glob("history-*.csv")
        history.write_text(history.read_text().replace("\n3,", "\n3,9"))
    elif damage == "truncate weights":
        (weights,) = run_dir.glob("weights/epoch-00003-*.pt")
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "delete sweeps":
        (sweeps,) = (tmp_path / "measured").glob("*/sweeps-*.csv")
        sweeps.unlink()
    else:
        (run_dir / "manifest.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        rebuilt = train_and_measure(config, runs_dir=tmp_path, progress=False)
    # A lost measurement is re-measured from the stored weights; anything else retrains,
    # and a retrained run whose weights are bit-identical (CPU) keeps its measurements.
    assert rebuilt.from_cache == (damage == "delete sweeps")
    assert rebuilt.measured_from_cache == (damage != "delete sweeps")
    pd.testing.assert_frame_equal(rebuilt.history, original.history, check_exact=True)
    pd.testing.assert_frame_equal(rebuilt.sweeps, original.sweeps, check_exact=True)
    again = train_and_measure(config, runs_dir=tmp_path, progress=False)
    assert again.from_cache and again.measured_from_cache


# --------------------------------------------------------------------------- divergence


def test_nan_loss_names_the_epoch_and_the_config(tmp_path):
    config = tiny(loss="mse", lr=1e30, momentum=0.0, weight_decay=0.0, schedule="constant")
    with pytest.raises(DivergedError, match=r"at epoch 1 .*TrainConfig\(.*lr=1e\+30"):
        train(config, runs_dir=tmp_path, progress=False)
    assert not (tmp_path / "trained" / config_key(config) / "manifest.json").exists()


# --------------------------------------------------------------------------- warm-up (Rangamani)


def test_warmup_epochs_keys_only_when_set_and_validates():
    assert "warmup_epochs" not in tiny().training_fields()
    assert config_key(tiny(warmup_epochs=0)) == config_key(tiny())
    assert config_key(tiny(warmup_epochs=1)) != config_key(tiny())
    with pytest.raises(ValueError, match="warmup_epochs"):
        tiny(warmup_epochs=4)
    with pytest.raises(ValueError, match="onecycle"):
        tiny(warmup_epochs=1, schedule="onecycle")


def test_warmup_ramps_linearly_per_batch_then_follows_the_milestones(tmp_path):
    config = tiny(warmup_epochs=1, milestones=(2,), lr_decay=0.1)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    epoch_scheduler, batch_scheduler = train_module._make_scheduler(config, optimizer, steps_per_epoch=5)
    assert epoch_scheduler is None
    rates = []
    for _ in range(15):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        batch_scheduler.step()
    assert rates == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05] + [0.05] * 5 + [0.005] * 5)
    # 80 samples in batches of 16: 5 batches per epoch; history holds each epoch's first rate
    result = train(config, runs_dir=tmp_path, progress=False)
    assert result.history.lr.tolist() == pytest.approx([0.01, 0.05, 0.005])


def test_resume_with_warmup_equals_an_uninterrupted_run(tmp_path):
    config = tiny(epochs=4, warmup_epochs=1, sweep_epochs=(1, 4), milestones=(3,))
    reference = train(config, runs_dir=tmp_path / "whole", progress=False)
    with pytest.raises(_Killed):
        train(config, runs_dir=tmp_path / "killed", progress=False, callback=_kill_at(2))
    resumed = train(config, runs_dir=tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(resumed.history, reference.history, check_exact=True)
    assert _same_weights(resumed.model, reference.model)


def test_precision_is_checked_keyed_only_when_not_fp32_and_bf16_trains():
    assert "precision" not in tiny().training_fields()
    assert tiny(precision="bf16").training_fields()["precision"] == "bf16"
    assert store_keys.trained_key(tiny()) != store_keys.trained_key(tiny(precision="bf16"))
    with pytest.raises(ValueError, match="precision"):
        tiny(precision="fp16")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(64, 8), torch.arange(64) % 4
    loss = train_module.run_epoch(model, inputs, labels, loss_fn=train_module.make_loss("ce", 4),
                                  optimizer=optimizer, batch_size=16,
                                  generator=torch.Generator().manual_seed(0), precision="bf16")
    assert math.isfinite(loss) and next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        train_module.run_epoch(model, inputs, labels, loss_fn=train_module.make_loss("ce", 4),
                               optimizer=optimizer, batch_size=16, generator=torch.Generator(), precision="x")


def test_shuffle_labels_permutes_training_labels_only_and_keys_only_when_set():
    plain = TrainConfig(dataset="digits", device="cpu")
    shuffled = dataclasses.replace(plain, shuffle_labels=True)
    assert "shuffle_labels" not in plain.training_fields()
    assert config_key(plain) != config_key(shuffled)
    with pytest.raises(ValueError, match="shuffle_labels"):
        TrainConfig(shuffle_labels="yes")
    (train_true, test_true), (train_shuffled, test_shuffled) = (
        train_module.load_data(plain), train_module.load_data(shuffled))
    # the same class counts, but the labels no longer follow the inputs
    assert torch.equal(train_true.labels.bincount(), train_shuffled.labels.bincount())
    assert (train_true.labels == train_shuffled.labels).float().mean() < 0.3
    assert torch.equal(train_true.inputs, train_shuffled.inputs)
    assert torch.equal(train_true.fine_labels, train_shuffled.fine_labels)
    assert torch.equal(test_true.labels, test_shuffled.labels)
    # seeded by data_seed: the same permutation for every training seed
    again = train_module.load_data(dataclasses.replace(shuffled, seed=3))[0]
    assert torch.equal(again.labels, train_shuffled.labels)
    assert "shuffled" in train_shuffled.source


def _train_slowly(runs_dir: str) -> tuple[str, list[float]]:
    # a module-level function: spawned processes import it
    import time as _time

    result = train(tiny(epochs=4), runs_dir=runs_dir, progress=False,
                   callback=lambda epoch, row: _time.sleep(0.3))
    return result.key, result.history["loss"].tolist()


def test_two_processes_asking_for_one_run_train_it_once(tmp_path):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_train_slowly, [str(tmp_path)] * 2)
    assert first == second
    events = (tmp_path / "events.log").read_text()
    trained = [line for line in events.splitlines() if line.split(" ")[1] == "trained"]
    assert len(trained) == 1 and events.count("loaded trained run") == 1
