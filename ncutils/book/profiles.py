"""Which chapters the book has and which parameters each profile gives them.

A *chapter* is declared once in its paper module (:class:`ncutils.chapter.Chapter`, listed
in :mod:`ncutils.book.chapters`: its parameters and their defaults, what it trains, its
findings) and has a notebook in ``notebooks/`` whose ``parameters`` cell holds only
``profile`` and ``overrides``; a *profile* (``notebooks/profiles/<profile>.yaml``) gives
parameter values per chapter; ``_toc.yml`` orders the chapters. This module reads the four,
checks them against each other (:func:`plan`, :func:`validate`: every value is checked by the
chapter's declaration before any kernel starts) and returns the :class:`Job` list that
:mod:`ncutils.book.execute` runs, each with the cache key that decides whether a chapter
must run again.

Nothing here executes a notebook.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from ncutils.book import chapters as registry
from ncutils.book import yaml_files
from ncutils.chapter import Chapter

__all__ = [
    "GENERATED",
    "PROFILES",
    "PARAMETERS_CELL_NAMES",
    "BookLayout",
    "Notebook",
    "Job",
    "chapter_problems",
    "available_profiles",
    "chapters",
    "load_profile",
    "notebook_parameters",
    "parameter_problems",
    "parse_value",
    "plan",
    "read_notebook",
    "resolve_chapter",
    "toc_chapters",
    "toc_pages",
    "validate",
]

#: The profiles, in the order the scoreboard shows them.
PROFILES = ("smoke", "cpu", "long", "gpu", "paper")


def chapter_problems(chapter: "Notebook", values: Mapping[str, Any], origin: str) -> list[str]:
    """What the chapter's declaration refuses in parameter values (empty when nothing).

    Parameters
    ----------
    chapter : Notebook
        The chapter.
    values : mapping
        Parameter name -> value (a profile's values, ``-p`` values), over the defaults.
    origin : str
        Prefixed to every message, with the chapter's stem.

    Returns
    -------
    list of str
        Unknown names, values of the wrong type, ``profile`` set by hand, then what the
        paper module's own checks refuse (:meth:`ncutils.chapter.Chapter.problems`).
    """
    return chapter.declaration.problems(values, origin)


# Where executed chapters live for the book; _toc.yml entries under this prefix are chapters.
GENERATED = "book/generated"


@dataclass(frozen=True)
class BookLayout:
    """Paths of the book inside a repository checkout."""

    root: Path

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def profiles(self) -> Path:
        return self.notebooks / "profiles"

    @property
    def generated(self) -> Path:
        return self.root / GENERATED

    @property
    def build(self) -> Path:
        return self.root / "_build"

    @property
    def cache(self) -> Path:
        return self.build / "notebooks"

    @property
    def custom(self) -> Path:
        return self.build / "custom"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def toc(self) -> Path:
        return self.root / "_toc.yml"

    def profile_cache(self, profile: str) -> Path:
        return self.cache / profile


@dataclass(frozen=True)
class Notebook:
    """A chapter's notebook beside its declaration."""

    stem: str
    path: Path
    declaration: Chapter | None
    parameters_cell: int

    @property
    def defaults(self) -> Mapping[str, Any]:
        """The declared defaults of the chapter's parameters."""
        return self.declaration.defaults

    def __reduce__(self) -> tuple[Any, ...]:
        # a build's worker process only executes the notebook: it gets no declaration (whose
        # functions need not pickle), and reads the parameters from its Job
        return (Notebook, (self.stem, self.path, None, self.parameters_cell))


@dataclass(frozen=True)
class Job:
    """One chapter to execute under one profile."""

    chapter: Notebook
    profile: str
    injected: dict[str, Any]  # what papermill injects: `profile` and `overrides` (the profile's values)
    parameters: dict[str, Any] = field(default_factory=dict)  # the declaration's defaults and the overrides
    key: str = ""

    @property
    def stem(self) -> str:
        return self.chapter.stem


def read_notebook(path: Path) -> Any:
    """Read a notebook (nbformat 4), turning every kind of unreadable file into ``ValueError``.

    Parameters
    ----------
    path : pathlib.Path
        The notebook.

    Returns
    -------
    nbformat.NotebookNode
        The notebook.

    Raises
    ------
    ValueError
        Naming the file, if nbformat cannot read it.
    """
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as error:  # nbformat raises several types for bad files
        raise ValueError(f"{path}: not a readable notebook ({error})") from None


#: What a chapter notebook's ``parameters`` cell assigns, and nothing else: the book injects the
#: profile's name and its values for the chapter; the defaults live in the chapter's declaration.
PARAMETERS_CELL_NAMES = ("profile", "overrides")


def notebook_parameters(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """Return the values of a notebook's ``parameters`` cell and that cell's index.

    The cell must be the only code cell tagged ``parameters`` and assign exactly
    ``profile`` (a string) and ``overrides`` (a dict literal), e.g.::

        profile = "cpu"
        overrides = {}

    The chapter's parameters and their defaults are in its declaration
    (:class:`ncutils.chapter.Chapter`), not in the notebook.

    Raises
    ------
    ValueError
        If the notebook has no (or several) parameters cells, or the cell holds
        anything else.
    """
    path = Path(path)
    notebook = read_notebook(path)
    tagged = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        raise ValueError(f"{path}: expected exactly one code cell tagged 'parameters', found {len(tagged)}")
    index = tagged[0]
    try:
        tree = ast.parse(notebook.cells[index].source)
    except SyntaxError as error:
        raise ValueError(f"{path}: the parameters cell is not valid Python ({error})") from None
    values: dict[str, Any] = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise ValueError(f"{path}: line {statement.lineno} of the parameters cell is not a plain assignment")
        try:
            values[statement.targets[0].id] = ast.literal_eval(statement.value)
        except ValueError:
            raise ValueError(f"{path}: {statement.targets[0].id!r} in the parameters cell must be a literal") from None
    if sorted(values) != sorted(PARAMETERS_CELL_NAMES) or not isinstance(values["profile"], str) \
            or not isinstance(values["overrides"], dict):
        raise ValueError(f"{path}: the parameters cell must assign exactly `profile = \"cpu\"` and "
                         f"`overrides = {{}}` (the defaults are in the chapter's declaration); found "
                         f"{', '.join(sorted(values)) or 'nothing'}")
    return values, index


def chapters(root: Path) -> dict[str, Notebook]:
    """Every chapter of the registry (:mod:`ncutils.book.chapters`) with its notebook, by stem.

    Raises
    ------
    ValueError
        A notebook without a declaration, or a notebook whose ``parameters`` cell is not the
        standard one. (A declaration without a notebook is a chapter not in this checkout; the
        tests hold the project's registry, notebooks and ``_toc.yml`` to the same stems.)
    """
    layout = BookLayout(root)
    declared = {chapter.stem: chapter for chapter in registry.CHAPTERS}
    stems = sorted(path.stem for path in layout.notebooks.glob("*.ipynb"))
    problems = [f"notebooks/{stem}.ipynb has no chapter declaration in the registry (ncutils.book.chapters)"
                for stem in stems if stem not in declared]
    if problems:
        raise ValueError("invalid book configuration:\n  " + "\n  ".join(problems))
    found = {}
    for stem in stems:
        path = layout.notebooks / f"{stem}.ipynb"
        found[stem] = Notebook(stem, path, declared[stem], notebook_parameters(path)[1])
    return found


def _toc_files(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                yield node[key]
        for value in node.values():
            if isinstance(value, (list, dict)):
                yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def _strip_suffix(name: str) -> str:
    for suffix in (".ipynb", ".md"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def toc_pages(root: Path) -> list[str]:
    """Return every page of ``_toc.yml`` (paths without suffix), in book order."""
    toc_path = BookLayout(root).toc
    if not toc_path.exists():
        raise ValueError(f"{toc_path} does not exist")
    return [_strip_suffix(name) for name in _toc_files(yaml.safe_load(toc_path.read_text()))]


def toc_chapters(root: Path) -> list[str]:
    """Return the stems of the chapters listed in ``_toc.yml`` (``book/generated/<stem>``), in order."""
    prefix = GENERATED + "/"
    return [page[len(prefix):] for page in toc_pages(root) if page.startswith(prefix)]


def available_profiles(root: Path) -> list[str]:
    """Profiles that have a file in ``notebooks/profiles/``."""
    return sorted(path.stem for path in BookLayout(root).profiles.glob("*.yaml"))


def load_profile(root: Path, profile: str) -> dict[str, dict[str, Any]]:
    """Read ``notebooks/profiles/<profile>.yaml``.

    Parameters
    ----------
    root : pathlib.Path
        Repository root.
    profile : str
        One of :data:`PROFILES`.

    Returns
    -------
    dict
        Chapter stem -> parameter overrides (empty mapping for the notebook's defaults).

    Raises
    ------
    ValueError
        Unknown profile, missing file, or a file that is not a mapping of mappings.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    path = BookLayout(root).profiles / f"{profile}.yaml"
    if not path.exists():
        raise ValueError(f"profile {profile!r} has no file {path}")
    content = yaml_files.load(path)  # ValueError naming the file: not UTF-8, invalid YAML, a repeated key
    content = {} if content is None else content
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of chapter -> parameters")
    profile_values = {}
    for stem, values in content.items():
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ValueError(f"{path}: entry {stem!r} must be a mapping of parameter -> value")
        profile_values[str(stem)] = values
    return profile_values


def parameter_problems(chapter: Notebook, values: Mapping[str, Any], origin: str) -> list[str]:
    """List what is wrong with parameter values given to a chapter (empty when nothing is).

    The same as :func:`chapter_problems`: one check, by the chapter's declaration.
    """
    return chapter_problems(chapter, values, origin)


def parse_value(text: str) -> Any:
    """Parse a command-line parameter value as YAML (``10`` -> int, ``[1, 2]`` -> list).

    Exponent notation is a float, as in YAML 1.2 (:mod:`~ncutils.book.yaml_files`). Text that
    is not valid YAML is returned as it is, as a string; a mapping that repeats a key raises
    ``ValueError``.

    Example
    -------
    >>> parse_value("[digits, mnist1d]"), parse_value("0.5"), parse_value("1e-3"), parse_value("a: [")
    (['digits', 'mnist1d'], 0.5, 0.001, 'a: [')
    """
    try:
        return yaml_files.loads(text)
    except yaml.YAMLError:
        return text


def resolve_chapter(chapter_index: dict[str, Notebook], notebook: str) -> Notebook:
    """Find a chapter by stem (``"measuring_collapse"``) or notebook path.

    Raises
    ------
    ValueError
        Listing the known chapters, if there is no such chapter.
    """
    stem = Path(notebook).stem if notebook.endswith(".ipynb") else notebook
    if stem not in chapter_index:
        raise ValueError(f"unknown notebook {notebook!r}: expected one of {', '.join(chapter_index) or 'none'}")
    return chapter_index[stem]


def _digest(*parts: Any) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
        hasher.update(b"\x00")
    return hasher.hexdigest()


def _notebook_digest(path: Path) -> str:
    notebook = read_notebook(path)
    return _digest(
        [(cell.cell_type, cell.source, cell.get("metadata", {}).get("tags", [])) for cell in notebook.cells]
    )


def _ncutils_digest(root: Path) -> str:
    package = root / "ncutils"
    files = sorted(package.rglob("*.py"))
    return _digest([(str(path.relative_to(package)), path.read_text()) for path in files])


def plan(root: Path, profile: str, chapter_index: dict[str, Notebook] | None = None) -> list[Job]:
    """Validate one profile and return its jobs in ``_toc.yml`` order.

    Parameters
    ----------
    root : pathlib.Path
        Repository root.
    profile : str
        Profile name.
    chapter_index : dict, optional
        Result of :func:`chapters` (read when not given).

    Returns
    -------
    list of Job
        One job per chapter with its injected and resolved parameters and its
        cache key (notebook source, parameters, ``ncutils`` source, profile).

    Raises
    ------
    ValueError
        Listing every problem: unknown profile, chapters missing from the
        profile or from ``_toc.yml``, unknown chapters or parameters, values of
        the wrong type.
    """
    chapter_index = chapters(root) if chapter_index is None else chapter_index
    values = load_profile(root, profile)
    origin = f"notebooks/profiles/{profile}.yaml"
    problems = []
    for stem in values:
        if stem not in chapter_index:
            problems.append(
                f"{origin}: unknown notebook {stem!r} (notebooks: {', '.join(chapter_index) or 'none'})"
            )
    for stem in chapter_index:
        if stem not in values:
            problems.append(f"{origin}: notebook {stem!r} is missing (add `{stem}: {{}}` for its defaults)")
    toc = toc_chapters(root)
    for stem in chapter_index:
        if stem not in toc:
            problems.append(f"_toc.yml: notebook {stem!r} is missing (add `- file: {GENERATED}/{stem}`)")
    for stem in toc:
        if stem not in chapter_index:
            problems.append(f"_toc.yml: {GENERATED}/{stem} has no notebook notebooks/{stem}.ipynb")
    for stem, overrides in values.items():
        if stem in chapter_index:
            problems += chapter_problems(chapter_index[stem], overrides, origin)
    if problems:
        raise ValueError("invalid book configuration:\n  " + "\n  ".join(problems))
    code = _ncutils_digest(root)
    jobs = []
    for stem in toc:
        chapter = chapter_index[stem]
        injected = {"profile": profile, "overrides": dict(values[stem])}
        parameters = dict(chapter.declaration.resolve(values[stem], profile=profile))
        key = _digest(_notebook_digest(chapter.path), parameters, code, profile)
        jobs.append(Job(chapter, profile, injected, parameters, key))
    return jobs


def validate(root: Path) -> dict[str, list[Job]]:
    """Validate every profile of :data:`PROFILES`; return their jobs by profile."""
    chapter_index = chapters(root)
    return {profile: plan(root, profile, chapter_index) for profile in PROFILES}
