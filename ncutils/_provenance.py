"""Where a stored result came from: the project's commit and the machine's processor.

The results store records, with every entry it writes, the commit of the project (and
whether tracked files differed from it) and the device's name; the book's provenance
(:mod:`ncutils.book.provenance`) records the same of every figure. Both read them here, in
the core floor, so that the store never imports the book.
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "git_state", "project_root"]


def project_root() -> Path:
    """Return the repository root: the folder that holds the ``ncutils`` package.

    Returns
    -------
    pathlib.Path
        Absolute path of the parent of the ``ncutils`` package directory.
    """
    return Path(__file__).resolve().parents[1]


def _run_git(root: Path, *arguments: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *arguments],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout


def git_state(root: Path | None = None) -> dict[str, Any]:
    """Return the commit of the project and whether its tracked files differ from it.

    ``$NC_GIT_COMMIT`` / ``$NC_GIT_DIRTY`` (set by the book build) take
    precedence so that all records of one build agree.

    A commit is recorded only when ``root`` is the top level of its git checkout:
    a copy of the project inside another repository (or a folder in no repository)
    is "not a git checkout", never the enclosing repository's commit. Dirty means
    tracked files differ from the commit (staged or not); untracked files (logs,
    data, virtual environments, run stores) do not count.

    Parameters
    ----------
    root : pathlib.Path, optional
        Project root; defaults to :func:`project_root`.

    Returns
    -------
    dict
        ``commit`` (str or None), ``dirty`` (bool or None), ``changed`` (the tracked
        paths that differ, relative to ``root``; None when unknown) and ``state``
        (``"clean"``, ``"dirty"``, ``"not a git checkout"`` or, from the build's
        environment, ``"recorded by the build"``).

    Example
    -------
    >>> sorted(git_state())
    ['changed', 'commit', 'dirty', 'state']
    """
    if "NC_GIT_COMMIT" in os.environ:
        commit = os.environ["NC_GIT_COMMIT"] or None
        dirty_text = os.environ.get("NC_GIT_DIRTY", "")
        dirty = {"1": True, "0": False}.get(dirty_text)
        return {"commit": commit, "dirty": dirty, "changed": None,
                "state": "recorded by the build" if commit else "not a git checkout"}
    root = (project_root() if root is None else Path(root)).resolve()
    outside = {"commit": None, "dirty": None, "changed": None, "state": "not a git checkout"}
    top_level = _run_git(root, "rev-parse", "--show-toplevel")
    if top_level is None or Path(top_level.strip()).resolve() != root:
        return outside
    head = _run_git(root, "rev-parse", "--verify", "HEAD")
    # -z: paths verbatim (no quoting of unusual names); the first 3 bytes are the status.
    status = _run_git(root, "status", "--porcelain", "-z", "--untracked-files=no")
    if head is None or status is None:  # a repository without commits, or git failing
        return outside
    changed = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if not entry:
            continue
        changed.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy is followed by its source path
            next(entries, None)
    return {"commit": head.strip(), "dirty": bool(changed), "changed": sorted(changed),
            "state": "dirty" if changed else "clean"}


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"
