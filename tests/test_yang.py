"""ncutils.papers.yang: configurations, and the Y1/Y2 criteria against their nulls."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from ncutils import verdicts
from ncutils.cluster import chance_level, fine_structure, random_fine_labels
from ncutils.papers import yang

from conftest import edit_code

THRESHOLDS = dict(min_train_acc=0.99, max_nc1_ratio=0.1, min_fraction=0.9)
Y2_THRESHOLDS = dict(separated=[4.0], unseparated=[0.0], min_train_acc=0.99, max_nc1_ratio=0.1,
                     min_keep=0.5, min_accuracy=0.9)


def y1_tables(recovered: float, null: float, *, nc1_final: float = 0.05, seeds=(0, 1, 2),
              train_acc: float = 1.0):
    rows, runs = [], []
    for seed in seeds:
        keys = {"dataset": "digits", "lr": 0.05, "weight_decay": 5e-4, "pairing": "mod5", "seed": seed}
        for source, labels, accuracy, nc1 in (("trained", "fine", recovered, nc1_final),
                                             ("init", "fine", 0.85, 1.0),
                                             ("input", "fine", 0.96, 1.2),
                                             ("trained", "random", null, nc1_final)):
            rows.append({**keys, "source": source, "labels": labels, "test_accuracy": accuracy,
                         "train_accuracy": accuracy, "test_accuracy_predicted": accuracy - 0.01,
                         "coarse_nc1": nc1, "chance_test_upper": 0.56})
        runs.append({**keys, "train_acc": train_acc, "test_acc": 0.99})
    runs.append({"dataset": "digits", "lr": 0.05, "weight_decay": 5e-4, "pairing": "fine", "seed": 0,
                 "train_acc": 1.0, "test_acc": 0.97})
    return pd.DataFrame(rows), pd.DataFrame(runs)


def test_y1_passes_on_recovered_fine_structure():
    recovery, runs = y1_tables(0.95, 0.52)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert table["passed"].all() and table["null_at_chance"].all()
    assert table["fraction"].iloc[0] == pytest.approx(0.95 / 0.97)
    # the input baseline is stronger here, and no condition
    assert (table["baseline_margin"] < 0).all()
    assert yang.y1_outcome(table).state == verdicts.REPRODUCED


def test_y1_fails_on_null_like_tables():
    # what random fine labels give: chance-level recovery from collapsed features
    recovery, runs = y1_tables(0.53, 0.52)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert not table["passed"].any()
    assert yang.y1_outcome(table).state == verdicts.NOT_REPRODUCED


def test_y1_needs_collapse_too():
    recovery, runs = y1_tables(0.95, 0.52, nc1_final=0.3)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert table["recovered"].all() and not table["collapsed"].any()
    assert yang.y1_outcome(table).state == verdicts.NOT_REPRODUCED


def test_y1_ineligible_runs_are_inconclusive():
    recovery, runs = y1_tables(0.95, 0.52, train_acc=0.9)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert not table["eligible"].any()
    assert yang.y1_outcome(table).state == verdicts.INCONCLUSIVE


def test_y1_without_reference_is_inconclusive():
    recovery, runs = y1_tables(0.95, 0.52)
    runs.loc[runs["pairing"] == "fine", "train_acc"] = 0.5
    outcome = yang.y1_outcome(yang.y1_table(recovery, runs, **THRESHOLDS))
    assert outcome.state == verdicts.INCONCLUSIVE and "reference" in outcome.reason


def y2_tables(accuracy: float, kept: float, *, unseparated_accuracy: float = 0.51, seeds=(0, 1)):
    rows, runs = [], []
    for seed in seeds:
        for separation, acc in ((0.0, unseparated_accuracy), (2.0, 0.7), (4.0, accuracy)):
            stat = 0.2 if separation else 0.004
            for source, nc1, statistic, value in (("trained", 0.05, stat * kept, acc),
                                                  ("init", 1.0, stat, 0.8), ("input", 0.3, stat, 0.99)):
                rows.append({"fine_separation": separation, "epochs": 100, "seed": seed, "source": source,
                             "labels": "fine", "coarse_nc1": nc1, "fine_statistic": statistic,
                             "test_accuracy": value, "chance_test_upper": 0.55})
            runs.append({"fine_separation": separation, "epochs": 100, "seed": seed, "train_acc": 1.0})
    return pd.DataFrame(rows), pd.DataFrame(runs)


def test_y2_passes_when_fine_structure_survives():
    table = yang.y2_table(*y2_tables(0.97, 0.8), **Y2_THRESHOLDS)
    assert table["passed"].all()
    assert set(table["role"]) == {"separated", "unseparated", "shown"}
    assert yang.y2_outcome(table).state == verdicts.REPRODUCED


@pytest.mark.parametrize("accuracy, kept, unseparated", [
    (0.52, 0.8, 0.51),   # null-like: chance recovery where separated
    (0.97, 0.1, 0.51),   # the fine structure collapsed with the coarse classes
    (0.97, 0.8, 0.70),   # above chance where there is nothing to find: a leak
])
def test_y2_fails_on_null_like_tables(accuracy, kept, unseparated):
    table = yang.y2_table(*y2_tables(accuracy, kept, unseparated_accuracy=unseparated), **Y2_THRESHOLDS)
    assert yang.y2_outcome(table).state == verdicts.NOT_REPRODUCED


def test_y2_bad_settings_raise():
    recovery, runs = y2_tables(0.97, 0.8)
    with pytest.raises(ValueError, match="overlap"):
        yang.y2_table(recovery, runs, **{**Y2_THRESHOLDS, "unseparated": [4.0]})
    with pytest.raises(ValueError, match="lacks columns"):
        yang.y2_table(recovery.drop(columns=["fine_statistic"]), runs, **Y2_THRESHOLDS)


def test_random_fine_labels_on_real_features_stay_at_chance():
    """The null (book/method.md) through the real pipeline: digits pixels, pairs (c, c + 5)."""
    train, _ = yang.load_run_data(yang.yang_config("digits", pairing="mod5", arch="mlp", epochs=1,
                                                   lr=0.1, weight_decay=0.0, limit_train=400))
    x, coarse, fine = train.inputs.reshape(len(train), -1), train.labels, train.fine_labels
    null = random_fine_labels(coarse, fine, seed=0)
    result = fine_structure(x, coarse, null, n_init=3)
    chance = chance_level(result, null, permutations=100)
    assert result.train_accuracy <= chance.train_upper
    assert fine_structure(x, coarse, fine, n_init=3).train_accuracy > chance.train_upper + 0.2


def test_grids_and_configs():
    parameters = {"datasets": ["digits"], "pairings": ["mod5", "cifar10-semantic"],
                  "architecture": "mlp", "arch_kwargs": {"depth": 3}, "epochs": {"digits": 2},
                  "lrs": [0.1, 0.01], "weight_decays": [5e-4], "batch_size": 64, "seeds": [0, 1],
                  "reference_seeds": [3]}
    grid = yang.y1_grid(parameters)
    assert len(grid.entries) == 2 * (2 * 2 + 1)
    fine = [e for e in grid.entries if e.labels["pairing"] == "fine"]
    assert all(e.config.label_map is None and e.config.seed == 3 for e in fine)
    semantic = next(e for e in grid.entries if e.labels["pairing"] == "cifar10-semantic")
    assert dict(semantic.config.label_map)[8] == dict(semantic.config.label_map)[0]
    with pytest.raises(KeyError, match="pairing"):
        yang.y1_grid({**parameters, "pairings": ["c+1"]})
    with pytest.raises(ValueError, match="lack"):
        yang.y1_grid({"datasets": ["digits"]})
    with pytest.raises(ValueError, match="seeds"):
        yang.y1_grid({**parameters, "seeds": [0, 0]})
    y2 = yang.y2_grid({"y2_separations": [0.0, 4.0], "y2_epochs": [2, 4], "y2_seeds": [0],
                       "y2_data": {"dim": 8}, "y2_arch_kwargs": {"depth": 3, "width": 8},
                       "y2_lr": 0.05, "y2_weight_decay": 0.0, "y2_batch_size": 16})
    assert {e.config.schedule for e in y2.entries} == {"constant"}
    assert dict(y2.entries[-1].config.dataset_kwargs)["fine_separation"] == 4.0
    with pytest.raises(ValueError, match="fine_separation"):
        yang.y2_grid({"y2_separations": [0.0], "y2_epochs": [2], "y2_seeds": [0],
                      "y2_data": {"fine_separation": 1.0}, "y2_arch_kwargs": {}, "y2_lr": 0.05,
                      "y2_weight_decay": 0.0, "y2_batch_size": 16})
    # every fine class in exactly one coarse class, 5 coarse classes of 2
    for mapping in yang.PAIRINGS.values():
        assert sorted(mapping) == list(range(10))
        assert np.bincount(list(mapping.values())).tolist() == [2] * 5


def test_initial_model_is_trains_starting_point(tmp_path):
    from ncutils.train import train

    config = yang.yang_config("digits", pairing="mod5", arch="mlp", arch_kwargs={"depth": 3, "width": 16},
                              epochs=1, lr=1e-9, weight_decay=0.0, seed=5, limit_train=50,
                              limit_test=20, device="cpu")
    config = dataclasses.replace(config, momentum=0.0)
    trained = train(config, runs_dir=tmp_path, progress=False).model
    initial = yang.initial_model(config, (1, 8, 8), 5)
    # one step at lr 1e-9 moves the weights by far less than float32 tolerance
    for (name, a), b in zip(initial.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(a, b.cpu(), atol=1e-6, rtol=0, msg=name)


def test_measure_rows(tmp_path):
    from ncutils.train import train

    config = yang.yang_config("digits", pairing="mod5", arch="mlp", arch_kwargs={"depth": 3, "width": 16},
                              epochs=2, lr=0.05, weight_decay=0.0, limit_train=100, limit_test=50,
                              device="cpu")
    model = train(config, runs_dir=tmp_path, progress=False).model
    table = yang.measure(model, config, n_init=2, permutations=20)
    assert list(zip(table["source"], table["labels"])) == [
        ("trained", "fine"), ("trained", "random"), ("init", "fine"), ("input", "fine")]
    assert table["dim"].tolist() == [16, 16, 16, 64]
    assert table["test_accuracy"].between(0, 1).all() and (table["coarse_nc1"] > 0).all()
    with pytest.raises(ValueError, match="coarse labels"):
        yang.measure(model, yang.yang_config("digits", pairing=None, arch="mlp", epochs=1, lr=0.1,
                                             weight_decay=0.0))
    with pytest.raises(ValueError, match="sources"):
        yang.measure(model, config, sources=("logits",))


# ----------------------------------------------------------------------------- baselines, series, cache
def with_shuffled(recovery: pd.DataFrame, runs: pd.DataFrame, shuffled: float, train_acc: float = 0.6):
    keys = {"dataset": "digits", "lr": 0.05, "weight_decay": 5e-4, "pairing": "mod5", "seed": 0}
    row = {**keys, "source": yang.SHUFFLED, "labels": "fine", "test_accuracy": shuffled,
           "train_accuracy": shuffled, "test_accuracy_predicted": np.nan, "coarse_nc1": 30.0,
           "chance_test_upper": 0.56}
    run = {**keys, "pairing": yang.SHUFFLED, "train_acc": train_acc, "test_acc": 0.2}
    return pd.concat([recovery, pd.DataFrame([row])]), pd.concat([runs, pd.DataFrame([run])])


def test_y1_table_reports_the_shuffled_label_baseline_beside_the_others():
    recovery, runs = with_shuffled(*y1_tables(0.95, 0.52), shuffled=0.55)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert len(table) == 3 and set(table["pairing"]) == {"mod5"}  # the shuffled run is no coarse run
    assert table["shuffled_test"].tolist() == [0.55] * 3
    assert table["shuffled_train_acc"].tolist() == [0.6] * 3
    assert table["shuffled_margin"].to_numpy() == pytest.approx([0.40] * 3)
    assert table["init_margin"].to_numpy() == pytest.approx([0.10] * 3)
    assert table["input_margin"].to_numpy() == pytest.approx([-0.01] * 3)
    # the best baseline is the largest of the three, and it is no condition
    assert table["best_baseline"].tolist() == [0.96] * 3 and table["passed"].all()
    recovery, runs = with_shuffled(*y1_tables(0.95, 0.52), shuffled=0.99)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert table["best_baseline"].tolist() == [0.99] * 3 and table["passed"].all()
    # without a shuffled-label network the columns are NaN, nothing else changes
    table = yang.y1_table(*y1_tables(0.95, 0.52), **THRESHOLDS)
    assert table["shuffled_test"].isna().all() and table["shuffled_margin"].isna().all()
    assert table["best_baseline"].tolist() == [0.96] * 3


def test_y1_null_like_tables_still_fail_with_a_shuffled_baseline():
    recovery, runs = with_shuffled(*y1_tables(0.53, 0.52), shuffled=0.51)
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    assert not table["passed"].any()
    assert yang.y1_outcome(table).state == verdicts.NOT_REPRODUCED


def test_log_epochs():
    assert yang.log_epochs(60, 5) == (0, 1, 4, 15, 60)
    assert yang.log_epochs(30, 5) == (0, 1, 3, 10, 30)
    assert yang.log_epochs(1, 4) == (0, 1) and yang.log_epochs(100, 2) == (0, 100)
    for bad in (1, 0, True, 2.5):
        with pytest.raises(ValueError, match="series_points"):
            yang.log_epochs(10, bad)
    with pytest.raises(ValueError, match="epochs"):
        yang.log_epochs(0, 3)


def test_grid_holds_the_shuffled_baseline_and_the_series_epochs():
    parameters = {"datasets": ["digits"], "pairings": ["mod5", "cifar10-semantic"],
                  "architecture": "mlp", "arch_kwargs": {"depth": 3}, "epochs": {"digits": 30},
                  "lrs": [0.1], "weight_decays": [5e-4], "batch_size": 64, "seeds": [0, 1],
                  "reference_seeds": [0], "shuffled_seeds": [0, 2], "series_points": 5}
    entries = yang.y1_grid(parameters).entries
    shuffled = [e for e in entries if e.labels["pairing"] == yang.SHUFFLED]
    assert [e.config.seed for e in shuffled] == [0, 2]
    assert all(e.config.shuffle_labels and dict(e.config.label_map) == yang.PAIRINGS["mod5"]
               and e.config.sweep_epochs == () for e in shuffled)
    coarse = [e for e in entries if e.labels["pairing"] in yang.PAIRINGS]
    assert len(coarse) == 4 and all(e.config.sweep_epochs == (0, 1, 3, 10, 30) for e in coarse)
    assert not any(e.config.shuffle_labels for e in coarse)
    reference = [e for e in entries if e.labels["pairing"] == yang.FINE]
    assert reference[0].config.sweep_epochs == () and reference[0].config.label_map is None
    # the shuffled network is keyed apart from the coarse run of the same seed
    from ncutils.train import config_key
    assert config_key(shuffled[0].config) != config_key(dataclasses.replace(shuffled[0].config,
                                                                            shuffle_labels=False))
    # none asked for: none trained; bad values are named before anything is trained
    assert not any(e.labels["pairing"] == yang.SHUFFLED
                   for e in yang.y1_grid({**parameters, "shuffled_seeds": []}).entries)
    assert yang.validate_parameters({**parameters, "shuffled_seeds": [0, 0]}) == [
        "Y1: shuffled_seeds repeat: [0, 0]"]
    assert "shuffled_seeds" in yang.validate_parameters({**parameters, "shuffled_seeds": 0})[0]
    assert "series_points" in yang.validate_parameters({**parameters, "series_points": 1})[0]
    with pytest.raises(ValueError, match="pairing"):
        yang.yang_config("digits", pairing=None, arch="mlp", epochs=1, lr=0.1, weight_decay=0.0,
                         shuffle_labels=True)


def test_epoch_series_facts_known_answers():
    series = pd.DataFrame({"dataset": ["a"] * 3 + ["b"] * 3, "seed": 0, "epoch": [0, 2, 9] * 2,
                           "coarse_nc1": [2.0, 0.5, 0.1, 4.0, 1.0, 0.1],
                           "recovered_test": [0.5, 0.9, 0.8, 0.6, 0.7, 0.7],
                           "fine_statistic": [1.0, 2.0, 3.0, 1.0, 1.0, 1.0]})
    facts = yang.epoch_series_facts(series)
    assert facts["Y1_series_runs"] == 2
    assert facts["Y1_series_nc1_fall_min"] == pytest.approx(20.0)
    assert facts["Y1_series_nc1_fall_max"] == pytest.approx(40.0)
    assert facts["Y1_series_recovered_first"] == pytest.approx(0.55)
    assert facts["Y1_series_recovered_last"] == pytest.approx(0.75)
    assert facts["Y1_series_recovered_min_trained"] == pytest.approx(0.7)
    assert facts["Y1_series_peak_drop_max"] == pytest.approx(0.1)
    assert facts["Y1_series_statistic_last"] == pytest.approx(2.0)
    assert facts["Y1_series_epochs"] == "0, 2, 9 (a); 0, 2, 9 (b)"


TINY = {"datasets": ["digits"], "pairings": ["mod5"], "architecture": "mlp",
        "arch_kwargs": {"depth": 3, "width": 16}, "epochs": {"digits": 4}, "lrs": [0.05],
        "weight_decays": [0.0], "batch_size": 32, "seeds": [0], "reference_seeds": [0],
        "shuffled_seeds": [0], "series_points": 3, "limit_train": 200, "limit_test": 100,
        "device": "cpu"}
TINY_OPTIONS = dict(n_init=2, permutations=20)


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    from ncutils.grid import run_grid

    runs_dir = tmp_path_factory.mktemp("yang-runs")
    return run_grid(yang.y1_grid(TINY), runs_dir=runs_dir, progress=False, workers=1), runs_dir


def _coarse_run(result):
    return next(run for key, run in result.results.items() if key[1] == "mod5")


def test_measure_run_is_cached_and_keyed_by_its_options(tiny_grid, monkeypatch):
    result, runs_dir = tiny_grid
    run = _coarse_run(result)
    first = yang.measure_run(run, **{**TINY_OPTIONS, "seed": 7})
    calls = []
    original = yang.recovery.fine_structure
    monkeypatch.setattr(yang.recovery, "fine_structure", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = yang.measure_run(run, **{**TINY_OPTIONS, "seed": 7})
    assert not first["from_cache"].any() and again["from_cache"].all() and calls == []
    pd.testing.assert_frame_equal(first.drop(columns="from_cache"), again.drop(columns="from_cache"))
    # the cached path gives what the uncached one computes
    bare = yang.measure(run.model, run.config, **{**TINY_OPTIONS, "seed": 7})
    pd.testing.assert_frame_equal(bare.drop(columns="from_cache"), again.drop(columns="from_cache"))
    assert not bare["from_cache"].any() and len(calls) == 4
    calls.clear()
    # another option is another entry: computed, not loaded
    other = yang.measure_run(run, sources=("trained",), null=False,
                             **{**TINY_OPTIONS, "seed": 7, "n_init": 3})
    assert not other["from_cache"].any() and calls == [1]
    # an edit to metrics.py changes no key (nothing clustered again) ...
    edit_code(monkeypatch, "metrics", b"edited")
    assert yang.measure_run(run, **{**TINY_OPTIONS, "seed": 7})["from_cache"].all() and calls == [1]
    # ... and the metrics are computed after loading, so the edit shows at once
    monkeypatch.setattr(yang.recovery.metrics, "nc1_from_stats", lambda *a, **k: 42.0)
    edited = yang.measure_run(run, **{**TINY_OPTIONS, "seed": 7})
    assert edited["from_cache"].all() and (edited["coarse_nc1"] == 42.0).all() and calls == [1]
    # an edit to the clustering code does change the key
    edit_code(monkeypatch, "cluster", b"edited")
    assert not yang.measure_run(run, sources=("trained",), null=False,
                                **{**TINY_OPTIONS, "seed": 7})["from_cache"].any()


def test_recovery_keys_share_input_and_init_but_not_trained_features():
    config = yang.yang_config("digits", pairing="mod5", arch="mlp", epochs=3, lr=0.05, weight_decay=5e-4)
    other_seed = dataclasses.replace(config, seed=1)
    other_data = dataclasses.replace(config, limit_train=100)
    key = lambda c, what, run="r": yang.recovery_payload(run, c, what, "fine", seed=0)  # noqa: E731
    assert key(config, "input", "a") == key(other_seed, "input", "b")
    assert key(config, "input") != key(other_data, "input")
    assert key(config, 0, "a") == key(config, 0, "b") and key(config, 0) != key(other_seed, 0)
    assert key(config, 3, "a") != key(config, 3, "b") and key(config, 3) != key(config, 2)
    assert key(config, 3) != yang.recovery_payload("r", config, 3, "random", seed=0)
    assert key(config, 3) != yang.recovery_payload("r", config, 3, "fine", seed=1)
    assert "ncutils.metrics" not in key(config, 3)["source"]
    assert set(key(config, 3)["source"]) == set(yang.RECOVERY.modules())


def test_shuffled_baseline_and_series_through_the_pipeline(tiny_grid):
    result, _ = tiny_grid
    recovery = yang.measure_runs(result, **TINY_OPTIONS)
    shuffled = recovery[recovery["source"] == yang.SHUFFLED]
    # read against the pairing of the coarse runs, with the true fine labels, no null
    assert shuffled[["pairing", "labels"]].values.tolist() == [["mod5", "fine"]]
    assert shuffled["test_accuracy_predicted"].isna().all()
    table = yang.y1_table(recovery, result.runs, **THRESHOLDS)
    assert len(table) == 1 and table["shuffled_test"].iloc[0] == shuffled["test_accuracy"].iloc[0]
    run = _coarse_run(result)
    assert run.stored_epochs == [0, 1, 4] == list(yang.log_epochs(4, 3))
    series = yang.y1_epoch_series(result, **TINY_OPTIONS)
    assert series["epoch"].tolist() == [0, 1, 4] and series["from_cache"].tolist() == [True, False, True]
    rows = recovery[(recovery["pairing"] == "mod5") & (recovery["labels"] == "fine")].set_index("source")
    # epoch 0 is the initialisation, the last epoch the trained network: the same recoveries
    assert series["recovered_test"].iloc[0] == rows.loc["init", "test_accuracy"]
    assert series["recovered_test"].iloc[-1] == rows.loc["trained", "test_accuracy"]
    assert series["fine_statistic"].iloc[-1] == rows.loc["trained", "fine_statistic"]
    # coarse NC1 read from the layer sweep agrees with the one from the kept statistics
    assert series["coarse_nc1"].iloc[[0, -1]].to_numpy() == pytest.approx(
        [rows.loc["init", "coarse_nc1"], rows.loc["trained", "coarse_nc1"]], rel=1e-6)
    assert series["nc1_ratio"].iloc[0] == 1.0 and series["statistic_kept"].iloc[0] == 1.0
    assert np.isnan(series["train_acc"].iloc[0]) and series["train_acc"].iloc[1:].between(0, 1).all()
    assert yang.y1_epoch_series(result, **TINY_OPTIONS)["from_cache"].all()


# ----------------------------------------------------------------------------- the chapter's texts
def test_y1_facts_and_finding():
    recovery, runs = y1_tables(0.95, 0.52, seeds=(0, 1, 2))
    runs.loc[runs["seed"] == 2, "train_acc"] = 0.5  # one run left out
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    facts = yang.y1_facts(table, shuffled_seeds=[])
    assert facts["Y1_runs"] == "2 of 2" and facts["Y1_collapsed"] == "2 of 2"
    assert facts["Y1_excluded"] == "digits/mod5/seed 2" and facts["Y1_shuffled_seeds"] == "none"
    assert facts["Y1_fraction_min"] == pytest.approx(0.95 / 0.97)
    assert facts["Y1_null_max"] == pytest.approx(0.52) and facts["Y1_null_at_chance"] == "2 of 2"
    points = yang.y1_grid_points(table, min_seeds=2)  # seed 2 ineligible: the point is too
    criteria = yang.CHAPTER.finding("Y1").criteria
    original = yang.y1_original_result([recovery], [runs], criteria[0])
    assert original.startswith("reproduced: 2 of 2 eligible runs pass")
    finding = yang.y1_finding(table, facts, {"Y1_series_runs": 2}, points, criteria=criteria, architecture="mlp",
                              pairings=["mod5"], seeds=[0, 1, 2], reference_seeds=[0], shuffled_seeds=[],
                              original_result=original)
    assert finding["outcome"].state == verdicts.INCONCLUSIVE and "no grid point of 1" in finding["outcome"].reason
    assert finding["criterion"] == criteria[-1].render() and "every one of its" in finding["criterion"]
    assert finding["tested"].startswith("mlp on digits: grid of 1 (learning rate 0.05 x weight decay 0.0005")
    assert finding["details"]["original"]["result"] == original
    assert finding["details"]["series"] == {"Y1_series_runs": 2} and len(finding["details"]["point"]["runs"]) == 3
    runs.loc[runs["seed"] == 2, "train_acc"] = 1.0
    points = yang.y1_grid_points(yang.y1_table(recovery, runs, **THRESHOLDS), min_seeds=2)
    finding = yang.y1_finding(table, facts, {}, points, criteria=criteria, architecture="mlp", pairings=["mod5"],
                              seeds=[0, 1, 2], reference_seeds=[0], shuffled_seeds=[], original_result=original)
    assert finding["outcome"].state == verdicts.REPRODUCED
    assert finding["outcome"].reason.startswith("1 of 1 grid points (1 eligible; 3 seeds each) pass")


def test_y2_facts_and_finding():
    table = yang.y2_table(*y2_tables(0.97, 0.8), **Y2_THRESHOLDS)
    facts = yang.y2_facts(table)
    assert facts["Y2_runs"] == "2 of 2"
    assert facts["Y2_separated_accuracy_min"] == pytest.approx(0.97)
    assert facts["Y2_kept_min"] == pytest.approx(0.8) and facts["Y2_unseparated_accuracy_max"] == pytest.approx(0.51)
    criteria = yang.CHAPTER.finding("Y2").criteria
    finding = yang.y2_finding(table, facts, criteria=criteria, separations=[0.0, 2.0, 4.0], separated=[4.0],
                              unseparated=[0.0], epochs=[5, 100], seeds=[0, 1], arch_kwargs={"depth": 3},
                              data={"dim": 16})
    # a pass on the chapter's own model is no verdict on the paper's
    assert finding["outcome"].state == verdicts.INCONCLUSIVE
    assert finding["outcome"].reason.startswith("the paper's synthetic model is not available; on our model")
    assert "2 of 2 seeds pass the earlier checks" in finding["outcome"].reason
    assert finding["value"] == ("on our model: separated: recovered 0.97-0.97, statistic kept 0.80-0.80; "
                                "unseparated: max 0.510")
    assert finding["criterion"] == criteria[-1].render()
    assert finding["details"]["original"]["result"].startswith("reproduced: 2 of 2")
    assert finding["tested"] == ("our stand-in: MLP {'depth': 3} on gaussian {'dim': 16}, fine_separation "
                                 "[0.0, 2.0, 4.0], seeds [0, 1], 100 epochs")


# ----------------------------------------------------------------------------- the amended criteria (2026-12-06)
def _clustered(features, coarse, fine, test_features, test_coarse, test_fine):
    return fine_structure(features, coarse, fine, test_features=test_features, test_coarse_labels=test_coarse,
                          test_fine_labels=test_fine, n_init=3).test_accuracy


def constructed_grid(*, null: bool, seeds=(0, 1)):
    """Y1's grid tables from constructed features, judged as the chapter judges real ones.

    Two grid points. At ``lr=0.1`` the "trained" features collapse on the coarse classes (coarse
    means 30 apart, within-coarse spread about 1) and keep the fine classes as two sub-clusters
    inside each coarse class; at ``lr=0.001`` they stay as spread as at initialisation (no
    collapse). With ``null=True`` the fine labels are drawn at random inside each coarse class
    (train and test): the null of a recovery claim.
    """
    from ncutils import metrics

    rows, runs = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        coarse_means, fine_dirs = rng.normal(size=(5, 16)) * 30, rng.normal(size=(10, 16))
        fine_dirs /= np.linalg.norm(fine_dirs, axis=1, keepdims=True)
        fine = np.repeat(np.arange(10), 40)
        test_fine = np.repeat(np.arange(10), 20)
        coarse, test_coarse = fine % 5, test_fine % 5

        def trained(labels):
            return coarse_means[labels % 5] + fine_dirs[labels] + 0.1 * rng.normal(size=(len(labels), 16))

        init, test_init = rng.normal(size=(len(fine), 16)), rng.normal(size=(len(test_fine), 16))
        x, test_x = trained(fine), trained(test_fine)
        judged, test_judged = fine, test_fine
        if null:
            judged = random_fine_labels(coarse, fine, seed=seed + 1)
            test_judged = random_fine_labels(test_coarse, test_fine, seed=seed + 2)
        for lr, features, test_features in ((0.1, x, test_x), (0.001, init + x * 0.01, test_init + test_x * 0.01)):
            keys = {"dataset": "constructed", "lr": lr, "weight_decay": 5e-4, "pairing": "mod5", "seed": seed}
            accuracy = _clustered(features, coarse, judged, test_features, test_coarse, test_judged)
            for source, labels, value, nc1 in (
                    ("trained", "fine", accuracy, metrics.nc1(features, coarse)),
                    ("init", "fine", 0.5, metrics.nc1(init, coarse)),
                    ("input", "fine", 0.5, metrics.nc1(init, coarse)),
                    ("trained", "random", 0.5, metrics.nc1(features, coarse))):
                rows.append({**keys, "source": source, "labels": labels, "test_accuracy": value,
                             "train_accuracy": value, "test_accuracy_predicted": value, "coarse_nc1": nc1,
                             "chance_test_upper": 0.58})
            runs.append({**keys, "train_acc": 1.0, "test_acc": 1.0})
    for lr in (0.1, 0.001):
        runs.append({"dataset": "constructed", "lr": lr, "weight_decay": 5e-4, "pairing": "fine", "seed": 0,
                     "train_acc": 1.0, "test_acc": 0.98})
    criterion = yang.CHAPTER.finding("Y1").criterion
    table = yang.y1_table(pd.DataFrame(rows), pd.DataFrame(runs), min_train_acc=criterion["min_train_acc"],
                          max_nc1_ratio=criterion["max_nc1_ratio"], min_fraction=criterion["min_fraction"])
    points = yang.y1_grid_points(table, min_seeds=criterion["min_seeds"])
    outcome = yang.y1_grid_outcome(points, max_nc1_ratio=criterion["max_nc1_ratio"],
                                   min_fraction=criterion["min_fraction"])
    return table, points, outcome


def test_y1_grid_rule_passes_on_a_constructed_positive():
    table, points, outcome = constructed_grid(null=False)
    collapsed = points.set_index("lr")
    assert collapsed.loc[0.1, "collapsed"] and not collapsed.loc[0.001, "collapsed"]
    assert collapsed.loc[0.1, "passed"] and (table.loc[table["lr"] == 0.1, "recovered_test"] > 0.95).all()
    assert outcome.state == verdicts.REPRODUCED and (outcome.passed_runs, outcome.eligible_runs) == (1, 2)
    assert outcome.reason.startswith("1 of 2 grid points (2 eligible; 2 seeds each) pass both halves")


def test_y1_grid_rule_fails_on_its_null():
    table, points, outcome = constructed_grid(null=True)
    # the same collapsed features; the fine labels drawn at random inside each coarse class
    assert points.set_index("lr").loc[0.1, "collapsed"]
    assert (table["recovered_test"] <= 0.6).all() and not points["passed"].any()
    assert outcome.state == verdicts.NOT_REPRODUCED
    assert "0 of 2 grid points" in outcome.reason and "the criterion asks 10x and 0.9 together" in outcome.reason


def test_y1_grid_point_needs_every_seed_and_enough_seeds():
    recovery, runs = y1_tables(0.95, 0.52, seeds=(0, 1))
    table = yang.y1_table(recovery, runs, **THRESHOLDS)
    table.loc[table["seed"] == 1, ["nc1_ratio", "collapsed"]] = [0.3, False]  # one seed did not collapse
    points = yang.y1_grid_points(table, min_seeds=2)
    assert points["eligible"].all() and not points["passed"].any()
    assert points["nc1_ratio_max"].iloc[0] == pytest.approx(0.3)
    outcome = yang.y1_grid_outcome(points, max_nc1_ratio=0.1, min_fraction=0.9)
    assert outcome.state == verdicts.NOT_REPRODUCED
    assert "coarse NC1 fell 10x in every seed at no grid point" in outcome.reason
    one_seed = yang.y1_grid_points(yang.y1_table(*y1_tables(0.95, 0.52, seeds=(0,)), **THRESHOLDS), min_seeds=2)
    outcome = yang.y1_grid_outcome(one_seed, max_nc1_ratio=0.1, min_fraction=0.9)
    assert outcome.state == verdicts.INCONCLUSIVE and outcome.reason.startswith("no grid point of 1")
    with pytest.raises(ValueError, match="min_seeds"):
        yang.y1_grid_points(table, min_seeds=0)


@pytest.mark.parametrize("accuracy, kept, unseparated", [(0.97, 0.8, 0.51), (0.52, 0.8, 0.51), (0.97, 0.1, 0.51)])
def test_y2_is_inconclusive_on_our_model_whatever_it_gives(accuracy, kept, unseparated):
    table = yang.y2_table(*y2_tables(accuracy, kept, unseparated_accuracy=unseparated), **Y2_THRESHOLDS)
    criterion = yang.CHAPTER.finding("Y2").criterion
    outcome = yang.y2_stand_in_outcome(table, max_nc1_ratio=criterion["max_nc1_ratio"],
                                       min_keep=criterion["min_keep"], min_accuracy=criterion["min_accuracy"])
    assert outcome.state == verdicts.INCONCLUSIVE
    assert outcome.reason.startswith("the paper's synthetic model is not available; on our model")
    assert f"recovered {accuracy:.2f}-{accuracy:.2f} (asks 0.9)" in outcome.reason


def test_the_declared_criteria():
    for finding_id in ("Y1", "Y2"):
        earlier, amended = yang.CHAPTER.finding(finding_id).criteria
        assert earlier.registered == "2026-12-01" and not earlier.reason
        assert amended.registered == yang.AMENDMENT_DATE == "2026-12-06" and amended.reason and amended.seen
        assert "{" not in amended.render() and "{" not in earlier.render()
    y1 = yang.CHAPTER.finding("Y1").criterion
    assert (y1["max_nc1_ratio"], y1["min_fraction"], y1["min_train_acc"], y1["min_seeds"]) == (0.1, 0.9, 0.99, 2)
    assert "0.1, 0.01, 0.001" in y1.reason and "5e-3, 5e-4, 5e-5" in y1.reason
    defaults = yang.CHAPTER.defaults
    assert defaults["grid_lrs"] == [0.1, 0.01, 0.001] and defaults["grid_weight_decays"] == [0.005, 0.0005, 0.00005]


def test_sweep_grid_reuses_the_chapters_own_runs_and_is_checked():
    parameters = {**yang.CHAPTER.defaults, "grid_datasets": ["digits"], "grid_lrs": [0.05, 0.1],
                  "grid_weight_decays": [0.0005], "datasets": ["digits"]}
    own = {(tuple(sorted(e.labels.items())), e.config.seed): e.config for e in yang.y1_grid(parameters).entries}
    grid = yang.y1_sweep_grid(parameters)
    assert len(grid.entries) == 6 and not any(e.labels["pairing"] == yang.SHUFFLED for e in grid.entries)
    shared = [e for e in grid.entries if (tuple(sorted(e.labels.items())), e.config.seed) in own]
    assert len(shared) == 3 and all(own[(tuple(sorted(e.labels.items())), e.config.seed)] == e.config
                                    for e in shared)
    assert yang.validate_parameters({**parameters, "grid_lrs": []}) == [
        "Y1 grid: parameters['grid_lrs'] must be a non-empty list, got []"]
    assert "grid_lrs" in " ".join(yang.validate_parameters({**parameters, "grid_lrs": 0.1}))
