"""Tests of ncutils.papers.rangamani: settings, and each criterion fed its null (DESIGN 8.2)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from ncutils import metrics
from ncutils.data import load_dataset
from ncutils.models import build_model
from ncutils.papers import rangamani
from ncutils.sweep import layer_sweep

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- settings
def test_official_schedule_and_checkpoints():
    assert rangamani.decay_milestones(350, 3) == (116, 233)
    assert rangamani.decay_milestones(350, 2) == (175,)
    assert rangamani.checkpoint_epochs(350) == rangamani.CHECKPOINT_EPOCHS
    assert rangamani.checkpoint_epochs(30) == (0, 1, 2, 3, 5, 10, 20, 30)


@pytest.mark.parametrize("profile,epochs", [("gpu", 100), ("paper", 350)])
def test_gpu_and_paper_profiles_hold_the_paper_settings(profile, epochs):
    parameters = yaml.safe_load((ROOT / "notebooks" / "profiles" / f"{profile}.yaml").read_text())
    parameters = {"device": "cpu", **parameters["rangamani_intermediate"], "device": "cpu"}
    grid = rangamani.chapter_grid(parameters)
    configs = {(e.labels["architecture"], e.labels["dataset"]): e.config for e in grid.entries}
    for dataset in ("mnist", "fashionmnist", "cifar10", "svhn"):
        mlp, conv = configs["mlp_large", dataset], configs["convnet_deep", dataset]
        assert dict(mlp.arch_kwargs) == {"depth": 10, "width": 1024} and mlp.arch == "rangamani_mlp"
        assert dict(conv.arch_kwargs) == {"depth": 20, "width": 128} and conv.arch == "rangamani_convnet"
        assert (mlp.lr, mlp.weight_decay, conv.lr, conv.weight_decay) == (0.01, 5e-4, 0.01, 2e-3)
        for config in (mlp, conv):
            assert config.loss == "mse" and config.momentum == 0.9 and config.batch_size == 128
            assert config.epochs == epochs and config.warmup_epochs == 1 and config.lr_decay == 0.1
            assert config.milestones == rangamani.decay_milestones(epochs, 3)
            assert config.sweep_epochs == rangamani.checkpoint_epochs(epochs)
    assert configs["resnet18", "mnist"].lr == rangamani.RESNET_LR["mnist"]
    assert configs["resnet18", "fashionmnist"].lr == rangamani.RESNET_LR["fashionmnist"]
    assert configs["resnet18", "mnist"].milestones == rangamani.decay_milestones(epochs, 2)


# --------------------------------------------------------------------------- the random baseline
@pytest.mark.parametrize("n,expected", [(16, 0.72), (32, 0.49), (64, 0.34)])
def test_random_subspace_alignment_matches_design_numbers(n, expected):
    assert rangamani.random_subspace_alignment(n, 10) == pytest.approx(expected, abs=0.01)
    assert rangamani.random_subspace_alignment(10, 10) == 1.0


def test_random_matrix_alignment_has_the_random_subspace_expectation():
    # a Gaussian weight of any shape against fixed class means: the (n, k) expectation
    generator = torch.Generator().manual_seed(3)
    means = torch.randn(10, 48, generator=generator, dtype=torch.float64)
    values = [metrics.subspace_alignment(torch.randn(20, 48, generator=generator, dtype=torch.float64), means)
              for _ in range(300)]
    assert sum(values) / len(values) == pytest.approx(rangamani.random_subspace_alignment(48, 10), abs=0.01)


def test_exclusions_list_trivial_and_high_baseline_layers():
    table = rangamani.alignment_exclusions({"a": 8, "b": 16, "c": 64}, 10).set_index("name")
    assert table.loc["a", "excluded"] == "trivial: n <= k"
    assert table.loc["b", "excluded"].startswith("random baseline")
    assert table.loc["c", "excluded"] == ""


# --------------------------------------------------------------------------- nulls
@pytest.fixture(scope="module")
def untrained_sweep():
    """The untrained network (DESIGN 8.2's null for R1 and R2): a paper-style MLP, digits."""
    data = load_dataset("digits", "train", limit=400)
    torch.manual_seed(0)
    model = build_model("rangamani_mlp", input_shape=data.input_shape, num_classes=10, depth=8, width=64)
    sweep = layer_sweep(model, data.inputs, data.labels)
    return sweep, rangamani.consumer_input_dims(model)


def _collapsed(sweep: pd.DataFrame) -> pd.DataFrame:
    """A made-up trained sweep that meets both criteria (to show that they can pass)."""
    layers = len(sweep)
    within = [0.6 * 0.5 ** index for index in range(layers)]
    return sweep.assign(relative_within_trace=within, alignment=[0.95] * layers,
                        cdnv=[0.5 * 0.5 ** index for index in range(layers)])


def test_r1_fails_on_the_untrained_network_and_passes_a_collapse(untrained_sweep):
    sweep, _ = untrained_sweep
    null = rangamani.r1_run(sweep, sweep)
    assert null["passed"] is False and null["factor"] == pytest.approx(1.0)
    assert not null["spearman"] <= -0.7  # untrained: no fall with depth
    assert rangamani.r1_run(sweep, _collapsed(sweep))["passed"] is True


def test_r2_fails_on_the_untrained_network_and_on_random_matrices(untrained_sweep):
    sweep, dims = untrained_sweep
    assert rangamani.r2_run(sweep, sweep, dims, k=10)["passed"] in (None, False)
    # the untrained alignment where a trained run's top layers would be
    trained = _collapsed(sweep)
    untrained_top = trained.assign(alignment=sweep["alignment"].to_numpy())
    assert rangamani.r2_run(sweep, untrained_top, dims, k=10)["passed"] is False
    # random matrices of each layer's shape (their expectation, and actual Gaussian draws)
    exclusions = rangamani.alignment_exclusions(dims, 10)
    expected = trained.assign(alignment=trained["name"].map(dict(zip(exclusions["name"], exclusions["random"]))))
    assert rangamani.r2_run(sweep, expected, dims, k=10)["passed"] is False
    passed = rangamani.r2_run(sweep, trained, dims, k=10)
    assert passed["passed"] is True
    assert "block0.fc" not in passed["counted"] or dims["block0.fc"] > 10


def test_r2_not_evaluable_without_counted_top_layers(untrained_sweep):
    sweep, dims = untrained_sweep
    small = {name: 8 for name in dims}  # every layer trivial at k = 10
    result = rangamani.r2_run(sweep, _collapsed(sweep), small, k=10)
    assert result["passed"] is None and result["counted"] == [] and result["excluded"]


def test_nc_layer_and_verdict(untrained_sweep):
    sweep, _ = untrained_sweep
    assert rangamani.nc_layer(_collapsed(sweep)) == sweep.sort_values("layer")["name"].iloc[2]
    assert rangamani.nc_layer(sweep.assign(cdnv=1.0)) is None
    assert rangamani.verdict([True, True, False]).state == "reproduced"
    assert rangamani.verdict([True, False, False]).state == "not reproduced"
    assert rangamani.verdict([True]).state == "inconclusive"
    assert rangamani.verdict([None, None]).state == "inconclusive"
    assert rangamani.verdict([True, None, True]).state == "reproduced"
