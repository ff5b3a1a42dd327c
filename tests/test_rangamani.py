"""Tests of ncutils.papers.rangamani: settings, and each criterion fed its null (book/method.md)."""

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
    """The untrained network (the null for R1 and R2): a paper-style MLP, digits."""
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


# --------------------------------------------------------------------------- the chapter's loop
def _measured(sweep: pd.DataFrame, dims, last: pd.DataFrame, *, k: int = 10, weighted_shift: float = 0.0):
    ours = {0: dict(zip(sweep["name"], sweep["relative_within_trace"])),
            5: dict(zip(last["name"], last["relative_within_trace"] + weighted_shift))}
    return rangamani.RunMeasurements(initial=sweep.assign(epoch=0), last=last.assign(epoch=5), last_epoch=5,
                                     k=k, dims=dims, weighted=ours)


def test_judge_run_passes_a_collapse_and_its_nulls_fail(untrained_sweep):
    sweep, dims = untrained_sweep
    row, layers = rangamani.judge_run(_measured(sweep, dims, _collapsed(sweep), weighted_shift=1e-3))
    assert row["R1_passed"] is True and row["R1w_passed"] is True and row["R2_passed"] is True
    assert row["weighting_gap"] == pytest.approx(1e-3)
    assert row["null_R1_passed"] is False and row["null_R2_untrained"] in (None, False)
    assert row["null_R2_random"] is False
    assert row["nc_layer"] == sweep.sort_values("layer")["name"].iloc[2]
    assert list(layers["name"]) and set(row["R2_counted"].split(", ")) <= set(layers["name"])
    # the untrained network as if trained: nothing passes
    row, _ = rangamani.judge_run(_measured(sweep, dims, sweep))
    assert row["R1_passed"] is False and row["R2_passed"] in (None, False) and row["nc_layer"] == "none"


def test_alignment_tables_hold_rank_k_and_the_plot_rank(untrained_sweep):
    sweep, dims = untrained_sweep
    alignments, baselines = rangamani.alignment_tables(_measured(sweep, dims, _collapsed(sweep)))
    assert set(alignments["rank"]) == {10} and sorted(set(alignments["epoch"])) == [0, 5]
    assert len(baselines) == len(dims) and baselines["layer"].notna().all()
    measured = rangamani.RunMeasurements(**{**_measured(sweep, dims, sweep, k=5).__dict__,
                                            "plot_alignment": {0: sweep, 5: sweep}})
    alignments, baselines = rangamani.alignment_tables(measured)
    assert sorted(set(alignments["rank"])) == [5, 10] and sorted(set(baselines["rank"])) == [5, 10]


def _per_run(untrained_sweep, eligible):
    sweep, dims = untrained_sweep
    rows = []
    for seed, flag in enumerate(eligible):
        row, _ = rangamani.judge_run(_measured(sweep, dims, _collapsed(sweep)))
        rows.append({"architecture": "mlp", "dataset": "digits", "seed": seed, "epochs": 5, "eligible": flag, **row})
    return pd.DataFrame(rows)


def test_verdict_texts_and_records(untrained_sweep):
    per_run = _per_run(untrained_sweep, [True, True, False])
    facts = rangamani.verdict_facts(per_run)
    assert facts["R_nc_layers"].count("mlp/digits/seed") == 3  # every run
    assert facts["R2_nulls"].count("untrained") == 2  # eligible runs only
    R1, R2 = rangamani.CHAPTER.finding("R1"), rangamani.CHAPTER.finding("R2")
    r1 = rangamani.r1_finding(per_run, R1, excluded="mlp/digits/seed 2 (0.500)")
    record, amendment = r1["record"], r1["amendment"]
    assert record["outcome"].state == "reproduced" and record["value"].startswith("2/2 runs pass")
    assert "asks <= -0.7" in record["outcome"].reason
    assert "2/3 of >= 2" in record["criterion"] and "DESIGN" not in record["criterion"]
    assert record["tested"].startswith("mlp/digits/seed 0, mlp/digits/seed 1 (eligible")
    assert len(record["details"]["runs"]) == 3 and record["details"]["excluded"].startswith("mlp/digits/seed 2")
    assert amendment["date"] == "2026-12-06" and "10x" in amendment["original"]
    assert amendment["original_result"].startswith("reproduced") and "Seen when written" in amendment["reason"]
    r2 = rangamani.r2_finding(per_run, pd.DataFrame(), R2)
    assert r2["record"]["outcome"].state == "reproduced" and "alignment 0.950" in r2["record"]["value"]
    none = rangamani.r1_finding(_per_run(untrained_sweep, [False]), R1, excluded="all")
    assert none["record"]["value"] == "no eligible run" and none["record"]["outcome"].state == "inconclusive"


# --------------------------------------------------------------------------- the amendments of 2026-12-06
def test_amended_r1_fails_on_the_untrained_network_and_passes_a_trained_depth_trend(untrained_sweep):
    sweep, _ = untrained_sweep
    null = rangamani.r1_depth_run(sweep, sweep)  # the untrained network as if trained
    assert null["passed"] is False and null["untrained_spearman"] > -0.7
    positive = rangamani.r1_depth_run(sweep, _collapsed(sweep))
    assert positive["passed"] is True and positive["factor"] > 1  # the fall is reported, not judged
    # a trend the network already had at initialisation is not one training made
    assert rangamani.r1_depth_run(_collapsed(sweep), _collapsed(sweep))["passed"] is False
    # a small fall no longer decides: the depth trend alone (the first criterion asked 10x)
    shallow = sweep.assign(relative_within_trace=sweep["relative_within_trace"].iloc[-1] * 2.0
                           * 0.9 ** sweep["layer"].to_numpy())
    assert rangamani.r1_run(sweep, shallow)["passed"] is False and rangamani.r1_depth_run(sweep, shallow)["passed"]


def _stationarity(dims, ratio, invariant=()):
    return pd.DataFrame({"name": list(dims), "ratio": [ratio] * len(dims),
                         "scale_invariant": [name in invariant for name in dims]})


def test_amended_r2_not_converged_is_inconclusive_and_nulls_fail(untrained_sweep):
    sweep, dims = untrained_sweep
    trained = _collapsed(sweep)
    # a constructed non-stationary run: the alignment would pass, the run is not evaluable
    moving = rangamani.r2_run(sweep, trained, dims, k=10, stationarity=_stationarity(dims, 5.0))
    assert moving["passed"] is None and moving["status"] == "not converged" and moving["counted"]
    assert rangamani.verdict([moving["passed"], moving["passed"]]).state == "inconclusive"
    stationary = rangamani.r2_run(sweep, trained, dims, k=10, stationarity=_stationarity(dims, 0.05))
    assert stationary["passed"] is True and stationary["status"] == "pass"
    # nulls at a stationary point: the untrained alignment and a random matrix's fail
    untrained_top = trained.assign(alignment=sweep["alignment"].to_numpy())
    assert rangamani.r2_run(sweep, untrained_top, dims, k=10,
                            stationarity=_stationarity(dims, 0.05))["status"] == "fail"
    exclusions = rangamani.alignment_exclusions(dims, 10)
    random_top = trained.assign(alignment=trained["name"].map(dict(zip(exclusions["name"], exclusions["random"]))))
    assert rangamani.r2_run(sweep, random_top, dims, k=10,
                            stationarity=_stationarity(dims, 0.05))["status"] == "fail"
    # scale-invariant layers are left out with their reason
    everything = rangamani.r2_run(sweep, trained, dims, k=10, stationarity=_stationarity(dims, 5.0, invariant=dims))
    assert everything["counted"] == [] and everything["status"] == "no counted layer"
    assert all("scale-invariant" in reason for reason in everything["excluded"] if "n <= k" not in reason
               and "random baseline" not in reason)


def test_stationarity_of_a_linear_model_and_of_a_layer_under_batchnorm():
    from ncutils.train import TrainConfig, stationarity

    data = load_dataset("digits", "train", limit=200)
    config = TrainConfig(dataset="digits", loss="mse", weight_decay=1e-2, batch_size=200, device="cpu")
    x = data.inputs.reshape(len(data.labels), -1).double()
    y = torch.nn.functional.one_hot(data.labels, 10).double()
    # the ridge solution of the full-batch MSE + (lambda/2)||W||^2 is a stationary point: ratio ~ 0
    # (F.mse_loss averages over N * C entries: gradient (2 / (N C)) (W x - y) x^T)
    n, c = x.shape[0], 10
    weight = torch.linalg.solve(2 * x.T @ x / (n * c) + config.weight_decay * torch.eye(x.shape[1], dtype=x.dtype),
                                2 * x.T @ y / (n * c)).T
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(weight.float())
    table = stationarity(net, config, data, ["1"])
    assert table["ratio"].iloc[0] < 1e-2 and not table["scale_invariant"].iloc[0]
    with torch.no_grad():  # away from it: the random initialisation
        net[1].weight.copy_(torch.randn(10, 64) * 0.1)
    assert stationarity(net, config, data, ["1"])["ratio"].iloc[0] > 1
    # a Linear followed by BatchNorm: scale-invariant, gradient orthogonal to W, ratio >= 1
    bn = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32, bias=False), torch.nn.BatchNorm1d(32),
                             torch.nn.ReLU(), torch.nn.Linear(32, 10))
    table = stationarity(bn, config, data, ["1", "4"]).set_index("name")
    assert bool(table.loc["1", "scale_invariant"]) and abs(table.loc["1", "cosine"]) < 1e-4
    assert table.loc["1", "ratio"] >= 1.0 and not bool(table.loc["4", "scale_invariant"])


def test_ladder_lengths_and_declared_criteria():
    parameters = rangamani.CHAPTER.resolve({})
    assert rangamani.training_lengths(parameters) == [30, None]
    configs = rangamani.chapter_runs(parameters)
    assert sorted({config.epochs for config in configs}) == [30, 150] and len(configs) == 8
    assert {config.milestones for config in configs} == {(10, 20), (50, 100)}
    assert rangamani.CHAPTER.problems({"ladder_epochs": [0]})
    for finding in rangamani.CHAPTER.findings:
        first, amended = finding.criteria[0], finding.criterion
        assert amended.registered == "2026-12-06" and amended.reason and amended.seen
        assert "DESIGN" not in amended.render() and "issue" not in amended.reason
        assert first.registered < amended.registered
    assert rangamani.CHAPTER.finding("R1").criterion["max_spearman"] == -0.7
    assert rangamani.CHAPTER.finding("R2").criterion["max_stationarity"] == 0.1


def test_runs_table_training_facts_and_run_selection():
    from types import SimpleNamespace

    def run(accuracies):
        history = pd.DataFrame({"epoch": range(1, len(accuracies) + 1), "train_acc": accuracies,
                                "test_acc": [0.5] * len(accuracies)})
        return SimpleNamespace(history=history, train_seconds=1.0)

    result = SimpleNamespace(results={("mlp", "digits", 0): run([0.5, 1.0, 1.0]),
                                      ("mlp", "digits", 1): run([0.5, 0.9]),
                                      ("convnet", "digits", 0): run([1.0])})
    runs = rangamani.runs_table(result, min_train_acc=0.99)
    assert list(runs["eligible"]) == [True, False, True] and list(runs["first_100%"].fillna(-1)) == [2, -1, 1]
    facts = rangamani.training_facts(runs)
    assert facts == {"R_excluded": "mlp/digits/seed 1 (0.900)", "R_runs": "2 of 3",
                     "R_train_acc": "1.0000, 0.9000, 1.0000"}
    assert list(rangamani.of_run(runs, ("mlp", "digits", 1))["train_acc"]) == [0.9]
    key, _ = rangamani.first_run(result, "convnet")
    assert key == ("convnet", "digits", 0)
    assert rangamani.scaled_epochs(15, [1, 2, 3, 5, 10, 15]) == [1, 3, 15]  # 4 ties 3 and 5: the first


def test_stored_measurements_read_the_store_and_match_a_fresh_sweep(tmp_path):
    # 12 Gaussian classes: C != 10, so the rank-10 alignment of the paper's plot is computed apart,
    # from the stored statistics; it must be what a fresh rank-10 sweep of the weights gives
    import dataclasses

    from ncutils.grid import Grid, GridEntry, run_grid
    from ncutils.train import load_data

    net = {"arch": "rangamani_mlp", "arch_kwargs": {"depth": 3, "width": 16}, "datasets": ["gaussian"],
           "lr": 0.05, "weight_decay": 5e-4, "lr_decay": 0.1, "decay_steps": 3, "batch_size": 32}
    grid = rangamani.chapter_grid({"architectures": {"mlp": net}, "epochs": 2, "batch_size": 32,
                                   "warmup_epochs": 1, "device": "cpu", "limit_train": 200, "limit_test": 50})
    grid = Grid(tuple(GridEntry(entry.labels, dataclasses.replace(entry.config, dataset_kwargs={"num_classes": 12,
                                                                                                "dim": 16}))
                      for entry in grid.entries))
    result = run_grid(grid, seeds=[0], runs_dir=str(tmp_path), progress=False, workers=1)
    run = result.results[("mlp", "gaussian", 0)]
    measured = rangamani.stored_measurements(run)
    assert measured.k == 12 and measured.last_epoch == 2 and sorted(measured.plot_alignment) == [0, 2]
    train_data, _ = load_data(run.config)
    for epoch in (0, 2):
        fresh = layer_sweep(run.model_at(epoch), train_data.inputs, train_data.labels, alignment_rank=10,
                            metrics=["alignment"])
        pd.testing.assert_series_equal(measured.plot_alignment[epoch]["alignment"], fresh["alignment"],
                                       rtol=1e-9)
        stats = run.statistics_at(epoch).class_stats()
        assert set(measured.weighted[epoch]) == set(stats)
    criteria = rangamani.judge_runs(result, rangamani.runs_table(result))
    assert len(criteria.per_run) == 1 and sorted(set(criteria.alignments["rank"])) == [10, 12]
