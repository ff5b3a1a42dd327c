"""Tests of the Parker configurations (ncutils.papers.parker) and their grid through ncutils.grid (tiny runs)."""

from pathlib import Path

import pytest
import yaml

from ncutils.book.profiles import PROFILES
from ncutils.grid import Grid, run_grid
from ncutils.papers import parker

TINY = {
    "datasets": ["digits", "gaussian"],
    "architectures": {"mlp": {"depth": 4, "width": 16}, "vgg": {"config": [4, "M", 8], "width": 1.0,
                                                                "fc_widths": [16]}},
    "epochs": {"digits": 2, "gaussian": 1},
    "sweep_count": 2,
    "limit_train": 60,
    "limit_test": 30,
    "batch_size": 32,
    "device": "cpu",
    "activations": ["relu", "tanh"],
    "activation_dataset": "digits",
    "profile": "smoke",  # ignored by the grid builders
}
PARKER_NOTEBOOKS = ("parker_p1_depth", "parker_p2_variance", "parker_p3_angles", "parker_p4_difficulty")
ROOT = Path(__file__).resolve().parent.parent


def test_parker_config_uses_the_paper_code_settings():
    config = parker.parker_config("mlp", "digits", epochs=12, arch_kwargs={"depth": 7},
                                       activation="tanh", sweep_count=4)
    assert (config.optimizer, config.schedule, config.loss) == ("sgd", "onecycle", "mse")
    assert (config.lr, config.momentum, config.weight_decay) == (0.1, 0.9, 0.0)
    assert dict(config.arch_kwargs) == {"depth": 7, "activation": "tanh"}
    # the default activation is spelled out, except where the architecture has no such option
    assert dict(parker.parker_config("mlp", "digits", epochs=3).arch_kwargs) == {"activation": "relu"}
    assert "activation" not in dict(parker.parker_config("resnet18", "digits", epochs=3).arch_kwargs)
    assert config.sweep_epochs == (0, 4, 8, 12)
    assert parker.parker_config("mlp", "digits", epochs=3, loss="ce").loss == "ce"
    with pytest.raises(ValueError, match="loss"):
        parker.parker_config("mlp", "digits", epochs=3, loss="hinge")


def test_architecture_grid_skips_conv_nets_on_vectors_and_reads_epochs_per_dataset():
    grid = parker.architecture_grid(TINY)
    pairs = [(entry.labels["architecture"], entry.labels["dataset"]) for entry in grid.entries]
    assert pairs == [("mlp", "digits"), ("mlp", "gaussian"), ("vgg", "digits")]
    assert grid.skipped == (({"architecture": "vgg", "dataset": "gaussian", "activation": ""},
                             "a conv net needs image inputs"),)
    assert [entry.config.epochs for entry in grid.entries] == [2, 1, 2]
    assert all(entry.labels["activation"] == "relu" for entry in grid.entries)
    table = grid.describe()
    assert list(table["status"]).count("train") == 3 and len(table) == 4


def test_grid_builders_reject_bad_parameters():
    with pytest.raises(ValueError, match="datasets"):
        parker.architecture_grid({**TINY, "datasets": []})
    with pytest.raises(ValueError, match="duplicates"):
        parker.architecture_grid({**TINY, "datasets": ["digits", "digits"]})
    with pytest.raises(KeyError, match="no entry for dataset"):
        parker.architecture_grid({**TINY, "epochs": {"digits": 2}})
    with pytest.raises(KeyError, match="unknown dataset"):
        parker.architecture_grid({**TINY, "datasets": ["imagenet"]})
    with pytest.raises(ValueError, match="activation_dataset"):
        parker.activation_grid({**TINY, "activation_dataset": None})
    with pytest.raises(ValueError, match="unknown activation"):
        parker.activation_grid({**TINY, "activations": ["relu", "swishy"]})


def test_activation_grid_shares_the_relu_run_with_the_architecture_grid():
    relu_mlp = parker.architecture_grid(TINY).entries[0]
    by_activation = {entry.labels["activation"]: entry for entry in parker.activation_grid(TINY).entries}
    assert by_activation["relu"].config == relu_mlp.config  # one config: one cache entry
    assert dict(by_activation["tanh"].config.arch_kwargs)["activation"] == "tanh"


def test_run_grid_combines_tables_and_reuses_the_cache(tmp_path):
    grid = parker.architecture_grid({**TINY, "datasets": ["digits"], "epochs": 1})
    first = run_grid(grid, runs_dir=tmp_path, progress=False)
    assert list(first.runs["from_cache"]) == [False, False]
    assert set(first.sweeps["architecture"]) == {"mlp", "vgg"}
    assert set(first.sweeps["epoch"]) == {0, 1}
    assert (first.sweeps["num_classes"] == 10).all()
    assert list(first.history.columns[:4]) == ["architecture", "dataset", "activation", "seed"]
    assert len(first.history) == 2  # two runs, one epoch
    # the criteria read these tables directly
    runs = parker.eligible_runs(first.history, min_train_acc=0.01)
    table = parker.per_run(first.sweeps, parker.depth_needed, runs=runs)
    assert len(table) == 2 and table["depth_needed"].between(0, 1).all()

    summary = parker.training_summary(first, min_train_acc=0.01)
    assert list(summary["architecture"]) == ["mlp", "vgg"] and summary["eligible"].all()
    assert (summary["epochs"] == 1).all() and not summary["from_cache"].any()
    strict = parker.training_summary(first, min_train_acc=1.0)
    assert list(strict["eligible"]) == list(strict["train_acc"] >= 1.0)

    report = parker.training_report(grid, first, min_train_acc=1.0)
    assert report.facts["parker_runs"] == 2 and report.facts["parker_trained"] == 2
    assert report.facts["parker_eligible"] == int(strict["eligible"].sum())
    assert report.facts["parker_datasets"] == "digits" and report.facts["parker_batch_size"] == "32"
    assert report.facts["parker_terminal"] == int((strict["train_acc"] >= 1.0).sum())
    expected_excluded = [f"{r.architecture} (relu) on digits" for r in strict.itertuples() if not r.eligible]
    assert report.excluded_text == (", ".join(expected_excluded) or "none")
    assert parker.runs_text(table) == "mlp on digits, vgg on digits"
    assert parker.runs_text(table.iloc[:0]) == "no eligible run"

    second = run_grid(grid, runs_dir=tmp_path, progress=False)
    assert list(second.runs["from_cache"]) == [True, True]
    assert second.sweeps.equals(first.sweeps)


@pytest.mark.parametrize("profile", PROFILES)
def test_parker_chapters_share_their_training_parameters(profile):
    """The four chapters must build the same grid, or the results cache would not be shared."""
    from ncutils.book import chapters

    path = ROOT / "notebooks" / "profiles" / f"{profile}.yaml"
    entries = yaml.safe_load(path.read_text()) or {}
    resolved = []
    for name in PARKER_NOTEBOOKS:
        assert name in entries, f"{profile}.yaml lacks {name}"
        values = chapters.chapter(name).resolve(entries[name] or {}, profile=profile)
        resolved.append({key: values.get(key) for key in parker.GRID_PARAMETERS})
    for name, values in zip(PARKER_NOTEBOOKS[1:], resolved[1:]):
        assert values == resolved[0], f"{name} differs from {PARKER_NOTEBOOKS[0]} on {profile}"
