"""Tests of result bundles (ncutils.book.bundles): export, checks, staleness, safe rendering.

Every test works on a tiny fake book whose build is written by hand (no kernel starts): a
chapter ``chap`` testing a finding ``T1`` and importing ``ncutils.toy`` of the fake package.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from ncutils.book import bundles, chapters, profiles, scoreboard
from ncutils.chapter import Budget, Chapter, Criterion, Finding
from test_book import PARAMETERS_CELL, make_book

COMMIT = "a1b2c3d" + "0" * 33
#: A 1x1 PNG.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d4944415478da63f8cf"
    "c0f01f0005000201a5f6d8e90000000049454e44ae426082")).decode()
TOY = '"""A toy module."""\n\n\ndef share(values):\n    return sum(values) / len(values)\n'
TITLE = "# A chapter\n\n```{glue} T1_box\n```"


@pytest.fixture
def toy_book(tmp_path, monkeypatch):
    """A fake book with one chapter and a hand-written gpu build of it."""
    finding = Finding("T1", "toy2026", "Coins are fair.", criteria=(
        Criterion("2026-12-06", "the share lies within {tolerance} of one half", {"tolerance": 0.2}),))
    chapter = Chapter(stem="chap", title="T1 · toy", defaults={"epochs": 3, "lr": 0.1, "dataset": "digits"},
                      findings=(finding,), budget=Budget("toy", 1.0), trains_nothing="a test chapter")
    monkeypatch.setattr(chapters, "CHAPTERS", [chapter])
    root = make_book(tmp_path / "repo")
    (root / "ncutils" / "toy.py").write_text(TOY)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(TITLE),
                      nbformat.v4.new_code_cell(PARAMETERS_CELL, metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("from ncutils import toy\n\nprint(toy.share([1, 0]))")]
    nbformat.write(notebook, str(root / "notebooks" / "chap.ipynb"))
    fake_build(root, "gpu")
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _glue(name: str, data: dict) -> dict:
    prefix = "application/papermill.record/"
    return nbformat.v4.new_output("display_data", data={prefix + mime: value for mime, value in data.items()},
                                  metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})


def fake_build(root: Path, profile: str, outputs: list | None = None) -> None:
    """What ``build --profile <profile>`` leaves in ``_build/`` for the fake chapter."""
    layout = profiles.BookLayout(root)
    (job,) = profiles.validate(root)[profile]
    cache = layout.profile_cache(profile)
    cache.mkdir(parents=True, exist_ok=True)
    executed = nbformat.read(str(root / "notebooks" / "chap.ipynb"), as_version=4)
    executed.cells[2].outputs = outputs if outputs is not None else [
        nbformat.v4.new_output("stream", name="stdout", text="0.5\n"),
        _glue("T1_box", {"text/html": '<div class="verdict-box">T1: reproduced</div>', "text/plain": "T1: reproduced"}),
        nbformat.v4.new_output("display_data", data={
            "text/html": f'<figure class="nc-figure" id="nc-figure-1"><img src="data:image/png;base64,{PNG}" '
                         'width="1" height="1" alt="a dot"><figcaption><span class="nc-figure-number">Figure 1.'
                         '</span> Heads and tails.</figcaption></figure>',
            "text/plain": "<IPython.core.display.HTML object>"}),
    ]
    nbformat.write(executed, str(cache / "chap.ipynb"))
    record = {"id": "T1", "claim": "Coins are fair.", "value": 0.5, "criterion": "the share lies within 0.2 of one half",
              "verdict": "reproduced", "reason": None, "tested": None, "runs": None, "scale": "2 draws",
              "provenance": {"profile": profile, "notebook": "chap", "git_commit": COMMIT, "git_dirty": False,
                             "seed": 0, "device": "cuda", "parameters": job.parameters}}
    content = {"schema": 1, "profiles": {profile: {"findings": {"T1": record}, "checks": {}, "amendments": {}}}}
    (cache / "chap.findings.json").write_text(json.dumps(content))
    state = {"chap": {"key": job.key, "seconds": 1.0, "cpu_seconds": 1.0, "finished_at": "2026-12-01T09:30:00+00:00",
                      "parameters": job.parameters, "git_commit": COMMIT, "has_findings": True,
                      "notebook_sha256": _sha(cache / "chap.ipynb"), "findings_sha256": _sha(cache / "chap.findings.json")}}
    (cache / "state.json").write_text(json.dumps(state))
    manifest = {"profile": profile, "built_at": "2026-12-01T09:31:00+00:00",
                "git": {"commit": COMMIT, "dirty": False, "changed": [], "branch": "main"},
                "environment": {"python": "3.11", "platform": "Linux", "packages": {"torch": "2.14.1"}},
                "hardware": {"cuda": {"device": "cuda:0", "name": "NVIDIA H100", "cpu_count": 16,
                                      "torch_threads": 16, "cuda_available": True}},
                "notebooks": []}
    (layout.build / "manifest.json").write_text(json.dumps(manifest))
    layout.generated.mkdir(parents=True, exist_ok=True)
    (layout.generated / "chap.ipynb").write_bytes((cache / "chap.ipynb").read_bytes())


def merge(root: Path, capsys=None) -> tuple[list, str, str]:
    """What ``build`` does with the bundles: (bundles, the scoreboard, the console's stderr)."""
    layout = profiles.BookLayout(root)
    merged, toc = bundles.publish(layout, profiles.validate(root))
    board = scoreboard.scoreboard_markdown({"schema": 1, "profiles": {}}, profiles.PROFILES, bundles=merged)
    err = capsys.readouterr().err if capsys is not None else ""
    return merged, board, err


def _gpu_cell(board: str) -> str:
    row = board.split('<tr data-id="T1">', 1)[1].split("</tr>", 1)[0]
    return row.split('data-profile="gpu" data-kind="bundle"', 1)[1].split("</td>", 1)[0]


def test_export_then_merge_shows_the_bundles_column_and_pages(toy_book, capsys):
    path = bundles.export("gpu", root=toy_book, machine="a lab box")
    assert path == toy_book / "results" / "gpu"
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert files == ["SHA256SUMS", "figures/chap/figure-1.png", "findings.json", "manifest.json", "notebooks/chap.ipynb"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["git"] == {"commit": COMMIT, "dirty": False, "branch": "main"}
    assert manifest["devices"] == ["NVIDIA H100"] and manifest["machine"] == "a lab box"
    assert manifest["chapters"]["chap"]["modules"] == ["ncutils", "ncutils.toy"]
    assert manifest["environment"]["packages"] == {"torch": "2.14.1"}

    merged, board, err = merge(toy_book, capsys)
    assert [bundle.profile for bundle in merged] == ["gpu"] and not err
    assert '<th scope="col">gpu</th>' in board
    cell = _gpu_cell(board)
    assert "nc-badge nc-pass" in cell and "reproduced" in cell
    assert f"commit {COMMIT[:7]}, a lab box, NVIDIA H100, 2026-12-01" in cell
    assert 'href="generated/bundles/gpu/chap.html"' in cell
    generated = toy_book / "book" / "generated"
    chapter = nbformat.read(str(generated / "chap.ipynb"), as_version=4)
    box = chapter.cells[1]
    assert "nc-bundles" in box.metadata["tags"] and 'href="bundles/gpu/chap.html"' in box.source
    assert '<span class="nc-badge nc-pass">T1: reproduced</span> <span class="nc-bundle-value">(0.5)</span>' in box.source
    toc = yaml.safe_load((toy_book / "_build" / "toc.yml").read_text())
    assert toc["parts"][-1] == {"caption": "Results of other builds", "chapters": [
        {"file": "book/generated/bundles/gpu/index", "sections": [{"file": "book/generated/bundles/gpu/chap"}]}]}
    assert (generated / "bundles" / "gpu" / "chap.ipynb").exists()
    # the bundle gone, its pages, box and toc go too
    import shutil

    shutil.rmtree(path)
    merged, board, _ = merge(toy_book)
    assert merged == [] and 'data-kind="bundle"' not in board
    assert not (generated / "bundles").exists() and not (toy_book / "_build" / "toc.yml").exists()
    assert all("nc-bundles" not in cell.metadata.get("tags", [])
               for cell in nbformat.read(str(generated / "chap.ipynb"), as_version=4).cells)


def _rewrite_checksums(path: Path) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != bundles.CHECKSUMS)
    (path / bundles.CHECKSUMS).write_text("".join(f"{_sha(p)}  {p.relative_to(path).as_posix()}\n" for p in files))


@pytest.mark.parametrize(("damage", "reason"), [
    ("byte", "notebooks/chap.ipynb does not match its checksum in SHA256SUMS"),
    ("extra", "notes.txt is not listed in SHA256SUMS"),
    ("missing", "findings.json is listed in SHA256SUMS but missing"),
    ("schema", "manifest.json: schema 'ncutils-bundle/0', expected 'ncutils-bundle/1'"),
    ("verdict", "findings.json: findings 'T1': unknown verdict 'proven'"),
])
def test_a_tampered_or_malformed_bundle_is_refused_with_a_reason(toy_book, capsys, damage, reason):
    path = bundles.export("gpu", root=toy_book)
    if damage == "byte":
        notebook = path / "notebooks" / "chap.ipynb"
        data = bytearray(notebook.read_bytes())
        data[len(data) // 2] ^= 1
        notebook.write_bytes(bytes(data))
    elif damage == "extra":
        (path / "notes.txt").write_text("hello")
    elif damage == "missing":
        (path / "findings.json").unlink()
    elif damage == "schema":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["schema"] = "ncutils-bundle/0"
        (path / "manifest.json").write_text(json.dumps(manifest))
        _rewrite_checksums(path)
    else:
        content = json.loads((path / "findings.json").read_text())
        content["profiles"]["gpu"]["findings"]["T1"]["verdict"] = "proven"
        (path / "findings.json").write_text(json.dumps(content))
        _rewrite_checksums(path)
    merged, board, err = merge(toy_book, capsys)
    assert merged == [] and 'data-kind="bundle"' not in board
    (line,) = err.strip().splitlines()
    assert line == f"warning: bundle results/gpu refused: {reason}"
    assert not (toy_book / "_build" / "toc.yml").exists()


def test_a_bundle_in_a_folder_of_another_profile_is_refused(toy_book, capsys):
    bundles.export("gpu", root=toy_book, output=toy_book / "results" / "paper")
    merged, _, err = merge(toy_book, capsys)
    assert merged == [] and "results/paper refused: manifest.json: profile 'gpu' in the folder of profile 'paper'" in err


def test_a_bundle_whose_digest_differs_is_shown_as_stale(toy_book, capsys):
    bundles.export("gpu", root=toy_book)
    toy = toy_book / "ncutils" / "toy.py"
    toy.write_text(TOY.replace('"""A toy module."""', '"""A toy module, documented better."""\n# a comment'))
    merged, board, _ = merge(toy_book)
    assert not merged[0].chapters["chap"].stale  # docstrings and comments are not code
    (toy_book / "ncutils" / "unrelated.py").write_text("x = 2\n")
    merged, board, _ = merge(toy_book)
    assert not merged[0].chapters["chap"].stale  # a module the chapter never imports

    toy.write_text(TOY.replace("sum(values) / len(values)", "sum(values) / max(len(values), 1)"))
    merged, board, _ = merge(toy_book)
    status = merged[0].chapters["chap"]
    assert status.stale and status.label == f"stale (built at {COMMIT[:7]})"
    cell = _gpu_cell(board)
    assert f"stale (built at {COMMIT[:7]})" in cell and "nc-badge nc-stale" in cell
    assert "nc-pass" not in cell  # never shown as a fresh verdict
    assert "its verdict then: reproduced (0.5)" in cell and "the code it depends on changed since" in cell
    box = nbformat.read(str(toy_book / "book" / "generated" / "chap.ipynb"), as_version=4).cells[1].source
    assert f"stale (built at {COMMIT[:7]})" in box and "nc-pass" not in box

    toy.write_text(TOY)
    (toy_book / "notebooks" / "profiles" / "gpu.yaml").write_text(yaml.safe_dump({"chap": {"epochs": 5}}))
    merged, _, _ = merge(toy_book)
    assert merged[0].chapters["chap"].reason == "its parameters at profile gpu changed since"


def test_export_refuses_results_older_than_the_code(toy_book):
    (toy_book / "ncutils" / "toy.py").write_text(TOY + "\nX = 1\n")
    with pytest.raises(bundles.BundleError, match="chap .gpu. predate a change"):
        bundles.export("gpu", root=toy_book)
    with pytest.raises(bundles.BundleError, match="chap has not run at profile paper"):
        bundles.export("paper", root=toy_book)


def test_a_bundles_notebook_is_rendered_without_script_html_or_javascript(toy_book):
    script = "<script>alert('x')</script>"
    fake_build(toy_book, "gpu", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": f"<b>hi</b>{script}", "text/plain": "hi"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "alert('x')"}),
        nbformat.v4.new_output("execute_result", data={"text/html": script, "text/markdown": "<img onerror=x>",
                                                       "text/plain": "<IPython.core.display.HTML object>"},
                               execution_count=3),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": f"<svg>{script}</svg>"}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg><rect/></svg>", "image/png": PNG}),
        _glue("T1_box", {"text/html": script, "text/plain": "T1: reproduced"}),
        _glue("T1_verdict", {"text/markdown": f"**reproduced**{script}", "text/plain": "reproduced"}),
    ])
    # a Markdown cell that today's notebook does not have, with raw HTML
    cache = profiles.BookLayout(toy_book).profile_cache("gpu")
    executed = nbformat.read(str(cache / "chap.ipynb"), as_version=4)
    executed.cells.append(nbformat.v4.new_markdown_cell(f"Look: {script}\n```{{raw}} html\n{script}\n```"))
    executed.metadata["mystnb"] = {"render_markdown_format": "myst"}
    nbformat.write(executed, str(cache / "chap.ipynb"))
    state = json.loads((cache / "state.json").read_text())
    state["chap"]["notebook_sha256"] = _sha(cache / "chap.ipynb")
    (cache / "state.json").write_text(json.dumps(state))
    bundles.export("gpu", root=toy_book)
    merge(toy_book)

    page = toy_book / "book" / "generated" / "bundles" / "gpu" / "chap.ipynb"
    rendered = nbformat.read(str(page), as_version=4)
    text = json.dumps([cell.get("outputs", []) for cell in rendered.cells])
    assert "<script" not in text and "javascript" not in text and "onerror" not in text
    assert set(rendered.metadata) == {"kernelspec", "language_info"}
    outputs = rendered.cells[2].outputs
    kinds = [sorted(output.get("data", {})) for output in outputs]
    prefix = "application/papermill.record/"
    assert kinds == [["text/plain"], ["text/plain"], ["text/plain"], ["text/plain"], ["image/png", "image/svg+xml"],
                     [prefix + "text/html", prefix + "text/plain"], [prefix + "text/markdown", prefix + "text/plain"]]
    assert outputs[0].data["text/plain"] == "hi"
    assert outputs[2].data["text/plain"] == bundles.REMOVED_NOTE
    # the book's own glued values, made again from the bundle's findings
    assert 'class="verdict-box nc-pass" data-id="T1"' in outputs[5].data[prefix + "text/html"]
    assert outputs[6].data[prefix + "text/markdown"] == "**reproduced**"
    markdown = [cell.source for cell in rendered.cells if cell.cell_type == "markdown"]
    assert markdown[0] == TITLE  # today's own text (its glue key is in the bundle)
    assert markdown[1].startswith("````text\nLook: <script>") and markdown[1].endswith("\n````")


def test_a_figure_stored_as_html_keeps_its_image_and_caption(toy_book):
    bundles.export("gpu", root=toy_book)
    merge(toy_book)
    rendered = nbformat.read(str(toy_book / "book" / "generated" / "bundles" / "gpu" / "chap.ipynb"), as_version=4)
    outputs = rendered.cells[2].outputs
    assert [output.get("data", {}).get("image/png") for output in outputs].count(PNG) == 1
    assert any(output.get("data", {}).get("text/plain") == "Figure 1. Heads and tails." for output in outputs)
    assert not any("IPython.core.display" in json.dumps(output) for output in outputs)


def test_the_digest_follows_imports_and_ignores_docstrings(tmp_path):
    root = tmp_path
    package = root / "ncutils"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import deep\n")
    (package / "sub" / "deep.py").write_text("from ..leaf import f\n")
    (package / "leaf.py").write_text("def f():\n    return 1\n")
    (package / "other.py").write_text("y = 1\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("!pip install x\nimport ncutils.sub")])
    (root / "notebooks").mkdir()
    nbformat.write(notebook, str(root / "notebooks" / "n.ipynb"))
    digest, modules = bundles.chapter_digest(root, "n")
    assert modules == ["ncutils", "ncutils.leaf", "ncutils.sub", "ncutils.sub.deep"]
    (package / "leaf.py").write_text('def f():\n    "Return one."\n    return 1  # one\n')
    assert bundles.chapter_digest(root, "n")[0] == digest
    (package / "leaf.py").write_text("def f():\n    return 2\n")
    assert bundles.chapter_digest(root, "n")[0] != digest


def test_the_committed_long_bundle_is_whole_and_records_every_finding():
    """results/long, the long profile run once on a 2-core CPU: checksums and schema hold, and
    every chapter and finding of the book is in it (whether it is still fresh, the build says)."""
    from conftest import REPO

    manifest, sections, notebooks = bundles.verify(REPO / bundles.RESULTS / "long", "long")
    stems = {chapter.stem for chapter in chapters.CHAPTERS}
    assert manifest["profile"] == "long" and set(manifest["chapters"]) == stems and set(notebooks) == stems
    assert set(sections["findings"]) == {finding.id for chapter in chapters.CHAPTERS for finding in chapter.findings}
    assert all(entry["verdict"] in {"reproduced", "not reproduced", "inconclusive"}
               for entry in sections["findings"].values())


def test_a_bundles_page_links_from_its_own_folder_and_shows_unrenderable_glue_as_text(toy_book):
    """The bundle's page lives in book/generated/bundles/<profile>/: its {doc} links are made
    absolute; a cell that shows a {glue:md} value the safe rendering dropped becomes literal text."""
    source = toy_book / "notebooks" / "chap.ipynb"
    notebook = nbformat.read(str(source), as_version=4)
    linked = "See {doc}`../conventions` and {doc}`the board <../scoreboard>` and {doc}`/book/intro`."
    matrix = "The matrix: {glue:md}`T1_matrix`"
    notebook.cells += [nbformat.v4.new_markdown_cell(linked), nbformat.v4.new_markdown_cell(matrix)]
    nbformat.write(notebook, str(source))
    fake_build(toy_book, "gpu", outputs=[
        _glue("T1_box", {"text/html": '<div class="verdict-box">T1: reproduced</div>', "text/plain": "T1: reproduced"}),
        _glue("T1_matrix", {"text/markdown": "| a |\n|---|\n| 1 |", "text/plain": "<IPython.core.display.Markdown object>"}),
    ])
    bundles.export("gpu", root=toy_book)
    merge(toy_book)
    rendered = nbformat.read(str(toy_book / "book" / "generated" / "bundles" / "gpu" / "chap.ipynb"), as_version=4)
    markdown = [cell.source for cell in rendered.cells if cell.cell_type == "markdown"]
    assert "See {doc}`/book/conventions` and {doc}`the board </book/scoreboard>` and {doc}`/book/intro`." in markdown
    assert markdown[-1] == f"```text\n{matrix}\n```"


def test_the_printed_scoreboard_reads_a_bundle_where_the_build_has_no_verdict(toy_book):
    from ncutils.book import cli

    assert "reproduced (bundle)" not in cli.scoreboard_text(toy_book)
    bundles.export("gpu", root=toy_book)
    row = next(line for line in cli.scoreboard_text(toy_book).splitlines() if line.startswith("T1"))
    assert row.split()[1:] == ["not", "yet", "run", "not", "yet", "run", "not", "yet", "run", "reproduced", "(bundle)",
                               "not", "yet", "run"]
    (toy_book / "ncutils" / "toy.py").write_text(TOY.replace("sum(values)", "sum(values) + 0"))
    assert "stale (bundle)" in cli.scoreboard_text(toy_book)
