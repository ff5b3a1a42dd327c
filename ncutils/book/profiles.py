"""Which chapters the book has and which parameters each profile gives them.

A *chapter* is a notebook in ``notebooks/`` whose one ``parameters`` cell
holds literal defaults; a *profile* (``notebooks/profiles/<profile>.yaml``)
overrides some of them per chapter; ``_toc.yml`` orders the chapters. This
module reads the three, checks them against each other (:func:`plan`,
:func:`validate`) and returns the :class:`Job` list that
:mod:`ncutils.book.execute` runs, each with the cache key that decides
whether a chapter must run again.

Nothing here executes a notebook.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from ncutils.book import yaml_files

__all__ = [
    "GENERATED",
    "PROFILES",
    "PARAMETER_VALIDATORS",
    "BookLayout",
    "Chapter",
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
PROFILES = ("smoke", "cpu", "gpu", "paper")


#: Chapter stem -> ``"module:function"`` of the paper module that checks its resolved
#: parameters before papermill starts (``function(parameters) -> list[str]``, the messages the
#: notebook would raise). The module may also list ``PER_DATASET_PARAMETERS``: parameters whose
#: default is a mapping dataset -> value that also take one value for every dataset
#: (``-p epochs 10``). A function not (yet) defined is skipped.
PARAMETER_VALIDATORS: dict[str, str] = {
    "parker_p1_depth": "ncutils.papers.parker.configs:validate_parameters",
    "parker_p2_variance": "ncutils.papers.parker.configs:validate_parameters",
    "parker_p3_angles": "ncutils.papers.parker.configs:validate_parameters",
    "parker_p4_difficulty": "ncutils.papers.parker.configs:validate_parameters",
    "rangamani_intermediate": "ncutils.papers.rangamani:validate_parameters",
    "yang_fine_structure": "ncutils.papers.yang:validate_parameters",
    "kothapalli_terminal_phase": "ncutils.papers.kothapalli:validate_k1_parameters",
    "kothapalli_lesde": "ncutils.papers.kothapalli:validate_k2_parameters",
    "garrod_ufm": "ncutils.papers.garrod:validate_parameters",
}


def _validator_module(stem: str) -> tuple[Any, str] | None:
    target = PARAMETER_VALIDATORS.get(stem)
    if target is None:
        return None
    module_name, function = target.split(":")
    return importlib.import_module(module_name), function


def _per_dataset_parameters(stem: str) -> frozenset[str]:
    found = _validator_module(stem)
    return frozenset(getattr(found[0], "PER_DATASET_PARAMETERS", ())) if found else frozenset()


def chapter_problems(chapter: "Chapter", parameters: dict[str, Any], origin: str) -> list[str]:
    """Ask the chapter's paper module what is wrong with its resolved parameters.

    Parameters
    ----------
    chapter : Chapter
        The chapter (its stem picks the function of :data:`PARAMETER_VALIDATORS`).
    parameters : dict
        Its resolved parameters (defaults updated with the profile's and the overrides).
    origin : str
        Prefixed to every message, with the chapter's stem.

    Returns
    -------
    list of str
        Empty when the chapter has no validator or nothing is wrong.
    """
    found = _validator_module(chapter.stem)
    if found is None or not hasattr(found[0], found[1]):
        return []
    messages = getattr(found[0], found[1])(dict(parameters))
    return [f"{origin}: {chapter.stem}: {message}" for message in messages]


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
class Chapter:
    """A chapter notebook and the defaults of its ``parameters`` cell."""

    stem: str
    path: Path
    defaults: dict[str, Any]
    parameters_cell: int


@dataclass(frozen=True)
class Job:
    """One chapter to execute under one profile."""

    chapter: Chapter
    profile: str
    injected: dict[str, Any]  # what papermill injects: the profile's values and `profile`
    parameters: dict[str, Any] = field(default_factory=dict)  # defaults updated with `injected`
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


def notebook_parameters(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """Return the defaults of a notebook's ``parameters`` cell and that cell's index.

    The cell must be the only code cell tagged ``parameters`` and hold only
    assignments of literals (``epochs = 30``, ``widths = [64, 128]``), one of
    them ``profile``.

    Parameters
    ----------
    path : path-like
        The notebook.

    Returns
    -------
    defaults : dict
        Parameter name -> default value.
    index : int
        Index of the parameters cell among the notebook's cells.

    Raises
    ------
    ValueError
        If the notebook has no (or several) parameters cells, or the cell holds
        anything but literal assignments, or lacks ``profile``.
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
    defaults: dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        else:
            raise ValueError(
                f"{path}: line {statement.lineno} of the parameters cell is not a plain assignment"
            )
        if not isinstance(target, ast.Name):
            raise ValueError(f"{path}: line {statement.lineno} of the parameters cell must assign one name")
        try:
            defaults[target.id] = ast.literal_eval(value)
        except ValueError:
            raise ValueError(
                f"{path}: parameter {target.id!r} must have a literal default (number, string, list, dict, ...)"
            ) from None
    if "profile" not in defaults:
        raise ValueError(f"{path}: the parameters cell must define `profile` (e.g. profile = \"cpu\")")
    return defaults, index


def chapters(root: Path) -> dict[str, Chapter]:
    """Return every chapter notebook in ``notebooks/`` by stem (sorted)."""
    layout = BookLayout(root)
    found = {}
    for path in sorted(layout.notebooks.glob("*.ipynb")):
        defaults, index = notebook_parameters(path)
        found[path.stem] = Chapter(path.stem, path, defaults, index)
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


def _compatible(default: Any, value: Any, per_dataset: bool = False) -> bool:
    """Whether a profile value has the type of the notebook's default.

    ``per_dataset``: the paper module takes one number for every dataset where the default
    is a mapping dataset -> number (``epochs``), so such a number is compatible too.
    """
    if default is None or value is None:
        return True
    if per_dataset and isinstance(default, dict) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in default.values())
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def parameter_problems(chapter: Chapter, values: dict[str, Any], origin: str) -> list[str]:
    """List what is wrong with parameter values given to a chapter (empty when nothing is).

    Parameters
    ----------
    chapter : Chapter
        The chapter whose ``parameters`` cell the values must fit.
    values : dict
        Parameter name -> value, from a profile or the command line.
    origin : str
        Where the values come from, prefixed to every message
        (``"notebooks/profiles/cpu.yaml"``, ``"-p"``).

    Returns
    -------
    list of str
        One message per unknown parameter, value of the wrong type, or
        attempt to set ``profile`` (the build injects it).
    """
    problems = []
    per_dataset = _per_dataset_parameters(chapter.stem)
    for name, value in values.items():
        if name == "profile":
            problems.append(f"{origin}: `profile` is injected by the build; do not set it")
        elif name not in chapter.defaults:
            problems.append(
                f"{origin}: unknown parameter {name!r} for notebook {chapter.stem!r} "
                f"(its parameters: {', '.join(sorted(chapter.defaults))})"
            )
        elif not _compatible(chapter.defaults[name], value, name in per_dataset):
            problems.append(
                f"{origin}: parameter {name!r} of {chapter.stem!r} should be like "
                f"{chapter.defaults[name]!r} ({type(chapter.defaults[name]).__name__}), got {value!r}"
            )
    return problems


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


def resolve_chapter(chapter_index: dict[str, Chapter], notebook: str) -> Chapter:
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


def plan(root: Path, profile: str, chapter_index: dict[str, Chapter] | None = None) -> list[Job]:
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
            found = parameter_problems(chapter_index[stem], overrides, origin)
            problems += found
            if not found:
                chapter = chapter_index[stem]
                problems += chapter_problems(chapter, {**chapter.defaults, **overrides, "profile": profile}, origin)
    if problems:
        raise ValueError("invalid book configuration:\n  " + "\n  ".join(problems))
    code = _ncutils_digest(root)
    jobs = []
    for stem in toc:
        chapter = chapter_index[stem]
        injected = {**values[stem], "profile": profile}
        parameters = {**chapter.defaults, **injected}
        key = _digest(_notebook_digest(chapter.path), parameters, code, profile)
        jobs.append(Job(chapter, profile, injected, parameters, key))
    return jobs


def validate(root: Path) -> dict[str, list[Job]]:
    """Validate every profile of :data:`PROFILES`; return their jobs by profile."""
    chapter_index = chapters(root)
    return {profile: plan(root, profile, chapter_index) for profile in PROFILES}
