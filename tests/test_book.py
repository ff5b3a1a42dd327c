"""Tests of the book build (ncutils.book.profiles, .execute, .manifest, .cli).

The validation tests work on a tiny fake book in a temporary folder. The build test
copies the working tree to a temporary folder and builds the whole book there on the
smoke profile (twice: the second build must reuse every notebook).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from ncutils.book import chapters, cli, execute, findings, profiles
from ncutils.chapter import Budget, Chapter

REPO = Path(__file__).resolve().parent.parent

#: The standard parameters cell of a chapter notebook: its defaults are in its declaration.
PARAMETERS_CELL = 'profile = "cpu"\noverrides = {}'


def toy_chapter(stem: str) -> Chapter:
    """A declaration for a fake chapter of the tiny test books."""
    return Chapter(stem=stem, title=f"A chapter ({stem})", defaults={"epochs": 3, "lr": 0.1, "dataset": "digits"},
                   findings=(), budget=Budget("toy", 1.0), trains_nothing="a test chapter")


@pytest.fixture
def toy_chapters(monkeypatch):
    """The registry holds only the fake chapters of the tiny test books."""
    monkeypatch.setattr(chapters, "CHAPTERS", [toy_chapter(stem) for stem in ("chap", "first", "second", "third")])


def make_notebook(path: Path, parameters: str = PARAMETERS_CELL,
                  body: str = 'print(overrides.get("epochs", 3))') -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def make_book(root: Path, profile_values: dict | None = None, toc_stems=("chap",)) -> Path:
    make_notebook(root / "notebooks" / "chap.ipynb")
    for profile in profiles.PROFILES:
        values = {"chap": {"epochs": 1}} if profile_values is None else profile_values
        (root / "notebooks" / "profiles").mkdir(parents=True, exist_ok=True)
        (root / "notebooks" / "profiles" / f"{profile}.yaml").write_text(yaml.safe_dump(values))
    toc = {"format": "jb-book", "root": "book/intro",
           "chapters": [{"file": f"book/generated/{stem}"} for stem in toc_stems]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    (root / "ncutils").mkdir(exist_ok=True)
    (root / "ncutils" / "__init__.py").write_text("")
    return root


def test_plan_resolves_parameters_in_toc_order(tmp_path, toy_chapters):
    jobs = profiles.plan(make_book(tmp_path), "smoke")
    assert [job.stem for job in jobs] == ["chap"]
    assert jobs[0].injected == {"profile": "smoke", "overrides": {"epochs": 1}}
    assert jobs[0].parameters == {"profile": "smoke", "epochs": 1, "lr": 0.1, "dataset": "digits"}


def test_key_changes_with_parameters_source_and_profile(tmp_path, toy_chapters):
    root = make_book(tmp_path)
    key = profiles.plan(root, "smoke")[0].key
    assert profiles.plan(root, "smoke")[0].key == key
    assert profiles.plan(root, "cpu")[0].key != key
    (root / "notebooks" / "profiles" / "smoke.yaml").write_text(yaml.safe_dump({"chap": {"epochs": 2}}))
    assert profiles.plan(root, "smoke")[0].key != key
    (root / "notebooks" / "profiles" / "smoke.yaml").write_text(yaml.safe_dump({"chap": {"epochs": 1}}))
    (root / "ncutils" / "extra.py").write_text("x = 1\n")
    assert profiles.plan(root, "smoke")[0].key != key


@pytest.mark.parametrize(
    ("profile_values", "toc", "message"),
    [
        ({"chap": {"epochs": 1, "width": 3}}, ("chap",), "chap: unknown parameter 'width'"),
        ({"chap": {}, "other": {}}, ("chap",), "unknown notebook 'other'"),
        ({}, ("chap",), "notebook 'chap' is missing"),
        ({"chap": {"epochs": "many"}}, ("chap",), "chap: parameter 'epochs' should be like 3"),
        ({"chap": {"lr": True}}, ("chap",), "parameter 'lr'"),
        ({"chap": {"profile": "gpu"}}, ("chap",), "`profile` is given by the book"),
        ({"chap": {}}, (), "_toc.yml: notebook 'chap' is missing"),
        ({"chap": {}}, ("chap", "ghost"), "book/generated/ghost has no notebook"),
    ],
)
def test_invalid_configuration_is_a_clear_error(tmp_path, profile_values, toc, message, toy_chapters):
    root = make_book(tmp_path, profile_values, toc)
    with pytest.raises(ValueError, match=re.escape(message)):
        profiles.plan(root, "smoke")


def test_unknown_profile_is_a_clear_error(tmp_path, capsys, toy_chapters):
    root = make_book(tmp_path)
    with pytest.raises(ValueError, match="unknown profile 'laptop': expected one of smoke, cpu, long, gpu, paper"):
        profiles.plan(root, "laptop")
    assert cli.main(["build", "--profile", "laptop"]) == 2
    assert "unknown profile 'laptop'" in capsys.readouterr().err


def test_run_rejects_unknown_parameters_before_running(capsys):
    assert cli.main(["run", "measuring_collapse", "-p", "no_such_parameter", "1"]) == 2
    assert "unknown parameter 'no_such_parameter'" in capsys.readouterr().err
    assert cli.main(["run", "no_such_chapter"]) == 2
    assert "unknown notebook 'no_such_chapter'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ("overrides = {}", "must assign exactly"),
        ('profile = "cpu"\noverrides = {}\nepochs = 3', "must assign exactly"),
        ('profile = "cpu"\noverrides = dict(epochs=2 * 3)', "must be a literal"),
        ('profile = "cpu"\nprint(1)', "not a plain assignment"),
    ],
)
def test_parameters_cell_holds_only_profile_and_overrides(tmp_path, parameters, message):
    path = tmp_path / "nb.ipynb"
    make_notebook(path, parameters)
    with pytest.raises(ValueError, match=re.escape(message)):
        profiles.notebook_parameters(path)


def test_a_notebook_without_parameters_cell_is_rejected(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), str(path))
    with pytest.raises(ValueError, match="exactly one code cell tagged 'parameters'"):
        profiles.notebook_parameters(path)


def test_a_failing_notebook_stops_the_build_naming_notebook_and_cell(tmp_path, capsys, toy_chapters):
    root = make_book(tmp_path)
    make_notebook(root / "notebooks" / "chap.ipynb", PARAMETERS_CELL,
                  body='value = overrides["epochs"] * 2\nraise RuntimeError(f"boom {value}")')
    with pytest.raises(execute.BuildError) as failure:
        cli.build("smoke", root=root, html=False)
    message = str(failure.value)
    assert "notebooks/chap.ipynb failed in cell 3" in message
    assert 'value = overrides["epochs"] * 2' in message and "RuntimeError: boom 2" in message
    assert not (root / "_build" / "notebooks" / "smoke" / "state.json").read_text().strip("{} \n")


@pytest.mark.parametrize("configured", [True, False])
def test_the_kernel_uses_the_callers_results_store_else_the_projects(tmp_path, monkeypatch, configured, toy_chapters):
    root = make_book(tmp_path / "book")
    seen = tmp_path / "seen.txt"
    make_notebook(root / "notebooks" / "chap.ipynb", PARAMETERS_CELL,
                  body=f"import os, pathlib\npathlib.Path({str(seen)!r}).write_text(os.environ['NCUTILS_RUNS_DIR'])")
    if configured:
        monkeypatch.setenv("NCUTILS_RUNS_DIR", str(tmp_path / "scratch-store"))
    else:
        monkeypatch.delenv("NCUTILS_RUNS_DIR", raising=False)
    cli.build("smoke", root=root, html=False)
    expected = tmp_path / "scratch-store" if configured else root / "runs"
    assert seen.read_text() == str(expected)


def test_notebooks_run_side_by_side_and_a_failure_stops_the_build(tmp_path, monkeypatch, toy_chapters):
    monkeypatch.delenv("NCUTILS_BOOK_WORKERS", raising=False)
    stems = ("first", "second", "third")
    root = make_book(tmp_path / "book", {stem: {} for stem in stems}, toc_stems=stems)
    (root / "notebooks" / "chap.ipynb").unlink()
    spans = tmp_path / "spans"
    spans.mkdir()
    for stem, other in (("first", "second"), ("second", "first"), ("third", "third")):
        # each of the first two waits (up to a minute) for the other to have started
        make_notebook(root / "notebooks" / f"{stem}.ipynb", PARAMETERS_CELL,
                      body=f"import time, pathlib\nspans = pathlib.Path({str(spans)!r})\n"
                           f"(spans / '{stem}.started').touch()\nwaited = time.time()\n"
                           f"while not (spans / '{other}.started').exists() and time.time() - waited < 60:\n"
                           f"    time.sleep(0.1)\n"
                           f"(spans / '{stem}.result').write_text(str((spans / '{other}.started').exists()))")
    manifest = cli.build("smoke", root=root, html=False, workers=2)
    assert [record["notebook"] for record in manifest["notebooks"]] == list(stems)
    assert manifest["workers"] == 2
    # the first two ran at the same time: each saw the other start
    assert (spans / "first.result").read_text() == (spans / "second.result").read_text() == "True"
    make_notebook(root / "notebooks" / "second.ipynb", PARAMETERS_CELL, body='raise RuntimeError("boom")')
    with pytest.raises(execute.BuildError, match="second.ipynb failed"):
        cli.build("smoke", root=root, html=False, workers=2)
    with pytest.raises(ValueError, match="workers"):
        execute.run_jobs(profiles.BookLayout(root), profiles.plan(root, "smoke"), force=True,
                         git={"commit": None}, workers=0)
    monkeypatch.setenv("NCUTILS_BOOK_WORKERS", "x")
    with pytest.raises(ValueError, match="NCUTILS_BOOK_WORKERS"):
        execute.default_workers()


def test_strip_removes_outputs_and_injected_parameters(tmp_path):
    path = tmp_path / "nb.ipynb"
    make_notebook(path)
    notebook = nbformat.read(str(path), as_version=4)
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="3")]
    notebook.cells[2].execution_count = 4
    notebook.cells.insert(2, nbformat.v4.new_code_cell('profile = "gpu"', metadata={"tags": ["injected-parameters"]}))
    nbformat.write(notebook, str(path))
    assert cli.strip_outputs([path]) == [path]
    stripped = nbformat.read(str(path), as_version=4)
    assert [cell.source for cell in stripped.cells] == ["# A chapter", PARAMETERS_CELL, 'print(overrides.get("epochs", 3))']
    assert stripped.cells[2].outputs == [] and stripped.cells[2].execution_count is None
    assert cli.strip_outputs([path]) == []


def test_source_notebooks_are_stored_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(str(path), as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name} has outputs; run `python -m ncutils.book strip`"
                )


def test_the_command_line_runs_as_a_module():
    completed = subprocess.run([sys.executable, "-m", "ncutils.book", "validate"], cwd=REPO,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("ok: ")


def test_text_scoreboard_tells_unrun_findings_from_findings_without_a_chapter(tmp_path, monkeypatch):
    import dataclasses

    # every finding has a chapter now: declare one without it to see the other placeholder
    from ncutils.chapter import Finding

    claim = findings.FINDINGS["R1"].claim
    registry = [dataclasses.replace(chapter, findings=tuple(f for f in chapter.findings if f.id != "R1"))
                for chapter in chapters.CHAPTERS]
    monkeypatch.setattr(chapters, "CHAPTERS", registry)
    monkeypatch.setattr(chapters, "UNTESTED", [Finding("R1", "rangamani2023", claim)])
    lines = {line.split()[0]: line for line in cli.scoreboard_text(tmp_path).splitlines()[1:]}
    assert lines["R1"].count("no chapter yet") == len(profiles.PROFILES)
    assert lines["P1"].count("not yet run") == len(profiles.PROFILES)


def test_every_profile_of_the_repository_is_valid():
    jobs = profiles.validate(REPO)
    assert set(jobs) == set(profiles.PROFILES)
    assert len({len(profile_jobs) for profile_jobs in jobs.values()}) == 1


# --------------------------------------------------------------------------- the whole book

# The smoke build of the whole book is the session fixture ``built_book`` of tests/conftest.py,
# shared with tests/test_browser.py.


@pytest.mark.slow
def test_every_notebook_executed_without_error(built_book):
    root, first, _ = built_book
    stems = profiles.toc_chapters(root)
    assert stems, "the book has no chapters"
    for stem in stems:
        assert f"{stem} (smoke): done in" in first.stdout
        notebook = nbformat.read(str(root / "book" / "generated" / f"{stem}.ipynb"), as_version=4)
        assert notebook.metadata["papermill"]["exception"] in (None, False)
        errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
                  if output.output_type == "error"]
        assert not errors, f"{stem}: {errors[0]['ename']}: {errors[0]['evalue']}"


@pytest.mark.slow
def test_second_build_reuses_every_notebook(built_book):
    root, _, second = built_book
    for stem in profiles.toc_chapters(root):
        assert f"{stem} (smoke): unchanged" in second.stdout
    assert "running ..." not in second.stdout


@pytest.mark.slow
def test_every_page_of_the_toc_exists_as_html(built_book):
    root, _, _ = built_book
    for page in profiles.toc_pages(root):
        assert (root / "_build" / "html" / f"{page}.html").exists(), page


@pytest.mark.slow
def test_every_chapter_page_has_its_figures_and_verdicts(built_book):
    root, _, _ = built_book
    for stem in profiles.toc_chapters(root):
        notebook = nbformat.read(str(root / "book" / "generated" / f"{stem}.ipynb"), as_version=4)
        # plots.figure_html: a figure is stored as HTML (image, numbered caption, provenance)
        figures = sum("image/png" in output.get("data", {}) or 'class="nc-figure"' in output.get("data", {}).get("text/html", "")
                      for cell in notebook.cells for output in cell.get("outputs", []))
        page = (root / "_build" / "html" / "book" / "generated" / f"{stem}.html").read_text()
        assert figures >= 1, f"{stem} produced no figure"
        assert page.count("<img") >= figures, f"{stem}: figures missing from the page"
        assert re.search(r'class="nc-verdict nc-(pass|fail|inconclusive)"', page), f"{stem}: no verdict on the page"
        assert "notebooks/" + stem + ".ipynb" in page, f"{stem}: launch links do not point at the source notebook"
        assert "Setup for Colab" not in page, f"{stem}: the setup cell is not hidden"


@pytest.mark.slow
def test_scoreboard_lists_every_finding_and_the_manifest_every_chapter(built_book):
    root, _, _ = built_book
    scoreboard = (root / "_build" / "html" / "book" / "scoreboard.html").read_text()
    for finding_id in findings.FINDINGS:
        assert re.search(rf'<tr data-id="{finding_id}">', scoreboard), finding_id
        assert f'id="scoreboard-{finding_id.lower()}"' in scoreboard, finding_id  # its criteria below
    without_chapter = [f.id for f in findings.FINDINGS.values() if f.chapter is None]
    assert scoreboard.count("no chapter yet") >= len(without_chapter) * len(profiles.PROFILES)
    recorded = findings.load(root / "_build" / "findings.json")["profiles"]["smoke"]
    assert recorded["findings"] or recorded["checks"]
    reproducibility = (root / "_build" / "html" / "book" / "reproducibility.html").read_text()
    for stem in profiles.toc_chapters(root):
        assert stem in reproducibility


TOY_MODULE = '''"""A toy paper with one chapter: what CONTRIBUTING's "Adding a chapter" asks, and nothing more."""

from ncutils.chapter import Budget, Chapter, Criterion, Finding


def validate_parameters(parameters):
    return [] if parameters["draws"] >= 2 else [f"draws must be >= 2, got {parameters['draws']}"]


CHAPTER = Chapter(
    stem="toy_claim",
    title="T1 · A toy claim",
    defaults={"draws": 200, "seed": 0},
    findings=(Finding("T1", "toy2026", "Coins are fair.", criteria=(
        Criterion("2026-12-06", "the share of heads lies within {tolerance} of one half", {"tolerance": 0.2}),)),),
    budget=Budget("Toy T1", 5.0),
    validate=validate_parameters,
    trains_nothing="draws coins",
    scale=lambda parameters: f"{parameters['draws']} coin draws",
    paper_setting="an infinite number of draws",
)
'''

TOY_CELLS = [
    ("markdown", "# T1 · A toy claim\n\n```{glue} T1_box\n```"),
    ("code", 'profile = "cpu"\noverrides = {}'),
    ("code", "import random\n\nfrom ncutils.book import findings\nfrom ncutils.papers import toy\n\n"
             "parameters = toy.CHAPTER.resolve(overrides, profile=profile)\n"
             "criterion = toy.CHAPTER.finding('T1').criterion\n"
             "rng = random.Random(parameters.seed)\n"
             "share = sum(rng.random() < 0.5 for _ in range(parameters.draws)) / parameters.draws\n"
             "findings.record('T1', 'Coins are fair.', share, criterion.render(),\n"
             "                abs(share - 0.5) <= criterion['tolerance'], parameters=parameters)"),
]


@pytest.mark.slow
def test_a_chapter_added_the_documented_way_runs_on_smoke(tmp_path):
    """CONTRIBUTING's five steps (declaration, registry line, notebook, profile entries, toc line)."""
    from conftest import _ignore

    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=_ignore)
    (root / "ncutils" / "papers" / "toy.py").write_text(TOY_MODULE)
    registry = root / "ncutils" / "book" / "chapters.py"
    source = registry.read_text()
    source = source.replace("from ncutils.papers import ", "from ncutils.papers import toy, ", 1)
    registry.write_text(source.replace("    garrod.CHAPTER,\n", "    garrod.CHAPTER,\n    toy.CHAPTER,\n", 1))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
                      for kind, text in TOY_CELLS]
    notebook.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(notebook, str(root / "notebooks" / "toy_claim.ipynb"))
    for path in (root / "notebooks" / "profiles").glob("*.yaml"):
        path.write_text(path.read_text() + ("toy_claim: {draws: 50}\n" if path.stem == "smoke" else "toy_claim: {}\n"))
    toc = root / "_toc.yml"
    toc.write_text(toc.read_text().replace("      - file: book/scoreboard",
                                           "      - file: book/generated/toy_claim\n      - file: book/scoreboard"))
    environment = {**os.environ, "PYTHONPATH": str(root), "NCUTILS_RUNS_DIR": str(tmp_path / "runs")}
    environment.pop("NC_FINDINGS_FILE", None)

    def book(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ncutils.book", *arguments], cwd=root, env=environment,
                              capture_output=True, text=True, timeout=600)

    validated = book("validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    refused = book("run", "toy_claim", "--profile", "smoke", "-p", "draws", "1", "--dry-run")
    assert refused.returncode == 2 and "draws must be >= 2, got 1" in refused.stderr
    ran = book("run", "toy_claim", "--profile", "smoke")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    records = [json.loads(path.read_text()) for path in (root / "_build" / "custom").glob("*.findings.json")]
    (entry,) = [section["findings"]["T1"] for record in records for section in record["profiles"].values()]
    assert entry["scale"] == "50 coin draws" and entry["paper_setting"] == "an infinite number of draws"
    assert entry["criterion"] == "the share of heads lies within 0.2 of one half"


def test_the_page_removes_plumbing_and_folds_code():
    """The executed copy the website renders: parameters removed, the resolving cell's input
    removed, every other code cell folded; the source notebooks keep no such tags."""
    from ncutils.book import page_cells

    cells = [nbformat.v4.new_code_cell('profile = "cpu"\noverrides = {}', metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell('overrides = {"epochs": 1}', metadata={"tags": ["injected-parameters"]}),
             nbformat.v4.new_code_cell("parameters = toy.CHAPTER.resolve(overrides, profile=profile)"),
             nbformat.v4.new_code_cell("plots.figure(table)"),
             nbformat.v4.new_code_cell("import sys", metadata={"tags": ["remove-cell"]}),
             nbformat.v4.new_markdown_cell("# A chapter")]
    raw = nbformat.writes(nbformat.v4.new_notebook(cells=cells)).encode()
    page = nbformat.reads(page_cells.page_notebook(raw).decode(), as_version=4)
    assert [cell.metadata.get("tags", []) for cell in page.cells] == [
        ["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], ["remove-input"], ["hide-input"],
        ["remove-cell"], []]
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            assert "hide-input" not in cell.metadata.get("tags", []), path.stem
