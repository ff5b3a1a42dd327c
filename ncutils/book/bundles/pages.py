"""The bundles' pages in the book: each chapter's box beside its live verdict, an index per bundle, the extended toc."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ncutils._io import write_if_changed
from ncutils.book import cards
from ncutils.book.profiles import BookLayout, Job, read_notebook
from ncutils.book.bundles.layout import PAGES, RESULTS
from ncutils.book.bundles.merging import Bundle, load_bundles
from ncutils.book.bundles.rendering import safe_notebook

__all__ = ["publish"]


def _verdict_words(entry: Mapping[str, Any]) -> str:
    value = _value_words(entry)
    return f"{entry['verdict']} {value}" if value else str(entry["verdict"])

def _value_words(entry: Mapping[str, Any]) -> str:
    return f"({cards.format_value(entry['value'])})" if entry.get("value") is not None else ""

def _chapter_box(stem: str, bundles: Sequence[Bundle], depth_link: str = f"{PAGES}") -> str | None:
    """HTML for a chapter page: each bundle's verdicts of the chapter, with a link to its notebook."""
    escape = html.escape
    items = []
    for bundle in bundles:
        status = bundle.chapters.get(stem)
        if status is None:
            continue
        entries = [entry for entry in bundle.sections["findings"].values() if entry["provenance"].get("notebook") == stem]
        verdict_parts = []
        for entry in sorted(entries, key=lambda item: item["id"]):
            state = entry["verdict"]
            badge = "nc-stale" if status.stale else {"reproduced": "nc-pass", "not reproduced": "nc-fail"}.get(
                state, "nc-inconclusive")
            # the badge holds the word only (it never wraps); the number beside it wraps with the text
            words = f"{entry['id']}: " + (status.label if status.stale else state)
            then = f"its verdict then: {_verdict_words(entry)}" if status.stale else _value_words(entry)
            verdict_parts.append(f'<span class="nc-badge {badge}">{escape(words)}</span>'
                                 + (f' <span class="nc-bundle-value">{escape(then)}</span>' if then else ""))
        if not verdict_parts:
            verdict_parts.append(f'<span class="nc-badge {"nc-stale" if status.stale else "nc-not-run"}">'
                                 f'{escape(status.label if status.stale else "no finding recorded")}</span>')
        link = f'{depth_link}/{escape(bundle.profile)}/{escape(stem)}.html'
        why = f' <span class="nc-reason">{escape(status.reason)}</span>' if status.stale else ""
        items.append(f'<li><strong>{escape(bundle.profile)}</strong> {" ".join(verdict_parts)}{why} '
                     f'<span class="nc-origin">{escape(bundle.origin())}</span> '
                     f'<a href="{link}">the executed notebook</a></li>')
    if not items:
        return None
    return ('<div class="nc-bundles"><p class="nc-bundles-title"><strong>Results of other builds</strong> '
            '(bundles under <code>results/</code>, beside this build\'s verdict above)</p><ul>'
            + "".join(items) + "</ul></div>")

def _annotate_chapter(path: Path, box: str | None) -> None:
    """Put the bundles' box after the title cell of a chapter's generated notebook."""
    import nbformat


    if not path.exists():
        return
    notebook = nbformat.read(str(path), as_version=4)
    notebook.cells = [cell for cell in notebook.cells if "nc-bundles" not in cell.get("metadata", {}).get("tags", [])]
    if box is not None:
        at = next((index + 1 for index, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"), 0)
        notebook.cells.insert(at, nbformat.v4.new_markdown_cell(box, metadata={"tags": ["nc-bundles"]}))
    write_if_changed(path, nbformat.writes(notebook).encode())

def _index_page(bundle: Bundle) -> str:
    lines = [f"# Bundle {bundle.profile}", "",
             f"Results of profile **{bundle.profile}** from `{RESULTS}/{bundle.profile}/`, exported "
             f"{html.escape(bundle.manifest['exported_at'])}. These notebooks ran elsewhere and are "
             "rendered here with images and text only.", ""]
    rows = [("commit", bundle.commit), ("machine", bundle.manifest["machine"]), ("device", bundle.device),
            ("built", bundle.date)]
    lines += ['<table class="nc-matrix"><tbody>']
    lines += [f"<tr><th>{label}</th><td>{html.escape(str(value))}</td></tr>" for label, value in rows]
    lines += ["</tbody></table>", "", "<ul>"]
    for stem, status in bundle.chapters.items():
        lines.append(f'<li><a href="{html.escape(stem)}.html">{html.escape(stem)}</a>: {html.escape(status.label)}'
                     + (f" ({html.escape(status.reason)})" if status.stale else "") + "</li>")
    return "\n".join(lines + ["</ul>", ""])

def publish(layout: BookLayout, all_jobs: Mapping[str, Sequence[Job]], *, quiet: bool = False) -> tuple[list[Bundle], Path | None]:
    """Merge every bundle under ``results/`` into the site's sources.

    Writes each bundle's safe notebooks (:func:`safe_notebook`) and an index page to
    ``book/generated/bundles/<profile>/``, puts the bundles' verdicts on each chapter's
    generated page, and writes ``_build/toc.yml``: ``_toc.yml`` with a part "Results of
    other builds" (the toc that jupyter-book then renders; None when there is no bundle).

    Returns
    -------
    (list of Bundle, pathlib.Path or None)
        The bundles merged (for the scoreboard's columns) and the toc to render with.
    """
    import nbformat


    root = layout.root
    bundles = load_bundles(root, all_jobs, quiet=quiet)
    pages = layout.generated / PAGES
    wanted: set[Path] = set()
    for bundle in bundles:
        folder = pages / bundle.profile
        folder.mkdir(parents=True, exist_ok=True)
        for stem in bundle.chapters:
            source = layout.notebooks / f"{stem}.ipynb"
            trusted = read_notebook(source) if source.exists() else None
            safe = safe_notebook(bundle.notebooks[stem], bundle.sections, trusted=trusted, root=root)
            path = folder / f"{stem}.ipynb"
            write_if_changed(path, nbformat.writes(safe).encode())
            wanted.add(path)
        index = folder / "index.md"
        write_if_changed(index, _index_page(bundle).encode())
        wanted.add(index)
    if pages.exists():
        for path in sorted(pages.rglob("*"), reverse=True):
            if path.is_file() and path not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        if not any(pages.iterdir()):
            pages.rmdir()
    stems = {job.stem for jobs in all_jobs.values() for job in jobs}
    for stem in sorted(stems):
        _annotate_chapter(layout.generated / f"{stem}.ipynb", _chapter_box(stem, bundles))
    toc_path = layout.build / "toc.yml"
    if not bundles:
        toc_path.unlink(missing_ok=True)
        return bundles, None
    toc = yaml.safe_load(layout.toc.read_text())
    part = {"caption": "Results of other builds", "chapters": [
        {"file": f"book/generated/{PAGES}/{bundle.profile}/index",
         "sections": [{"file": bundle.page(stem)} for stem in bundle.chapters]} for bundle in bundles]}
    if "parts" in toc:
        toc["parts"] = list(toc["parts"]) + [part]
    else:
        toc["parts"] = [{"chapters": toc.pop("chapters", [])}, part]
    layout.build.mkdir(parents=True, exist_ok=True)
    write_if_changed(toc_path, yaml.safe_dump(toc, sort_keys=False).encode())
    return bundles, toc_path
