"""Trained runs, sweep statistics and measurements: writing them to the store and reading them back.

Each reader verifies every checksum and returns None for an entry that is absent or damaged
(damage warns and drops the manifest, so the entry is rebuilt); each read and write touches
the entry's ``last-used``. Layout and integrity: :mod:`ncutils.store.files`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ncutils.layer_stats import SweepStatistics
from ncutils.store.files import (MANIFEST, damaged, device_name, entry_dir, provenance, read_manifest,
                                 read_table, read_verified, table_bytes, touch, utc_now, write_immutable,
                                 write_manifest)
from ncutils.store.keys import STORE_FORMAT

__all__ = ["StoredRun", "load_measurement", "load_statistics", "load_trained", "load_weights",
           "save_weights", "store_measurement", "store_statistics", "store_trained"]


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
    record = write_immutable(Path(run_dir) / "weights", f"epoch-{epoch:05d}", ".pt",
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
        data = read_verified(self.path, record)
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
        return torch.load(io.BytesIO(read_verified(self.path, record)), weights_only=True)


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
    files = {"history": write_immutable(run_dir, "history", ".csv", table_bytes(history)),
             "config": write_immutable(run_dir, "config", ".json", config_bytes)}
    if series is not None:
        buffer = io.BytesIO()
        torch.save(list(series), buffer)
        files["series"] = write_immutable(run_dir, "series", ".pt", buffer.getvalue())
    manifest = {
        "kind": "trained",
        "key": key,
        "store_format": STORE_FORMAT,
        "payload": dict(payload),
        "files": files,
        "weights": {str(epoch): dict(record) for epoch, record in sorted(weights.items())},
        **dict(info),
        "device_name": device_name(device),
        "created": utc_now(),
        "provenance": provenance(),
    }
    # The manifest goes last: until it is there the run does not exist for a reader.
    write_manifest(run_dir, manifest)


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
        manifest = read_manifest(folder, "trained", key)
        history = read_table(read_verified(folder, manifest["files"]["history"]))
        for record in [*manifest["weights"].values(), *manifest["files"].values()]:
            read_verified(folder, record)
    except Exception as error:  # any damage: JSON, CSV, checksums, missing keys
        damaged(folder, error, "trained run")
        return None
    touch(folder)
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


def store_measurement(key: str, payload: Mapping[str, Any], table: pd.DataFrame, *,
                      seconds: float, runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Store a sweep table under measurement ``key``; return it as read back from disk."""
    folder = entry_dir("measured", key, runs_dir)
    data = table_bytes(table)
    manifest = {"kind": "measured", "key": key, "store_format": STORE_FORMAT,
                "payload": dict(payload),
                "files": {"sweeps": write_immutable(folder, "sweeps", ".csv", data)},
                "seconds": seconds, "created": utc_now()}
    write_manifest(folder, manifest)
    return read_table(data)


def load_measurement(key: str, runs_dir: str | os.PathLike | None = None) -> pd.DataFrame | None:
    """The stored sweep table of measurement ``key``, or None (damage warns, reads as absent)."""
    folder = entry_dir("measured", key, runs_dir)
    if not (folder / MANIFEST).exists():
        return None
    try:
        manifest = read_manifest(folder, "measured", key)
        table = read_table(read_verified(folder, manifest["files"]["sweeps"]))
    except Exception as error:
        damaged(folder, error, "measurement")
        return None
    touch(folder)
    return table


def store_statistics(key: str, payload: Mapping[str, Any], statistics: SweepStatistics, *,
                     seconds: float, runs_dir: str | os.PathLike | None = None) -> None:
    """Store a sweep's statistics (:meth:`ncutils.sweep.SweepStatistics.state`) under ``key``."""
    folder = entry_dir("statistics", key, runs_dir)
    buffer = io.BytesIO()
    torch.save(statistics.state(), buffer)
    manifest = {"kind": "statistics", "key": key, "store_format": STORE_FORMAT, "payload": dict(payload),
                "files": {"statistics": write_immutable(folder, "statistics", ".pt", buffer.getvalue())},
                "seconds": seconds, "created": utc_now()}
    write_manifest(folder, manifest)


def load_statistics(key: str, runs_dir: str | os.PathLike | None = None) -> SweepStatistics | None:
    """The stored sweep statistics ``key`` (on the CPU), or None (damage warns, reads as absent)."""
    folder = entry_dir("statistics", key, runs_dir)
    if not (folder / MANIFEST).exists():
        return None
    try:
        manifest = read_manifest(folder, "statistics", key)
        data = read_verified(folder, manifest["files"]["statistics"])
        statistics = SweepStatistics.from_state(torch.load(io.BytesIO(data), weights_only=True))
    except Exception as error:
        damaged(folder, error, "statistics")
        return None
    touch(folder)
    return statistics
