"""The amended Parker criteria (2026-12-01) and their nulls: each must fail on data built without learning."""

import numpy as np
import pandas as pd
import pytest

from ncutils.papers import parker

DEPTHS = np.linspace(0, 1, 7)  # input + 6 hidden layers


def sweep(values, column):
    return pd.DataFrame({"depth": DEPTHS, column: values})


def test_drop_share_reads_by_linear_interpolation():
    uniform = np.exp(-np.arange(6.0))
    assert parker.drop_share_at(uniform, 1 / 3) == pytest.approx(1 / 3)
    assert parker.drop_share_at(uniform, 0.0) == 0.0 and parker.drop_share_at(uniform, 1.0) == 1.0
    # 1/3 of the way over 6 hidden layers is 5/3 steps: between layer 2 (share s2) and 3 (s3)
    values = np.array([1.0, 0.1, 0.05, 0.02, 0.01, 0.005])
    shares = (0 - np.log(values)) / (0 - np.log(values[-1]))
    expected = shares[1] + (5 / 3 - 1) * (shares[2] - shares[1])
    assert parker.drop_share_at(values, 1 / 3) == pytest.approx(expected)
    assert np.isnan(parker.drop_share_at(np.array([1.0, 2.0, 3.0]), 0.5))  # no drop
    with pytest.raises(ValueError, match="position"):
        parker.drop_share_at(values, 1.5)


def test_shallow_drop_null_uniform_decline_fails_and_early_drop_passes():
    uniform = sweep(np.r_[50.0, np.exp(-np.arange(6.0))], "nc1")
    result = parker.shallow_drop(uniform)
    assert result["share"] == pytest.approx(1 / 3) and not result["passed"]
    # the original P2 criterion (half the drop by the middle layer) passes the same null
    original = parker.variance_half_drop(uniform.rename(columns={"nc1": "within_total_ratio"}))
    assert original["passed"]
    early = sweep([50.0, 1.0, 0.02, 0.015, 0.012, 0.011, 0.01], "nc1")
    assert parker.shallow_drop(early)["passed"]
    # an untrained-like sweep (no fall, noise) fails
    flat = sweep([1.0, 0.95, 1.02, 0.99, 1.01, 0.98, 1.0], "nc1")
    assert not parker.shallow_drop(flat)["passed"]


def test_coherence_fall_null_random_means_fail_and_untrained_must_not_pass():
    rng = np.random.default_rng(0)
    # equal-norm random class means: coherence is noise around its random level at every layer
    noise = sweep(0.1 + 0.01 * rng.standard_normal(7), "equiangularity")
    falling = sweep([0.3, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03], "equiangularity")
    assert not parker.coherence_fall(noise, noise)["passed"]
    assert parker.coherence_fall(falling, noise)["passed"]
    # a fall that the untrained network shows too is no evidence of learning
    both = parker.coherence_fall(falling, falling)
    assert both["passed_trained"] and not both["untrained_fails"] and not both["passed"]
    # the original P3 criterion on centred means: noise sits at the simplex angle and passes the gap test
    angles = sweep(np.full(7, parker.simplex_angle(10)) + 0.01 * rng.standard_normal(7), "mean_pairwise_angle")
    assert parker.angle_growth(angles, num_classes=10)["passed_gap"]


def test_hardest_needs_depth_null_shuffled_labels_and_ties():
    table = pd.DataFrame({"dataset": ["a", "b", "c", "d"], "difficulty": [0.01, 0.03, 0.1, 0.3],
                          "depth_needed": [1 / 6, 1 / 3, 2 / 3, 1.0]})
    assert parker.hardest_needs_depth(table, min_datasets=4)["passed"]
    # shuffled labels: every dataset is hard and needs the whole network: no ordering
    shuffled = table.assign(difficulty=[0.9, 0.88, 0.91, 0.89], depth_needed=1.0)
    assert not parker.hardest_needs_depth(shuffled, min_datasets=4)["passed"]
    # the cpu case of the original verdict: 1/3, 1/3, 1/2 passes Spearman but not the hardest's depth
    cpu = pd.DataFrame({"dataset": ["digits", "mnist5k", "mnist1d"], "difficulty": [0.02, 0.04, 0.3],
                        "depth_needed": [1 / 3, 1 / 3, 1 / 2]})
    result = parker.hardest_needs_depth(cpu, min_datasets=3)
    assert result["spearman"] >= 0.7 and result["hardest_depth"] == 0.5 and not result["passed"]
    assert not parker.hardest_needs_depth(cpu, min_datasets=4)["evaluable"]
    with pytest.raises(ValueError, match="at least 3"):
        parker.hardest_needs_depth(cpu, min_datasets=2)


def test_per_run_against_initial_pairs_each_run_with_its_epoch_0_sweep():
    rows = []
    for seed, scale in ((0, 1.0), (1, 2.0)):
        for epoch, values in ((0, [0.3, 0.3, 0.31, 0.3, 0.3, 0.3, 0.3]), (5, [0.3, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02])):
            for depth, value in zip(DEPTHS, values):
                rows.append({"architecture": "mlp", "dataset": "d", "seed": seed, "epoch": epoch,
                             "depth": depth, "equiangularity": value * scale})
    sweeps = pd.DataFrame(rows)
    table = parker.per_run_against_initial(sweeps, parker.coherence_fall,
                                           group_cols=["architecture", "dataset", "seed"])
    assert list(table["seed"]) == [0, 1] and table["passed"].all() and (table["epoch"] == 5).all()
    with pytest.raises(ValueError, match="epoch 0"):
        parker.per_run_against_initial(sweeps[sweeps["epoch"] == 5], parker.coherence_fall,
                                       group_cols=["architecture", "dataset", "seed"])


# ----------------------------------------------------------------------------- amendments of 2026-12-06
def test_guarded_shallow_drop_nulls_fail_and_an_early_learned_fall_passes():
    early = sweep([50.0, 1.0, 0.02, 0.015, 0.012, 0.011, 0.01], "nc1")
    flat = sweep([1.0, 0.95, 1.02, 0.99, 1.01, 0.98, 1.0], "nc1")
    # the untrained network's shape that passed the criterion of 2026-12-01: NC1 dips, then rises
    # again, a total fall of 1.19x, so a share above 1
    wiggle = sweep([1.0, 1.19, 0.6, 0.9, 0.95, 1.05, 1.0], "nc1")
    assert parker.shallow_drop(wiggle)["passed"] and parker.shallow_drop(wiggle)["share"] > 1
    result = parker.guarded_shallow_drop(wiggle, flat)
    assert not result["passed_trained"] and not result["passed"]
    # a uniform decline (the shape null) fails with a large fall too
    uniform = sweep(np.r_[50.0, np.exp(-np.arange(6.0))], "nc1")
    assert not parker.guarded_shallow_drop(uniform, flat)["passed"]
    # an early fall of 100x that training made passes; the same fall at initialisation refutes it
    passed = parker.guarded_shallow_drop(early, flat)
    assert passed["passed"] and passed["drop_factor"] == pytest.approx(100.0)
    both = parker.guarded_shallow_drop(early, early)
    assert both["passed_trained"] and not both["untrained_fails"] and not both["passed"]
    # an early fall below the 10x guard fails
    small = sweep([50.0, 1.0, 0.2, 0.19, 0.18, 0.17, 0.16], "nc1")
    assert parker.shallow_drop(small)["passed"] and not parker.guarded_shallow_drop(small, flat)["passed"]


def test_linear_share_cannot_tell_a_uniform_decline_at_large_falls():
    assert parker.uniform_linear_share(100.0, 1 / 3) == pytest.approx(0.7925, abs=1e-3)
    uniform = 100.0 ** -np.linspace(0, 1, 301)  # a uniform log decline by 100x, finely sampled
    assert parker.linear_share_at(uniform, 1 / 3) == pytest.approx(parker.uniform_linear_share(100.0, 1 / 3), abs=1e-4)
    assert parker.drop_share_at(uniform, 1 / 3) == pytest.approx(1 / 3, abs=1e-4)  # the log share tells it
    assert np.isnan(parker.linear_share_at(np.array([1.0, 2.0]), 0.5))


def test_p3_every_run_rule_null_and_positive():
    # 7 of 10 passing runs: reproduced by the 2/3 rule, not by the rule for "consistently"
    readings = parker.p3_readings([True] * 7 + [False] * 3)
    assert readings["every"].state == "not reproduced" and readings["two_thirds"].state == "reproduced"
    assert parker.p3_readings([True] * 4)["every"].state == "reproduced"
    assert parker.p3_readings([True])["every"].state == "inconclusive"


def test_reasons_quote_the_numbers_and_thresholds():
    table = pd.DataFrame({"architecture": ["mlp", "mlp"], "dataset": ["digits", "mnist1d"], "activation": ["relu"] * 2,
                          "seed": [0, 1], "spearman": [-0.54, -1.0], "ratio": [0.53, 0.3],
                          "untrained_fails": [True, True], "passed": [False, True]})
    text = parker.p3_reason(table, parker.p3_readings(list(table["passed"])), max_spearman=-0.7, max_ratio=0.5)
    assert "1 of 2 eligible runs pass" in text and "mlp on digits, seed 0 (Spearman -0.54, ratio 0.53)" in text
    assert "every run: not reproduced" in text and "2/3 rule: inconclusive" in text


def test_per_run_against_initial_without_eligible_runs_keeps_the_criterion_columns():
    # no run reached the accuracy threshold (a short or tiny run): the chapters still select
    # the criterion's columns from the empty table
    sweeps = pd.DataFrame({"architecture": "mlp", "dataset": "d", "seed": 0, "epoch": [0, 0, 5, 5],
                           "depth": [0.0, 1.0, 0.0, 1.0], "nc1": 1.0, "equiangularity": 0.3})
    runs = pd.DataFrame({"architecture": ["mlp"], "dataset": ["d"], "seed": [0], "eligible": [False]})
    keys = ["architecture", "dataset", "seed"]
    for criterion, columns in ((parker.depth_collapse_beyond_initial, ["spearman", "reduction", "untrained_spearman",
                                                                      "untrained_reduction", "passed"]),
                               (parker.coherence_fall, ["spearman", "ratio", "untrained_spearman", "passed"])):
        table = parker.per_run_against_initial(sweeps, criterion, group_cols=keys, runs=runs)
        assert table.empty and list(table[[*keys, *columns]].columns) == [*keys, *columns]


def test_reasons_read_flags_held_as_objects():
    """The chapter's table is the architecture runs concatenated with the activation runs; when
    no activation run is eligible the empty table turns the flags into objects (``~False`` is -1)."""
    from ncutils.papers.parker import decisions

    runs = pd.DataFrame({"architecture": ["mlp", "vgg"], "dataset": ["digits"] * 2, "activation": ["relu", "relu"],
                         "seed": [0, 0], "spearman": [-1.0, -0.2], "reduction": [50.0, 3.0], "ratio": [0.1, 0.9],
                         "passed_trained": [True, False], "untrained_fails": [True, False], "passed": [True, False]})
    table = runs.astype({"passed": object, "untrained_fails": object})  # as concatenation leaves them
    assert table["passed"].dtype == object
    text = decisions.p1_reason(table, max_spearman=-0.7, min_reduction=10)
    assert text.startswith("1 of 2 eligible runs pass") and "failing: vgg on digits, seed 0 (falls 3x" in text
    from ncutils import verdicts

    outcome = verdicts.combine_runs([True, False])
    text = decisions.p3_reason(table, {"every": outcome, "two_thirds": outcome}, max_spearman=-0.7, max_ratio=0.5)
    assert "failing: vgg on digits, seed 0 (Spearman -0.20, ratio 0.90, untrained passes too)" in text
