"""What a chapter's page shows of its code: the answer and the figures, not the plumbing.

The source notebooks stay as a researcher runs them; the executed copy the website renders
(``book/generated/<stem>.ipynb``, written by :func:`ncutils.book.execute.sync_generated`) gets
myst-nb's display tags from one rule, :func:`page_tags`:

- the ``parameters`` cell and the cell papermill injects are removed (``remove-cell``): the
  profile and its values are in every figure's and card's provenance;
- the cell that resolves the chapter's parameters (its imports and
  ``<CHAPTER>.resolve(overrides, ...)``) shows its output only (``remove-input``);
- every other code cell is folded behind a "Show code" toggle (``hide-input``): the reader sees
  outputs, tables and figures, and opens the code when they want it.

A cell that already carries a ``remove-*`` or ``hide-*`` tag keeps it. Consecutive stream
outputs (a training log) are merged into one box by myst-nb (``nb_merge_streams`` in
``_config.yml``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["page_notebook", "page_tags"]

_PLUMBING = ("parameters", "injected-parameters")


def page_tags(source: str, tags: list[str]) -> list[str]:
    """The tags a code cell carries on the page (see the module docstring).

    Examples
    --------
    >>> page_tags('profile = "cpu"', ["parameters"])
    ['parameters', 'remove-cell']
    >>> page_tags("parameters = parker.P1.resolve(overrides, profile=profile)", [])
    ['remove-input']
    >>> page_tags("plots.depth_panels(table)", []), page_tags("x = 1", ["remove-cell"])
    (['hide-input'], ['remove-cell'])
    """
    if any(tag.startswith(("remove-", "hide-")) for tag in tags):
        return list(tags)
    if any(tag in _PLUMBING for tag in tags):
        return [*tags, "remove-cell"]
    if ".resolve(overrides" in source:
        return [*tags, "remove-input"]
    return [*tags, "hide-input"]


def page_notebook(raw: bytes) -> bytes:
    """An executed notebook (nbformat JSON) with every code cell tagged by :func:`page_tags`."""
    notebook: dict[str, Any] = json.loads(raw)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        metadata = cell.setdefault("metadata", {})
        metadata["tags"] = page_tags(source, list(metadata.get("tags", [])))
    return json.dumps(notebook, indent=1, ensure_ascii=False).encode() + b"\n"
