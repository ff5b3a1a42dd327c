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
    """The null of DESIGN 8.2 through the real pipeline: digits pixels, pairs (c, c + 5)."""
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
