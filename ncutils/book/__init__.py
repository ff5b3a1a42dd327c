"""Build the companion book: profiles, papermill, jupyter-book, manifest.

Command line (``python -m ncutils.book ...``):

``build --profile cpu [--force] [--no-html]``
    Validate every profile against the chapters' ``parameters`` cells, run
    each chapter notebook of the profile with papermill (skipping those whose
    key is unchanged since their last successful run), write the scoreboard
    and the manifest, then render ``_build/html`` with ``jupyter-book build``
    (execution off, warnings as errors, nitpicky).
``run NOTEBOOK [--profile cpu] -p NAME VALUE ...``
    Re-execute one chapter with other parameters into ``_build/custom/``.
``validate``
    Only check the profiles, the notebooks and ``_toc.yml``.
``scoreboard``
    Print the scoreboard of the last builds as text.
``strip [NOTEBOOK ...]``
    Remove outputs from source notebooks (they are stored stripped).

Files (relative to the repository root)::

    notebooks/<chapter>.ipynb          source chapters, stored without outputs
    notebooks/profiles/<profile>.yaml  {chapter: {parameter: value}}
    _build/notebooks/<profile>/        executed notebooks, their findings, state.json
    book/generated/                    what the book renders: executed chapters,
                                       scoreboard and manifest tables (git-ignored)
    _build/findings.json               every finding of every profile built here
    _build/manifest.json               environment, hardware, timings of the last build
    runs/                              training results shared by chapters (ncutils.train)

A chapter is added by adding its notebook, one entry in every profile file and
a ``- file: book/generated/<chapter>`` line in ``_toc.yml``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from ncutils.book import findings, provenance

__all__ = [
    "KERNEL_NAME",
    "PROFILES",
    "BookLayout",
    "Chapter",
    "Job",
    "build",
    "chapters",
    "ensure_kernel",
    "load_profile",
    "main",
    "notebook_parameters",
    "plan",
    "run_notebook",
    "strip_outputs",
    "toc_chapters",
    "validate",
]

#: The profiles, in the order the scoreboard shows them.
PROFILES = ("smoke", "cpu", "gpu", "paper")

#: Name of the Jupyter kernel registered for the interpreter running the build.
KERNEL_NAME = "nc-companion"

# Where executed chapters live for the book; _toc.yml entries under this prefix are chapters.
GENERATED = "book/generated"


class BuildError(RuntimeError):
    """A notebook or the HTML build failed; the message says where."""


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


# --------------------------------------------------------------------------- notebooks


def _read_notebook(path: Path):
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
    notebook = _read_notebook(path)
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


# --------------------------------------------------------------------------- profiles


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
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: invalid YAML ({error})") from None
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


def _compatible(default: Any, value: Any) -> bool:
    """Whether a profile value has the type of the notebook's default."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _parameter_problems(chapter: Chapter, values: dict[str, Any], origin: str) -> list[str]:
    problems = []
    for name, value in values.items():
        if name == "profile":
            problems.append(f"{origin}: `profile` is injected by the build; do not set it")
        elif name not in chapter.defaults:
            problems.append(
                f"{origin}: unknown parameter {name!r} for notebook {chapter.stem!r} "
                f"(its parameters: {', '.join(sorted(chapter.defaults))})"
            )
        elif not _compatible(chapter.defaults[name], value):
            problems.append(
                f"{origin}: parameter {name!r} of {chapter.stem!r} should be like "
                f"{chapter.defaults[name]!r} ({type(chapter.defaults[name]).__name__}), got {value!r}"
            )
    return problems


def _digest(*parts: Any) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
        hasher.update(b"\x00")
    return hasher.hexdigest()


def _notebook_digest(path: Path) -> str:
    notebook = _read_notebook(path)
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
            problems += _parameter_problems(chapter_index[stem], overrides, origin)
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


# --------------------------------------------------------------------------- execution


def ensure_kernel() -> str:
    """Register a Jupyter kernel for the running interpreter and return its name.

    The kernel spec lives in ``sys.prefix`` (the virtual environment) and names
    ``sys.executable`` explicitly, so notebooks run with the same packages as
    the build whatever other ``python3`` kernels the machine has. It is
    (re)written whenever it is missing or points at another interpreter.
    """
    spec_file = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if spec_file.exists():
        with contextlib.suppress(ValueError, KeyError, IndexError):
            if json.loads(spec_file.read_text())["argv"][0] == sys.executable:
                return KERNEL_NAME
    from ipykernel.kernelspec import install

    try:
        install(kernel_name=KERNEL_NAME, display_name="Python (nc-companion)", prefix=sys.prefix)
    except OSError:  # read-only interpreter prefix: fall back to the user's Jupyter folder
        install(kernel_name=KERNEL_NAME, display_name="Python (nc-companion)", user=True)
    return KERNEL_NAME


@contextlib.contextmanager
def _environment(**variables: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _failure_message(job_path: Path, chapter: Chapter, output: Path, error: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        # papermill counts cells after inserting its parameters cell just below ours
        index = error.cell_index
        source_index = index if index <= chapter.parameters_cell else index - 1
        first_line = next((line for line in error.source.splitlines() if line.strip()), "")
        return (
            f"notebook {job_path} failed in cell {source_index + 1} "
            f"(execution count {error.exec_count}): {first_line.strip()}\n"
            f"  {error.ename}: {error.evalue}\n"
            f"  the executed notebook with the traceback: {output}"
        )
    return f"notebook {job_path} failed: {type(error).__name__}: {error}\n  partial output: {output}"


def execute(
    root: Path,
    chapter: Chapter,
    injected: dict[str, Any],
    parameters: dict[str, Any],
    output: Path,
    findings_path: Path,
    *,
    git: dict[str, Any],
) -> float:
    """Run one notebook with papermill; return the seconds it took.

    The kernel runs in the repository root (so ``runs/`` is shared by all
    chapters) with ``ncutils`` of this checkout first on its path and the
    provenance variables of :mod:`ncutils.book.provenance` set.

    Raises
    ------
    BuildError
        Naming the notebook, the failing cell and the error.
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    findings_path.parent.mkdir(parents=True, exist_ok=True)
    findings_path.unlink(missing_ok=True)
    python_path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    relative = chapter.path.relative_to(root) if chapter.path.is_relative_to(root) else chapter.path
    started = time.perf_counter()
    with _environment(
        NC_FINDINGS_FILE=str(findings_path),
        NC_NOTEBOOK=chapter.stem,
        NC_PARAMETERS=json.dumps(parameters),
        NC_GIT_COMMIT=git["commit"] or "",
        NC_GIT_DIRTY={True: "1", False: "0"}.get(git["dirty"], ""),
        NCUTILS_RUNS_DIR=str(BookLayout(root).runs),
        PYTHONPATH=python_path,
        # Busy-waiting OpenMP threads collapse torch's speed by 100x or more when other
        # processes share the cores (as on a CI runner); passive waiting costs little when idle.
        OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    ):
        try:
            papermill.execute_notebook(
                str(chapter.path),
                str(output),
                parameters=injected,
                kernel_name=ensure_kernel(),
                language="python",
                cwd=str(root),
                progress_bar=sys.stderr.isatty(),
                log_output=False,
            )
        except Exception as error:  # papermill and nbclient raise many types; report them all
            raise BuildError(_failure_message(relative, chapter, output, error)) from error
    return time.perf_counter() - started


def _load_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return default


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content, indent=1, sort_keys=True, default=str))
    os.replace(temporary, path)


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write only when the content differs, so Sphinx keeps unchanged pages."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _state_path(layout: BookLayout, profile: str) -> Path:
    return layout.profile_cache(profile) / "state.json"


def _cached(layout: BookLayout, job: Job, state: dict[str, Any]) -> bool:
    entry = state.get(job.stem)
    cache = layout.profile_cache(job.profile)
    return (
        entry is not None
        and entry.get("key") == job.key
        and (cache / f"{job.stem}.ipynb").exists()
        and (cache / f"{job.stem}.findings.json").exists() == entry.get("has_findings", False)
    )


def run_jobs(layout: BookLayout, jobs: Sequence[Job], *, force: bool, git: dict[str, Any]) -> list[dict[str, Any]]:
    """Execute (or reuse) every job in order; return one timing record per job.

    Raises
    ------
    BuildError
        On the first failing notebook; later notebooks are not run.
    """
    if not jobs:
        return []
    profile = jobs[0].profile
    cache = layout.profile_cache(profile)
    state_path = _state_path(layout, profile)
    state = _load_json(state_path, {})
    records = []
    for number, job in enumerate(jobs, start=1):
        prefix = f"[{number}/{len(jobs)}] {job.stem} ({profile})"
        if not force and _cached(layout, job, state):
            entry = state[job.stem]
            print(f"{prefix}: unchanged, reusing the run of {entry['finished_at']} ({entry['seconds']:.1f} s)", flush=True)
            records.append({**entry, "notebook": job.stem, "status": "cached"})
            continue
        print(f"{prefix}: running ...", flush=True)
        state.pop(job.stem, None)
        _write_json(state_path, state)
        findings_path = cache / f"{job.stem}.findings.json"
        seconds = execute(
            layout.root,
            job.chapter,
            job.injected,
            job.parameters,
            cache / f"{job.stem}.ipynb",
            findings_path,
            git=git,
        )
        entry = {
            "key": job.key,
            "seconds": round(seconds, 2),
            "finished_at": _now(),
            "parameters": job.parameters,
            "git_commit": git["commit"],
            "has_findings": findings_path.exists(),
        }
        state[job.stem] = entry
        _write_json(state_path, state)
        print(f"{prefix}: done in {seconds:.1f} s", flush=True)
        records.append({**entry, "notebook": job.stem, "status": "ran"})
    return records


def _sync_generated(layout: BookLayout, jobs: Sequence[Job]) -> None:
    """Copy the executed chapters of this profile to ``book/generated/``."""
    layout.generated.mkdir(parents=True, exist_ok=True)
    wanted = {job.stem for job in jobs}
    for job in jobs:
        source = layout.profile_cache(job.profile) / f"{job.stem}.ipynb"
        _write_if_changed(layout.generated / f"{job.stem}.ipynb", source.read_bytes())
    for stale in layout.generated.glob("*.ipynb"):
        if stale.stem not in wanted:
            stale.unlink()


def _merge_findings(layout: BookLayout, all_jobs: dict[str, list[Job]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Merge the findings of every profile built here; note outdated ones."""
    contents = []
    outdated: dict[str, list[str]] = {}
    for profile, jobs in all_jobs.items():
        state = _load_json(_state_path(layout, profile), {})
        for job in jobs:
            entry = state.get(job.stem)
            path = layout.profile_cache(profile) / f"{job.stem}.findings.json"
            if entry is None or not path.exists():
                continue
            content = findings.load(path)
            # only records of this profile count: a notebook could override `profile`
            contents.append({"schema": content["schema"], "profiles": {profile: content["profiles"].get(profile, {})}})
            if entry.get("key") != job.key:
                outdated.setdefault(profile, []).append(job.stem)
    return findings.merge(contents), outdated


# --------------------------------------------------------------------------- manifest


def _git_branch(root: Path) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        completed = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root, capture_output=True, text=True, timeout=20
        )
        if completed.returncode == 0:
            return completed.stdout.strip()
    return None


def build_manifest(root: Path, profile: str, records: Sequence[dict[str, Any]], git: dict[str, Any]) -> dict[str, Any]:
    """Collect what the reproducibility page shows about this build."""
    devices = sorted({str(record["parameters"].get("device", "cpu")) for record in records}) or ["cpu"]
    return {
        "profile": profile,
        "built_at": _now(),
        "git": {**git, "branch": _git_branch(root)},
        "environment": provenance.environment(),
        "hardware": {device: provenance.device_info(device) for device in devices},
        "notebooks": [
            {
                "notebook": record["notebook"],
                "status": record["status"],
                "seconds": record["seconds"],
                "finished_at": record["finished_at"],
                "git_commit": record.get("git_commit"),
                "parameters": record["parameters"],
            }
            for record in records
        ],
        "notebook_seconds_this_build": round(sum(r["seconds"] for r in records if r["status"] == "ran"), 2),
        "notebook_seconds_total": round(sum(r["seconds"] for r in records), 2),
    }


def _md_cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def manifest_markdown(manifest: dict[str, Any]) -> str:
    """Render a manifest as the Markdown tables of the reproducibility page."""
    git = manifest["git"]
    commit = git["commit"] or "not a git checkout"
    if git["dirty"]:
        commit += " (working tree had uncommitted changes)"
    lines = ["## This build", ""]
    lines += _md_table(
        ["", ""],
        [
            ["profile", manifest["profile"]],
            ["built at (UTC)", manifest["built_at"]],
            ["git commit", commit],
            ["branch", git.get("branch") or "—"],
            ["notebook time in this build (s)", manifest["notebook_seconds_this_build"]],
            ["notebook time if all ran (s)", manifest["notebook_seconds_total"]],
        ],
    )
    lines += ["## Timings per notebook", ""]
    lines += _md_table(
        ["notebook", "status", "time (s)", "executed at (UTC)", "commit"],
        [
            [n["notebook"], n["status"], f"{n['seconds']:.1f}", n["finished_at"], (n.get("git_commit") or "—")[:7]]
            for n in manifest["notebooks"]
        ],
    )
    lines += ["## Hardware", ""]
    lines += _md_table(
        ["device parameter", "device used", "model", "CPU cores", "torch threads", "CUDA available"],
        [
            [requested, info["device"], info["name"], info["cpu_count"], info["torch_threads"], info["cuda_available"]]
            for requested, info in manifest["hardware"].items()
        ],
    )
    environment = manifest["environment"]
    lines += ["## Software", ""]
    lines += _md_table(
        ["package", "version"],
        [["python", environment["python"]], ["platform", environment["platform"]]]
        + [[name, version or "not installed"] for name, version in environment["packages"].items()],
    )
    lines += ["## Parameters per notebook", ""]
    for notebook in manifest["notebooks"]:
        lines += [f"### {notebook['notebook']}", ""]
        lines += _md_table(["parameter", "value"], sorted(notebook["parameters"].items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- html


def _jupyter_book_command() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def render_html(root: Path, *, quiet: bool = True) -> float:
    """Run ``jupyter-book build`` (execution off by ``_config.yml``) with ``-W -n``.

    Returns
    -------
    float
        Seconds taken.

    Raises
    ------
    BuildError
        If jupyter-book fails (any Sphinx warning counts as an error).
    """
    command = _jupyter_book_command() + ["build", str(root), "--builder", "html", "-W", "-n", "--keep-going"]
    if quiet:
        command.append("-q")
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=root, check=False)
    if completed.returncode != 0:
        raise BuildError(f"jupyter-book build failed (exit code {completed.returncode}); see the warnings above")
    return time.perf_counter() - started


# --------------------------------------------------------------------------- commands


def build(
    profile: str = "cpu",
    *,
    root: Path | None = None,
    force: bool = False,
    html: bool = True,
) -> dict[str, Any]:
    """Build the book for one profile (see the module docstring).

    Parameters
    ----------
    profile : str, default "cpu"
        One of :data:`PROFILES`.
    root : pathlib.Path, optional
        Repository root; defaults to the checkout holding this package.
    force : bool, default False
        Re-run every notebook even when its key is unchanged.
    html : bool, default True
        Render ``_build/html`` with jupyter-book after the notebooks.

    Returns
    -------
    dict
        The manifest of the build (also written to ``_build/manifest.json``).

    Raises
    ------
    ValueError
        Invalid profile, notebooks or ``_toc.yml``, before anything runs.
    BuildError
        A notebook or the HTML build failed.
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = BookLayout(root)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    all_jobs = validate(root)
    jobs = all_jobs[profile]
    started = time.perf_counter()
    git = provenance.git_state(root)
    ensure_kernel()
    records = run_jobs(layout, jobs, force=force, git=git)
    _sync_generated(layout, jobs)

    merged, outdated = _merge_findings(layout, all_jobs)
    _write_json(layout.build / "findings.json", merged)
    _write_if_changed(layout.generated / "findings_list.md", findings.findings_markdown().encode())
    board = findings.scoreboard_markdown(merged, PROFILES, outdated=outdated)
    _write_if_changed(layout.generated / "scoreboard_table.md", board.encode())

    manifest = build_manifest(root, profile, records, git)
    _write_if_changed(layout.generated / "manifest_tables.md", manifest_markdown(manifest).encode())
    _write_json(layout.build / "manifest.json", manifest)
    notebooks_seconds = time.perf_counter() - started
    print(f"notebooks: {notebooks_seconds:.1f} s", flush=True)

    if html:
        print("rendering the website with jupyter-book ...", flush=True)
        html_seconds = render_html(root)
        manifest["html_seconds"] = round(html_seconds, 2)
        _write_json(layout.build / "manifest.json", manifest)
        print(f"jupyter-book: {html_seconds:.1f} s; website: {layout.build / 'html' / 'index.html'}", flush=True)
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    _write_json(layout.build / "manifest.json", manifest)
    print(f"book built for profile {profile} in {manifest['build_seconds']:.1f} s", flush=True)
    return manifest


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _resolve_chapter(chapter_index: dict[str, Chapter], notebook: str) -> Chapter:
    stem = Path(notebook).stem if notebook.endswith(".ipynb") else notebook
    if stem not in chapter_index:
        raise ValueError(f"unknown notebook {notebook!r}: expected one of {', '.join(chapter_index) or 'none'}")
    return chapter_index[stem]


def run_notebook(
    notebook: str,
    overrides: Sequence[tuple[str, str]] = (),
    *,
    profile: str = "cpu",
    root: Path | None = None,
    output: Path | None = None,
) -> Path:
    """Execute one chapter with a profile's parameters changed by ``overrides``.

    Parameters
    ----------
    notebook : str
        Chapter stem or path, e.g. ``"measuring_collapse"``.
    overrides : sequence of (name, value) pairs
        Values are parsed as YAML (``10`` is an int, ``[1, 2]`` a list).
    profile : str, default "cpu"
        The profile whose parameters are the starting point.
    root : pathlib.Path, optional
        Repository root.
    output : pathlib.Path, optional
        Executed notebook; defaults to ``_build/custom/<chapter>.ipynb``. Its
        findings go next to it (``<chapter>.findings.json``), never into the
        book's scoreboard.

    Returns
    -------
    pathlib.Path
        The executed notebook.

    Raises
    ------
    ValueError
        Unknown notebook, profile or parameter, or a value of the wrong type.
    BuildError
        The notebook failed.
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = BookLayout(root)
    chapter = _resolve_chapter(chapters(root), notebook)
    values = load_profile(root, profile).get(chapter.stem, {})
    parsed = {name: _parse_value(text) for name, text in overrides}
    problems = _parameter_problems(chapter, parsed, "-p")
    if problems:
        raise ValueError("invalid parameters:\n  " + "\n  ".join(problems))
    injected = {**values, **parsed, "profile": profile}
    parameters = {**chapter.defaults, **injected}
    output = layout.custom / f"{chapter.stem}.ipynb" if output is None else Path(output).resolve()
    findings_path = output.with_name(f"{output.stem}.findings.json")
    git = provenance.git_state(root)
    print(f"running {chapter.stem} with " + ", ".join(f"{k}={v!r}" for k, v in sorted(injected.items())), flush=True)
    seconds = execute(root, chapter, injected, parameters, output, findings_path, git=git)
    print(f"done in {seconds:.1f} s: {output}", flush=True)
    if findings_path.exists():
        for sections in findings.load(findings_path)["profiles"].values():
            for section in ("findings", "checks"):
                for identifier, entry in sections.get(section, {}).items():
                    print(f"  {identifier}: {entry['verdict']} (value {entry['value']})")
    return output


def scoreboard_text(root: Path | None = None) -> str:
    """Plain-text scoreboard of ``_build/findings.json`` (for CI logs)."""
    root = provenance.project_root() if root is None else Path(root)
    content = findings.load(BookLayout(root).build / "findings.json")
    width = 22
    lines = ["finding  " + "".join(profile.ljust(width) for profile in PROFILES)]
    for identifier in findings.FINDINGS:
        cells = []
        for profile in PROFILES:
            entry = content["profiles"].get(profile, {}).get("findings", {}).get(identifier)
            cells.append("not yet run" if entry is None else entry["verdict"])
        lines.append(identifier.ljust(9) + "".join(cell.ljust(width) for cell in cells))
    for profile in PROFILES:
        checks = content["profiles"].get(profile, {}).get("checks", {})
        if checks:
            passed = sum(entry["passed"] for entry in checks.values())
            lines.append(f"library checks ({profile}): {passed}/{len(checks)} passed")
    return "\n".join(lines)


def strip_outputs(paths: Sequence[Path]) -> list[Path]:
    """Remove outputs and execution counts from notebooks; return the ones changed."""
    import nbformat

    changed = []
    for path in paths:
        notebook = _read_notebook(path)
        # a cell papermill injected would freeze one profile's values into the source
        kept = [cell for cell in notebook.cells if "injected-parameters" not in cell.metadata.get("tags", [])]
        dirty = len(kept) != len(notebook.cells)
        notebook.cells = kept
        for cell in notebook.cells:
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
                cell.outputs, cell.execution_count, dirty = [], None, True
            for key in ("execution", "papermill"):
                if key in cell.metadata:
                    del cell.metadata[key]
                    dirty = True
        if "papermill" in notebook.metadata:
            del notebook.metadata["papermill"]
            dirty = True
        if dirty:
            nbformat.write(notebook, str(path))
            changed.append(path)
    return changed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ncutils.book", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="run the notebooks of a profile and render the website")
    build_parser.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    build_parser.add_argument("--force", action="store_true", help="re-run every notebook")
    build_parser.add_argument("--no-html", action="store_true", help="stop before jupyter-book")
    run_parser = commands.add_parser("run", help="re-execute one chapter with other parameters")
    run_parser.add_argument("notebook", help="chapter stem or path, e.g. measuring_collapse")
    run_parser.add_argument("--profile", default="cpu", help="profile whose parameters are the starting point")
    run_parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="override one parameter (value parsed as YAML); repeatable",
    )
    run_parser.add_argument("-o", "--output", type=Path, help="executed notebook path")
    commands.add_parser("validate", help="check profiles, notebooks and _toc.yml")
    commands.add_parser("scoreboard", help="print the scoreboard of the builds so far")
    strip_parser = commands.add_parser("strip", help="remove outputs from source notebooks")
    strip_parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    arguments = _parser().parse_args(argv)
    root = provenance.project_root()
    try:
        if arguments.command == "build":
            build(arguments.profile, root=root, force=arguments.force, html=not arguments.no_html)
        elif arguments.command == "run":
            run_notebook(arguments.notebook, arguments.parameter, profile=arguments.profile, root=root, output=arguments.output)
        elif arguments.command == "validate":
            jobs = validate(root)
            print(f"ok: {len(jobs['cpu'])} chapters, profiles {', '.join(jobs)}")
        elif arguments.command == "scoreboard":
            print(scoreboard_text(root))
        elif arguments.command == "strip":
            paths = arguments.notebooks or sorted(BookLayout(root).notebooks.glob("*.ipynb"))
            for path in strip_outputs(paths):
                print(f"stripped {path}")
    except (ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
