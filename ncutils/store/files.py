"""The store's files: where entries live, verified reads, immutable writes, manifests, the event log.

Four kinds of entry live under ``<runs_dir>`` (``$NCUTILS_RUNS_DIR`` or the project's ``runs/``),
each in a folder named by its key (:mod:`ncutils.store.keys`):

``trained/<key>/``: a **trained run**
    ``manifest.json`` (the key payload, the files with their sha256, the epochs stored
    and why, input shape and classes, wall time, device name, torch threads, created,
    provenance: project commit, package source hash, package versions),
    ``weights/epoch-00005-<sha>.pt`` (a state dict, CPU tensors as trained;
    ``torch.load(..., weights_only=True)``), one per stored epoch: the sweep epochs, the
    first epoch train accuracy reached each of ``save_at_train_acc`` and the last epoch;
    ``history-<sha>.csv``, ``config-<sha>.json``, and while training ``checkpoint.pt``
    (resume state).
``statistics/<key>/``: a sweep's **statistics**
    per probe point of one stored epoch (:class:`ncutils.layer_stats.SweepStatistics`):
    ``statistics-<sha>.pt`` (plain tensors, read with ``weights_only=True``) and ``manifest.json``.
``measured/<key>/``: a **measurement**
    the layer sweep table of one stored epoch of one trained run, computed from its
    statistics (:mod:`ncutils.measure`): ``sweeps-<sha>.csv`` and ``manifest.json``.
``computed/<key>/``: a **computed** result (:func:`ncutils.store.memo.computed`).

Integrity and concurrency
-------------------------
Every file is written through :func:`ncutils._io.atomic_write`. Files other than the
manifest are immutable and named by their content's sha256, so two processes writing the
same key never write different bytes under one name; the manifest, written last, is the
one mutable file and is replaced atomically: the last writer wins, and whichever manifest
wins names files that exist and match it. A load checks every checksum; a missing,
unreadable or mismatching file is reported with a ``RuntimeWarning`` and the entry is
rebuilt. A load never rewrites the manifest: it touches ``last-used`` beside it, which
``prune`` reads. Only load stores you produced: ``checkpoint.pt`` is a pickle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import ncutils
from ncutils._io import atomic_write, project_path
from ncutils._provenance import cpu_model, git_state, project_root
from ncutils.store.keys import STORE_FORMAT

__all__ = ["CHECKPOINT", "EVENTS", "KINDS", "LAST_USED", "MANIFEST", "damaged", "default_runs_dir", "resolve_runs_dir",
           "device_name", "entry_dir", "log_event", "provenance", "read_manifest", "read_table",
           "read_verified", "table_bytes", "touch", "utc_now", "write_immutable", "write_manifest"]

KINDS = ("trained", "statistics", "measured", "computed")
MANIFEST = "manifest.json"
LAST_USED = "last-used"
CHECKPOINT = "checkpoint.pt"
EVENTS = "events.log"
_PACKAGE_DIR = Path(ncutils.__file__).resolve().parent
_LOG = logging.getLogger("ncutils.store")


def default_runs_dir() -> Path:
    """``$NCUTILS_RUNS_DIR``, or ``runs/`` of the project (:func:`ncutils._io.project_path`)."""
    configured = os.environ.get("NCUTILS_RUNS_DIR")
    return Path(configured) if configured else project_path("runs")


def resolve_runs_dir(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The results store every command uses, and where that choice came from.

    ``$NCUTILS_RUNS_DIR``, else ``explicit`` (a command's ``--runs-dir``), else the project's
    ``runs/``. Both set to different folders is refused: one of them would be ignored.

    Returns
    -------
    (Path, str)
        The folder and its origin (``"$NCUTILS_RUNS_DIR"``, ``"--runs-dir"``, ``"the project's runs/"``).

    Raises
    ------
    ValueError
        ``$NCUTILS_RUNS_DIR`` and ``explicit`` name different folders.
    """
    configured = os.environ.get("NCUTILS_RUNS_DIR")
    if configured and explicit is not None and Path(configured).resolve() != Path(explicit).resolve():
        raise ValueError(f"$NCUTILS_RUNS_DIR ({configured}) and --runs-dir ({explicit}) name different stores; "
                         f"give one")
    if configured:
        return Path(configured), "$NCUTILS_RUNS_DIR"
    if explicit is not None:
        return Path(explicit), "--runs-dir"
    return project_path("runs"), "the project's runs/"


def entry_dir(kind: str, key: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """Folder of one entry: ``<runs_dir>/<kind>/<key>``.

    Examples
    --------
    >>> entry_dir("trained", "0123456789abcdef", "/tmp/runs").as_posix()
    '/tmp/runs/trained/0123456789abcdef'
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
        raise ValueError(f"not a store key: {key!r}")
    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / kind / key


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_immutable(folder: Path, stem: str, suffix: str, data: bytes) -> dict[str, Any]:
    """Write ``data`` as ``<stem>-<sha16><suffix>`` (same name means same bytes)."""
    sha = hashlib.sha256(data).hexdigest()
    name = f"{stem}-{sha[:16]}{suffix}"
    # Written even when the name exists: a damaged file of that name must be replaced.
    atomic_write(folder / name, lambda target: target.write_bytes(data))
    return {"file": name, "sha256": sha, "bytes": len(data)}


def read_verified(folder: Path, record: Mapping[str, Any]) -> bytes:
    """The bytes of one file of an entry, checked against its sha256 (ValueError if not)."""
    path = folder / record["file"]
    if not path.is_file():
        raise ValueError(f"{record['file']} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise ValueError(f"{record['file']} does not match its checksum")
    return data


def table_bytes(table: pd.DataFrame) -> bytes:
    """A table as CSV bytes (:func:`read_table` reads it back exactly)."""
    # Python's shortest repr round-trips float64 exactly with float_precision="round_trip".
    return table.to_csv(index=False).encode()


def read_table(data: bytes) -> pd.DataFrame:
    """A table from :func:`table_bytes`."""
    return pd.read_csv(io.BytesIO(data), float_precision="round_trip")


def touch(folder: Path) -> None:
    """Stamp an entry's ``last-used`` (what ``prune`` reads)."""
    try:
        (folder / LAST_USED).write_text(utc_now() + "\n")
    except OSError:  # a read-only store still loads
        pass


def log_event(runs_dir: Path, message: str) -> None:
    """One line per load, training or measurement: what a rebuild did, for the build log."""
    _LOG.info(message)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with (runs_dir / EVENTS).open("a") as handle:
            handle.write(f"{utc_now()} {message}\n")
    except OSError:
        pass


def read_manifest(folder: Path, kind: str, key: str) -> dict[str, Any]:
    """An entry's manifest, checked to be that of ``kind`` entry ``key`` in this store format."""
    manifest = json.loads((folder / MANIFEST).read_text())
    if not isinstance(manifest, dict) or manifest.get("kind") != kind or manifest.get("key") != key:
        raise ValueError(f"manifest is not that of {kind} entry {key}")
    if manifest.get("store_format") != STORE_FORMAT:
        raise ValueError(f"store format {manifest.get('store_format')!r} != {STORE_FORMAT}")
    return manifest


def damaged(folder: Path, error: Exception, what: str, stacklevel: int = 4) -> None:
    """Warn that an entry is damaged and drop its manifest, so that it is rebuilt."""
    warnings.warn(f"stored {what} {folder} is corrupted ({type(error).__name__}: {error}); "
                  f"rebuilding it", RuntimeWarning, stacklevel=stacklevel)
    (folder / MANIFEST).unlink(missing_ok=True)


def provenance() -> dict[str, Any]:
    """The project's commit, the package's source hash, ncutils' and Python's versions."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return {"git": git_state(project_root()),
            "package_sha256": digest.hexdigest(),
            "ncutils_version": ncutils.__version__,
            "python": sys.version.split()[0]}


def device_name(device: torch.device) -> str:
    """The GPU's or the CPU's model name."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return cpu_model()


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write an entry's manifest (last: until it is there the entry does not exist) and touch it."""
    text = json.dumps(dict(manifest), indent=1, sort_keys=True, default=str)
    atomic_write(folder / MANIFEST, lambda target: target.write_text(text))
    touch(folder)
