"""Result bundles: a built profile exported by one machine, merged into the website by any build.

A machine with a GPU builds the ``gpu`` or ``paper`` profile, exports it
(``python -m ncutils.book export --profile gpu``, :func:`export`) and proposes the folder
``results/gpu/`` in a pull request. Every build (``make book``, any profile) then merges each
bundle under ``results/`` into the site (:func:`publish`): the bundle's profile gets its column
on the scoreboard, each chapter page shows the bundle's verdict beside the live one with a
link to the bundle's executed notebook, which is rendered as a page of the book.

A bundle (``results/<profile>/``) holds

``manifest.json``
    ``schema`` (:data:`SCHEMA`), ``profile``, ``exported_at``, ``machine``, ``devices``, the
    build's ``git`` state (commit, dirty flag, branch), ``environment`` (Python, platform,
    package versions) and ``hardware``, and per chapter its ``digest`` (below), the modules
    the digest covers, its resolved ``parameters``, when and at which commit it ran.
``findings.json``
    The profile's section of ``_build/findings.json`` (a findings file of one profile).
``notebooks/<stem>.ipynb``
    The executed notebooks, as the build wrote them (figures are inside them).
``figures/<stem>/figure-<n>.png``
    The figures of each notebook as files, for reviewing a pull request.
``SHA256SUMS``
    The sha256 of every other file (``sha256sum`` format); a file missing, added or changed
    refuses the whole bundle.

**The chapter digest.** The digest of a chapter is the sha256 of its notebook's cells (type,
source, tags: what the build's cache key reads) and of the *code* of every ``ncutils`` module
the notebook imports, followed transitively through the modules' own imports (relative ones
too, and the packages' ``__init__`` files that importing runs). "Code" is the module's syntax
tree without docstrings and comments, as the results store keys its entries: an edit to a
docstring or to a module the chapter never imports leaves the digest, and the bundle fresh.
The build's cache key covers the whole package instead (any edit re-runs every chapter on the
machine that has the results store); a bundle is built elsewhere and rebuilt rarely, so it is
stale only when code it could have run changed. The import graph is read from the source, not
executed: an import made by name at run time (``importlib``) is not followed, and a notebook
that cannot be parsed counts as importing the whole package. A chapter is also stale when its
parameters in today's profile differ from the bundle's.

**Safety.** A bundle is data from outside: nothing in it is executed or imported. Its
notebooks are rendered with safe output types only: PNG images, SVG images without scripts,
event handlers, external references or embedded HTML (rendered as ``<img>``), ``text/plain``,
and the book's own glued values, which are made again from the bundle's findings by this
module (:class:`~ncutils.book.findings` renders and escapes them). Every other type (HTML,
JavaScript, Markdown, LaTeX, widgets) is removed; a figure the build stored as HTML keeps its
PNG image and its caption as text. A Markdown cell is rendered as Markdown only when the
same cell is in today's notebook (the repository's own text); any other is shown as literal
text. Checksums catch damage and edits by hand, not a forger, who can recompute them: that
is what the review of the pull request is for, and why the rendering trusts nothing inside.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import html
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ncutils import verdicts
from ncutils._io import write_if_changed
from ncutils._provenance import cpu_model
from ncutils.book import findings, provenance
from ncutils.book.execute import _read_state, cached_damage, merge_findings
from ncutils.book.manifest import build_manifest
from ncutils.book.profiles import PROFILES, BookLayout, Job, read_notebook, validate

__all__ = ["CHECKSUMS", "RESULTS", "SCHEMA", "Bundle", "BundleError", "ChapterStatus", "chapter_digest", "export",
           "load_bundles", "publish", "safe_notebook", "verify"]

#: The schema of a bundle's ``manifest.json``.
SCHEMA = "ncutils-bundle/1"
#: The checksums file of a bundle.
CHECKSUMS = "SHA256SUMS"
#: Where bundles live in the repository: ``results/<profile>/``.
RESULTS = "results"
#: Where the build renders the bundles' pages (under ``book/generated``).
PAGES = "bundles"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_STEM = re.compile(r"^[A-Za-z0-9_]+$")
_STATES = {verdicts.REPRODUCED, verdicts.NOT_REPRODUCED, verdicts.INCONCLUSIVE, "passed", "failed"}


class BundleError(ValueError):
    """A bundle that cannot be exported or merged; the message is one line saying why."""


# --------------------------------------------------------------------------- the chapter digest

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


# --------------------------------------------------------------------------- export

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_FIGURE_IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png(data: Any) -> bytes | None:
    """PNG bytes from base64 text, or None when it is not a PNG."""
    if isinstance(data, list):
        data = "".join(data)
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError:
        return None
    return raw if raw.startswith(_PNG_SIGNATURE) else None


def _figures(notebook: Any) -> list[bytes]:
    """The PNG figures of an executed notebook (image outputs and the book's HTML figures)."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            png = _png(data.get("image/png"))
            if png is not None:
                found.append(png)
            elif isinstance(data.get("text/html"), (str, list)):
                text = "".join(data["text/html"])
                found += [png for png in map(_png, _FIGURE_IMAGE.findall(text)) if png is not None]
    return found


def _machine() -> str:
    import platform

    return f"{platform.system()} {platform.machine()}, {cpu_model()}"


def _devices(manifest: Mapping[str, Any]) -> list[str]:
    return sorted({str(info.get("name")) for info in manifest.get("hardware", {}).values() if isinstance(info, dict)})


def export(profile: str, *, root: Path | None = None, output: Path | None = None,
           machine: str | None = None) -> Path:
    """Write the bundle of a built profile (see the module docstring).

    Parameters
    ----------
    profile : str
        One of :data:`~ncutils.book.profiles.PROFILES`; every chapter must have run at that
        profile with today's notebooks, parameters and code (``build --profile`` first).
    root : pathlib.Path, optional
        Repository root.
    output : pathlib.Path, optional
        The bundle's folder, replaced as a whole; default ``results/<profile>/``.
    machine : str, optional
        How the bundle names the machine; default the system and CPU model (never the host name).

    Returns
    -------
    pathlib.Path
        The bundle's folder.

    Raises
    ------
    BundleError
        A chapter that has not run, whose results predate today's code or parameters, or
        whose stored results are damaged.
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = BookLayout(root)
    if profile not in PROFILES:
        raise BundleError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    jobs = validate(root)[profile]
    state = _read_state(layout, profile)
    again = f"build it first: python -m ncutils.book build --profile {profile} (unchanged chapters are reused)"
    for job in jobs:
        entry = state.get(job.stem)
        if entry is None:
            raise BundleError(f"{job.stem} has not run at profile {profile}; {again}")
        if entry["key"] != job.key:
            raise BundleError(f"the results of {job.stem} ({profile}) predate a change of its notebook, parameters "
                              f"or ncutils; {again}")
        damage = cached_damage(layout, profile, job.stem, entry)
        if damage is not None:
            raise BundleError(f"{job.stem} ({profile}): {damage}; {again}")
    merged, _ = merge_findings(layout, {profile: jobs})
    content = {"schema": merged["schema"], "profiles": {profile: merged["profiles"].get(profile, {})}}

    manifest_path = layout.build / "manifest.json"
    build = None
    if manifest_path.exists():
        try:
            build = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            build = None
    if not isinstance(build, dict) or build.get("profile") != profile:
        # the last build was of another profile: describe this one from its state
        records = [{**state[job.stem], "notebook": job.stem, "status": "cached"} for job in jobs]
        build = build_manifest(root, profile, records, provenance.git_state(root))
    chapters_entry = {}
    for job in jobs:
        digest, modules = chapter_digest(root, job.stem)
        entry = state[job.stem]
        chapters_entry[job.stem] = {
            "digest": digest, "modules": modules, "parameters": job.parameters,
            "notebook": f"notebooks/{job.stem}.ipynb", "finished_at": entry.get("finished_at"),
            "git_commit": entry.get("git_commit"), "seconds": entry.get("seconds"),
        }
    git = build.get("git", {})
    manifest = {
        "schema": SCHEMA,
        "profile": profile,
        "exported_at": provenance.utc_now(),
        "built_at": build.get("built_at"),
        "machine": machine or _machine(),
        "devices": _devices(build),
        "git": {"commit": git.get("commit"), "dirty": bool(git.get("dirty")), "branch": git.get("branch")},
        "environment": build.get("environment", provenance.environment()),
        "hardware": build.get("hardware", {}),
        "digest_rule": "sha256 of the notebook's cells and of the code (syntax tree without docstrings) of the "
                       "ncutils modules it imports, transitively",
        "chapters": chapters_entry,
    }

    target = (layout.root / RESULTS / profile) if output is None else Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "notebooks").mkdir()
        for job in jobs:
            source = layout.profile_cache(profile) / f"{job.stem}.ipynb"
            shutil.copyfile(source, staging / "notebooks" / f"{job.stem}.ipynb")
            for number, png in enumerate(_figures(read_notebook(source)), 1):
                figure = staging / "figures" / job.stem / f"figure-{number}.png"
                figure.parent.mkdir(parents=True, exist_ok=True)
                figure.write_bytes(png)
        (staging / "findings.json").write_text(json.dumps(content, indent=1, sort_keys=True, default=str) + "\n")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
        files = sorted(path for path in staging.rglob("*") if path.is_file())
        (staging / CHECKSUMS).write_text("".join(f"{_sha256(path)}  {path.relative_to(staging).as_posix()}\n"
                                                 for path in files))
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------- checking a bundle

def _checked_files(folder: Path) -> dict[str, Path]:
    """Every file of a bundle against ``SHA256SUMS``: relative path -> file."""
    if folder.is_symlink() or not folder.is_dir():
        raise BundleError("not a folder")
    present: dict[str, Path] = {}
    for directory, folders, names in os.walk(folder):
        for name in folders + names:
            path = Path(directory) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise BundleError(f"{relative} is a symbolic link")
            if name in names:
                if not path.is_file():
                    raise BundleError(f"{relative} is not a plain file")
                present[relative] = path
    if CHECKSUMS not in present:
        raise BundleError(f"no {CHECKSUMS}")
    del present[CHECKSUMS]
    listed: dict[str, str] = {}
    try:
        lines = (folder / CHECKSUMS).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BundleError(f"{CHECKSUMS} is not text") from None
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64})  (\S.*)", line)
        if not match:
            raise BundleError(f"{CHECKSUMS} line {number} is not '<sha256>  <path>'")
        digest, relative = match.groups()
        if relative in listed or relative.startswith("/") or "\\" in relative \
                or posixpath.normpath(relative) != relative or relative.startswith(".."):
            raise BundleError(f"{CHECKSUMS} line {number}: bad or repeated path {relative!r}")
        listed[relative] = digest
    for relative in sorted(listed):
        if relative not in present:
            raise BundleError(f"{relative} is listed in {CHECKSUMS} but missing")
    for relative in sorted(present):
        if relative not in listed:
            raise BundleError(f"{relative} is not listed in {CHECKSUMS}")
        if _sha256(present[relative]) != listed[relative]:
            raise BundleError(f"{relative} does not match its checksum in {CHECKSUMS}")
    return present


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BundleError(message)


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _check_manifest(manifest: Any, profile: str | None) -> None:
    _require(isinstance(manifest, dict), "manifest.json is not a mapping")
    _require(manifest.get("schema") == SCHEMA, f"manifest.json: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    _require(manifest.get("profile") in PROFILES, f"manifest.json: unknown profile {manifest.get('profile')!r}")
    _require(profile is None or manifest["profile"] == profile,
             f"manifest.json: profile {manifest['profile']!r} in the folder of profile {profile!r}")
    for key in ("exported_at", "machine"):
        _require(isinstance(manifest.get(key), str), f"manifest.json: {key} must be a text")
    _require(_optional_text(manifest.get("built_at")), "manifest.json: built_at must be a text")
    _require(isinstance(manifest.get("devices"), list) and all(isinstance(d, str) for d in manifest["devices"]),
             "manifest.json: devices must be a list of texts")
    git = manifest.get("git")
    _require(isinstance(git, dict) and isinstance(git.get("dirty"), bool) and _optional_text(git.get("branch"))
             and (git.get("commit") is None or (isinstance(git["commit"], str) and _COMMIT.match(git["commit"]))),
             "manifest.json: git must hold commit (hex or null), dirty (true/false) and branch")
    for key in ("environment", "hardware"):
        _require(isinstance(manifest.get(key), dict), f"manifest.json: {key} must be a mapping")
    chapters = manifest.get("chapters")
    _require(isinstance(chapters, dict) and chapters, "manifest.json: chapters must be a non-empty mapping")
    for stem, entry in chapters.items():
        _require(bool(_STEM.match(stem)), f"manifest.json: bad chapter name {stem!r}")
        _require(isinstance(entry, dict), f"manifest.json: chapter {stem} is not a mapping")
        _require(isinstance(entry.get("digest"), str) and bool(_HEX64.match(entry["digest"])),
                 f"manifest.json: chapter {stem} has no sha256 digest")
        _require(isinstance(entry.get("parameters"), dict), f"manifest.json: chapter {stem} has no parameters")
        _require(entry.get("notebook") == f"notebooks/{stem}.ipynb",
                 f"manifest.json: chapter {stem}'s notebook must be notebooks/{stem}.ipynb")
        _require(entry.get("git_commit") is None or (isinstance(entry["git_commit"], str)
                                                      and bool(_COMMIT.match(entry["git_commit"]))),
                 f"manifest.json: chapter {stem}'s git_commit must be hex or null")
        _require(_optional_text(entry.get("finished_at")), f"manifest.json: chapter {stem}'s finished_at must be a text")


def _check_entry(identifier: str, entry: Any, section: str, stems: set[str]) -> None:
    where = f"findings.json: {section} {identifier!r}"
    _require(isinstance(entry, dict), f"{where} is not a mapping")
    _require(entry.get("id") == identifier, f"{where} has another id")
    _require(entry.get("verdict") in _STATES, f"{where}: unknown verdict {entry.get('verdict')!r}")
    for key in ("claim", "criterion"):
        _require(isinstance(entry.get(key), str), f"{where}: {key} must be a text")
    for key in ("reason", "tested", "scale", "paper_setting"):
        _require(key not in entry or _optional_text(entry[key]) or key == "scale", f"{where}: {key} must be a text")
    runs = entry.get("runs")
    _require(runs is None or (isinstance(runs, dict) and isinstance(runs.get("passed"), int)
                              and isinstance(runs.get("eligible"), int)), f"{where}: runs must hold passed and eligible")
    origin = entry.get("provenance")
    _require(isinstance(origin, dict) and origin.get("notebook") in stems,
             f"{where}: its provenance names no chapter of the bundle")


def _check_findings(content: Any, profile: str, stems: set[str]) -> dict[str, Any]:
    _require(isinstance(content, dict) and content.get("schema") == findings.SCHEMA
             and isinstance(content.get("profiles"), dict), "findings.json is not a findings file")
    _require(set(content["profiles"]) <= {profile}, f"findings.json holds profiles other than {profile}")
    sections = content["profiles"].get(profile, {})
    _require(isinstance(sections, dict), "findings.json: the profile's section is not a mapping")
    for section in ("findings", "checks"):
        entries = sections.get(section, {})
        _require(isinstance(entries, dict), f"findings.json: {section} is not a mapping")
        for identifier, entry in entries.items():
            _check_entry(identifier, entry, section, stems)
    amendments = sections.get("amendments", {})
    _require(isinstance(amendments, dict) and all(
        isinstance(items, list) and all(isinstance(item, dict) and all(isinstance(item.get(key), str) for key in
                                                                       ("date", "original", "replacement", "reason"))
                                        for item in items) for items in amendments.values()),
             "findings.json: amendments are malformed")
    return {section: dict(sections.get(section, {})) for section in ("findings", "checks", "amendments")}


def verify(folder: Path, profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check a bundle: its checksums, then its schema; nothing in it is executed.

    Parameters
    ----------
    folder : pathlib.Path
        The bundle's folder.
    profile : str, optional
        The profile the bundle must be of (the folder name under ``results/``).

    Returns
    -------
    (dict, dict, dict)
        The manifest, the profile's findings sections, and the notebooks by chapter stem.

    Raises
    ------
    BundleError
        With a one-line reason: a file missing, added or changed against ``SHA256SUMS``, a
        symbolic link, a manifest or findings file that breaks the schema, a notebook that
        does not read.
    """
    import nbformat

    folder = Path(folder)
    files = _checked_files(folder)
    documents = {}
    for name in ("manifest.json", "findings.json"):
        _require(name in files, f"no {name}")
        try:
            documents[name] = json.loads(files[name].read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise BundleError(f"{name} is not JSON ({type(error).__name__})") from None
    manifest = documents["manifest.json"]
    _check_manifest(manifest, profile)
    stems = set(manifest["chapters"])
    sections = _check_findings(documents["findings.json"], manifest["profile"], stems)
    notebooks = {}
    for stem, entry in manifest["chapters"].items():
        _require(entry["notebook"] in files, f"{entry['notebook']} is missing")
        try:
            notebook = nbformat.reads(files[entry["notebook"]].read_text(encoding="utf-8"), as_version=4)
            nbformat.validate(notebook)
        except Exception as error:  # nbformat raises JSON, Unicode and validation errors
            raise BundleError(f"{entry['notebook']} is not a valid notebook ({type(error).__name__})") from None
        notebooks[stem] = notebook
    return manifest, sections, notebooks


# --------------------------------------------------------------------------- merging bundles

@dataclass(frozen=True)
class ChapterStatus:
    """A bundle's chapter against today's code: fresh, or stale with the reason."""

    stem: str
    stale: bool
    reason: str = ""
    commit: str | None = None

    @property
    def label(self) -> str:
        """``fresh`` or ``stale (built at <commit>)``."""
        return f"stale (built at {(self.commit or 'an unknown commit')[:7]})" if self.stale else "fresh"


@dataclass
class Bundle:
    """A bundle that passed :func:`verify`, with each chapter's status against today's book."""

    profile: str
    path: Path
    manifest: dict[str, Any]
    sections: dict[str, Any]
    notebooks: dict[str, Any] = field(repr=False)
    chapters: dict[str, ChapterStatus] = field(default_factory=dict)

    @property
    def commit(self) -> str:
        git = self.manifest["git"]
        return (git.get("commit") or "no git")[:7] + ("+dirty" if git.get("dirty") else "")

    @property
    def device(self) -> str:
        return ", ".join(self.manifest["devices"]) or "unknown device"

    @property
    def date(self) -> str:
        return str(self.manifest.get("built_at") or self.manifest["exported_at"])[:10]

    def origin(self) -> str:
        """One line: ``results/gpu: commit abc1234, <machine>, <device>, 2026-12-01``."""
        return f"{RESULTS}/{self.profile}: commit {self.commit}, {self.manifest['machine']}, {self.device}, {self.date}"

    def status(self, entry: Mapping[str, Any]) -> ChapterStatus | None:
        """The status of the chapter a record comes from (None: not a chapter of today's book)."""
        return self.chapters.get(entry["provenance"].get("notebook"))

    def page(self, stem: str) -> str:
        """The bundle notebook's page, from the source root: ``book/generated/bundles/<profile>/<stem>``."""
        return f"book/generated/{PAGES}/{self.profile}/{stem}"


def _defanged(value: Any) -> Any:
    """A bundle's texts with every backslash shown as U+2216: no TeX command of theirs reaches MathJax."""
    if isinstance(value, str):
        return value.replace("\\", "\u2216")
    if isinstance(value, list):
        return [_defanged(item) for item in value]
    if isinstance(value, dict):
        return {key: _defanged(item) for key, item in value.items()}
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def load_bundles(root: Path, all_jobs: Mapping[str, Sequence[Job]], *, quiet: bool = False) -> list[Bundle]:
    """Every bundle under ``results/`` that passes :func:`verify`, in profile order.

    A bundle that does not is refused with one line on the console (``bundle results/gpu
    refused: ...``) and left out; the build goes on. Each chapter's status compares the
    bundle's digest and parameters with today's (:func:`chapter_digest`, the profile's jobs).
    """
    results = Path(root) / RESULTS
    if not results.is_dir():
        return []
    digests: dict[str, str] = {}
    found = []
    for folder in sorted(results.iterdir(), key=lambda path: (PROFILES.index(path.name) if path.name in PROFILES
                                                                else len(PROFILES), path.name)):
        if folder.name.startswith(".") or not (folder.is_dir() or folder.is_symlink()):
            continue
        try:
            _require(folder.name in PROFILES, f"the folder is not named after a profile ({', '.join(PROFILES)})")
            manifest, sections, notebooks = verify(folder, folder.name)
        except BundleError as error:
            if not quiet:
                print(f"warning: bundle {RESULTS}/{folder.name} refused: {error}", file=sys.stderr, flush=True)
            continue
        jobs = {job.stem: job for job in all_jobs.get(manifest["profile"], [])}
        bundle = Bundle(manifest["profile"], folder, _defanged(manifest), _defanged(sections), notebooks)
        for stem, entry in manifest["chapters"].items():
            if stem not in jobs:
                continue  # a chapter today's book no longer has: not shown
            if stem not in digests:
                digests[stem] = chapter_digest(root, stem)[0]
            commit = entry.get("git_commit") or manifest["git"].get("commit")
            if entry["digest"] != digests[stem]:
                reason = "the code it depends on changed since"
            elif _jsonable(entry["parameters"]) != _jsonable(jobs[stem].parameters):
                reason = f"its parameters at profile {manifest['profile']} changed since"
            else:
                reason = ""
            bundle.chapters[stem] = ChapterStatus(stem, bool(reason), reason, commit)
        found.append(bundle)
    return found


# --------------------------------------------------------------------------- safe notebooks

_GLUE_PREFIX = "application/papermill.record/"
_SAFE_TAGS = {"remove-cell", "remove-input", "remove-output", "hide-cell", "hide-input", "hide-output",
              "parameters", "injected-parameters"}
_SVG_UNSAFE = re.compile(r"<\s*(script|foreignobject|iframe|object|embed|!doctype|!entity)|\bon[a-z]+\s*=|"
                         r"javascript:|(?:xlink:)?href\s*=\s*[\"'](?!#)", re.I)
_DISPLAY_OBJECT = re.compile(r"^<IPython\.core\.display\.\w+ object>$")
REMOVED_NOTE = "(an output of another type was removed: bundles are rendered with images and text only)"
_GLUE_REFERENCE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`|^[`:]{3,}\{glue(?::\w+)?\}\s+(\S+)", re.M)
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
            return findings._VerdictBox(entries[identifier], amendments.get(identifier, []))._repr_html_()
        match = re.match(r'<div class="nc-verdict nc-\w+" data-id="([^"]+)"', html_text)
        if match and not glue_name:
            identifier = html.unescape(match.group(1))
            entry = entries.get(identifier) or records.get("checks", {}).get(identifier)
            if entry is not None:
                dates = [item["date"] for item in amendments.get(identifier, [])]
                return findings._Card(entry, dates)._repr_html_()
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


def _safe_outputs(outputs: Sequence[Any], records: Mapping[str, Any]) -> tuple[list, set[str]]:
    import nbformat

    kept: list = []
    glued: set[str] = set()
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
                glued.add(glue_name)
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


def _glue_references(text: str, root: Path) -> set[str]:
    names = {first or second for first, second in _GLUE_REFERENCE.findall(text)}
    for _, path in _INCLUDE.findall(text):
        included = (root / "book" / "generated" / path).resolve()
        if included.is_file() and included.is_relative_to(root):
            names |= _glue_references(included.read_text(encoding="utf-8"), root)
    return names


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
    glued: set[str] = set()
    for cell in notebook.cells:
        tags = [tag for tag in cell.get("metadata", {}).get("tags", []) if tag in _SAFE_TAGS]
        metadata = {"tags": tags} if tags else {}
        source = _text(cell.get("source")) or ""
        if cell.cell_type == "code":
            outputs, names = _safe_outputs(cell.get("outputs", []), records)
            glued |= names
            cells.append(nbformat.v4.new_code_cell(source, metadata=metadata, outputs=outputs))
        else:
            cells.append((cell.cell_type, source, metadata))
    final = []
    for cell in cells:
        if not isinstance(cell, tuple):
            final.append(cell)
            continue
        kind, source, metadata = cell
        if kind == "markdown" and source in trusted_sources and _glue_references(source, root) <= glued:
            moved = _INCLUDE.sub(lambda match: match.group(1) + ("../" * depth + match.group(2)
                                                                 if not match.group(2).startswith("/") else match.group(2)),
                                 source)
            final.append(nbformat.v4.new_markdown_cell(moved, metadata=metadata))
        elif source.strip():
            final.append(nbformat.v4.new_markdown_cell(_fence(source), metadata=metadata))
    result = nbformat.v4.new_notebook(cells=final)
    result.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "language_info": {"name": "python"}}
    return result


# --------------------------------------------------------------------------- pages of the book

def _verdict_words(entry: Mapping[str, Any]) -> str:
    text = str(entry["verdict"])
    if entry.get("value") is not None:
        text += f" ({findings._format_value(entry['value'])})"
    return text


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
            words = f"{entry['id']}: " + (f"{status.label}; its verdict then: {_verdict_words(entry)}" if status.stale
                                           else _verdict_words(entry))
            verdict_parts.append(f'<span class="nc-badge {badge}">{escape(words)}</span>')
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
    return ('<div class="nc-bundles"><p class="nc-bundles-title"><strong>Results from other machines</strong> '
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
    generated page, and writes ``_build/toc.yml``: ``_toc.yml`` with a part "Results from
    other machines" (the toc that jupyter-book then renders; None when there is no bundle).

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
    part = {"caption": "Results from other machines", "chapters": [
        {"file": f"book/generated/{PAGES}/{bundle.profile}/index",
         "sections": [{"file": bundle.page(stem)} for stem in bundle.chapters]} for bundle in bundles]}
    if "parts" in toc:
        toc["parts"] = list(toc["parts"]) + [part]
    else:
        toc["parts"] = [{"chapters": toc.pop("chapters", [])}, part]
    layout.build.mkdir(parents=True, exist_ok=True)
    write_if_changed(toc_path, yaml.safe_dump(toc, sort_keys=False).encode())
    return bundles, toc_path
