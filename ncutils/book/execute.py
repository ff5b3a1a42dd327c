"""Run chapter notebooks with papermill, and skip those whose inputs did not change.

:func:`run_jobs` executes the :class:`~ncutils.book.profiles.Job` list of one
profile in order, each in the repository root with the provenance variables of
:mod:`ncutils.book.provenance` set, and keeps
``_build/notebooks/<profile>/state.json`` so that a chapter whose key (source,
parameters, ``ncutils`` code, profile) is unchanged since its last successful
run is reused instead of run. :func:`run_notebook` re-executes one chapter with
other parameters outside the book (``python -m ncutils.book run``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from ncutils import runs
from ncutils._io import write_if_changed, write_json_atomic
from ncutils.book import findings, page_cells, preflight, provenance, stopping
from ncutils.book.profiles import (
    BookLayout,
    Notebook,
    Job,
    chapter_problems,
    chapters,
    load_profile,
    parse_value,
    resolve_chapter,
)

__all__ = [
    "KERNEL_NAME",
    "BuildError",
    "cached_damage",
    "check_run",
    "custom_label",
    "custom_stem",
    "default_workers",
    "kernel_manager_class",
    "ensure_kernel",
    "events_path",
    "exact_value",
    "execute",
    "log_event",
    "merge_findings",
    "run_jobs",
    "run_notebook",
    "store_warnings",
    "print_findings",
    "sync_generated",
]

#: Name of the Jupyter kernel registered for the interpreter running the build.
KERNEL_NAME = "nc-companion"


class BuildError(RuntimeError):
    """A notebook or the HTML build failed; the message says where."""


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


@functools.lru_cache(maxsize=1)
def kernel_manager_class() -> type:
    """The kernel manager of the build: IPC transport (Unix sockets) where the OS has it.

    Over TCP without CurveZMQ keys ipykernel logs "Kernel is running over TCP without
    encryption" at every start, a warning about a channel that is local and short-lived
    here. Over IPC the kernel talks through socket files beside its connection file
    (readable by the user only), so the warning has no cause and is not printed; nothing is
    filtered, so every other kernel message still reaches the build's stderr. Windows has no
    IPC transport: there the build keeps TCP (and its warning).
    """
    from jupyter_client import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    if os.name == "nt":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _private_ip(self) -> str:
            # jupyter_client would put the sockets in the current folder ("kernel-ipc-1", ...);
            # a private temporary folder keeps them out of the checkout and short (Unix socket
            # paths are limited to about 100 bytes)
            self._socket_folder = tempfile.mkdtemp(prefix="nc-kernel-")
            return os.path.join(self._socket_folder, "kernel")

        def cleanup_ipc_files(self) -> None:
            super().cleanup_ipc_files()
            folder = getattr(self, "_socket_folder", None)
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    return IPCKernelManager


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


def _failure_message(job_path: Path, chapter: Notebook, output: Path, error: Exception) -> str:
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
    chapter: Notebook,
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
        # the caller's store when set (a shared or scratch one), else the project's runs/
        NCUTILS_RUNS_DIR=os.environ.get("NCUTILS_RUNS_DIR") or str(BookLayout(root).runs),
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
                kernel_manager_class=kernel_manager_class(),
                language="python",
                cwd=str(root),
                progress_bar=sys.stderr.isatty(),
                log_output=False,
            )
        except Exception as error:  # papermill and nbclient raise many types; report them all
            raise BuildError(_failure_message(relative, chapter, output, error)) from error
    return time.perf_counter() - started


def _state_path(layout: BookLayout, profile: str) -> Path:
    return layout.profile_cache(profile) / "state.json"


#: The log of what builds and the store did (``<runs_dir>/events.log``, as :mod:`ncutils.store.files` names it).
EVENTS = "events.log"


def events_path(layout: BookLayout) -> Path:
    """The events log of the store the build uses: ``$NCUTILS_RUNS_DIR`` or ``runs/``."""
    return Path(os.environ.get("NCUTILS_RUNS_DIR") or layout.runs) / EVENTS


def log_event(layout: BookLayout, message: str, *, warning: bool = False) -> None:
    """Note ``message`` in the events log; a warning is printed on stderr too."""
    if warning:
        print(f"warning: {message}", file=sys.stderr, flush=True)
    path = events_path(layout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(f"{provenance.utc_now()} {'warning: ' if warning else ''}{message}\n")
    except OSError:  # a read-only store: the console has it
        pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_state(layout: BookLayout, profile: str) -> dict[str, Any]:
    """A profile's ``state.json``; damage (not JSON, not a mapping of entries) is warned about.

    A damaged file, or entry, reads as no run: the chapters run again.
    """
    path = _state_path(layout, profile)
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        log_event(layout, f"{path} is damaged ({type(error).__name__}: {error}); every chapter of profile "
                          f"{profile} runs again", warning=True)
        return {}
    if not isinstance(state, dict):
        log_event(layout, f"{path} is damaged (not a mapping); every chapter of profile {profile} runs again",
                  warning=True)
        return {}
    kept = {}
    for stem, entry in state.items():
        if isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("seconds"), (int, float)):
            kept[stem] = entry
        else:
            log_event(layout, f"{path}: the entry of {stem!r} is damaged; {stem} runs again", warning=True)
    return kept


def cached_damage(layout: BookLayout, profile: str, stem: str, entry: dict[str, Any]) -> str | None:
    """What is wrong with the stored results of one chapter's last run, or None if nothing.

    The executed notebook must read as a notebook and its findings (when the run had some)
    as a findings file; where the state entry records their sha256 (every run since it
    does), the files must match it byte for byte.
    """
    import nbformat

    cache = layout.profile_cache(profile)
    notebook = cache / f"{stem}.ipynb"
    findings_path = cache / f"{stem}.findings.json"
    if not notebook.exists():
        return f"{notebook} is missing"
    expected = entry.get("notebook_sha256")
    if expected is not None and _sha256(notebook) != expected:
        return f"{notebook} does not match its checksum"
    if expected is None:
        try:
            nbformat.read(str(notebook), as_version=4)
        except Exception as error:  # nbformat raises JSON, Unicode and validation errors
            return f"{notebook} is not a notebook ({type(error).__name__}: {error})"
    if not entry.get("has_findings", False):
        return f"{findings_path} should not exist" if findings_path.exists() else None
    if not findings_path.exists():
        return f"{findings_path} is missing"
    expected = entry.get("findings_sha256")
    if expected is not None and _sha256(findings_path) != expected:
        return f"{findings_path} does not match its checksum"
    try:
        findings.load(findings_path)
    except ValueError as error:  # not JSON, not UTF-8 or not a findings file
        return str(error)
    return None


def _cached(layout: BookLayout, job: Job, state: dict[str, Any]) -> bool:
    entry = state.get(job.stem)
    if entry is None or entry.get("key") != job.key:
        return False
    damage = cached_damage(layout, job.profile, job.stem, entry)
    if damage is not None:
        log_event(layout, f"{job.stem} ({job.profile}): {damage}; running it again", warning=True)
        return False
    return True


#: A warning of the results store that a stored entry is damaged (:mod:`ncutils.store`).
_STORE_WARNING = re.compile(r"(\w*Warning): (stored .* is corrupted.*)$", re.M)


def store_warnings(notebook: Path) -> list[str]:
    """The store's warnings about damaged entries printed in an executed notebook's outputs."""
    import nbformat

    try:
        content = nbformat.read(str(notebook), as_version=4)
    except Exception:  # a missing or damaged notebook has nothing to report
        return []
    found = []
    for cell in content.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                found += [match.group(2) for match in _STORE_WARNING.finditer(output.get("text", ""))]
    return list(dict.fromkeys(found))


def default_workers() -> int:
    """Notebooks a build runs at once: ``$NCUTILS_BOOK_WORKERS``, else 2 where there are 2+ cores.

    Two kernels keep two cores busy when chapters mostly load and plot (a rebuild after a
    metrics edit); while chapters train, a run is trained once whichever chapter asks
    first (:func:`ncutils.train.train` holds a lock per run) and the other waits, then loads.
    """
    configured = os.environ.get("NCUTILS_BOOK_WORKERS")
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"NCUTILS_BOOK_WORKERS must be a positive integer, got {configured!r}")
        return int(configured)
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _cpu_seconds() -> float:
    # this process and every descendant it has waited for: the kernel, and the kernel's
    # training workers (each reaped by its parent before the parent is reaped)
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return math.nan
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _execute_job(root: Path, job: Job, cache: Path, git: dict[str, Any]) -> tuple[float, float]:
    """Wall and CPU seconds of one notebook; run in its own (spawned) process when side by
    side, so that the kernel's environment variables are this process's."""
    cpu_before = _cpu_seconds()
    seconds = execute(root, job.chapter, job.injected, job.parameters, cache / f"{job.stem}.ipynb",
                      cache / f"{job.stem}.findings.json", git=git)
    return seconds, _cpu_seconds() - cpu_before


def run_jobs(layout: BookLayout, jobs: Sequence[Job], *, force: bool, git: dict[str, Any],
             workers: int = 1) -> list[dict[str, Any]]:
    """Execute (or reuse) every job; return one timing record per job, in job order.

    With ``workers > 1`` that many notebooks run at once, each in its own process (and
    kernel), started in job order; the log says when each starts and ends. A chapter whose
    stored results are damaged (:func:`cached_damage`) runs again, with a warning on the
    console and in the events log, and so do the store's warnings about damaged entries
    that a chapter printed.

    Raises
    ------
    BuildError
        On the first failing notebook; notebooks not yet started are not run.
    KeyboardInterrupt
        (:class:`~ncutils.book.stopping.Interrupted` on SIGINT or SIGTERM) after the running
        notebooks' processes were stopped and each was reported as interrupted; they have no
        entry in ``state.json``, so the next build runs them again.
    """
    if not jobs:
        return []
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    profile = jobs[0].profile
    cache = layout.profile_cache(profile)
    state_path = _state_path(layout, profile)
    state = _read_state(layout, profile)
    records: dict[str, dict[str, Any]] = {}
    prefixes = {job.stem: f"[{number}/{len(jobs)}] {job.stem} ({profile})" for number, job in enumerate(jobs, 1)}
    pending = []
    for job in jobs:
        if not force and _cached(layout, job, state):
            entry = state[job.stem]
            print(f"{prefixes[job.stem]}: unchanged, reusing the run of {entry['finished_at']} "
                  f"({entry['seconds']:.1f} s)", flush=True)
            records[job.stem] = {**entry, "notebook": job.stem, "status": "cached"}
        else:
            state.pop(job.stem, None)
            pending.append(job)
    write_json_atomic(state_path, state, default=str)
    running: dict[str, float] = {}  # stem -> when it started

    def start(job: Job, note: str = "") -> None:
        print(f"{prefixes[job.stem]}: running{note} ...", flush=True)
        running[job.stem] = time.perf_counter()

    def finished(job: Job, times: tuple[float, float]) -> None:
        running.pop(job.stem, None)
        seconds, cpu_seconds = times
        notebook, findings_path = cache / f"{job.stem}.ipynb", cache / f"{job.stem}.findings.json"
        for warning in store_warnings(notebook):
            log_event(layout, f"{job.stem} ({profile}): {warning}", warning=True)
        has_findings = findings_path.exists()
        entry = {
            "key": job.key,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "finished_at": provenance.utc_now(),
            "parameters": job.parameters,
            "git_commit": git["commit"],
            "has_findings": has_findings,
            "notebook_sha256": _sha256(notebook),
            "findings_sha256": _sha256(findings_path) if has_findings else None,
        }
        state[job.stem] = entry
        write_json_atomic(state_path, state, default=str)
        print(f"{prefixes[job.stem]}: done in {seconds:.1f} s ({cpu_seconds:.0f} CPU s)", flush=True)
        records[job.stem] = {**entry, "notebook": job.stem, "status": "ran"}

    try:
        if workers == 1 or len(pending) <= 1:
            for job in pending:
                start(job)
                finished(job, _execute_job(layout.root, job, cache, git))
        else:
            _run_side_by_side(layout, pending, cache, git, workers, start, finished)
    except KeyboardInterrupt as error:
        stopping.stop_descendants()  # the kernels and their training processes
        reason = getattr(error, "signal_name", "KeyboardInterrupt")
        for stem, since in running.items():
            log_event(layout, f"{prefixes[stem]}: interrupted by {reason} after {time.perf_counter() - since:.0f} s; "
                              f"not recorded, the next build runs it again", warning=True)
        raise
    return [records[job.stem] for job in jobs if job.stem in records]


def _run_side_by_side(layout: BookLayout, pending: Sequence[Job], cache: Path, git: dict[str, Any], workers: int,
                      start: Any, finished: Any) -> None:
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                  initializer=stopping.ignore_interrupts)
    try:
        waiting = list(pending)
        running: dict[concurrent.futures.Future, Job] = {}
        failure: BaseException | None = None
        while waiting or running:
            while waiting and len(running) < workers and failure is None:
                job = waiting.pop(0)
                start(job, f" ({len(running) + 1} at once)")
                running[pool.submit(_execute_job, layout.root, job, cache, git)] = job
            if not running:
                break
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    finished(job, future.result())
                except Exception as error:  # the first failure is raised once the others end
                    failure = failure or error
        if failure is not None:
            raise failure
    except BaseException:
        # an interrupt: waiting for the running notebooks would let them run to their end
        stopping.stop_descendants()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def sync_generated(layout: BookLayout, jobs: Sequence[Job]) -> None:
    """Copy the executed chapters of this profile to ``book/generated/``, tagged for the page
    (:func:`ncutils.book.page_cells.page_notebook`: plumbing removed, code folded)."""
    layout.generated.mkdir(parents=True, exist_ok=True)
    wanted = {job.stem for job in jobs}
    for job in jobs:
        source = layout.profile_cache(job.profile) / f"{job.stem}.ipynb"
        write_if_changed(layout.generated / f"{job.stem}.ipynb", page_cells.page_notebook(source.read_bytes()))
    for stale in layout.generated.glob("*.ipynb"):
        if stale.stem not in wanted:
            stale.unlink()


def merge_findings(layout: BookLayout, all_jobs: dict[str, list[Job]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Merge the findings of every profile built here; note outdated ones.

    Damaged results of a chapter (:func:`cached_damage`) are left out with a warning; the
    next build of their profile runs the chapter again.
    """
    contents = []
    outdated: dict[str, list[str]] = {}
    for profile, jobs in all_jobs.items():
        state = _read_state(layout, profile)
        for job in jobs:
            entry = state.get(job.stem)
            path = layout.profile_cache(profile) / f"{job.stem}.findings.json"
            if entry is None or not path.exists():
                continue
            damage = cached_damage(layout, profile, job.stem, entry)
            if damage is not None:
                log_event(layout, f"{job.stem} ({profile}): {damage}; its findings are left out until the next "
                                  f"build of profile {profile} runs it again", warning=True)
                continue
            content = findings.load(path)
            # only records of this profile count: a notebook could override `profile`
            contents.append({"schema": content["schema"], "profiles": {profile: content["profiles"].get(profile, {})}})
            if entry.get("key") != job.key:
                outdated.setdefault(profile, []).append(job.stem)
    return findings.merge(contents), outdated


def exact_value(value: Any) -> str:
    """A parameter value spelled exactly: floats by their shortest round-trip form (``repr``).

    Unlike :func:`~ncutils.book.provenance.format_value` (6 significant digits, for captions)
    two different floats never read the same.

    Example
    -------
    >>> exact_value(1.0000001), exact_value([0.1, 2, "relu"]), exact_value({"digits": 60})
    ('1.0000001', '[0.1,2,relu]', '{digits:60}')
    """
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(exact_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{exact_value(key)}:{exact_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def custom_label(profile: str, overrides: dict[str, Any]) -> str:
    """The profile a custom run records: ``"custom: epochs=10, lr=0.1 (from cpu)"``.

    Without overrides it is the profile itself: the run is that profile's. Values are
    spelled exactly (:func:`exact_value`), strings quoted where they would read as another
    value or contain a separator, so two different override sets never share a label.

    Example
    -------
    >>> custom_label("cpu", {"lr": 0.1, "epochs": 10}), custom_label("smoke", {})
    ('custom: epochs=10, lr=0.1 (from cpu)', 'smoke')
    >>> custom_label("cpu", {"radius": 1.0000001}), custom_label("cpu", {"data_dir": "a, b"})
    ('custom: radius=1.0000001 (from cpu)', "custom: data_dir='a, b' (from cpu)")
    """
    if not overrides:
        return profile

    def spelled(value: Any) -> str:
        if isinstance(value, str) and (not _faithful(value, value) or not value):
            return repr(value)
        return exact_value(value)

    text = ", ".join(f"{name}={spelled(value)}" for name, value in sorted(overrides.items()))
    return f"custom: {text} (from {profile})"


_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def _faithful(text: str, value: Any) -> bool:
    """Whether ``text`` is safe in a file name and reads back (as ``-p``) as ``value`` itself."""
    if _SAFE.search(text):
        return False
    parsed = parse_value(text)
    return type(parsed) is type(value) and parsed == value


def custom_stem(stem: str, profile: str, overrides: dict[str, Any], *, limit: int = 80) -> str:
    """File stem of a custom run under ``_build/custom/``: the chapter, the profile, the overrides.

    Overrides are spelled out exactly (``name=value``, sorted; :func:`exact_value`) while the
    name stays under ``limit`` characters, else replaced by a 10-digit hash of them. Where a
    value cannot be spelled exactly in a file name (characters other than letters, digits and
    ``_.+-``, which become ``_``; a string that reads as another value, such as ``'10'``),
    the hash of the overrides follows the spelled ones: two runs with different overrides
    never write the same notebook.

    Examples
    --------
    >>> custom_stem("kothapalli_terminal_phase", "cpu", {"epochs": 10, "lr": 0.0001})
    'kothapalli_terminal_phase.cpu.epochs=10.lr=0.0001'
    >>> custom_stem("parker_p1_depth", "cpu", {"datasets": ["digits", "mnist1d"]})
    'parker_p1_depth.cpu.datasets=_digits_mnist1d_.hfe9eb76041'
    >>> custom_stem("parker_p1_depth", "cpu", {}), len(custom_stem("x", "cpu", {"a": list(range(50))}))
    ('parker_p1_depth.cpu', 17)
    """
    base = f"{stem}.{profile}"
    if not overrides:
        return base
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=repr).encode()).hexdigest()[:10]
    parts, exact = [], True
    for name, value in sorted(overrides.items()):
        text = exact_value(value)
        exact = exact and not _SAFE.search(name) and "=" not in name and _faithful(text, value)
        parts.append(f"{_SAFE.sub('_', name)}={_SAFE.sub('_', text)}")
    spelled = ".".join(parts) + ("" if exact else f".h{digest}")
    if len(base) + 1 + len(spelled) <= limit:
        return f"{base}.{spelled}"
    return f"{base}.h{digest}"


def check_run(
    notebook: str,
    overrides: Sequence[tuple[str, str]] = (),
    *,
    profile: str = "cpu",
    root: Path | None = None,
) -> tuple[Notebook, dict[str, Any], dict[str, Any]]:
    """Check a run as :func:`run_notebook` does before its kernel starts, running nothing.

    Returns
    -------
    (Notebook, dict, dict)
        The chapter, its values in the profile, and the parsed overrides.

    Raises
    ------
    ValueError
        Unknown notebook, profile or parameter, a value of the wrong type, or values the
        chapter's paper module refuses (:func:`~ncutils.book.profiles.chapter_problems`).
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    chapter = resolve_chapter(chapters(root), notebook)
    values = load_profile(root, profile).get(chapter.stem, {})
    parsed = {}
    for name, text in overrides:
        try:
            parsed[name] = parse_value(text)
        except ValueError as error:  # a mapping that repeats a key
            raise ValueError(f"-p {name} {text!r}: {error}") from None
    problems = chapter_problems(chapter, values, f"notebooks/profiles/{profile}.yaml")
    if not problems:
        problems = chapter_problems(chapter, {**values, **parsed}, f"-p (on profile {profile})")
    if problems:
        raise ValueError("invalid parameters:\n  " + "\n  ".join(problems))
    resolved = chapter.declaration.resolve({**values, **parsed}, profile=profile)
    problems = preflight.problems([(chapter.declaration, resolved)], runs.default_runs_dir())
    if problems:
        raise ValueError(f"{chapter.stem} cannot run here:\n  " + "\n  ".join(problems))
    return chapter, values, parsed


def print_findings(findings_path: Path) -> None:
    """Print each verdict and check of a run's findings file, one line each (nothing if absent)."""
    if findings_path.exists():
        for sections in findings.load(findings_path)["profiles"].values():
            for section in ("findings", "checks"):
                for identifier, entry in sections.get(section, {}).items():
                    print(f"  {identifier}: {entry['verdict']} (value {entry['value']})")


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
        Executed notebook; defaults to ``_build/custom/<chapter>.<profile>.<overrides>.ipynb``
        (:func:`custom_stem`), so runs with other overrides keep their own files. Its
        findings go next to it (``<stem>.findings.json``), never into the book's
        scoreboard, and record the profile as :func:`custom_label`
        (``"custom: epochs=10 (from cpu)"``).

    Returns
    -------
    pathlib.Path
        The executed notebook.

    Raises
    ------
    ValueError
        Unknown notebook, profile or parameter, a value of the wrong type, or values the
        chapter's paper module refuses (:func:`~ncutils.book.profiles.chapter_problems`),
        all before the kernel starts.
    BuildError
        The notebook failed.
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = BookLayout(root)
    chapter, values, parsed = check_run(notebook, overrides, profile=profile, root=root)
    label = custom_label(profile, parsed)
    injected = {"profile": label, "overrides": {**values, **parsed}}
    parameters = dict(chapter.declaration.resolve({**values, **parsed}, profile=label))
    if output is None:
        output = layout.custom / f"{custom_stem(chapter.stem, profile, parsed)}.ipynb"
    else:
        output = Path(output).resolve()
    findings_path = output.with_name(f"{output.stem}.findings.json")
    git = provenance.git_state(root)
    print(f"running {chapter.stem} ({label}) with " + ", ".join(f"{k}={v!r}" for k, v in sorted(injected["overrides"].items())), flush=True)
    seconds = execute(root, chapter, injected, parameters, output, findings_path, git=git)
    print(f"done in {seconds:.1f} s: {output}", flush=True)
    print_findings(findings_path)
    return output
