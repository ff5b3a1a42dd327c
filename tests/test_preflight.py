"""Refusals before any kernel starts: missing data and an unwritable store (ncutils.book.preflight)."""

from __future__ import annotations

import pytest

from ncutils import data
from ncutils.book import cli, execute, preflight
from ncutils.papers import kothapalli


@pytest.fixture
def no_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(execute, "execute", lambda *args, **kwargs: calls.append(args))
    return calls


def test_missing_data_is_refused_before_the_kernel_naming_the_folder(tmp_path, capsys, no_kernel):
    arguments = ["run", "kothapalli_lesde", "--profile", "gpu", "-p", "download", "false",
                 "-p", "data_dir", str(tmp_path / "data")]
    assert cli.main([*arguments, "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "kothapalli_lesde: dataset 'mnist' (train split) not found" in error
    assert str(tmp_path / "data" / "MNIST") in error and "download=True" in error
    assert "Traceback" not in error
    assert cli.main(arguments) == 2
    assert no_kernel == []


def test_a_refused_download_leaves_no_empty_folder(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        (tmp_path / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does first
        raise OSError("no network")

    spec = data._TORCHVISION["mnist"]()
    monkeypatch.setitem(data._TORCHVISION, "mnist", lambda: spec.__class__(
        spec.folder, spec.files, spec.read, refuse, spec.how))
    problem = data.dataset_problem("mnist", tmp_path, download=True)
    assert "Download failed: OSError: no network" in problem
    assert not (tmp_path / "MNIST").exists()
    with pytest.raises(data.DatasetNotFoundError):
        data.load_dataset("mnist", data_dir=tmp_path, download=True)
    assert not (tmp_path / "MNIST").exists()


def test_offline_data_and_a_writable_store_pass(tmp_path):
    parameters = kothapalli.K2.resolve()
    assert preflight.problems([(kothapalli.K2, parameters)], tmp_path / "store") == []
    assert (tmp_path / "store").is_dir()


def test_an_unwritable_store_is_refused_before_the_kernel(tmp_path, monkeypatch, capsys, no_kernel):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NCUTILS_RUNS_DIR", str(blocker / "store"))
    assert cli.main(["run", "measuring_collapse", "--dry-run"]) == 2
    assert f"the results store {blocker / 'store'} cannot be written" in capsys.readouterr().err
    assert no_kernel == []


def test_a_profile_value_no_chapter_takes_is_refused_by_run_and_by_runs_key(monkeypatch, capsys, no_kernel):
    """A name under a chapter in a profile file is checked by every command, not only by build."""
    from ncutils import runs_cli
    from ncutils.book import profiles

    real = profiles.load_profile

    def with_a_stray_name(root, profile):
        values = real(root, profile)
        values["measuring_collapse"] = {**values["measuring_collapse"], "nosuch_param": 3}
        return values

    monkeypatch.setattr(profiles, "load_profile", with_a_stray_name)
    monkeypatch.setattr(execute, "load_profile", with_a_stray_name)
    assert cli.main(["run", "measuring_collapse", "--profile", "smoke", "--dry-run"]) == 2
    assert "notebooks/profiles/smoke.yaml: measuring_collapse: unknown parameter 'nosuch_param'" in capsys.readouterr().err
    assert runs_cli.main(["key", "--profile", "smoke"]) == 2
    assert "unknown parameter 'nosuch_param'" in capsys.readouterr().err
    assert no_kernel == []
