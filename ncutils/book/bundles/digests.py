"""The digest of the code a chapter's results depend on: its notebook and the ``ncutils`` modules it imports, without prose."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Sequence

from ncutils.book.profiles import read_notebook

__all__ = ["chapter_digest"]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree

def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        # IPython magics and shell lines (the hidden Colab setup cell) are not Python
        kept = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            return ast.parse("\n".join(kept))
        except SyntaxError:
            return None

def _module_file(package: Path, module: str) -> Path | None:
    """The file of ``ncutils.a.b``: ``a/b.py`` or ``a/b/__init__.py`` under the package folder."""
    parts = module.split(".")[1:]
    base = package.joinpath(*parts) if parts else package
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None

def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Names of the ``ncutils`` modules (or attributes of them) that a tree imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ncutils")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "ncutils":
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found

def _closure(root: Path, sources: Sequence[str]) -> list[str] | None:
    """The ``ncutils`` modules that code importing as ``sources`` does runs (sorted), or None
    when a source cannot be parsed."""
    package = root / "ncutils"
    wanted: set[str] = set()
    for source in sources:
        tree = _parse(source)
        if tree is None:
            return None
        wanted |= _imports(tree, "__main__", False)
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        # importing a.b.c runs a, a.b and a.b.c; a name that is no module is an attribute
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            module = ".".join(parts[:depth])
            if module in seen:
                continue
            path = _module_file(package, module)
            if path is None:
                continue
            seen.add(module)
            tree = _parse(path.read_text(encoding="utf-8"))
            if tree is None:
                return None
            wanted |= _imports(tree, module, path.name == "__init__.py") - seen
    return sorted(seen)

def _code(path: Path) -> str:
    tree = _parse(path.read_text(encoding="utf-8"))
    return path.read_text(encoding="utf-8") if tree is None else ast.dump(_without_docstrings(tree))

def chapter_digest(root: Path, stem: str) -> tuple[str, list[str]]:
    """The digest of the code a chapter's results depend on (see the module docstring).

    Parameters
    ----------
    root : pathlib.Path
        Repository root.
    stem : str
        The chapter (``notebooks/<stem>.ipynb``).

    Returns
    -------
    (str, list of str)
        The sha256 (hex) and the ``ncutils`` modules it covers (``["*"]``: the whole package,
        when the notebook cannot be parsed).

    Example
    -------
    >>> from ncutils.book import provenance
    >>> digest, modules = chapter_digest(provenance.project_root(), "measuring_collapse")
    >>> len(digest), "ncutils.metrics" in modules
    (64, True)
    """
    root = Path(root)
    notebook = read_notebook(root / "notebooks" / f"{stem}.ipynb")
    cells = [(cell.cell_type, cell.source, list(cell.get("metadata", {}).get("tags", []))) for cell in notebook.cells]
    modules = _closure(root, [cell.source for cell in notebook.cells if cell.cell_type == "code"])
    package = root / "ncutils"
    if modules is None:
        files = sorted(package.rglob("*.py"))
        code = [(str(path.relative_to(package)), _code(path)) for path in files]
        modules = ["*"]
    else:
        code = [(module, _code(_module_file(package, module))) for module in modules]
    hasher = hashlib.sha256()
    for part in (cells, code):
        hasher.update(json.dumps(part, sort_keys=True).encode())
        hasher.update(b"\x00")
    return hasher.hexdigest(), modules
