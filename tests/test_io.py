"""Tests of ncutils._io: files are replaced whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncutils._io import atomic_write, read_json, write_if_changed, write_json_atomic


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old")

    def broken(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [item.name for item in tmp_path.iterdir()] == ["results.csv"]


def test_json_round_trip_and_unencodable_values_fail_before_writing(tmp_path):
    target = tmp_path / "nested" / "state.json"
    write_json_atomic(target, {"b": [1, 2.5], "a": None})
    assert read_json(target) == {"a": None, "b": [1, 2.5]}
    assert target.read_text().index('"a"') < target.read_text().index('"b"')
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})
    assert read_json(target) == {"a": None, "b": [1, 2.5]}
    write_json_atomic(target, {"path": tmp_path}, default=str, indent=2, sort_keys=False)
    assert json.loads(target.read_text()) == {"path": str(tmp_path)}


def test_read_json_defaults_for_missing_or_invalid_files(tmp_path):
    assert read_json(tmp_path / "missing.json", {}) == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert read_json(tmp_path / "bad.json", []) == []


def test_write_if_changed_keeps_unchanged_files(tmp_path):
    target = tmp_path / "page.md"
    assert write_if_changed(target, b"one") is True
    before = target.stat().st_mtime_ns
    assert write_if_changed(target, b"one") is False
    assert target.stat().st_mtime_ns == before
    assert write_if_changed(target, b"two") is True and target.read_bytes() == b"two"


def test_project_paths_resolve_against_the_checkout_wherever_the_kernel_starts(monkeypatch, tmp_path):
    from ncutils import data, runs
    from ncutils._io import project_path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)  # as a kernel started in notebooks/ would be elsewhere
    monkeypatch.delenv("NCUTILS_RUNS_DIR", raising=False)
    monkeypatch.delenv("NCUTILS_DATA_DIR", raising=False)
    assert project_path("runs") == repo / "runs"
    assert runs.default_runs_dir() == repo / "runs" and data._default_data_dir() == repo / "data"
    monkeypatch.setenv("NCUTILS_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs.default_runs_dir() == tmp_path / "elsewhere"
