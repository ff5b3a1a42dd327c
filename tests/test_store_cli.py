"""The store's command line says which store it uses and reports only what it did (list, prune, train)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from ncutils import runs_cli, store
from ncutils.book import training
from conftest import tiny_config


def _entry(root: Path, kind: str, key: str, created: str = "2026-12-01T00:00:00+00:00") -> Path:
    folder = root / kind / key
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"payload": {"settings": {"dataset": "digits"}, "what": "x"},
                                                       "created": created}))
    stamp = time.time() - 10 * 86400
    os.utime(folder / "manifest.json", (stamp, stamp))
    return folder


def test_every_command_uses_the_store_it_is_given_and_says_which(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCUTILS_RUNS_DIR", str(tmp_path / "mine"))
    assert runs_cli.main(["train", "--profile", "smoke", "--dry-run", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert f"results store: {tmp_path / 'mine'} (from $NCUTILS_RUNS_DIR)" in captured.err
    assert f"0 already in {tmp_path / 'mine'}" in captured.out
    assert runs_cli.main(["--runs-dir", str(tmp_path / "other"), "list"]) == 2
    assert "name different stores" in capsys.readouterr().err
    monkeypatch.delenv("NCUTILS_RUNS_DIR")
    assert store.resolve_runs_dir(tmp_path / "other") == (tmp_path / "other", "--runs-dir")


def test_train_counts_a_run_another_process_trained_as_loaded(tmp_path, monkeypatch):
    class Done:
        job_id = "fake"

        def __init__(self, from_cache: bool) -> None:
            self.from_cache = from_cache

        def done(self) -> bool:
            return True

        def result(self) -> dict:
            return {"key": "k", "seconds": 0.1, "from_cache": self.from_cache}

        def logs(self) -> str:
            return "-"

    outcomes = iter([True, False])
    monkeypatch.setattr(training, "_submitter", lambda *args: (lambda config, runs_dir: Done(next(outcomes)),
                                                               lambda: None, "fake engine"))
    run = training.TrainingRun("k1", tiny_config(), ["chap"])
    other = training.TrainingRun("k2", tiny_config(seed=1), ["chap"])
    monkeypatch.setattr(training, "training_runs", lambda root, profile: ([run, other], {}))
    summary = training.train_profile(tmp_path, "smoke", runs_dir=tmp_path / "store", workers=1, log=lambda _: None)
    assert (summary["trained"], summary["loaded"]) == (1, 1)


def test_prune_reports_only_what_it_removed(tmp_path, monkeypatch, capsys):
    kept_elsewhere = _entry(tmp_path / "elsewhere", "computed", "real")
    (tmp_path / "computed").mkdir()
    (tmp_path / "computed" / "linked").symlink_to(kept_elsewhere)
    stuck = _entry(tmp_path, "computed", "stuck")
    monkeypatch.setattr(shutil, "rmtree", lambda path, onerror=None: onerror(os.rmdir, str(path),
                                                                              (OSError, OSError(30, "Read-only file system"), None)))
    assert runs_cli.main(["--runs-dir", str(tmp_path), "prune", "--older-than", "1"]) == 1
    out, err = capsys.readouterr()
    assert "removed 0 entries or files" in out and "skipped 1; failed 1" in out
    assert f"skipped {tmp_path / 'computed' / 'linked'}: a symbolic link" in out
    assert f"could not remove {stuck}" in err and "Read-only file system" in err
    assert stuck.exists() and kept_elsewhere.exists() and (tmp_path / "computed" / "linked").is_symlink()


def test_list_tolerates_any_time_and_refuses_a_missing_store(tmp_path, capsys):
    _entry(tmp_path, "computed", "odd", created="last tuesday")
    assert runs_cli.main(["--runs-dir", str(tmp_path), "list"]) == 0
    assert "? (unreadable time)" in capsys.readouterr().out
    assert runs_cli.main(["--runs-dir", str(tmp_path / "absent"), "list"]) == 2
    assert "does not exist" in capsys.readouterr().err
