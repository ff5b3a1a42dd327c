"""Which package code a stored result depends on: derived from the imports, hashed without prose.

A result in the store is keyed by the code that computes it. That code is not listed by hand:
a :class:`Computation` names its entry modules, and :meth:`Computation.modules` follows every
``import`` and ``from ... import`` statement inside ``ncutils`` from them, transitively, read
from the source files (a static walk of the syntax trees; imports inside functions count,
imports under ``if TYPE_CHECKING:`` do not, since they never run). Adding an import to a
module adds the imported module to the key of every computation that reaches it, so a key
cannot fall behind the code it runs.

What a walk does not enter is declared once, beside the computation, with the reason: a
module whose effect on the numbers another part of the key covers (``ncutils.models``: each
key records the versions of the architectures it builds, :data:`ncutils.models.ARCH_VERSIONS`;
). Every computation leaves out :data:`NEVER_NUMBERS`, the modules that only read and write
files (the store's own layout is :data:`ncutils.store.keys.STORE_FORMAT`, in every key).

Conventions
-----------
- A module is named by its dotted name (``"ncutils.theory.lesde"``). ``import a.b.c`` and
  ``from a.b import c`` (``c`` a submodule) depend on ``a.b.c``; ``from a.b import name``
  depends on ``a.b``. Importing a submodule also runs its packages' ``__init__`` files; the
  walk does not follow them unless they are imported by name (they only re-export).
- "Code" is the syntax tree without docstrings and comments (:func:`module_code`): editing
  prose changes no key.

Example
-------
>>> TRAINING = Computation("demo", ("ncutils.data",))
>>> "ncutils.data" in TRAINING.modules() and "ncutils._checks" not in TRAINING.modules()
True
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NEVER_NUMBERS", "Computation", "module_code", "module_imports", "module_path"]

#: The package root the walk reads (``ncutils/``); a test may point :func:`module_path` elsewhere.
PACKAGE = "ncutils"
PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: Modules that compute no number (atomic writes, locks, paths): left out of every walk.
NEVER_NUMBERS: Mapping[str, str] = {
    "ncutils._io": "writes and locks files; computes no number",
    "ncutils.store": "reads and writes stored results; its layout is STORE_FORMAT, in every key",
}


def module_path(module: str) -> Path | None:
    """The source file of package module ``module`` (a package: its ``__init__.py``), or None.

    Examples
    --------
    >>> module_path("ncutils.data").name, module_path("ncutils.theory").name
    ('data.py', '__init__.py')
    >>> module_path("ncutils.no_such_module") is None
    True
    """
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _source(path: Path) -> bytes:
    # one place reads the files: a test edits a module by patching this function
    return path.read_bytes()


@functools.lru_cache(maxsize=256)
def _parsed(path: str, source: bytes) -> ast.Module:
    # cached by the bytes: parsing every module for every key would cost 0.25 s a run
    return ast.parse(source, filename=path)


@functools.lru_cache(maxsize=256)
def _stripped_dump(path: str, source: bytes) -> bytes:
    tree = _without_docstrings(ast.parse(source, filename=path))  # its own tree: _parsed's is shared
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif _type_checking_only(node):
            for other in node.orelse:  # the body never runs
                yield from _import_nodes_of(other)
        else:
            yield from _import_nodes(node)


def _import_nodes_of(node: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _import_nodes(node)


@functools.lru_cache(maxsize=256)
def _imported_names(module: str, path: str, source: bytes) -> frozenset[str]:
    # cached by the bytes, like _parsed: every key walks the same modules, and walking their
    # trees again for each of a grid's runs cost more than training them at tiny sizes
    is_package = Path(path).name == "__init__.py"
    found = set()
    for node in _import_nodes(_parsed(path, source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: from the module's package, one level up per extra dot
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[:len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            found.add(submodule if module_path(submodule) is not None else base)
    return frozenset(found)


def module_imports(module: str) -> tuple[str, ...]:
    """The package modules ``module`` imports anywhere in its code, sorted (one level).

    Examples
    --------
    >>> module_imports("ncutils._io")
    ()
    >>> "ncutils._checks" in module_imports("ncutils.stats")
    True
    """
    path = module_path(module)
    if path is None:
        return ()
    found = _imported_names(module, str(path), _source(path))
    return tuple(sorted(name for name in found
                        if (name == PACKAGE or name.startswith(PACKAGE + ".")) and module_path(name)))


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def module_code(module: str) -> bytes:
    """The code of package module ``module`` as keys see it: its syntax tree without docstrings.

    Comments, docstrings (doctest examples included) and layout cannot change a number, so
    editing them changes no key; any change to the code itself does.

    Examples
    --------
    >>> module_code("ncutils.no_such_module")
    b'<missing>'
    """
    path = module_path(module)
    return b"<missing>" if path is None else _stripped_dump(str(path), _source(path))


def _covers(prefixes: Iterable[str], module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@dataclass(frozen=True)
class Computation:
    """What package code one kind of stored result runs: its entry modules and their imports.

    Parameters
    ----------
    name : str
        What is computed (for messages and the docs).
    entries : tuple of str
        The modules whose functions compute the result (dotted names).
    covered : mapping of str to str
        Modules (and their submodules) the walk does not enter, each with what keys it
        instead; :data:`NEVER_NUMBERS` are always added.

    Examples
    --------
    >>> series = Computation("demo", ("ncutils.stats",))
    >>> series.modules()
    ('ncutils._checks', 'ncutils.stats')
    >>> sorted(series.source()) == list(series.modules())
    True
    """

    name: str
    entries: tuple[str, ...]
    covered: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [entry for entry in self.entries if module_path(entry) is None]
        if not self.entries or missing:
            raise ValueError(f"computation {self.name!r}: entry modules {missing or '()'} are not "
                             f"modules of {PACKAGE}")

    def modules(self) -> tuple[str, ...]:
        """Every package module the entries reach through imports, less the covered ones, sorted."""
        skipped = {**NEVER_NUMBERS, **self.covered}
        seen: set[str] = set()
        pending = list(self.entries)
        while pending:
            module = pending.pop()
            if module in seen or _covers(skipped, module):
                continue
            seen.add(module)
            pending.extend(module_imports(module))
        return tuple(sorted(seen))

    def source(self) -> dict[str, str]:
        """``{module: sha256 of its code}`` over :meth:`modules`: the ``source`` of a key payload."""
        return {module: hashlib.sha256(module_code(module)).hexdigest() for module in self.modules()}
