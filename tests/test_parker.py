"""Tests of ncutils.papers.parker.criteria: the Parker P1-P4 criteria as first pre-registered, on hand-made sweeps."""

import math

import numpy as np
import pandas as pd
import pytest

from ncutils.papers import parker as criteria


def make_sweep(column: str, values, depths=None, **extra) -> pd.DataFrame:
    """A one-run, one-epoch sweep: the first value is the input (depth 0)."""
    values = list(values)
    if depths is None:
        depths = np.linspace(0.0, 1.0, len(values))
    frame = pd.DataFrame({"depth": depths, column: values,
                          "name": [f"layer{i}" for i in range(len(values))]})
    for key, value in extra.items():
        frame[key] = value
    return frame


def test_simplex_angle_values():
    assert criteria.simplex_angle(2) == pytest.approx(180.0)
    assert criteria.simplex_angle(3) == pytest.approx(120.0)
    assert criteria.simplex_angle(10) == pytest.approx(math.degrees(math.acos(-1 / 9)))
    with pytest.raises(ValueError, match="num_classes"):
        criteria.simplex_angle(1)


def test_spearman_matches_scipy_and_handles_degenerate_input():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    assert criteria.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert math.isnan(criteria.spearman([1, 2, 3], [5, 5, 5]))
    assert math.isnan(criteria.spearman([1, 2], [3, 4]))
    with pytest.raises(ValueError, match="equal length"):
        criteria.spearman([1, 2, 3], [1, 2])


def test_depth_collapse_passes_and_fails_on_each_part():
    falling = make_sweep("nc1", [50.0, 20.0, 8.0, 3.0, 1.0, 0.5])
    result = criteria.depth_collapse(falling)
    assert result["spearman"] == pytest.approx(-1.0)
    assert result["reduction"] == pytest.approx(40.0)
    assert result["passed"]

    # monotone but only a 4x reduction: the ratio part fails alone
    shallow = make_sweep("nc1", [50.0, 2.0, 1.5, 1.0, 0.8, 0.5])
    result = criteria.depth_collapse(shallow)
    assert result["passed_spearman"] and not result["passed_reduction"] and not result["passed"]

    # the input row does not enter: a huge input NC1 cannot rescue a flat hidden profile
    flat = make_sweep("nc1", [1e6, 1.0, 1.1, 0.9, 1.05, 1.0])
    assert not criteria.depth_collapse(flat)["passed"]


def test_depth_collapse_threshold_is_an_argument():
    sweep = make_sweep("nc1", [9.0, 8.0, 4.0, 6.0, 1.0])  # hidden ranks: rho = -0.8
    assert criteria.depth_collapse(sweep, min_reduction=1.0)["spearman"] == pytest.approx(-0.8)
    assert criteria.depth_collapse(sweep, max_spearman=-0.7, min_reduction=1.0)["passed"]
    assert not criteria.depth_collapse(sweep, max_spearman=-0.9, min_reduction=1.0)["passed"]


def test_depth_collapse_rejects_bad_input():
    with pytest.raises(ValueError, match="lacks column"):
        criteria.depth_collapse(make_sweep("nc2", [1, 2, 3, 4]))
    with pytest.raises(ValueError, match="positive"):
        criteria.depth_collapse(make_sweep("nc1", [1, 2, 0, 4]))
    with pytest.raises(ValueError, match="hidden layers"):
        criteria.depth_collapse(make_sweep("nc1", [3, 2, 1]))
    doubled = pd.concat([make_sweep("nc1", [4, 3, 2, 1])] * 2)
    with pytest.raises(ValueError, match="repeated depths"):
        criteria.depth_collapse(doubled)


def test_variance_half_drop_early_and_late():
    # log drop total = log(1) - log(1e-4); after layer 1 already 3/4 of it
    early = make_sweep("within_total_ratio", [1.0, 1e-3, 5e-4, 3e-4, 2e-4, 1.5e-4, 1e-4])
    result = criteria.variance_half_drop(early)
    assert result["middle_layer"] == 3
    assert result["half_drop_layer"] == 1
    assert result["fraction_at_middle"] == pytest.approx(math.log(3e-4) / math.log(1e-4))  # hidden layer 3 holds 3e-4
    assert result["passed"]

    late = make_sweep("within_total_ratio", [1.0, 0.9, 0.8, 0.7, 0.1, 1e-3, 1e-4])
    result = criteria.variance_half_drop(late)
    assert result["half_drop_layer"] == 5
    assert result["half_drop_depth"] == pytest.approx(5 / 6)
    assert not result["passed"]


def test_variance_half_drop_middle_for_odd_count_and_no_drop():
    five = make_sweep("within_total_ratio", [1.0, 0.9, 0.8, 0.1, 0.05, 0.01])
    result = criteria.variance_half_drop(five)
    assert result["middle_layer"] == 3
    # half the log drop (sqrt(0.01) = 0.1) is reached exactly at layer 3
    assert result["half_drop_layer"] == 3 and result["passed"]

    rising = make_sweep("within_total_ratio", [0.1, 0.2, 0.3, 0.4, 0.5])
    result = criteria.variance_half_drop(rising)
    assert result["total_log_drop"] < 0 and not result["passed"]
    assert math.isnan(result["fraction_at_middle"])


def test_angle_growth_uses_simplex_of_num_classes():
    target = criteria.simplex_angle(10)
    sweep = make_sweep("mean_pairwise_angle", [70.0, 75.0, 80.0, 88.0, target - 3.0])
    result = criteria.angle_growth(sweep, num_classes=10)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["gap"] == pytest.approx(3.0)
    assert result["passed"]
    # same profile judged against C = 3 (120 degrees): far from the simplex
    result = criteria.angle_growth(sweep, num_classes=3)
    assert result["passed_spearman"] and not result["passed_gap"]
    # the gap is absolute: overshooting counts too
    over = make_sweep("mean_pairwise_angle", [70.0, 75.0, 80.0, 88.0, target + 6.0])
    assert not criteria.angle_growth(over, num_classes=10)["passed"]


def test_angle_growth_fails_on_decreasing_angles():
    target = criteria.simplex_angle(4)
    sweep = make_sweep("mean_pairwise_angle", [100.0, target + 4, target + 3, target + 1, target])
    result = criteria.angle_growth(sweep, num_classes=4)
    assert result["spearman"] == pytest.approx(-1.0)
    assert result["passed_gap"] and not result["passed"]


def test_depth_needed_counts_the_input_and_uses_the_fraction():
    sweep = make_sweep("ncc_train_acc", [0.80, 0.90, 0.985, 0.995, 1.0])
    result = criteria.depth_needed(sweep)
    assert result["depth_needed"] == pytest.approx(0.75)
    assert result["layer"] == "layer3"
    assert criteria.depth_needed(sweep, fraction=0.98)["depth_needed"] == pytest.approx(0.5)
    trivial = make_sweep("ncc_train_acc", [0.995, 0.9, 0.95, 1.0])
    assert criteria.depth_needed(trivial)["depth_needed"] == 0.0
    with pytest.raises(ValueError, match="fraction"):
        criteria.depth_needed(sweep, fraction=1.5)


def test_difficulty_ordering_per_architecture():
    table = pd.DataFrame({
        "architecture": ["mlp"] * 3 + ["vgg"] * 3 + ["cnn"] * 2,
        "dataset": ["a", "b", "c"] * 2 + ["a", "b"],
        "difficulty": [0.01, 0.05, 0.20, 0.01, 0.05, 0.20, 0.01, 0.2],
        "depth_needed": [0.2, 0.4, 1.0, 1.0, 0.4, 0.2, 0.2, 1.0],
    })
    result = criteria.difficulty_ordering(table).set_index("architecture")
    assert result.loc["mlp", "spearman"] == pytest.approx(1.0) and result.loc["mlp", "passed"]
    assert result.loc["vgg", "spearman"] == pytest.approx(-1.0) and not result.loc["vgg", "passed"]
    assert not result.loc["cnn", "evaluable"] and not result.loc["cnn", "passed"]
    assert result.loc["mlp", "datasets"] == "a, b, c"
    with pytest.raises(ValueError, match="min_datasets"):
        criteria.difficulty_ordering(table, min_datasets=2)


def runs_frames():
    """Two runs over two epochs; run ('mlp', 'b') stops at 95% train accuracy."""
    sweeps = []
    for dataset, final_nc1 in (("a", [9.0, 5.0, 2.0, 0.5, 0.1]), ("b", [9.0, 8.0, 7.0, 6.0, 5.0])):
        for epoch, nc1 in ((1, [9.0] * 5), (3, final_nc1)):
            sweep = make_sweep("nc1", nc1)
            sweep["epoch"], sweep["architecture"], sweep["dataset"] = epoch, "mlp", dataset
            sweeps.append(sweep)
    history = pd.DataFrame({
        "architecture": ["mlp"] * 4, "dataset": ["a", "a", "b", "b"], "epoch": [1, 3, 1, 3],
        "train_acc": [0.5, 1.0, 0.5, 0.95], "test_acc": [0.5, 0.97, 0.5, 0.9],
    })
    return pd.concat(sweeps, ignore_index=True), history


def test_eligible_runs_and_last_epoch():
    sweeps, history = runs_frames()
    runs = criteria.eligible_runs(history).set_index("dataset")
    assert bool(runs.loc["a", "eligible"]) and not bool(runs.loc["b", "eligible"])
    assert runs.loc["a", "difficulty"] == pytest.approx(0.03)
    assert (criteria.last_epoch(sweeps)["epoch"] == 3).all()
    strict = criteria.eligible_runs(history, min_train_acc=1.0).set_index("dataset")
    assert bool(strict.loc["a", "eligible"])  # exactly 100% meets a threshold of 1.0
    with pytest.raises(ValueError, match="min_train_acc"):
        criteria.eligible_runs(history, min_train_acc=0.0)


def test_per_run_and_overall_verdict():
    sweeps, history = runs_frames()
    everything = criteria.per_run(sweeps, criteria.depth_collapse)
    assert list(everything["dataset"]) == ["a", "b"]
    assert list(everything["passed"]) == [True, False]
    assert (everything["epoch"] == 3).all()
    assert not criteria.overall_verdict(everything)

    runs = criteria.eligible_runs(history)
    eligible = criteria.per_run(sweeps, criteria.depth_collapse, runs=runs)
    assert list(eligible["dataset"]) == ["a"]
    assert eligible["train_acc"].iloc[0] == pytest.approx(1.0)
    assert criteria.overall_verdict(eligible)
    assert not criteria.overall_verdict(eligible.iloc[0:0])


def test_per_run_reads_num_classes_column():
    sweep = make_sweep("mean_pairwise_angle", [60.0, 80.0, 100.0, 118.0], num_classes=3)
    sweep["epoch"], sweep["architecture"], sweep["dataset"] = 2, "mlp", "a"
    table = criteria.per_run(sweep, criteria.angle_growth, num_classes="column")
    assert table["simplex_angle"].iloc[0] == pytest.approx(120.0)
    assert bool(table["passed"].iloc[0])


def test_log_drop_fractions_per_run_and_epoch():
    frames = []
    for epoch, values in ((1, [1.0, 0.5, 0.25, 0.125]), (2, [0.1, 0.2, 0.3, 0.4])):
        sweep = make_sweep("within_total_ratio", values)
        sweep["epoch"], sweep["architecture"], sweep["dataset"] = epoch, "mlp", "a"
        frames.append(sweep)
    table = criteria.log_drop_fractions(pd.concat(frames)).set_index(["epoch", "depth"])
    fractions = table.loc[1, "drop_fraction"].tolist()
    assert fractions == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])  # equal log steps
    assert table.loc[2, "drop_fraction"].isna().all()  # rising: no drop to share out
    # the curve agrees with the P2 criterion's reading at the middle hidden layer
    result = criteria.variance_half_drop(frames[0])
    assert result["fraction_at_middle"] == pytest.approx(fractions[result["middle_layer"]])
