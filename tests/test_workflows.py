"""Tests of the GitHub workflows (``.github/``), offline: they parse, match GitHub's schema,
pass a static security audit (zizmor), and call only ``make`` targets and ``python -m
ncutils...`` commands that exist; the dispatch inputs are checked by the book's own code."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ncutils import runs_cli
from ncutils.book import cli as book_cli
from ncutils.book.execute import run_notebook
from ncutils.book.profiles import available_profiles

REPO = Path(__file__).resolve().parent.parent
GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
#: the command line of each module that the workflows run with ``python -m``
MAINS = {"ncutils.book": book_cli.main, "ncutils.runs": runs_cli.main}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True


def _steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def _scripts() -> list[tuple[str, str]]:
    """Every ``run:`` script, continuation lines joined, with its workflow's name."""
    found = []
    for path in WORKFLOWS:
        for _, step in _steps(_load(path)):
            if "run" in step:
                found.append((path.name, step["run"].replace("\\\n", " ")))
    return found


def _tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: it is in the dev extra (pip install -e '.[dev]')")
    return found


def test_the_workflows_exist():
    assert [path.name for path in WORKFLOWS] == ["dispatch.yml", "pages.yml", "test.yml"]
    assert not list((GITHUB / "workflows").glob("*.yaml"))
    triggers = {path.name: set(_triggers(_load(path))) for path in WORKFLOWS}
    assert triggers == {"test.yml": {"pull_request"}, "pages.yml": {"push", "workflow_dispatch"},
                        "dispatch.yml": {"workflow_dispatch"}}
    assert _triggers(_load(GITHUB / "workflows" / "pages.yml"))["push"] == {"branches": ["main"]}


def test_workflows_match_githubs_schemas():
    checker = _tool("check-jsonschema")
    for schema, files in (("vendor.github-workflows", WORKFLOWS), ("vendor.dependabot", [GITHUB / "dependabot.yml"])):
        completed = subprocess.run([checker, "--builtin-schema", schema, *map(str, files)],
                                   capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_zizmor_finds_nothing():
    completed = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--persona=pedantic", str(GITHUB)],
                               capture_output=True, text=True, timeout=120, cwd=REPO)
    assert completed.returncode == 0, completed.stdout + completed.stderr


# --------------------------------------------------------------------------- security, by hand too


def test_actions_are_pinned_to_commits_with_their_version():
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", "\n".join(p.read_text() for p in WORKFLOWS), re.M)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), (action, comment)


def test_no_expression_is_interpolated_into_a_script():
    for name, script in _scripts():
        assert "${{" not in script, f"{name}: pass values to scripts through env:, not ${{{{ }}}}\n{script}"


def test_permissions_are_minimal():
    for path in WORKFLOWS:
        workflow = _load(path)
        assert workflow.get("permissions") in ({}, {"contents": "read"}), path.name
        for job_name, job in workflow["jobs"].items():
            granted = job.get("permissions", workflow["permissions"])
            writes = {scope for scope, level in granted.items() if level == "write"}
            if (path.name, job_name) == ("pages.yml", "deploy"):
                assert granted == {"pages": "write", "id-token": "write"}
            else:
                assert not writes and set(granted) <= {"contents"}, (path.name, job_name, granted)


def test_jobs_have_time_limits_and_newer_runs_cancel_older_ones():
    for path in WORKFLOWS:
        workflow = _load(path)
        assert workflow["concurrency"]["cancel-in-progress"] is True
        assert "github.ref" in workflow["concurrency"]["group"]
        for job_name, job in workflow["jobs"].items():
            assert "timeout-minutes" in job, (path.name, job_name)
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


# --------------------------------------------------------------------------- what the scripts call


def _make_targets() -> set[str]:
    makefile = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile, re.M))


def test_make_targets_exist():
    called = {(name, target) for name, script in _scripts() for target in re.findall(r"\bmake\s+([A-Za-z][\w-]*)", script)}
    assert {target for _, target in called} >= {"test", "book", "venv"}
    missing = {pair for pair in called if pair[1] not in _make_targets()}
    assert not missing
    makefile = (REPO / "Makefile").read_text()
    for name, script in _scripts():
        for variable in re.findall(r"\bmake\s+[A-Za-z][\w-]*\s+([A-Z_]+)=", script):
            assert re.search(rf"^{variable}\s*\??=", makefile, re.M), (name, variable)


def _help(module: str, command: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as stopped:
        MAINS[module]([command, "--help"])
    assert stopped.value.code == 0, f"python -m {module} {command}: no such command"
    return output.getvalue()


def test_ncutils_commands_exist():
    called = []
    for name, script in _scripts():
        for line in script.splitlines():
            for module, command, rest in re.findall(r"python -m (ncutils[\w.]*)\s+([a-z][\w-]*)([^|;&>]*)", line):
                called.append((name, module, command, re.findall(r"(?<!\S)(--?[A-Za-z][\w-]*)", rest)))
    assert {(module, command) for _, module, command, _ in called} >= {
        ("ncutils.runs", "key"), ("ncutils.book", "scoreboard"), ("ncutils.book", "run"), ("ncutils.book", "validate")}
    for name, module, command, options in called:
        assert module in MAINS, f"{name}: python -m {module} is not a command line of the package"
        text = _help(module, command)
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (name, module, command, option)


def test_dispatch_profile_choices_are_the_profiles_on_disk():
    inputs = _triggers(_load(GITHUB / "workflows" / "dispatch.yml"))["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"profile", "chapter", "overrides", "runner"}
    assert inputs["profile"]["type"] == "choice"
    assert sorted(inputs["profile"]["options"]) == available_profiles(REPO)
    assert inputs["profile"]["default"] in inputs["profile"]["options"]
    assert json.loads(inputs["runner"]["default"]) == ["ubuntu-latest"]
    assert not inputs["chapter"].get("required") and not inputs["overrides"].get("required")


def test_dispatch_checks_its_inputs_before_building():
    steps = [step for _, step in _steps(_load(GITHUB / "workflows" / "dispatch.yml"))]
    names = [step.get("name", "") for step in steps]
    check = next(index for index, step in enumerate(steps) if "--dry-run" in step.get("run", ""))
    build = names.index("Build")
    assert check < build
    # the build runs what was checked: the same command without --dry-run
    checked = re.search(r"xargs (.*) --dry-run", steps[check]["run"]).group(1)
    assert checked in steps[build]["run"]
    assert "make book PROFILE=\"$PROFILE\"" in steps[build]["run"]


# --------------------------------------------------------------------------- the book CLI's flags


def test_dry_run_checks_as_run_does(capsys):
    assert book_cli.main(["run", "parker_p1_depth", "--profile", "cpu", "-p", "lr", "0.1",
                          "-p", "datasets", "[digits]", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("ok: parker_p1_depth on profile cpu with datasets=['digits'], lr=0.1")
    for overrides in ([("lrr", "0.1")], [("lr", "fast")], [("lr", "-1")]):
        with pytest.raises(ValueError) as checked:
            book_cli.check_run("parker_p1_depth", overrides, profile="cpu", root=REPO)
        with pytest.raises(ValueError) as ran:  # run refuses them before its kernel starts
            run_notebook("parker_p1_depth", overrides, profile="cpu", root=REPO)
        assert str(checked.value) == str(ran.value)
        args = ["run", "parker_p1_depth", "--dry-run"] + [item for pair in overrides for item in ("-p", *pair)]
        assert book_cli.main(args) == 2
    assert book_cli.main(["run", "nope", "--dry-run"]) == 2
    assert "unknown notebook 'nope'" in capsys.readouterr().err


def test_scoreboard_markdown_shows_the_build_times(tmp_path):
    assert "| P1 | not yet run |" in book_cli.scoreboard_markdown(tmp_path)
    (tmp_path / "_build").mkdir()
    manifest = {"profile": "cpu", "built_at": "2026-12-01T10:00:00+00:00", "notebook_seconds_this_build": 12.3,
                "html_seconds": 4.0, "build_seconds": 17.0,
                "notebooks": [{"notebook": "parker_p1_depth", "status": "ran", "seconds": 12.34},
                              {"notebook": "measuring_collapse", "status": "cached", "seconds": 3.0}]}
    (tmp_path / "_build" / "manifest.json").write_text(json.dumps(manifest))
    text = book_cli.scoreboard_markdown(tmp_path)
    assert text.startswith("## Scoreboard\n")
    assert "| parker_p1_depth | ran | 12.3 |" in text and "| measuring_collapse | cached | 3.0 |" in text
    assert "whole build: 17.0 s" in text


# --------------------------------------------------------------------------- dependabot and the README


def test_dependabot_updates_actions_and_pip_with_jupyter_book_below_2():
    updates = {update["package-ecosystem"]: update for update in _load(GITHUB / "dependabot.yml")["updates"]}
    assert set(updates) == {"github-actions", "pip"}
    assert {"dependency-name": "jupyter-book", "versions": [">=2"]} in updates["pip"]["ignore"]
    assert re.search(r'"jupyter-book[^"]*<2"', (REPO / "pyproject.toml").read_text())


def test_readme_says_what_each_workflow_does_and_how_to_publish():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Publish your own runs", 1)[1]
    for path in WORKFLOWS:
        assert f"`{path.name}`" in section
    for words in ("fork", "GitHub Actions", "self-hosted", "runner", "python -m ncutils.runs key"):
        assert words in section
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "make book" in ci and "make test" in readme and "make book" in readme
