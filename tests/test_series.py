"""Tests of ncutils.series: last-layer statistics stored online, metrics computed at load."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ncutils import metrics
from ncutils import train as train_module
from ncutils.probe import capture
from ncutils.stats import ClassStats
from ncutils.series import LAST_LAYER_COLUMNS, last_layer_metrics, series_table
from ncutils.train import config_key, load_data, train

from conftest import edit_code, tiny_config, train_and_measure


_edited = edit_code


def test_last_layer_metrics_equal_the_metrics_of_captured_features():
    config = tiny_config()
    train_data, test_data = load_data(config)
    torch.manual_seed(0)
    model = train_module._build(config, train_data.input_shape, train_data.num_classes, torch.device("cpu"))
    point = model.probe_points[-1].name
    weight = model.classifier.weight.detach()
    features = capture(model, train_data.inputs, [point])[point]
    test_features = capture(model, test_data.inputs, [point])[point]
    train_predictions = model(train_data.inputs).argmax(dim=1)
    test_predictions = model(test_data.inputs).argmax(dim=1)
    row = last_layer_metrics(model, train_data, test_data)
    expected = metrics.summary(features, train_data.labels, classifier_weight=weight, predictions=train_predictions)
    test_expected = metrics.summary(test_features, test_data.labels, classifier_weight=weight)
    train_stats = ClassStats.from_features(features, train_data.labels)
    naive = {
        "ll_nc1": expected["nc1"], "ll_etf_error": expected["etf_error"], "ll_self_duality": expected["self_duality"],
        "ll_ncc_mismatch": expected["ncc_mismatch"], "ll_ncc_train_acc": expected["ncc_accuracy"],
        "ll_test_nc1": test_expected["nc1"], "ll_test_equinorm": test_expected["equinorm"],
        "ll_test_self_duality": test_expected["self_duality"],
        "ll_test_ncc_mismatch": metrics.ncc_mismatch_from_stats(train_stats, test_features, test_predictions),
        "ll_ncc_test_acc": metrics.ncc_accuracy_from_stats(train_stats, test_features, test_data.labels),
    }
    for name, value in naive.items():
        assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert list(row) == list(LAST_LAYER_COLUMNS)


def test_a_metrics_edit_recomputes_the_series_without_retraining(tmp_path, monkeypatch):
    config = tiny_config(track_last_layer=True)
    first = train_and_measure(config, runs_dir=tmp_path, progress=False)
    assert set(LAST_LAYER_COLUMNS) <= set(first.history.columns)
    assert not set(LAST_LAYER_COLUMNS) & set(first.run.history.columns)  # train() only trains
    key, untracked = config_key(config), config_key(tiny_config())
    with monkeypatch.context() as patch:
        _edited(patch, "metrics", b"\nedited = True\n")
        assert config_key(config) == key  # the trained run keeps its key

        def refuse(*args, **kwargs):
            raise AssertionError("a stored run was trained again")

        patch.setattr(train_module, "run_epoch", refuse)
        again = train_and_measure(config, runs_dir=tmp_path, progress=False)
    assert again.from_cache
    pd.testing.assert_frame_equal(again.history, first.history, check_exact=True)
    # the statistics code keys the stored series: an edit there retrains these runs
    _edited(monkeypatch, "stats", b"\nedited = True\n")
    assert config_key(config) != key
    assert config_key(tiny_config()) == untracked  # untracked runs are not affected


def test_series_table_checks_its_lengths():
    with pytest.raises(ValueError, match="2 epochs but 1"):
        series_table([1, 2], [{}])
