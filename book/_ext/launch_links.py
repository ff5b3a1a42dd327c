"""Point the launch buttons of executed chapters at their source notebooks.

The book renders executed copies of the chapters from ``book/generated/``, a
folder that is not in the repository. sphinx-book-theme builds its Binder and
Colab links from the page's path, so without this they would open a file that
does not exist on GitHub. This extension rewrites those links to the stripped
source notebook in ``notebooks/``; the download button keeps offering the
executed notebook with its outputs.
"""

from __future__ import annotations

from typing import Any

GENERATED = "book/generated/"
SOURCE = "notebooks/"


def _rewrite(buttons: list[dict[str, Any]]) -> None:
    for button in buttons:
        if isinstance(button.get("url"), str) and button.get("text") != "Download":
            button["url"] = button["url"].replace(GENERATED, SOURCE)
        if isinstance(button.get("buttons"), list):
            _rewrite(button["buttons"])


def _rewrite_launch_links(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    if pagename.startswith(GENERATED) and isinstance(context.get("header_buttons"), list):
        launch_groups = [b for b in context["header_buttons"] if b.get("label") == "launch-buttons"]
        _rewrite(launch_groups)


def setup(app) -> dict[str, Any]:
    # after sphinx-book-theme has added its launch buttons (priority 501)
    app.connect("html-page-context", _rewrite_launch_links, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
