"""Checks that run before any kernel starts: the data a command will read and the store it writes.

A chapter declares the datasets it reads (:attr:`ncutils.chapter.Chapter.datasets`); for every
chapter a command will run, :func:`problems` looks for their files (nothing is read or
downloaded) and checks that the results store can be written, so that a missing dataset or a
read-only store is one clear line before the work, not a traceback minutes into it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ncutils import data
from ncutils.chapter import Chapter

__all__ = ["data_problems", "problems", "store_problem"]


def data_problems(chapters: Iterable[tuple[Chapter, Mapping[str, Any]]]) -> list[str]:
    """One message per dataset a chapter will read but cannot find (each dataset and folder once).

    Parameters
    ----------
    chapters : iterable of (Chapter, parameters)
        The chapters a command will run, each with its resolved parameters (``data_dir`` and
        ``download`` are read from them).
    """
    found: dict[tuple[str, str, bool], list[str]] = {}
    messages: dict[tuple[str, str, bool], str] = {}
    for chapter, parameters in chapters:
        if chapter.datasets is None:
            continue
        data_dir, download = parameters.get("data_dir"), bool(parameters.get("download", False))
        for name in chapter.datasets(parameters):
            key = (name, str(data_dir), download)
            if key not in messages:
                problem = data.dataset_problem(name, data_dir, download=download)
                if problem is None:
                    continue
                messages[key] = problem
            found.setdefault(key, []).append(chapter.stem)
    return [f"{', '.join(stems)}: {messages[key]}" for key, stems in found.items()]


def store_problem(runs_dir: str | os.PathLike) -> str | None:
    """Why the results store at ``runs_dir`` cannot be written, or ``None`` when it can.

    The folder is created when missing (as a build would); a file is written and removed in it.
    """
    folder = Path(runs_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        return (f"the results store {folder} cannot be written ({error.strerror or error}); set "
                f"$NCUTILS_RUNS_DIR to a writable folder")
    return None


def problems(chapters: Iterable[tuple[Chapter, Mapping[str, Any]]], runs_dir: str | os.PathLike) -> list[str]:
    """Everything :func:`data_problems` and :func:`store_problem` find, one line each."""
    found = data_problems(chapters)
    store = store_problem(runs_dir)
    return found + ([store] if store else [])
