"""The gpu and paper profiles at tiny size (ncutils.book.tiny): planned, checked, and run end to end.

The quick tests check how the tiny overrides are laid over a profile. The last test checks the
builds of every chapter of the gpu and paper profiles with ``build --tiny`` (run in a copy of the
working tree, in the background from the moment the test is selected: tests/conftest.py): each
must reach a recorded verdict, whatever it is, on the profile's own code paths. The builds take a
few minutes of two cores and the test is not marked slow, so that ``make test`` runs it: a user
with a GPU should never meet a crash an hour into a profile.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ncutils import verdicts
from ncutils.book import chapters, profiles, tiny

from conftest import REPO

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
    # K1's paper networks keep their layers, narrowed
    assert jobs["kothapalli_terminal_phase"].parameters["network_kwargs"] == {"vgg11": {"width": 0.0625},
                                                                           "resnet18": {"width": 4}}


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


def test_same_as_names_the_chapters_whose_tiny_runs_are_line_for_line_another_profiles():
    repeated = tiny.same_as(REPO, "paper", "gpu")
    gpu = {job.stem: job for job in tiny.plan_tiny(REPO, "gpu")}
    for job in tiny.plan_tiny(REPO, "paper"):
        unlabelled = {name: value for name, value in job.parameters.items() if name != "profile"}
        same = unlabelled == {name: value for name, value in gpu[job.stem].parameters.items() if name != "profile"}
        assert (job.stem in repeated) == same, job.stem
    # the UFM chapter's paper optimiser (plain GD) is not the gpu profile's (momentum): it runs for each
    assert "garrod_ufm" not in repeated and "yang_fine_structure" not in repeated
    assert tiny.same_as(REPO, "gpu", "gpu") == list(gpu)


def test_a_tiny_build_of_named_chapters_refuses_unknown_ones_and_a_book_build_refuses_the_option(tmp_path):
    with pytest.raises(ValueError, match="unknown chapters \\['nope'\\]"):
        tiny.build_tiny("gpu", root=REPO, chapters=["nope"])
    from ncutils.book import cli

    assert cli.main(["build", "--profile", "smoke", "--chapter", "measuring_collapse"]) == 2


def test_gpu_and_paper_profiles_run_every_chapter_to_a_verdict_at_tiny_size(tiny_builds):
    """Every chapter of both profiles reaches a recorded verdict: the builds (tests/conftest.py,
    ``TinyBuilds``) ran in the background since collection; a paper chapter whose tiny run is line
    for line the gpu's (same notebook, same values) ran once, for the gpu profile."""
    results = tiny_builds.wait()
    root, every, repeated = tiny_builds.root, tiny_builds.every, tiny_builds.repeated
    ran = {}
    for profile, only in tiny_builds.builds:
        assert profile in results, f"the {profile} tiny build did not run (an earlier one failed)"
        assert results[profile]["returncode"] == 0, results[profile]["output"]
        summary = json.loads((root / "_build" / "tiny" / profile / "summary.json").read_text())
        assert summary["profile"] == f"{profile} (tiny)"
        ran[profile] = list(summary["chapters"])
        assert set(ran[profile]) == set(only or every)
        for chapter in chapters.CHAPTERS:
            if chapter.stem not in ran[profile]:
                continue
            states = summary["chapters"][chapter.stem]["verdicts"]
            assert states, f"{chapter.stem} ({profile}, tiny) recorded nothing"
            findings = {finding.id for finding in chapter.findings}
            assert findings <= set(states)
            for identifier, state in states.items():  # a chapter of library checks records passed / failed
                assert state in (RECORDABLE if identifier in findings else {"passed", "failed"}), (
                    chapter.stem, profile, states)
        recorded = json.loads((root / "_build" / "tiny" / profile / "findings.json").read_text())
        assert list(recorded["profiles"]) == [f"{profile} (tiny)"]
    assert sorted(ran["gpu"]) == sorted(every) and sorted(ran["paper"] + repeated) == sorted(every)
    # tiny results are never the profiles' verdicts, nor in the project's store
    assert not (root / "_build" / "findings.json").exists() and not (root / "book" / "generated").exists()
    assert (tiny_builds.store / "tiny").is_dir() and not (tiny_builds.store / "trained").exists()
    print(f"tiny gpu: {results['gpu']['seconds']:.0f} s, tiny paper: {results['paper']['seconds']:.0f} s "
          f"({len(repeated)} chapters the gpu's)")
