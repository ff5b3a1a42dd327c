"""``python -m ncutils.runs train`` (issue 16): a profile's missing runs through a job engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncutils import store
from ncutils.book import training
from ncutils.runs_cli import main
from ncutils.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def test_the_smoke_profile_lists_each_run_once_and_says_what_has_no_grid():
    needed, skipped = training.training_runs(REPO, "smoke")
    keys = [run.key for run in needed]
    assert len(keys) == len(set(keys)) and len(keys) >= 20
    shared = [run for run in needed if len(run.chapters) == 4]
    assert shared and all(run.chapters[0].startswith("parker_") for run in shared)  # P1-P4 share their grid
    assert {run.chapters[0] for run in needed} >= {"kothapalli_terminal_phase", "parker_p1_depth",
                                                   "rangamani_intermediate", "yang_fine_structure"}
    assert set(skipped) == {"measuring_collapse", "kothapalli_lesde", "garrod_ufm"}
    assert "train_trials" in skipped["kothapalli_lesde"] and "not a TrainConfig grid" in skipped["kothapalli_lesde"]


def test_a_profile_the_paper_module_refuses_submits_nothing(monkeypatch, tmp_path, capsys):
    def refuse(*args, **kwargs):
        raise ValueError("invalid book configuration:\n  lr must be > 0")

    monkeypatch.setattr(training, "plan", refuse)
    assert main(["--runs-dir", str(tmp_path), "train", "--profile", "smoke"]) == 2
    assert "lr must be > 0" in capsys.readouterr().err


def _tiny(seed: int, lr: float = 0.05) -> TrainConfig:
    return TrainConfig(dataset="gaussian", arch="mlp", arch_kwargs={"depth": 2, "width": 8}, epochs=1,
                       batch_size=64, sweep_epochs=(0, 1), seed=seed, device="cpu", lr=lr, loss="mse")


@pytest.mark.slow
def test_local_executor_trains_the_missing_runs_once_and_lists_failures(monkeypatch, tmp_path):
    good = [training.TrainingRun(store.trained_key(_tiny(seed)), _tiny(seed), ["chapter"]) for seed in (0, 1)]
    broken = _tiny(0, lr=1e30)  # the loss overflows: the job fails with DivergedError
    runs = good + [training.TrainingRun(store.trained_key(broken), broken, ["chapter"])]
    monkeypatch.setattr(training, "training_runs", lambda root, profile: (runs, {}))
    lines: list[str] = []
    first = training.train_profile(REPO, "smoke", runs_dir=tmp_path, workers=2, log=lines.append)
    assert first["engine"].startswith("submitit") and first["engine"].endswith("local executor")
    assert (first["submitted"], first["trained"], len(first["failed"])) == (3, 2, 1)
    failure = first["failed"][0]
    assert failure["key"] == store.trained_key(broken) and "DivergedError" in failure["error"]
    assert ".err" in failure["logs"] and Path(failure["logs"].split(" and ")[1]).exists()
    for run in good:
        assert (store.entry_dir("trained", run.key, tmp_path) / store.MANIFEST).exists()
    second = training.train_profile(REPO, "smoke", runs_dir=tmp_path, workers=2, log=lines.append)
    assert (second["stored"], second["submitted"], second["trained"], len(second["failed"])) == (2, 1, 0, 1)
