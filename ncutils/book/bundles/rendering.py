"""A bundle's notebooks made safe to render: images, plain text and the book's own regenerated cards, nothing that runs."""

from __future__ import annotations

import base64
import html
import posixpath
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ncutils.book import cards, findings, provenance
from ncutils.book.bundles.layout import _STATES
from ncutils.book.bundles.exporting import _FIGURE_IMAGE, _png

__all__ = ["REMOVED_NOTE", "safe_notebook"]


_GLUE_PREFIX = "application/papermill.record/"

_SAFE_TAGS = {"remove-cell", "remove-input", "remove-output", "hide-cell", "hide-input", "hide-output",
              "parameters", "injected-parameters"}

_SVG_UNSAFE = re.compile(r"<\s*(script|foreignobject|iframe|object|embed|!doctype|!entity)|\bon[a-z]+\s*=|"
                         r"javascript:|(?:xlink:)?href\s*=\s*[\"'](?!#)", re.I)

_DISPLAY_OBJECT = re.compile(r"^<IPython\.core\.display\.\w+ object>$")

REMOVED_NOTE = "(an output of another type was removed: bundles are rendered with images and text only)"

_GLUE_REFERENCE = re.compile(r"\{glue(:\w+)?\}`([^`]+)`|^[`:]{3,}\{glue(:\w+)?\}\s+(\S+)", re.M)

#: A ``{doc}`` role's target, with or without a title (``{doc}`../x``` or ``{doc}`words <../x>```).
_DOC_REFERENCE = re.compile(r"(\{doc\}`(?:[^`<]*<)?)([^`<>]+)(>?`)")

_INCLUDE = re.compile(r"^([`:]{3,}\{include\}\s+)(\S+)", re.M)

def _text(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    return value if isinstance(value, str) else None

def _regenerated(html_text: str, records: Mapping[str, Any], glue_name: str | None) -> str | None:
    """The book's own HTML for a verdict box or card, made again from the bundle's record."""
    entries, amendments = records.get("findings", {}), records.get("amendments", {})
    try:
        if glue_name and glue_name.endswith("_box") and glue_name[:-4] in entries:
            identifier = glue_name[:-4]
            return cards.VerdictBox(entries[identifier], amendments.get(identifier, []),
                                    findings.FINDINGS[identifier].claim)._repr_html_()
        match = re.match(r'<div class="nc-verdict nc-\w+" data-id="([^"]+)"', html_text)
        if match and not glue_name:
            identifier = html.unescape(match.group(1))
            entry = entries.get(identifier) or records.get("checks", {}).get(identifier)
            if entry is not None:
                dates = [item["date"] for item in amendments.get(identifier, [])]
                return cards.Card(entry, dates)._repr_html_()
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None

def _figure_outputs(html_text: str) -> list[dict[str, Any]]:
    """The images of a figure the build stored as HTML, then its caption as text."""
    import nbformat

    outputs = [nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode()})
               for png in map(_png, _FIGURE_IMAGE.findall(html_text)) if png is not None]
    caption = re.search(r"<figcaption>(.*?)(?:<details|</figcaption>)", html_text, re.S)
    if outputs and caption:
        text = html.unescape(re.sub(r"<[^>]*>", "", caption.group(1))).strip()
        if text:
            outputs.append(nbformat.v4.new_output("display_data", data={"text/plain": text}))
    return outputs

def _safe_data(data: Mapping[str, Any], records: Mapping[str, Any], glue_name: str | None) -> tuple[dict[str, Any], list]:
    """The safe types of one output's data, and outputs to add after it (a figure's image)."""
    safe: dict[str, Any] = {}
    extra: list = []
    removed = [mime for mime in data if mime not in ("image/png", "image/svg+xml", "text/plain")]
    html_text = _text(data.get("text/html"))
    if html_text is not None:
        remade = _regenerated(html_text, records, glue_name)
        if remade is not None:
            safe["text/html"] = remade
            removed.remove("text/html")
        elif 'class="nc-figure"' in html_text and not glue_name:
            extra = _figure_outputs(html_text)
    png = _png(data.get("image/png"))
    if png is not None:
        safe["image/png"] = base64.b64encode(png).decode()
    svg = _text(data.get("image/svg+xml"))
    if svg is not None and not _SVG_UNSAFE.search(svg):
        safe["image/svg+xml"] = svg
    plain = _text(data.get("text/plain"))
    if plain is not None and not (removed and _DISPLAY_OBJECT.match(plain.strip())):
        safe["text/plain"] = plain
    if glue_name and glue_name.endswith("_verdict") and (plain or "").strip() in _STATES:
        safe["text/markdown"] = f"**{plain.strip()}**"  # the book's Verdict, made again from a known word
    if not safe and not extra:
        safe["text/plain"] = REMOVED_NOTE
    return safe, extra

def _safe_outputs(outputs: Sequence[Any], records: Mapping[str, Any]) -> tuple[list, dict[str, set[str]]]:
    import nbformat

    kept: list = []
    glued: dict[str, set[str]] = {}  # name -> the types its safe output keeps
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            text = _text(output.get("text"))
            if text is not None and output.get("name") in ("stdout", "stderr"):
                kept.append(nbformat.v4.new_output("stream", name=output["name"], text=text))
        elif kind == "error":
            text = f"{output.get('ename')}: {output.get('evalue')}"
            kept.append(nbformat.v4.new_output("stream", name="stdout", text=f"error: {text}\n"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            scrapbook = output.get("metadata", {}).get("scrapbook")
            glue_name, prefix = None, ""
            if isinstance(scrapbook, dict) and isinstance(scrapbook.get("name"), str):
                glue_name = scrapbook["name"]
                prefix = _GLUE_PREFIX if scrapbook.get("mime_prefix") == _GLUE_PREFIX else ""
                data = {mime[len(prefix):]: value for mime, value in data.items() if mime.startswith(prefix)}
            safe, extra = _safe_data(data, records, glue_name)
            if glue_name:
                glued[glue_name] = set(safe)
                new = nbformat.v4.new_output("display_data", data={prefix + mime: value for mime, value in safe.items()},
                                             metadata={"scrapbook": {"name": glue_name, "mime_prefix": prefix}})
            elif extra and set(safe) == {"text/plain"}:
                new = None  # a figure: its image and caption replace the HTML
            else:
                new = nbformat.v4.new_output("display_data", data=safe)
            kept += ([new] if new is not None else []) + extra
    return kept, glued

def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"

def _glue_references(text: str, root: Path) -> set[tuple[str, str]]:
    """The glued names a Markdown text (and the files it includes) shows, with their role (``":md"``, ``""``...)."""
    names = set()
    for role, role_name, block, block_name in _GLUE_REFERENCE.findall(text):
        names.add((role_name, role) if role_name else (block_name, block))
    for _, path in _INCLUDE.findall(text):
        included = (root / "book" / "generated" / path).resolve()
        if included.is_file() and included.is_relative_to(root):
            names |= _glue_references(included.read_text(encoding="utf-8"), root)
    return names

def _renderable(references: set[tuple[str, str]], glued: Mapping[str, set[str]]) -> bool:
    # a {glue:md} value needs its Markdown, which only the book's own verdict words keep
    return all(name in glued and (role != ":md" or "text/markdown" in glued[name]) for name, role in references)

def _absolute_docs(text: str) -> str:
    """``{doc}`` targets written relative to ``book/generated/`` made absolute (``/book/...``), so
    that they resolve from a page rendered in any folder."""
    def absolute(match: re.Match) -> str:
        target = match.group(2).strip()
        if target.startswith("/"):
            return match.group(0)
        return match.group(1) + "/" + posixpath.normpath(posixpath.join("book/generated", target)) + match.group(3)
    return _DOC_REFERENCE.sub(absolute, text)

def safe_notebook(notebook: Any, records: Mapping[str, Any], *, trusted: Any = None, root: Path | None = None,
                  depth: int = 2) -> Any:
    """A bundle's executed notebook made safe to render (see the module docstring).

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        The bundle's notebook (read, never executed).
    records : mapping
        The bundle's findings sections (``findings``, ``checks``, ``amendments``): the verdict
        boxes and cards are made again from them.
    trusted : nbformat.NotebookNode, optional
        Today's source notebook of the chapter: a Markdown cell found in it is rendered as
        Markdown (its ``{include}`` paths moved ``depth`` folders down), any other as literal text.
    root : pathlib.Path, optional
        Repository root (for the included files' glue references).
    depth : int, default 2
        How many folders below ``book/generated`` the page is rendered.

    Returns
    -------
    nbformat.NotebookNode
        Code cells with their source and safe outputs only, Markdown cells as above, no raw
        cells, no attachments, and no metadata but the safe tags.
    """
    import nbformat

    root = provenance.project_root() if root is None else Path(root)
    trusted_sources = {cell.source for cell in (trusted.cells if trusted is not None else [])
                       if cell.cell_type == "markdown"}
    cells = []
    glued: dict[str, set[str]] = {}
    for cell in notebook.cells:
        tags = [tag for tag in cell.get("metadata", {}).get("tags", []) if tag in _SAFE_TAGS]
        metadata = {"tags": tags} if tags else {}
        source = _text(cell.get("source")) or ""
        if cell.cell_type == "code":
            outputs, names = _safe_outputs(cell.get("outputs", []), records)
            glued.update(names)
            cells.append(nbformat.v4.new_code_cell(source, metadata=metadata, outputs=outputs))
        else:
            cells.append((cell.cell_type, source, metadata))
    final = []
    for cell in cells:
        if not isinstance(cell, tuple):
            final.append(cell)
            continue
        kind, source, metadata = cell
        if kind == "markdown" and source in trusted_sources and _renderable(_glue_references(source, root), glued):
            moved = _INCLUDE.sub(lambda match: match.group(1) + ("../" * depth + match.group(2)
                                                                 if not match.group(2).startswith("/") else match.group(2)),
                                 _absolute_docs(source))
            final.append(nbformat.v4.new_markdown_cell(moved, metadata=metadata))
        elif source.strip():
            final.append(nbformat.v4.new_markdown_cell(_fence(source), metadata=metadata))
    result = nbformat.v4.new_notebook(cells=final)
    result.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "language_info": {"name": "python"}}
    return result
