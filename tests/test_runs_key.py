"""Tests of ``python -m ncutils.runs key``: the key of every trained run a profile needs.

CI caches the results store under it, so it must change when a run would retrain (a
training setting of the profile, ``train.py``) and stay when nothing would (a docstring
of ``metrics.py``, a setting that only changes what is measured or plotted).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from ncutils import runs, runs_cli
from ncutils.book import profiles
from ncutils.store import code as store_code

REPO = Path(__file__).resolve().parent.parent
PROFILE = "cpu"


@pytest.fixture(scope="module")
def base_key() -> str:
    return runs_cli.profile_key(PROFILE)


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the package's sources, which the store's keys read instead of the package."""
    copy = tmp_path / "ncutils"
    shutil.copytree(store_code.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(store_code, "PACKAGE_DIR", copy)
    return copy


def _with_profile_values(monkeypatch, chapter: str, **values) -> None:
    real = profiles.load_profile

    def edited(root, profile):
        content = real(root, profile)
        content[chapter] = {**content.get(chapter, {}), **values}
        return content

    monkeypatch.setattr(profiles, "load_profile", edited)


# --------------------------------------------------------------------------- the command


def test_key_command_prints_the_profile_key(capsys, base_key):
    assert runs_cli.main(["key", "--profile", PROFILE]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"[0-9a-f]{64}\n", out)
    assert out.strip() == base_key
    assert runs_cli.profile_key(PROFILE) == base_key  # deterministic


def test_key_command_refuses_an_unknown_profile(capsys):
    assert runs_cli.main(["key", "--profile", "laptop"]) == 2
    assert "unknown profile 'laptop'" in capsys.readouterr().err


def test_profiles_differ(base_key):
    assert runs_cli.profile_key("smoke") != base_key


# --------------------------------------------------------------------------- code edits


def test_metrics_docstring_edit_keeps_the_key(package_copy, base_key):
    path = package_copy / "metrics.py"
    source = path.read_text()
    edited = re.sub(r'^"""', '"""Edited: a new first line of the docstring.\n\n', source, count=1)
    edited = edited.replace('    """', '    """An edited function docstring.\n\n    ', 1)
    edited += "\n# an edited comment\n"
    assert edited != source
    path.write_text(edited)
    assert runs_cli.profile_key(PROFILE) == base_key


def test_metrics_code_edit_changes_no_trained_run(package_copy, base_key):
    pairs = runs_cli.profile_configs(PROFILE)
    before = [runs.trained_key(config) for _, config in pairs]
    with (package_copy / "metrics.py").open("a") as handle:
        handle.write("\n_EDITED = 1\n")
    # K1's online series store statistics: their metrics are recomputed, nothing retrains
    assert [runs.trained_key(config) for _, config in pairs] == before
    assert runs_cli.profile_key(PROFILE) == base_key


def test_statistics_code_edit_changes_only_the_runs_that_measure_while_training(package_copy, base_key):
    pairs = runs_cli.profile_configs(PROFILE)
    before = [runs.trained_key(config) for _, config in pairs]
    with (package_copy / "stats.py").open("a") as handle:
        handle.write("\n_EDITED = 1\n")
    after = [runs.trained_key(config) for _, config in pairs]
    changed = {stem for (stem, _), old, new in zip(pairs, before, after) if old != new}
    tracking = {stem for stem, config in pairs if config.track_last_layer}
    assert changed == tracking == {"kothapalli_terminal_phase"}  # K1's online last-layer statistics
    assert runs_cli.profile_key(PROFILE) != base_key


@pytest.mark.parametrize("module", ["train", "data"])
def test_training_code_edit_changes_the_key(package_copy, base_key, module):
    with (package_copy / f"{module}.py").open("a") as handle:
        handle.write("\n_EDITED = 1\n")
    assert runs_cli.profile_key(PROFILE) != base_key


def test_k2_code_edit_changes_the_key(package_copy, base_key):
    with (package_copy / "theory" / "lesde.py").open("a") as handle:
        handle.write("\n_EDITED = 1\n")
    assert runs_cli.profile_key(PROFILE) != base_key


# --------------------------------------------------------------------------- profile edits


def test_training_setting_in_a_profile_file_changes_the_key(tmp_path, base_key):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    assert runs_cli.profile_key(PROFILE, root=root) == base_key
    path = root / "notebooks" / "profiles" / f"{PROFILE}.yaml"
    text = path.read_text()
    assert "\nrangamani_intermediate: {}\n" in text
    path.write_text(text.replace("\nrangamani_intermediate: {}\n", "\nrangamani_intermediate: {epochs: 31}\n"))
    assert runs_cli.profile_key(PROFILE, root=root) != base_key


@pytest.mark.parametrize(("chapter", "values"), [
    ("parker_p2_variance", {"lr": 0.4}),
    ("yang_fine_structure", {"y2_lr": 0.02}),
    ("kothapalli_terminal_phase", {"seeds": [0, 1]}),
    ("kothapalli_lesde", {"iterations": 1400}),
    ("garrod_ufm", {"relu_steps": 100}),  # the chapter keeps its UFM runs in the store
    ("garrod_ufm", {"linear_steps": 100}),
    ("garrod_ufm", {"dense_hessian": False}),
])
def test_training_settings_change_the_key(monkeypatch, base_key, chapter, values):
    _with_profile_values(monkeypatch, chapter, **values)
    assert runs_cli.profile_key(PROFILE) != base_key


@pytest.mark.parametrize(("chapter", "values"), [
    ("measuring_collapse", {"timing_repeats": 5}),  # trains nothing
    ("parker_p4_difficulty", {"min_datasets": 2}),  # a criterion's setting
    ("kothapalli_lesde", {"sg_window": 13}),  # the estimator's smoothing, not the training
    ("garrod_ufm", {"relu_workers": 1}),  # how many processes train them changes no number
    ("garrod_ufm", {"relu_checkpoint": False}),  # nor whether long runs checkpoint
])
def test_settings_that_train_nothing_keep_the_key(monkeypatch, base_key, chapter, values):
    _with_profile_values(monkeypatch, chapter, **values)
    assert runs_cli.profile_key(PROFILE) == base_key


# --------------------------------------------------------------------------- the enumeration


def test_every_chapter_says_what_it_trains():
    from ncutils.book import chapters

    stems = set(profiles.chapters(REPO))
    trained = {chapter.stem for chapter in chapters.CHAPTERS if chapter.trains is not None}
    assert stems == {chapter.stem for chapter in chapters.CHAPTERS}
    trains = re.compile(r"(?<![.\w])train\(|\brun_grid\(")
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        code = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells
                         if cell.cell_type == "code")
        assert bool(trains.search(code)) == (path.stem in trained), path.stem


def test_profile_configs_follow_the_notebooks():
    parameters = runs_cli.chapter_parameters(PROFILE)
    pairs = runs_cli.profile_configs(PROFILE)
    by_chapter: dict[str, list] = {}
    for stem, config in pairs:
        by_chapter.setdefault(stem, []).append(config)
    from ncutils.book import chapters

    assert set(by_chapter) == {chapter.stem for chapter in chapters.CHAPTERS if chapter.trains is not None}
    # run_grid(grid, seeds=seeds): every entry once per seed
    from ncutils.papers import parker, yang

    grid = parker.architecture_grid(parameters["parker_p2_variance"])
    seeds = parameters["parker_p2_variance"]["seeds"]
    assert len(by_chapter["parker_p2_variance"]) == len(grid.entries) * len(seeds)
    assert {config.seed for config in by_chapter["parker_p2_variance"]} == set(seeds)
    # P1 also trains its activation grid, whose ReLU run is its architecture grid's
    assert set(map(repr, by_chapter["parker_p2_variance"])) < set(map(repr, by_chapter["parker_p1_depth"]))
    # Yang's grids carry their seeds
    yang_parameters = parameters["yang_fine_structure"]
    expected = (yang.y1_grid(yang_parameters).entries + yang.y1_sweep_grid(yang_parameters).entries
                + yang.y2_grid(yang_parameters).entries)
    # a grid run that is also one of the chapter's own point is listed once
    assert list(map(repr, by_chapter["yang_fine_structure"])) == list(dict.fromkeys(repr(entry.config)
                                                                                     for entry in expected))
    assert runs_cli.profile_configs(PROFILE, only=["rangamani_intermediate"]) == [
        pair for pair in pairs if pair[0] == "rangamani_intermediate"]
    with pytest.raises(ValueError, match="unknown chapters"):
        runs_cli.profile_configs(PROFILE, only=["nope"])
