"""The gpu and paper profiles at tiny size (ncutils.book.tiny): planned, checked, and run end to end.

The quick tests check how the tiny overrides are laid over a profile. The last test copies the
working tree and runs every chapter of the gpu and paper profiles with ``build --tiny``: each
must reach a recorded verdict, whatever it is, on the profile's own code paths. It takes a few
minutes and is not marked slow, so that ``make test`` runs it: a user with a GPU should never
meet a crash an hour into a profile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ncutils import verdicts
from ncutils.book import chapters, profiles, tiny

from conftest import REPO, _ignore

RECORDABLE = set(verdicts.RECORDABLE)


@pytest.mark.parametrize("profile", ["gpu", "paper"])
def test_tiny_plan_keeps_the_profile_code_paths_and_cuts_sizes(profile):
    jobs = {job.stem: job for job in tiny.plan_tiny(REPO, profile)}
    real = {job.stem: job for job in profiles.plan(REPO, profile)}
    assert list(jobs) == list(real)
    data_dir = str(tiny.TinyLayout(REPO.resolve()).data)
    for stem, job in jobs.items():
        parameters, original = job.parameters, real[stem].parameters
        assert parameters["profile"] == f"{profile} (tiny)" and job.injected["profile"] == f"{profile} (tiny)"
        assert job.key != real[stem].key
        if "data_dir" in original:
            assert parameters["data_dir"] == data_dir and parameters["download"] is False
        # names of architectures and datasets, optimisers and schedules stay the profile's
        for name in ("datasets", "dataset", "extra_datasets", "networks", "pairings", "architecture", "loss",
                     "lr", "momentum", "warmup_epochs", "label_noise", "activations"):
            if name in original:
                assert parameters[name] == original[name], (stem, name)
        for name in ("lrs", "weight_decays", "grid_lrs", "grid_weight_decays"):  # axes cut to the profile's values
            if name in original:
                assert parameters[name] and set(parameters[name]) <= set(original[name]), (stem, name)
        if isinstance(original.get("architectures"), dict):
            assert parameters["architectures"].keys() == original["architectures"].keys()
            for arch, options in original["architectures"].items():
                for key in ("arch", "datasets", "lr", "lr_decay", "decay_steps", "weight_decay", "depth", "config"):
                    if key in options:
                        assert parameters["architectures"][arch][key] == options[key], (stem, arch, key)
    parker = jobs["parker_p1_depth"].parameters
    assert parker["architectures"]["resnet18"] == {"width": 4} and parker["limit_train"] == 60
    assert {job.parameters["architectures"]["mlp"]["width"] for stem, job in jobs.items()
            if stem.startswith("parker")} == {32}


def test_overlay_merges_into_existing_keys_only():
    assert tiny.overlay({"a": {"x": 1, "y": 2}, "b": 3}, {"a": {"y": 5, "z": 6}, "c": 1}) == {"a": {"x": 1, "y": 5},
                                                                                            "b": 3}
    assert tiny.overlay({"mnist": 30}, 2) == 2 and tiny.overlay(None, 100) == 100


def _fake_repo(tmp_path: Path, entries: dict) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    shutil.copy(REPO / "_toc.yml", root / "_toc.yml")
    (root / "ncutils").mkdir()
    (root / "ncutils" / "__init__.py").write_text("")
    (root / tiny.TINY_FILE).write_text(yaml.safe_dump(entries))
    return root


def test_every_chapter_needs_an_entry_and_known_parameters(tmp_path):
    entries = yaml.safe_load((REPO / tiny.TINY_FILE).read_text())
    assert set(entries) == {chapter.stem for chapter in chapters.CHAPTERS}
    missing = dict(entries)
    del missing["garrod_ufm"]
    with pytest.raises(ValueError, match="'garrod_ufm' has no entry"):
        tiny.plan_tiny(_fake_repo(tmp_path / "a", missing), "gpu")
    with pytest.raises(ValueError, match="unknown parameters \\['widht'\\]"):
        tiny.plan_tiny(_fake_repo(tmp_path / "b", {**entries, "garrod_ufm": {"widht": 3}}), "gpu")
    # values the declaration refuses are refused as a profile's are
    with pytest.raises(ValueError, match="relu_seeds"):
        tiny.plan_tiny(_fake_repo(tmp_path / "c", {**entries, "garrod_ufm": {"gpu": {"relu_seeds": [0, 0]}}}), "gpu")


def _tiny_build(root: Path, profile: str, store: Path) -> tuple[subprocess.CompletedProcess, float]:
    environment = {**os.environ, "PYTHONPATH": str(root), "NCUTILS_RUNS_DIR": str(store)}
    environment.pop("NC_FINDINGS_FILE", None)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "ncutils.book", "build", "--profile", profile, "--tiny"],
                               cwd=root, env=environment, capture_output=True, text=True, timeout=1800)
    return completed, time.perf_counter() - started


def test_gpu_and_paper_profiles_run_every_chapter_to_a_verdict_at_tiny_size(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=_ignore)
    store = tmp_path / "runs"
    seconds = {}
    for profile in ("gpu", "paper"):
        completed, seconds[profile] = _tiny_build(root, profile, store)
        assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
        summary = json.loads((root / "_build" / "tiny" / profile / "summary.json").read_text())
        assert summary["profile"] == f"{profile} (tiny)"
        assert set(summary["chapters"]) == {chapter.stem for chapter in chapters.CHAPTERS}
        for chapter in chapters.CHAPTERS:
            states = summary["chapters"][chapter.stem]["verdicts"]
            assert states, f"{chapter.stem} ({profile}, tiny) recorded nothing"
            findings = {finding.id for finding in chapter.findings}
            assert findings <= set(states)
            for identifier, state in states.items():  # a chapter of library checks records passed / failed
                assert state in (RECORDABLE if identifier in findings else {"passed", "failed"}), (
                    chapter.stem, profile, states)
        recorded = json.loads((root / "_build" / "tiny" / profile / "findings.json").read_text())
        assert list(recorded["profiles"]) == [f"{profile} (tiny)"]
    # tiny results are never the profiles' verdicts, nor in the project's store
    assert not (root / "_build" / "findings.json").exists() and not (root / "book" / "generated").exists()
    assert (store / "tiny").is_dir() and not (store / "trained").exists()
    print(f"tiny gpu: {seconds['gpu']:.0f} s, tiny paper: {seconds['paper']:.0f} s")
