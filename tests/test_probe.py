"""Tests of ncutils.sweep.layer_sweep against per-layer computations done naively here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ncutils import metrics
from ncutils.models import ProbePoint, build_model
from ncutils.sweep import layer_sweep
from ncutils.stats import ClassStats, ProjectedScatter

CLASSES = (2, 5, 9)  # non-contiguous on purpose


class TinyMLP(nn.Module):
    """8 -> 16 -> 12 -> 9 logits; label values index the logits (so labels up to 8 fit)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh())
        self.head = nn.Linear(12, 10)
        self.probe_points = [
            ProbePoint("input", None, "body.0"),
            ProbePoint("relu", "body.1", "body.2"),
            ProbePoint("tanh", "body.3", "head"),
        ]
        self.classifier_name = "head"

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(inputs))


class TinyCNN(nn.Module):
    """2 x 6 x 6 images -> conv -> ReLU (in place) -> conv -> ReLU -> flatten -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 3, 3)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(3 * 4 * 4, 10)
        # conv1's output is later modified in place by relu1: the capture must not see that
        self.probe_points = [
            ProbePoint("input", None, "conv1"),
            ProbePoint("conv1", "conv1", None),
            ProbePoint("relu1", "relu1", "conv2"),
            ProbePoint("relu2", "relu2", "fc"),
        ]
        self.classifier_name = "fc"

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.relu2(self.conv2(self.relu1(self.conv1(inputs))))
        return self.fc(hidden.flatten(1))


def make_data(input_shape: tuple[int, ...], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent inputs with imbalanced, non-contiguous labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor(CLASSES)[torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), n, True, generator=generator)]
    labels[: len(CLASSES)] = torch.tensor(CLASSES)  # every class present
    centres = torch.randn(10, *input_shape, generator=generator)
    inputs = centres[labels] + 0.7 * torch.randn(n, *input_shape, generator=generator)
    return inputs, labels


def make_model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return TinyMLP() if kind == "mlp" else TinyCNN()


def input_shape_of(kind: str) -> tuple[int, ...]:
    return (8,) if kind == "mlp" else (2, 6, 6)


def naive_features(model: nn.Module, inputs: torch.Tensor, conv_policy: str) -> tuple[list[torch.Tensor], list[tuple], torch.Tensor]:
    """Every probe point's features from one plain forward pass (cloned inside the hooks)."""
    modules = dict(model.named_modules())
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for index, point in enumerate(model.probe_points):
        if point.module is not None:
            handles.append(
                modules[point.module].register_forward_hook(
                    lambda module, args, output, index=index: captured.__setitem__(index, output.clone())
                )
            )
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
    for handle in handles:
        handle.remove()
    raw = [inputs if point.module is None else captured[index] for index, point in enumerate(model.probe_points)]
    shapes = [tuple(tensor.shape[1:]) for tensor in raw]
    if conv_policy == "avgpool":
        features = [t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t for t in raw]
    else:
        features = [t.reshape(t.shape[0], -1) for t in raw]
    return features, shapes, logits.argmax(dim=1)


def naive_class_means(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([features[labels == c].double().mean(dim=0) for c in CLASSES])


def naive_ncc(features: torch.Tensor, class_means: torch.Tensor) -> torch.Tensor:
    distances = torch.cdist(features.double(), class_means)
    return torch.tensor(CLASSES)[distances.argmin(dim=1)]


def naive_row(model, features, shape, labels, predictions, test_features, test_labels, point,
              test_predictions):
    """One sweep row computed from the raw features with the raw-feature metric functions."""
    modules = dict(model.named_modules())
    weight = None if point.consumer is None else modules[point.consumer].weight.detach()
    reads_flat = weight is not None and weight.ndim == 2 and weight.shape[1] == features.shape[1]
    classifier_weight = weight if point.consumer == model.classifier_name and reads_flat else None
    row = metrics.summary(features, labels, classifier_weight=classifier_weight, predictions=predictions)
    row["ncc_train_acc"] = row.pop("ncc_accuracy")
    class_means = naive_class_means(features, labels)
    row["ncc_test_acc"] = float((naive_ncc(test_features, class_means) == test_labels).double().mean())
    row["ncc_test_mismatch"] = float((naive_ncc(test_features, class_means) != test_predictions).double().mean())
    if weight is None or (weight.ndim == 2 and not reads_flat):
        row["alignment"] = math.nan
    elif weight.ndim == 2:
        row["alignment"] = metrics.subspace_alignment(weight, class_means)
    else:  # conv consumer: class means as maps when flattened, per channel when pooled
        maps = class_means.reshape(len(CLASSES), *shape) if features.shape[1] != shape[0] else class_means
        row["alignment"] = metrics.subspace_alignment(weight, maps)
    return row


def assert_close_or_both_nan(got: float, expected: float, what: tuple) -> None:
    if math.isnan(expected):
        assert math.isnan(got), what
    else:
        assert got == pytest.approx(expected, rel=1e-7, abs=1e-10), what


@pytest.mark.parametrize("conv_policy", ["flatten", "avgpool"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_sweep_equals_each_layer_computed_separately(kind: str, conv_policy: str) -> None:
    model = make_model(kind)
    inputs, labels = make_data(input_shape_of(kind), 90, seed=1)
    test_inputs, test_labels = make_data(input_shape_of(kind), 40, seed=2)

    table = layer_sweep(
        model, inputs, labels, test_inputs=test_inputs, test_labels=test_labels,
        batch_size=16, conv_policy=conv_policy,  # uneven last batch: many merges
    )

    features, shapes, predictions = naive_features(model, inputs, conv_policy)
    test_features, _, test_predictions = naive_features(model, test_inputs, conv_policy)
    n_points = len(model.probe_points)
    assert list(table["layer"]) == list(range(n_points))
    assert list(table["name"]) == [point.name for point in model.probe_points]
    assert list(table["depth"]) == pytest.approx([i / (n_points - 1) for i in range(n_points)])
    assert list(table["dim"]) == [f.shape[1] for f in features]
    assert set(table["conv_policy"]) == {conv_policy}
    stats_keys = metrics.summary_from_stats(
        ClassStats.from_features(features[0], labels),
        ProjectedScatter(ClassStats.from_features(features[0], labels)).update(features[0], labels),
    )
    assert set(stats_keys) <= set(table.columns)
    for index, point in enumerate(model.probe_points):
        expected = naive_row(
            model, features[index], shapes[index], labels, predictions,
            test_features[index], test_labels, point, test_predictions,
        )
        for key, value in expected.items():
            assert key in table.columns, key
            assert_close_or_both_nan(float(table.iloc[index][key]), value, (point.name, key))
        if "self_duality" not in expected:
            assert math.isnan(table.iloc[index]["self_duality"])
    # the layers a consumer reads have an alignment; the one nothing reads has none
    has_alignment = [not math.isnan(a) for a in table["alignment"]]
    if kind == "cnn":
        assert has_alignment == [True, False, True, conv_policy == "flatten"]
    else:
        assert all(has_alignment)


def test_avgpool_reduces_maps_to_channels() -> None:
    model = make_model("cnn")
    inputs, labels = make_data(input_shape_of("cnn"), 30, seed=3)
    flat = layer_sweep(model, inputs, labels, conv_policy="flatten")
    pooled = layer_sweep(model, inputs, labels, conv_policy="avgpool")
    assert list(flat["dim"]) == [2 * 6 * 6, 4 * 6 * 6, 4 * 6 * 6, 3 * 4 * 4]
    assert list(pooled["dim"]) == [2, 4, 4, 3]
    assert set(pooled["conv_policy"]) == {"avgpool"}
    # pooling changes what is measured (else the policy would be a no-op)
    assert not np.allclose(flat["trace_ratio"], pooled["trace_ratio"])


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_both_memory_paths_give_identical_results(kind: str) -> None:
    model = make_model(kind)
    inputs, labels = make_data(input_shape_of(kind), 70, seed=4)
    test_inputs, test_labels = make_data(input_shape_of(kind), 20, seed=5)
    common = dict(test_inputs=test_inputs, test_labels=test_labels, batch_size=32)
    kept = layer_sweep(model, inputs, labels, memory_budget=2**30, **common)
    recomputed = layer_sweep(model, inputs, labels, memory_budget=0, **common)
    pd.testing.assert_frame_equal(kept, recomputed, check_exact=True)


def count_forward_calls(model: nn.Module) -> list[int]:
    counter = [0]
    model.register_forward_hook(lambda module, args, output: counter.__setitem__(0, counter[0] + 1))
    return counter


@pytest.mark.parametrize(
    ("memory_budget", "train_passes"), [(0, 2), (2**30, 1)], ids=["recompute", "keep"]
)
def test_forward_pass_count(memory_budget: int, train_passes: int) -> None:
    model = make_model("cnn")
    inputs, labels = make_data(input_shape_of("cnn"), 50, seed=6)
    test_inputs, test_labels = make_data(input_shape_of("cnn"), 10, seed=7)

    counter = count_forward_calls(model)
    layer_sweep(model, inputs, labels, batch_size=64, memory_budget=memory_budget)
    assert counter[0] == train_passes  # one batch per pass: calls == passes

    counter[0] = 0
    layer_sweep(model, inputs, labels, batch_size=20, memory_budget=memory_budget)
    assert counter[0] == train_passes * 3  # 3 batches of at most 20 samples per pass

    counter[0] = 0
    layer_sweep(model, inputs, labels, test_inputs=test_inputs, test_labels=test_labels,
                batch_size=64, memory_budget=memory_budget)
    assert counter[0] == train_passes + 1  # plus one pass over the test data


def test_budget_just_below_the_features_recomputes() -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 40, seed=8)
    feature_bytes = 40 * (8 + 16 + 12) * 4  # float32 features of all probe points
    model = make_model("mlp")
    counter = count_forward_calls(model)
    layer_sweep(model, inputs, labels, batch_size=64, memory_budget=feature_bytes)
    assert counter[0] == 1
    counter[0] = 0
    layer_sweep(model, inputs, labels, batch_size=64, memory_budget=feature_bytes - 1)
    assert counter[0] == 2


def test_training_mode_restored_and_eval_mode_used() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(8,), num_classes=10, depth=3, width=16, batchnorm=True)
    model.train()
    first_block = next(module for module in model.modules() if isinstance(module, nn.BatchNorm1d))
    first_block.eval()  # a mixed state must come back as it was
    flags = [module.training for module in model.modules()]
    seen_modes = []
    model.register_forward_hook(lambda module, args, output: seen_modes.append(module.training))
    inputs, labels = make_data((8,), 30, seed=9)
    running_mean = first_block.running_mean.clone()

    table = layer_sweep(model, inputs, labels, memory_budget=0)

    assert seen_modes == [False, False]
    assert [module.training for module in model.modules()] == flags
    assert torch.equal(first_block.running_mean, running_mean)  # eval: no BN statistics updated
    assert len(table) == len(model.probe_points)
    assert table["depth"].iloc[0] == 0.0 and table["depth"].iloc[-1] == 1.0


def test_numpy_inputs_are_accepted() -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 30, seed=10)
    from_numpy = layer_sweep(model, inputs.double().numpy(), labels.numpy())
    from_torch = layer_sweep(model, inputs, labels)
    pd.testing.assert_frame_equal(from_numpy, from_torch)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(conv_policy="maxpool"), "conv_policy"),
        (dict(labels=torch.zeros(29, dtype=torch.long)), "mismatched lengths"),
        (dict(test_inputs=torch.randn(5, 8), test_labels=torch.arange(4)), "mismatched lengths"),
        (dict(test_inputs=torch.randn(5, 8)), "test_labels"),
        (dict(test_inputs=torch.randn(5, 7), test_labels=torch.arange(5)), "sample shape"),
        (dict(labels=torch.randn(30)), "integers"),
        (dict(labels=torch.full((30,), 2)), "at least 2 classes"),
        (dict(batch_size=0), "batch_size"),
        (dict(memory_budget=-1), "memory_budget"),
    ],
)
def test_bad_input_raises_before_any_forward_pass(arguments: dict, message: str) -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 30, seed=11)
    call = dict(inputs=inputs, labels=labels) | arguments
    counter = count_forward_calls(model)
    with pytest.raises(ValueError, match=message):
        layer_sweep(model, call.pop("inputs"), call.pop("labels"), **call)
    assert counter[0] == 0


def test_model_without_probe_points_or_with_a_missing_module() -> None:
    inputs, labels = make_data((8,), 20, seed=12)
    with pytest.raises(ValueError, match="probe_points"):
        layer_sweep(nn.Linear(8, 10), inputs, labels)
    model = make_model("mlp")
    model.probe_points = [ProbePoint("input", None, "body.0"), ProbePoint("gone", "body.7", None)]
    with pytest.raises(KeyError, match="body.7"):
        layer_sweep(model, inputs, labels)


def test_resnet18_sweeps_every_probe_point_at_32px() -> None:
    """D reaches 65,536 at stage 1: only an O(D C) sweep can run this (D x D would be 34 GB)."""
    torch.manual_seed(0)
    model = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10)
    inputs = torch.randn(6, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    table = layer_sweep(model, inputs, labels, test_inputs=inputs[:3], test_labels=labels[:3],
                        memory_budget=0)
    assert list(table["name"]) == [point.name for point in model.probe_points]
    assert table["dim"].max() == 64 * 32 * 32
    assert table["dim"].iloc[0] == 3 * 32 * 32 and table["dim"].iloc[-1] == 512
    assert np.isfinite(table["nc1"]).all() and np.isfinite(table["trace_ratio"]).all()
    has_consumer = [point.consumer is not None for point in model.probe_points]
    assert list(np.isfinite(table["alignment"])) == has_consumer


# ----------------------------------------------------------------------------- the two levels
from ncutils.sweep import SweepStatistics, sweep_statistics, sweep_table  # noqa: E402


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_table_from_stored_statistics_equals_the_sweep(kind: str, tmp_path) -> None:
    """The statistics level round-trips through torch.save/load(weights_only) to the same table."""
    model = make_model(kind)
    inputs, labels = make_data(input_shape_of(kind), 90, seed=1)
    test_inputs, test_labels = make_data(input_shape_of(kind), 40, seed=2)
    table = layer_sweep(model, inputs, labels, test_inputs=test_inputs, test_labels=test_labels,
                        batch_size=16, alignment_rank=2)
    statistics = sweep_statistics(model, inputs, labels, test_inputs=test_inputs, test_labels=test_labels,
                                  batch_size=16)
    torch.save(statistics.state(), tmp_path / "statistics.pt")
    loaded = SweepStatistics.from_state(torch.load(tmp_path / "statistics.pt", weights_only=True))
    pd.testing.assert_frame_equal(sweep_table(loaded, model, alignment_rank=2), table)
    assert sorted(loaded.class_stats()) == sorted(point.name for point in model.probe_points)


def test_statistics_of_chosen_points_keep_their_depth_and_need_no_model_without_alignment() -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 90, seed=1)
    full = layer_sweep(model, inputs, labels)
    last = model.probe_points[-1].name
    statistics = sweep_statistics(model, inputs, labels, points=[last], metrics=["nc1", "ncc"])
    table = sweep_table(statistics)  # no alignment asked for: the model is not needed
    assert list(table["name"]) == [last]
    expected = full[full["name"] == last].reset_index(drop=True)
    for column in ("layer", "depth", "nc1", "self_duality", "ncc_mismatch", "etf_error"):
        assert table[column].iloc[0] == pytest.approx(expected[column].iloc[0], rel=1e-12), column
    assert math.isnan(table["alignment"].iloc[0])
    with pytest.raises(ValueError, match="needs the model"):
        sweep_table(sweep_statistics(model, inputs, labels, points=[last]))
    with pytest.raises(KeyError, match="unknown probe points"):
        sweep_statistics(model, inputs, labels, points=["nowhere"])
    with pytest.raises(ValueError, match="format"):
        SweepStatistics.from_state({**statistics.state(), "format": 99})


# ----------------------------------------------------------------------------- public capture
from ncutils.probe import capture, iter_features  # noqa: E402
from ncutils.sweep import SWEEP_METRICS  # noqa: E402


def test_capture_returns_every_probe_point_and_equals_manual_forward():
    torch.manual_seed(0)
    model = TinyCNN()
    inputs = torch.randn(23, 2, 6, 6)
    features = capture(model, inputs, batch_size=7)
    assert list(features) == ["input", "conv1", "relu1", "relu2"]
    with torch.no_grad():
        conv1 = model.conv1(inputs)
        expected = {"input": inputs.flatten(1), "conv1": conv1.flatten(1),
                    "relu1": torch.relu(conv1).flatten(1),
                    "relu2": torch.relu(model.conv2(torch.relu(conv1))).flatten(1)}
    for name, value in expected.items():
        assert torch.allclose(features[name], value, atol=1e-6), name
    # conv1's output is rewritten in place by relu1 within the same forward pass
    assert (features["conv1"] < 0).any()
    pooled = capture(model, inputs, ["relu2"], conv_policy="avgpool")
    assert list(pooled) == ["relu2"] and pooled["relu2"].shape == (23, 3)


def test_iter_features_streams_batches_in_order_and_restores_training_mode():
    torch.manual_seed(1)
    model = TinyMLP()
    model.train()
    inputs = torch.randn(25, 8)
    batches = list(iter_features(model, inputs, ["tanh", "input"], batch_size=10))
    assert [b.rows for b in batches] == [slice(0, 10), slice(10, 20), slice(20, 25)]
    assert list(batches[0].features) == ["input", "tanh"]  # depth order, not the order asked
    assert batches[0].shapes["tanh"] == (12,)
    with torch.no_grad():
        logits = model.eval()(inputs)
    model.train()
    predictions = torch.cat([b.predictions for b in batches])
    assert torch.equal(predictions, logits.argmax(1))
    assert all(module.training for module in model.modules())


def test_capture_rejects_bad_input_before_work():
    model = TinyMLP()
    with pytest.raises(KeyError, match="unknown probe points"):
        capture(model, torch.randn(4, 8), ["nope"])
    with pytest.raises(ValueError, match="conv_policy"):
        capture(model, torch.randn(4, 8), conv_policy="max")
    with pytest.raises(ValueError, match="batch_size"):
        capture(model, torch.randn(4, 8), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        capture(model, torch.randn(0, 8))
    with pytest.raises(ValueError, match="probe_points"):
        capture(nn.Linear(3, 2), torch.randn(4, 3))


def test_layer_sweep_on_other_labels_equals_metrics_on_captured_features():
    """Fine labels of a coarse-label network: the sweep measures collapse w.r.t. the labels given."""
    torch.manual_seed(2)
    model = TinyMLP()
    inputs = torch.randn(90, 8)
    fine = torch.arange(90) % 6
    table = layer_sweep(model, inputs, fine, metrics=("nc1",))
    features = capture(model, inputs)
    for row in table.itertuples():
        assert math.isclose(row.nc1, metrics.nc1(features[row.name].double(), fine), rel_tol=1e-9)
        assert math.isnan(row.ncc_train_acc) and math.isnan(row.alignment)


def test_layer_sweep_metric_selection_and_alignment_rank():
    torch.manual_seed(3)
    model = TinyMLP()
    inputs, labels = torch.randn(60, 8), torch.tensor(CLASSES).repeat(20)
    full = layer_sweep(model, inputs, labels)
    cheap = layer_sweep(model, inputs, labels, metrics=())
    assert set(cheap.columns) == set(full.columns)
    assert cheap["nc1"].isna().all() and cheap["ncc_mismatch"].isna().all()
    assert np.allclose(cheap["cdnv"], full["cdnv"], rtol=1e-12)
    ranked = layer_sweep(model, inputs, labels, alignment_rank=1, metrics=("alignment",))
    features = capture(model, inputs)
    weight = model.body[2].weight.detach()
    stats = ClassStats().update(features["relu"], labels)
    expected = metrics.subspace_alignment(weight, stats.means, k=1)
    assert math.isclose(ranked.loc[ranked["name"] == "relu", "alignment"].item(), expected, rel_tol=1e-9)
    with pytest.raises(ValueError, match="unknown sweep metrics"):
        layer_sweep(model, inputs, labels, metrics=("nc9",))
    with pytest.raises(ValueError, match="alignment_rank"):
        layer_sweep(model, inputs, labels, alignment_rank=0)
    assert set(SWEEP_METRICS) == {"nc1", "ncc", "alignment"}


# ----------------------------------------------------------------------------- classes fixed up front
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_fixed_classes_give_the_same_table(kind: str) -> None:
    model = make_model(kind)
    inputs, labels = make_data(input_shape_of(kind), 90, seed=4)
    test_inputs, test_labels = make_data(input_shape_of(kind), 30, seed=5)
    test_labels[0] = 7  # a label the training set lacks counts as an NCC error
    options = dict(test_inputs=test_inputs, test_labels=test_labels, batch_size=16)
    default = layer_sweep(model, inputs, labels, **options)
    numeric = default.select_dtypes("number").columns
    # num_classes=10 includes seven classes absent from the data: they are left out of
    # every metric (as without the argument), not NaN and not an error
    for fixed in (dict(classes=list(CLASSES)[::-1]), dict(num_classes=10), dict(classes=[0, 2, 5, 9, 11])):
        table = layer_sweep(model, inputs, labels, **options, **fixed)
        np.testing.assert_allclose(table[numeric].to_numpy(float), default[numeric].to_numpy(float),
                                   rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=str(fixed))


def test_labels_outside_given_classes_raise_before_any_forward_pass() -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 40, seed=6)
    labels[25] = 7
    counter = count_forward_calls(model)
    with pytest.raises(ValueError, match=r"labels \[7\] are not among the classes \[2, 5, 9\] "
                                         r"\(first at sample 25, in batch 2: samples 20:30\)"):
        layer_sweep(model, inputs, labels, classes=CLASSES, batch_size=10)
    with pytest.raises(ValueError, match="not among the classes"):
        layer_sweep(model, inputs, labels, num_classes=7)
    with pytest.raises(ValueError, match="not both"):
        layer_sweep(model, inputs, labels, num_classes=10, classes=CLASSES)
    assert counter[0] == 0


def test_default_memory_budget_keeps_features_on_the_cpu() -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 40, seed=7)
    counter = count_forward_calls(model)
    layer_sweep(model, inputs, labels, batch_size=10)
    assert counter[0] == 4  # one pass: pass 2 replays the kept features


def test_nan_features_raise_naming_the_batch() -> None:
    model = make_model("mlp")
    inputs, labels = make_data(input_shape_of("mlp"), 40, seed=8)
    inputs[33, 1] = float("nan")
    with pytest.raises(ValueError, match=r"probe point .input.: .*NaN or infinite .*samples 30:40"):
        layer_sweep(model, inputs, labels, batch_size=10, num_classes=10)
