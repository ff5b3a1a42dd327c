"""HTML fixes of the companion book: MathJax on every page, each script once.

* **MathJax on every page.** Sphinx loads MathJax only on pages whose Markdown has math; pages
  whose only math is in HTML (verdict cards, the scoreboard, the introduction's table, written as
  ``<span class="math">\\(...\\)</span>`` by :mod:`ncutils.book.findings`) would show raw TeX.
  The asset policy "always" adds it to every page.
* **Each script once.** sphinx-thebe adds its inline configuration (``const THEBE_JS_URL = ...``)
  once to the registry and once to the builder (file name ``None`` in one, ``""`` in the other),
  so every page carried it twice, and the second ``const`` is a console error ("Identifier
  'THEBE_JS_URL' has already been declared"). Identical scripts are dropped from each page's
  context.
"""

from __future__ import annotations

from typing import Any


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    # an inline script has the file name None when an extension adds it, "" once the builder has
    return (getattr(script, "filename", str(script)) or "", tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def _dedupe_scripts(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app) -> dict[str, Any]:
    app.set_html_assets_policy("always")
    # early: html-page-context is emitted with emit_firstresult, so a handler after one that returns
    # a template name never runs
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
