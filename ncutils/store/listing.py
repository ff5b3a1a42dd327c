"""What the store holds, and pruning what a build no longer uses.

:func:`entries` lists the entries (kind, dataset, architecture, epochs, size, age, last
use); :func:`prune` removes those not loaded or written since a time: run it after a full
book build with the build's start time to keep exactly what the current profiles use.
:func:`entries_text` is the table ``python -m ncutils.runs list`` prints.

Example
-------
>>> import tempfile
>>> len(entries(tempfile.mkdtemp()))
0
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ncutils.store.files import CHECKPOINT, KINDS, LAST_USED, MANIFEST, default_runs_dir

__all__ = ["PruneResult", "entries", "entries_text", "prune"]


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _last_used(folder: Path) -> float:
    for name in (LAST_USED, MANIFEST, CHECKPOINT):
        if (folder / name).exists():
            return (folder / name).stat().st_mtime
    return folder.stat().st_mtime


def entries(runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """What the store holds, one row per entry (manifests read, checksums not checked).

    Returns
    -------
    DataFrame
        ``kind``, ``key``, ``status`` (``complete``, ``partial``: a killed or running
        training, ``unreadable``), ``dataset``, ``arch``, ``epochs`` (stored epochs of a
        trained run; the measured epoch), ``bytes``, ``created``, ``last_used`` (UTC),
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> len(entries(tempfile.mkdtemp()))
    0
    """
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    rows = []
    trained_configs: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        for folder in sorted((root / kind).glob("*")) if (root / kind).is_dir() else []:
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            row: dict[str, Any] = {"kind": kind, "key": folder.name, "status": "partial",
                                   "dataset": None, "arch": None, "epochs": None, "created": None}
            manifest_path = folder / MANIFEST
            if manifest_path.exists():
                try:
                    manifest = json.loads(manifest_path.read_text())
                    payload = manifest["payload"]
                    if kind == "trained":
                        config = payload["config"]
                        trained_configs[folder.name] = config
                        epochs = sorted(int(epoch) for epoch in manifest["weights"])
                    elif kind == "computed":
                        config = {"dataset": payload["settings"].get("dataset"), "arch": payload.get("what")}
                        epochs = None
                    else:
                        config = trained_configs.get(payload["trained_key"], {})
                        epochs = [payload["epoch"]]
                    row.update(status="complete", dataset=config.get("dataset"),
                               arch=config.get("arch"), epochs=epochs,
                               created=manifest.get("created"))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    row["status"] = "unreadable"
            row.update(bytes=_size(folder), path=str(folder),
                       last_used=dt.datetime.fromtimestamp(_last_used(folder), dt.timezone.utc)
                       .isoformat(timespec="seconds"))
            rows.append(row)
    columns = ["kind", "key", "status", "dataset", "arch", "epochs", "bytes", "created",
               "last_used", "path"]
    return pd.DataFrame(rows, columns=columns)


def _cutoff(unused_since: str | dt.datetime | None, older_than_days: float | None) -> float:
    if (unused_since is None) == (older_than_days is None):
        raise ValueError("give exactly one of unused_since (a date/time) and older_than_days")
    if older_than_days is not None:
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)) \
                or not older_than_days >= 0:
            raise ValueError(f"older_than_days must be a number >= 0, got {older_than_days!r}")
        return dt.datetime.now(dt.timezone.utc).timestamp() - older_than_days * 86400
    when = unused_since
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError as error:
            raise ValueError(f"unused_since must be an ISO date/time, got {unused_since!r}") from error
    if not isinstance(when, dt.datetime):
        raise ValueError(f"unused_since must be an ISO date/time, got {unused_since!r}")
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is local time, as a user types it
    return when.timestamp()


class PruneResult(list):
    """What :func:`prune` removed (a list of paths), with what it skipped and failed to remove.

    Attributes
    ----------
    skipped : list of (Path, str)
        Entries left alone, with why (a symbolic link is never followed).
    failed : list of (Path, str)
        Entries or files it tried to remove but could not, with the error.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[tuple[Path, str]] = []
        self.failed: list[tuple[Path, str]] = []


def _remove(path: Path, result: PruneResult, dry_run: bool) -> None:
    """Remove one entry folder or file, recording only what is really gone."""
    if dry_run:
        result.append(path)
        return
    errors: list[str] = []
    try:
        if path.is_dir():
            # onerror (Python 3.11): every failure is recorded, the walk goes on
            shutil.rmtree(path, onerror=lambda function, name, info: errors.append(f"{name}: {info[1]}"))
        else:
            path.unlink()
    except OSError as error:
        errors.append(str(error))
    if path.exists() or path.is_symlink():
        result.failed.append((path, "; ".join(errors) or "still there after removal"))
    else:
        result.append(path)


def prune(runs_dir: str | os.PathLike | None = None, *, unused_since: str | dt.datetime | None = None,
          older_than_days: float | None = None, dry_run: bool = False) -> PruneResult:
    """Remove the entries not loaded or written since a time; return what was (or would be) removed.

    An entry's last use is its ``last-used`` stamp (touched by every load and store), else
    its manifest's or checkpoint's time. Inside the entries kept, files that no manifest
    names (left by a killed write or an overwritten entry) and that are older than the
    cutoff are removed too. To keep exactly what the current profiles use, build the book
    and then prune with ``unused_since`` = the build's start. Only what is really gone is
    reported removed: a file that cannot be removed (a read-only store) is listed in
    ``failed``, and a symbolic link among the entries is skipped, never followed.

    Parameters
    ----------
    runs_dir : path, optional
    unused_since : ISO date/time or datetime, optional
        Remove entries last used before this (naive times are local).
    older_than_days : float, optional
        Remove entries last used more than this many days ago. Exactly one of the two.
    dry_run : bool
        Only list.

    Returns
    -------
    PruneResult
        The removed paths (a list), with ``skipped`` and ``failed``.

    Raises
    ------
    ValueError
        Neither or both cutoffs, or an unreadable one; a store folder that does not exist.

    Examples
    --------
    >>> import tempfile
    >>> prune(tempfile.mkdtemp(), older_than_days=30)
    []
    """
    cutoff = _cutoff(unused_since, older_than_days)
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        raise ValueError(f"the results store {root} does not exist")
    result = PruneResult()
    for kind in KINDS:
        for folder in sorted((root / kind).glob("*")) if (root / kind).is_dir() else []:
            if folder.is_symlink():
                result.skipped.append((folder, "a symbolic link (never followed)"))
                continue
            if not folder.is_dir():
                continue
            try:
                last_used = _last_used(folder)
            except OSError as error:
                result.skipped.append((folder, f"unreadable ({error})"))
                continue
            if last_used < cutoff:
                _remove(folder, result, dry_run)
                continue
            _prune_unreferenced(folder, cutoff, dry_run, result)
    return result


def _prune_unreferenced(folder: Path, cutoff: float, dry_run: bool, result: PruneResult) -> None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        named = {record["file"] for record in manifest["files"].values()}
        named |= {record["file"] for record in manifest.get("weights", {}).values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # a partial or unreadable entry: its files may still be needed to resume
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).as_posix()
        if (path.is_file() and not path.is_symlink() and relative not in named
                and relative not in (MANIFEST, LAST_USED, CHECKPOINT) and path.stat().st_mtime < cutoff):
            _remove(path, result, dry_run)


def _human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _age(stamp: Any, now: dt.datetime) -> str:
    if not stamp:
        return "-"
    try:
        when = dt.datetime.fromisoformat(str(stamp))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (now - when).total_seconds()
    except (ValueError, TypeError):
        return "? (unreadable time)"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def entries_text(table: pd.DataFrame, now: dt.datetime | None = None) -> str:
    """:func:`entries` as the text ``python -m ncutils.runs list`` prints, with the totals per kind."""
    now = dt.datetime.now(dt.timezone.utc) if now is None else now
    shown = pd.DataFrame({
        "kind": table.kind, "key": table.key, "status": table.status,
        "dataset": table.dataset.fillna("-"), "arch": table.arch.fillna("-"),
        "epochs": [",".join(map(str, e)) if isinstance(e, list) else "-" for e in table.epochs],
        "size": table.bytes.map(_human_bytes),
        "age": [_age(stamp, now) for stamp in table.created],
        "last used": [_age(stamp, now) + " ago" for stamp in table.last_used]})
    counts = table.groupby("kind").bytes.agg(["count", "sum"])
    return shown.to_string(index=False) + "\ntotal: " + "; ".join(
        f"{count} {kind} ({_human_bytes(size)})" for kind, (count, size) in counts.iterrows())
