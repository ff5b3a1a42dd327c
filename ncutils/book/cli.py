"""Build the companion book: profiles, papermill, jupyter-book, manifest.

Command line (``python -m ncutils.book ...``):

``build --profile cpu [--force] [--no-html] [--workers N]``
    Validate every profile against the chapters' ``parameters`` cells, run
    each chapter notebook of the profile with papermill (skipping those whose
    key is unchanged since their last successful run; ``N`` at once, default
    :func:`~ncutils.book.execute.default_workers`), write the scoreboard
    and the manifest, then render ``_build/html`` with ``jupyter-book build``
    (execution off, warnings as errors, nitpicky). A chapter whose cached results are
    damaged runs again, with a warning (:func:`~ncutils.book.execute.cached_damage`).
    SIGINT or SIGTERM stops the build, its workers, kernels and their training processes
    (:mod:`~ncutils.book.stopping`; a guard does the same when the build is killed), and
    the next build resumes with the chapters that did not finish.
``build --profile gpu --tiny [--chapter STEM ...]`` and ``run NOTEBOOK --profile paper --tiny``
    The profile's chapters (or those named) with their own architectures, datasets, schedules and code paths
    at tiny size (``notebooks/tiny.yaml``), on stand-in files of the torchvision datasets, into
    ``_build/tiny/<profile>/`` and the store ``<runs>/tiny/``; their findings are labelled
    ``"<profile> (tiny)"`` and never become the profile's verdicts (:mod:`~ncutils.book.tiny`).
``run NOTEBOOK [--profile cpu] -p NAME VALUE ... [--dry-run]``
    Re-execute one chapter with other parameters into
    ``_build/custom/<chapter>.<profile>.<overrides>.ipynb``; the parameters are checked
    (types, and the chapter's paper module) before the kernel starts, and the findings
    record the profile as ``custom: <overrides> (from <profile>)``. ``--dry-run`` only
    checks them (:func:`check_run`) and prints what would run.
``validate``
    Only check the profiles, the notebooks and ``_toc.yml``.
``scoreboard [--markdown]``
    Print the scoreboard of the last builds as text (``--markdown``: a Markdown table
    and the last build's time per notebook, for a CI job summary).
``strip [NOTEBOOK ...]``
    Remove outputs from source notebooks (they are stored stripped).
``export --profile P [--output DIR] [--machine NAME]``
    Write the result bundle of a built profile (default ``results/<profile>/``): its
    findings, a manifest (commit, machine, devices, packages, each chapter's code digest),
    the executed notebooks with their figures, and ``SHA256SUMS``
    (:mod:`~ncutils.book.bundles`). ``build`` merges every bundle under ``results/``: a
    scoreboard column per bundle, its verdicts on the chapter pages, its notebooks as pages;
    a bundle that fails its checks is refused with a one-line reason and left out.
``setup-cells [--check] [NOTEBOOK ...]``
    Write (or, with ``--check``, only check) each chapter's hidden setup cell, which
    installs the package on Colab from the repository URL of ``_config.yml``
    (:mod:`~ncutils.book.setup_cell`).

The steps live in the other modules of :mod:`ncutils.book`: reading and
checking chapters and profiles in :mod:`~ncutils.book.profiles`, running them
in :mod:`~ncutils.book.execute`, the manifest in :mod:`~ncutils.book.manifest`,
verdicts in :mod:`~ncutils.book.findings`, the scoreboard in :mod:`~ncutils.book.scoreboard`. This module
orders them (:func:`build`) and holds the command line (:func:`main`).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ncutils import runs
from ncutils._io import write_if_changed, write_json_atomic
from ncutils.book import bundles, findings, preflight, provenance, scoreboard, setup_cell, stopping, tiny
from ncutils.book.execute import (BuildError, default_workers, ensure_kernel, events_path, log_event, merge_findings,
                                  run_jobs, run_notebook, sync_generated)
from ncutils.book.execute import check_run as checked  # this module's check_run wraps it
from ncutils.book.manifest import CPU_RENDER_ALLOCATION, allocation_report, build_manifest, manifest_markdown
from ncutils.book.profiles import PROFILES, BookLayout, read_notebook, validate

__all__ = ["build", "check_run", "main", "render_html", "scoreboard_markdown", "scoreboard_text", "strip_outputs"]

def _jupyter_book_command() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def render_html(root: Path, *, quiet: bool = True, toc: Path | None = None) -> float:
    """Run ``jupyter-book build`` (execution off by ``_config.yml``) with ``-W -n``.

    ``toc`` replaces ``_toc.yml`` (the build's ``_build/toc.yml`` when bundles add pages).

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
    if toc is not None:
        command += ["--toc", str(toc)]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=root, check=False)
    if completed.returncode != 0:
        raise BuildError(f"jupyter-book build failed (exit code {completed.returncode}); see the warnings above")
    return time.perf_counter() - started


def build(
    profile: str = "cpu",
    *,
    root: Path | None = None,
    force: bool = False,
    html: bool = True,
    workers: int | None = None,
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
    workers : int, optional
        Notebooks run at once (default :func:`~ncutils.book.execute.default_workers`).

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
    found = preflight.problems([(job.chapter.declaration, job.parameters) for job in jobs], runs.default_runs_dir())
    if found:
        raise ValueError(f"the {profile} profile cannot run here:\n  " + "\n  ".join(found))
    workers = default_workers() if workers is None else workers
    started = time.perf_counter()
    git = provenance.git_state(root)
    ensure_kernel()
    records = run_jobs(layout, jobs, force=force, git=git, workers=workers)
    sync_generated(layout, jobs)

    merged, outdated = merge_findings(layout, all_jobs)
    write_json_atomic(layout.build / "findings.json", merged, default=str)
    write_if_changed(layout.generated / "findings_list.md", scoreboard.findings_markdown().encode())
    merged_bundles, toc = bundles.publish(layout, all_jobs)
    for bundle in merged_bundles:
        stale = sum(status.stale for status in bundle.chapters.values())
        print(f"bundle {bundles.RESULTS}/{bundle.profile}: {len(bundle.chapters)} chapters"
              + (f", {stale} stale" if stale else "") + f" ({bundle.origin()})", flush=True)
    board = scoreboard.scoreboard_markdown(merged, PROFILES, outdated=outdated, bundles=merged_bundles)
    write_if_changed(layout.generated / "scoreboard_table.md", board.encode())

    manifest = build_manifest(root, profile, records, git)
    manifest["workers"] = workers
    if profile == "cpu":
        manifest["allocations"] = allocation_report(records, workers=workers)
    write_if_changed(layout.generated / "manifest_tables.md", manifest_markdown(manifest).encode())
    write_json_atomic(layout.build / "manifest.json", manifest, default=str)
    notebooks_seconds = time.perf_counter() - started
    print(f"notebooks: {notebooks_seconds:.1f} s ({workers} at once)", flush=True)
    for row in manifest.get("allocations", []):
        print(f"  {row['group']:<20} {row['seconds']:7.1f} s wall, {row['cpu_seconds_per_core']:7.1f} s of "
              f"2 cores' CPU; allocation {row['allocation']:.0f} s", flush=True)
    if workers > 1 and manifest.get("allocations"):
        print("  (notebooks ran side by side: wall times overlap; CPU / 2 cores is the time alone)", flush=True)

    if html:
        print("rendering the website with jupyter-book ...", flush=True)
        html_seconds = render_html(root, toc=toc)
        manifest["html_seconds"] = round(html_seconds, 2)
        write_json_atomic(layout.build / "manifest.json", manifest, default=str)
        print(f"jupyter-book: {html_seconds:.1f} s (cpu allocation {CPU_RENDER_ALLOCATION:.0f} s); "
              f"website: {layout.build / 'html' / 'index.html'}", flush=True)
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    write_json_atomic(layout.build / "manifest.json", manifest, default=str)
    print(f"book built for profile {profile} in {manifest['build_seconds']:.1f} s", flush=True)
    return manifest


def _bundle_verdicts(root: Path) -> dict[str, dict[str, str]]:
    """Profile -> finding -> its verdict in the bundle under ``results/`` ("... (bundle)", or
    "stale (bundle)" where the chapter's code or parameters changed since)."""
    verdicts: dict[str, dict[str, str]] = {}
    if not (root / bundles.RESULTS).is_dir():
        return verdicts
    for bundle in bundles.load_bundles(root, validate(root), quiet=True):
        for identifier, entry in bundle.sections["findings"].items():
            status = bundle.chapters.get(entry.get("provenance", {}).get("notebook"))
            verdicts.setdefault(bundle.profile, {})[identifier] = (
                "stale (bundle)" if status is None or status.stale else f"{entry['verdict']} (bundle)")
    return verdicts


def _scoreboard(root: Path | None) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Verdict per finding and profile of ``_build/findings.json`` (else of a bundle under
    ``results/``), and the library checks' lines."""
    root = provenance.project_root() if root is None else Path(root)
    content = findings.load(BookLayout(root).build / "findings.json")
    from_bundles = _bundle_verdicts(root)
    rows = []
    for identifier in findings.FINDINGS:
        cells = []
        for profile in PROFILES:
            entry = content["profiles"].get(profile, {}).get("findings", {}).get(identifier)
            bundled = from_bundles.get(profile, {}).get(identifier)
            cells.append(entry["verdict"] if entry is not None else bundled or scoreboard.placeholder(identifier))
        rows.append((identifier, cells))
    checks_lines = []
    for profile in PROFILES:
        checks = content["profiles"].get(profile, {}).get("checks", {})
        if checks:
            passed = sum(entry["passed"] for entry in checks.values())
            checks_lines.append(f"library checks ({profile}): {passed}/{len(checks)} passed")
    return rows, checks_lines


def scoreboard_text(root: Path | None = None) -> str:
    """Plain-text scoreboard of ``_build/findings.json`` (for CI logs)."""
    rows, checks_lines = _scoreboard(root)
    width = 26
    lines = ["finding  " + "".join(profile.ljust(width) for profile in PROFILES)]
    lines += [identifier.ljust(9) + "".join(cell.ljust(width) for cell in cells) for identifier, cells in rows]
    return "\n".join(lines + checks_lines)


def scoreboard_markdown(root: Path | None = None) -> str:
    """The scoreboard as a Markdown table, then the last build's time per notebook.

    The times come from ``_build/manifest.json`` (:func:`~ncutils.book.manifest.build_manifest`);
    without one, only the scoreboard is shown. Made for a CI job summary.
    """
    root = provenance.project_root() if root is None else Path(root)
    rows, checks_lines = _scoreboard(root)
    lines = ["## Scoreboard", "", "| finding | " + " | ".join(PROFILES) + " |", "|---" * (len(PROFILES) + 1) + "|"]
    lines += [f"| {identifier} | " + " | ".join(cells) + " |" for identifier, cells in rows]
    lines += [""] + [f"- {line}" for line in checks_lines]
    manifest_path = BookLayout(root).build / "manifest.json"
    if manifest_path.exists():
        import json

        try:
            manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
            times = ["", f"## Build time per notebook (profile {manifest.get('profile')}, {manifest.get('built_at')})", "",
                     "| notebook | status | seconds |", "|---|---|---|"]
            times += [f"| {record['notebook']} | {record['status']} | {record['seconds']:.1f} |"
                      for record in manifest.get("notebooks", [])]
            times += ["", f"notebooks run in this build: {manifest.get('notebook_seconds_this_build', 0):.1f} s; "
                          f"jupyter-book: {manifest.get('html_seconds', 0):.1f} s; "
                          f"whole build: {manifest.get('build_seconds', 0):.1f} s"]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            message = (f"{manifest_path} is damaged ({type(error).__name__}: {error}); "
                       f"the times are left out until the next build rewrites it")
            print(f"warning: {message}", file=sys.stderr)
            times = ["", f"(the last build's manifest is damaged: {message})"]
        lines += times
    return "\n".join(lines) + "\n"


def check_run(
    notebook: str,
    overrides: Sequence[tuple[str, str]] = (),
    *,
    profile: str = "cpu",
    root: Path | None = None,
) -> dict[str, Any]:
    """Check a ``run`` as :func:`~ncutils.book.execute.run_notebook` checks it, running nothing.

    Returns
    -------
    dict
        The chapter's values from the profile updated with the overrides (what the run injects).

    Raises
    ------
    ValueError
        Unknown notebook, profile or parameter, a value of the wrong type, or values the
        chapter's paper module refuses: the errors ``run`` raises before its kernel starts.
    """
    _, values, parsed = checked(notebook, overrides, profile=profile, root=root)
    return {**values, **parsed}


def strip_outputs(paths: Sequence[Path]) -> list[Path]:
    """Remove outputs and execution counts from notebooks; return the ones changed."""
    import nbformat

    changed = []
    for path in paths:
        notebook = read_notebook(path)
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
    build_parser.add_argument("--workers", type=int, default=None,
                              help="notebooks run at once (default $NCUTILS_BOOK_WORKERS, else 2 on 2+ cores)")
    build_parser.add_argument("--tiny", action="store_true",
                              help="the profile's code paths at tiny size, on stand-in data, into _build/tiny/<profile>/ "
                                   "(notebooks/tiny.yaml; no website, not the profile's verdicts)")
    build_parser.add_argument("--chapter", action="append", default=None, metavar="STEM",
                              help="with --tiny: run only this chapter (repeatable)")
    run_parser = commands.add_parser("run", help="re-execute one chapter with other parameters")
    run_parser.add_argument("notebook", help="chapter stem or path, e.g. measuring_collapse")
    run_parser.add_argument("--profile", default="cpu", help="profile whose parameters are the starting point")
    run_parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="override one parameter (value parsed as YAML); repeatable",
    )
    run_parser.add_argument("-o", "--output", type=Path, help="executed notebook path")
    run_parser.add_argument("--dry-run", action="store_true", help="only check the chapter and the parameters")
    run_parser.add_argument("--tiny", action="store_true",
                            help="at tiny size on stand-in data (notebooks/tiny.yaml), into _build/tiny/custom/")
    export_parser = commands.add_parser("export", help="write the result bundle of a built profile")
    export_parser.add_argument("--profile", required=True, help=f"one of {', '.join(PROFILES)}")
    export_parser.add_argument("--output", type=Path, default=None, help="the bundle's folder (default results/<profile>)")
    export_parser.add_argument("--machine", default=None, help="how the bundle names the machine (default: system and CPU)")
    commands.add_parser("validate", help="check profiles, notebooks and _toc.yml")
    scoreboard_parser = commands.add_parser("scoreboard", help="print the scoreboard of the builds so far")
    scoreboard_parser.add_argument("--markdown", action="store_true", help="as Markdown, with the last build's times")
    strip_parser = commands.add_parser("strip", help="remove outputs from source notebooks")
    strip_parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    setup_parser = commands.add_parser("setup-cells", help="write the chapters' hidden Colab setup cells")
    setup_parser.add_argument("--check", action="store_true", help="only report cells that are missing or stale")
    setup_parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    ``build`` and ``run`` run as one process tree (:func:`~ncutils.book.stopping.process_tree`):
    SIGINT or SIGTERM stops their workers, kernels and training processes, and the exit status
    is then 128 + the signal's number.
    """
    arguments = _parser().parse_args(argv)
    root = provenance.project_root()
    layout = BookLayout(root)
    runs_tree = arguments.command == "build" or (arguments.command == "run" and not arguments.dry_run)
    try:
        with stopping.process_tree(events=events_path(layout)) if runs_tree else contextlib.nullcontext():
            return _command(arguments, root)
    except (ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except stopping.Interrupted as error:
        what = "the build" if arguments.command == "build" else f"the run of {arguments.notebook}"
        log_event(layout, f"{what} was interrupted by {error.signal_name}: its notebooks and their processes "
                          f"were stopped; the next build resumes with the chapters that did not finish",
                  warning=True)
        return error.exit_status


def _command(arguments: argparse.Namespace, root: Path) -> int:
    if arguments.command in ("build", "run") and arguments.tiny:
        if arguments.command == "build":
            tiny.build_tiny(arguments.profile, root=root, force=arguments.force, workers=arguments.workers,
                            chapters=arguments.chapter)
        elif arguments.dry_run:
            values = tiny.run_tiny(arguments.notebook, arguments.parameter, profile=arguments.profile, root=root,
                                   dry_run=True)
            print(f"ok: {arguments.notebook} on profile {arguments.profile} at tiny size with "
                  + ", ".join(f"{name}={value!r}" for name, value in sorted(values.items())))
        else:
            tiny.run_tiny(arguments.notebook, arguments.parameter, profile=arguments.profile, root=root,
                          output=arguments.output)
    elif arguments.command == "build" and arguments.chapter:
        raise ValueError("--chapter needs --tiny: the book is built whole (run one chapter with "
                         "`python -m ncutils.book run <chapter>`)")
    elif arguments.command == "build":
        build(arguments.profile, root=root, force=arguments.force, html=not arguments.no_html,
              workers=arguments.workers)
    elif arguments.command == "run" and arguments.dry_run:
        values = check_run(arguments.notebook, arguments.parameter, profile=arguments.profile, root=root)
        print(f"ok: {arguments.notebook} on profile {arguments.profile} with "
              + (", ".join(f"{name}={value!r}" for name, value in sorted(values.items())) or "its defaults"))
    elif arguments.command == "run":
        run_notebook(arguments.notebook, arguments.parameter, profile=arguments.profile, root=root, output=arguments.output)
    elif arguments.command == "export":
        path = bundles.export(arguments.profile, root=root, output=arguments.output, machine=arguments.machine)
        print(f"bundle of profile {arguments.profile}: {path}")
    elif arguments.command == "validate":
        jobs = validate(root)
        print(f"ok: {len(jobs['cpu'])} chapters, profiles {', '.join(jobs)}")
    elif arguments.command == "scoreboard":
        print(scoreboard_markdown(root) if arguments.markdown else scoreboard_text(root))
    elif arguments.command == "setup-cells":
        paths = arguments.notebooks or sorted(BookLayout(root).notebooks.glob("*.ipynb"))
        if arguments.check:
            problems = setup_cell.stale_setup_cells(root, paths)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1 if problems else 0
        source = setup_cell.setup_source(root)
        for path in paths:
            if setup_cell.insert_setup_cell(path, source):
                print(f"wrote the setup cell of {path}")
    elif arguments.command == "strip":
        paths = arguments.notebooks or sorted(BookLayout(root).notebooks.glob("*.ipynb"))
        for path in strip_outputs(paths):
            print(f"stripped {path}")
    return 0
