"""The chapters' hidden setup cell (issue 16): installs the package on Colab, does nothing where
``ncutils`` imports. Tested offline: pip is never actually called."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncutils.book import cli, setup_cell

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture
def pip_calls(monkeypatch):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    return calls


def _run_cell(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<setup cell>", "exec"), namespace)
    return namespace


def _without_ncutils(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "ncutils" else real(name, *args))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_every_chapter_has_the_current_hidden_setup_cell(path):
    assert setup_cell.stale_setup_cells(REPO, [path]) == []


def test_the_repository_url_lives_in_config_only():
    url, branch = setup_cell.repository(REPO)
    assert url in setup_cell.setup_source(REPO) and f'"{branch}"' in setup_cell.setup_source(REPO)
    assert url not in setup_cell._TEMPLATE


def test_the_cell_does_nothing_where_ncutils_imports(pip_calls, capsys):
    namespace = _run_cell(setup_cell.setup_source(REPO))
    assert pip_calls == [] and capsys.readouterr().out == ""
    assert "checkout" not in namespace


def test_the_cell_installs_from_the_repository_on_colab(pip_calls, monkeypatch, tmp_path):
    _without_ncutils(monkeypatch)
    monkeypatch.chdir(tmp_path)  # /content on Colab: no checkout around
    _run_cell(setup_cell.setup_source(REPO))
    url, branch = setup_cell.repository(REPO)
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "--quiet",
                          f"nc-companion[book] @ git+{url}@{branch}"]]


def test_the_cell_installs_the_checkout_it_sits_in(pip_calls, monkeypatch):
    _without_ncutils(monkeypatch)
    monkeypatch.chdir(REPO / "notebooks")  # Jupyter started in notebooks/ with a bare kernel
    monkeypatch.setattr(sys, "path", list(sys.path))
    _run_cell(setup_cell.setup_source(REPO))
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "--quiet", f"{REPO}[book]"]]
    assert sys.path[0] == str(REPO)


def test_setup_cells_command_writes_and_checks(tmp_path, capsys):
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    notebook = tmp_path / "chapter.ipynb"
    shutil.copy(REPO / "notebooks" / "measuring_collapse.ipynb", notebook)
    cells = json.loads(notebook.read_text())
    cells["cells"] = [cell for cell in cells["cells"] if cell.get("id") != setup_cell.CELL_ID]
    notebook.write_text(json.dumps(cells, indent=1, ensure_ascii=False) + "\n")
    assert setup_cell.stale_setup_cells(tmp_path, [notebook])
    assert setup_cell.insert_setup_cell(notebook, setup_cell.setup_source(tmp_path))
    assert not setup_cell.insert_setup_cell(notebook, setup_cell.setup_source(tmp_path))  # idempotent
    assert setup_cell.stale_setup_cells(tmp_path, [notebook]) == []
    written = json.loads(notebook.read_text())["cells"]
    index = next(i for i, cell in enumerate(written) if cell.get("id") == setup_cell.CELL_ID)
    assert "parameters" in written[index + 1]["metadata"]["tags"]
    assert written[index]["outputs"] == [] and written[index]["metadata"]["tags"] == ["remove-cell"]
    # a new URL in _config.yml makes the cell stale until the command runs again
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace("github.com/nc-companion/nc-companion", "example.org/fork/nc"))
    assert setup_cell.stale_setup_cells(tmp_path, [notebook])
    assert cli.main(["setup-cells", "--check", str(REPO / "notebooks" / "measuring_collapse.ipynb")]) == 0
