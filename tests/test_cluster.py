"""ncutils.cluster on data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncutils.cluster import (
    chance_level,
    fine_class_stats,
    fine_structure,
    fine_structure_statistic,
    fine_structure_statistic_from_stats,
    matched_accuracy,
    purity,
    random_fine_labels,
)


def nested_gaussians(fine_separation: float, *, per_class: int = 60, coarse_classes: int = 3,
                     fine_per_coarse: int = 2, dim: int = 8, seed: int = 0):
    """Fine Gaussian blobs nested in well separated coarse blobs; fine = coarse * F + j."""
    rng = np.random.default_rng(seed)
    num_fine = coarse_classes * fine_per_coarse
    fine = np.repeat(np.arange(num_fine), per_class)
    coarse = fine // fine_per_coarse
    centres = 40.0 * rng.standard_normal((coarse_classes, dim))
    offsets = rng.standard_normal((num_fine, dim))
    offsets /= np.linalg.norm(offsets, axis=1, keepdims=True)
    means = centres[np.arange(num_fine) // fine_per_coarse] + fine_separation * offsets
    features = means[fine] + rng.standard_normal((fine.shape[0], dim))
    return features, coarse, fine


# separated blobs make a disconnected neighbour graph, which sklearn warns about
@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
@pytest.mark.parametrize("method", ["kmeans", "gmm", "spectral"])
def test_separated_sub_clusters_are_recovered(method):
    x, coarse, fine = nested_gaussians(12.0)
    tx, tcoarse, tfine = nested_gaussians(12.0, seed=0, per_class=20)
    result = fine_structure(x, coarse, fine, test_features=tx, test_coarse_labels=tcoarse,
                            test_fine_labels=tfine, method=method, seed=0)
    assert result.train_accuracy > 0.98
    assert result.test_accuracy > 0.98
    assert result.ari > 0.9 and result.purity > 0.98


def test_unseparated_sub_clusters_stay_at_chance():
    x, coarse, fine = nested_gaussians(0.0)
    result = fine_structure(x, coarse, fine)
    chance = chance_level(result, fine, permutations=300, seed=1)
    assert chance.naive == pytest.approx(0.5)
    # optimal matching lifts chance above 1/k
    assert chance.train_mean > 0.5
    assert result.train_accuracy <= chance.train_upper + 0.02
    assert abs(result.ari) < 0.05


def test_global_clustering_recovers_separated_fine_classes():
    x, coarse, fine = nested_gaussians(12.0)
    result = fine_structure(x, coarse, fine, per_coarse_class=False, test_features=x,
                            test_coarse_labels=coarse, test_fine_labels=fine)
    assert result.train_accuracy > 0.98 and result.test_accuracy > 0.98
    assert np.isnan(result.test_accuracy_predicted)
    chance = chance_level(result, fine, fine, permutations=50)
    # the null keeps coarse classes, which global clusters recover: chance is 1/2 here too
    assert 0.5 <= chance.train_mean < chance.train_upper < 0.6


def test_label_permutation_invariance():
    x, coarse, fine = nested_gaussians(3.0)
    base = fine_structure(x, coarse, fine, seed=0)
    fine_names = np.array([17, 3, 99, 42, 8, 5])      # any relabelling of the fine classes
    coarse_names = np.array([70, -2, 11])
    renamed = fine_structure(x, coarse_names[coarse], fine_names[fine], seed=0)
    assert renamed.train_accuracy == pytest.approx(base.train_accuracy)
    assert renamed.ari == pytest.approx(base.ari)
    assert renamed.purity == pytest.approx(base.purity)
    stat = fine_structure_statistic(x, coarse, fine)["ratio"].to_numpy()
    renamed_stat = fine_structure_statistic(x, coarse_names[coarse], fine_names[fine])
    np.testing.assert_allclose(np.sort(renamed_stat["ratio"].to_numpy()), np.sort(stat))


def test_row_order_does_not_matter():
    x, coarse, fine = nested_gaussians(12.0)
    order = np.random.default_rng(3).permutation(fine.shape[0])
    assert (fine_structure(x[order], coarse[order], fine[order]).train_accuracy
            == pytest.approx(fine_structure(x, coarse, fine).train_accuracy))


def test_non_contiguous_labels_and_three_fine_classes():
    rng = np.random.default_rng(5)
    # coarse 10 holds fine 2, 9, 31; coarse 4 holds fine 7 alone; coarse 6 holds 0 and 5
    layout = {2: 10, 9: 10, 31: 10, 7: 4, 0: 6, 5: 6}
    fine = np.repeat(list(layout), 40)
    coarse = np.array([layout[f] for f in fine])
    means = {f: 15.0 * rng.standard_normal(6) for f in layout}
    x = np.stack([means[f] for f in fine]) + rng.standard_normal((fine.shape[0], 6))
    result = fine_structure(x, coarse, fine, test_features=x, test_coarse_labels=coarse,
                            test_fine_labels=fine, test_predicted_coarse=coarse)
    table = result.per_class.set_index("coarse")
    assert table.loc[10, "k"] == 3 and table.loc[4, "k"] == 1 and table.loc[6, "k"] == 2
    assert table.loc[10, "fine_classes"] == [2, 9, 31]
    assert result.train_accuracy > 0.98
    assert result.test_accuracy_predicted == pytest.approx(result.test_accuracy)
    assert set(np.unique(result.train_predicted)) <= set(layout)
    stat = fine_structure_statistic(x, coarse, fine).set_index("coarse")
    assert np.isnan(stat.loc[4, "ratio"]) and stat.loc[10, "ratio"] > 10
    chance = chance_level(result, fine, permutations=50)
    # class sizes 120/40/80 with k = 3/1/2: (120/3 + 40 + 80/2) / 240
    assert chance.naive == pytest.approx(0.5)


def test_wrong_predicted_coarse_class_is_a_wrong_fine_label():
    x, coarse, fine = nested_gaussians(12.0)
    wrong = (coarse + 1) % 3
    result = fine_structure(x, coarse, fine, test_features=x, test_coarse_labels=coarse,
                            test_fine_labels=fine, test_predicted_coarse=wrong)
    assert result.test_accuracy > 0.98 and result.test_accuracy_predicted == 0.0
    unknown = np.full_like(coarse, 99)
    assert fine_structure(x, coarse, fine, test_features=x, test_coarse_labels=coarse,
                          test_fine_labels=fine,
                          test_predicted_coarse=unknown).test_accuracy_predicted == 0.0


def test_statistic_is_scale_free_and_separates_fine_structure():
    x, coarse, fine = nested_gaussians(12.0)
    ratio = fine_structure_statistic(x, coarse, fine)["ratio"]
    scaled = fine_structure_statistic(3.0 * x + 5.0, coarse, fine)["ratio"]
    np.testing.assert_allclose(scaled, ratio, rtol=1e-10)
    assert (ratio > 10).all()
    flat = fine_structure_statistic(*nested_gaussians(0.0))["ratio"]
    assert (flat < 0.1).all()
    # against a dense computation on one coarse class
    inside = coarse == 0
    sub, labels = x[inside], fine[inside]
    means = np.stack([sub[labels == f].mean(axis=0) for f in np.unique(labels)])
    within = np.mean(((sub - means[np.searchsorted(np.unique(labels), labels)]) ** 2).sum(axis=1))
    between = ((means - means.mean(axis=0)) ** 2).sum(axis=1).mean()
    assert ratio.iloc[0] == pytest.approx(between / within, rel=1e-10)


def test_statistic_from_kept_statistics():
    """The split the results store uses: statistics (kept) -> statistic (recomputed)."""
    from ncutils.stats import ClassStats

    x, coarse, fine = nested_gaussians(3.0, coarse_classes=2, fine_per_coarse=3)
    coarse_names, fine_names = np.array([7, 2]), np.array([11, 3, 5, 40, 41, 0])
    stats = fine_class_stats(x, coarse_names[coarse], fine_names[fine])
    assert sorted(stats) == [2, 7] and stats[7].classes.tolist() == [3, 5, 11]
    assert [stats[c].n for c in (2, 7)] == [180, 180]
    kept = {c: ClassStats.from_state(s.state()) for c, s in stats.items()}
    pd.testing.assert_frame_equal(fine_structure_statistic_from_stats(kept),
                                  fine_structure_statistic(x, coarse_names[coarse], fine_names[fine]))
    one = fine_class_stats(x[fine % 3 == 0], coarse[fine % 3 == 0], fine[fine % 3 == 0])
    assert fine_structure_statistic_from_stats(one)["ratio"].isna().all()  # one fine class each
    with pytest.raises(ValueError, match="non-empty mapping"):
        fine_structure_statistic_from_stats({})
    with pytest.raises(ValueError, match="one coarse class"):
        fine_class_stats(x, coarse, fine % 2)


def test_torch_inputs_and_conv_maps():
    x, coarse, fine = nested_gaussians(12.0, dim=12)
    maps = torch.from_numpy(x.reshape(-1, 3, 2, 2)).float()
    result = fine_structure(maps, torch.from_numpy(coarse), torch.from_numpy(fine))
    assert result.train_accuracy > 0.98


def test_random_fine_labels_keep_coarse_classes_and_counts():
    _, coarse, fine = nested_gaussians(1.0)
    shuffled = random_fine_labels(coarse, fine, seed=4)
    assert not np.array_equal(shuffled, fine)
    assert np.array_equal(shuffled // 2, coarse)
    assert np.array_equal(np.bincount(shuffled), np.bincount(fine))


def test_null_labels_on_separated_features_are_at_chance():
    x, coarse, fine = nested_gaussians(12.0)
    null = random_fine_labels(coarse, fine, seed=0)
    result = fine_structure(x, coarse, null)
    chance = chance_level(result, null, permutations=300, seed=2)
    assert result.train_accuracy <= chance.train_upper + 0.02


def test_scores():
    assert matched_accuracy([0, 1, 2], [5, 6, 7]) == 1.0
    assert matched_accuracy([0, 0, 0, 0], [1, 1, 2, 2]) == 0.5
    assert purity([0, 0, 1, 1], [1, 2, 1, 1]) == 0.75


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "dbscan"}, "method must be one of"),
    ({"n_init": 0}, "n_init"),
    ({"test_features": np.zeros((2, 8))}, "together"),
])
def test_bad_options_raise(kwargs, message):
    x, coarse, fine = nested_gaussians(1.0)
    with pytest.raises(ValueError, match=message):
        fine_structure(x, coarse, fine, **kwargs)


def test_bad_inputs_raise():
    x, coarse, fine = nested_gaussians(1.0)
    with pytest.raises(ValueError, match="one coarse class"):
        fine_structure(x, coarse, np.zeros_like(fine))
    with pytest.raises(ValueError, match="samples"):
        fine_structure(x, coarse[:-1], fine)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fine_structure(bad, coarse, fine)
    with pytest.raises(ValueError, match="not seen in training"):
        fine_structure(x, coarse, fine, test_features=x[:2], test_coarse_labels=np.array([0, 1]),
                       test_fine_labels=np.array([0, 0]))
    with pytest.raises(ValueError, match="integers"):
        fine_structure(x, coarse + 0.5, fine)
    with pytest.raises(ValueError, match="FineStructure"):
        chance_level("not a result", fine)


def test_per_class_table_columns():
    x, coarse, fine = nested_gaussians(12.0)
    table = fine_structure(x, coarse, fine, test_features=x, test_coarse_labels=coarse,
                           test_fine_labels=fine).per_class
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["coarse", "fine_classes", "k", "n_train", "train_accuracy",
                                   "ari", "n_test", "test_accuracy"]
