"""Writing files so that a reader never sees half of one.

Every file that ``ncutils`` keeps across processes (trained runs and their
manifests, the book's findings, build state and generated pages) is written
through these helpers. A process killed mid-write, or two chapters writing at
the same time, then leave either the old file or the new one, never a torn
mix that a later build would read as a corrupt result.

The helpers write to a hidden temporary file next to the target (same folder,
so the final :func:`os.replace` is a rename on one file system, which POSIX
and Windows make atomic) and remove that temporary file if writing fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "exclusive_lock", "project_path", "read_json", "write_if_changed", "write_json_atomic"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Create or replace ``path`` atomically with what ``write`` writes.

    Parameters
    ----------
    path : path-like
        The file to create or replace. Missing parent folders are created.
    write : callable
        Called once with a temporary path in the same folder; it must write
        the complete content there (e.g. ``lambda p: torch.save(obj, p)``).

    Raises
    ------
    Exception
        Whatever ``write`` raises; ``path`` is then left as it was and the
        temporary file is removed.

    Example
    -------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "sub" / "table.csv"
    >>> atomic_write(target, lambda p: p.write_text("a,b\\n1,2\\n"))
    >>> target.read_text()
    'a,b\\n1,2\\n'
    >>> sorted(item.name for item in target.parent.iterdir())  # no temporary file left
    ['table.csv']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The process and thread ids keep two writers of the same file from sharing a temporary file.
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_json_atomic(
    path: str | os.PathLike,
    content: Any,
    *,
    indent: int | None = 1,
    sort_keys: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """Write ``content`` as JSON to ``path`` atomically (see :func:`atomic_write`).

    Parameters
    ----------
    path : path-like
        The JSON file.
    content : object
        Anything :func:`json.dumps` accepts.
    indent : int or None, default 1
        Passed to :func:`json.dumps`.
    sort_keys : bool, default True
        Sorted keys keep the file's diff small when one entry changes.
    default : callable, optional
        Passed to :func:`json.dumps` for values it cannot encode (``str``
        turns dates and paths into text). Without it such values raise
        ``TypeError`` before anything is written.

    Example
    -------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "state.json"
    >>> write_json_atomic(target, {"b": 1, "a": [1, 2]})
    >>> print(target.read_text())
    {
     "a": [
      1,
      2
     ],
     "b": 1
    }
    """
    # Encode first: an unencodable value must fail before the target is touched.
    text = json.dumps(content, indent=indent, sort_keys=sort_keys, default=default)
    atomic_write(path, lambda temporary: temporary.write_text(text))


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file, or return ``default`` when it is missing or not valid JSON.

    Meant for caches and state files, where an unreadable file means "start
    afresh" rather than an error.

    Parameters
    ----------
    path : path-like
        The JSON file.
    default : object, optional
        What a missing or invalid file reads as.

    Returns
    -------
    object
        The decoded content, or ``default``.

    Example
    -------
    >>> import tempfile
    >>> read_json(Path(tempfile.mkdtemp()) / "missing.json", {})
    {}
    """
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return default


def write_if_changed(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` to ``path`` (atomically) only when the file's bytes differ.

    An unchanged file keeps its modification time, so Sphinx does not rebuild
    pages whose source did not change.

    Parameters
    ----------
    path : path-like
        The file.
    data : bytes
        Its new content.

    Returns
    -------
    bool
        Whether the file was written.

    Example
    -------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "page.md"
    >>> write_if_changed(target, b"# Title\\n"), write_if_changed(target, b"# Title\\n")
    (True, False)
    """
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return False
    atomic_write(path, lambda temporary: temporary.write_bytes(data))
    return True


def project_path(name: str) -> Path:
    """``<project root>/<name>`` when ``ncutils`` runs from its checkout, else ``./<name>``.

    The results store (``runs``) and the data folder (``data``) belong to the project, not
    to wherever a kernel happens to start: a notebook opened in Jupyter from ``notebooks/``
    must find the networks ``make book`` trained, not train them again into
    ``notebooks/runs``. An installed package (no ``pyproject.toml`` beside it) keeps the
    current folder.

    Example
    -------
    >>> project_path("runs").name
    'runs'
    """
    root = Path(__file__).resolve().parents[1]
    return root / name if (root / "pyproject.toml").is_file() else Path(name)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    Another process asking for the same lock waits until it is released; the operating
    system releases it when the holder exits, killed or not, so a crashed holder never
    blocks the next one. On platforms without ``fcntl`` (Windows) this is a no-op: writers
    then rely on atomic renames alone (the last writer wins).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with exclusive_lock(pathlib.Path(tempfile.mkdtemp()) / "run.lock"):
    ...     pass
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
