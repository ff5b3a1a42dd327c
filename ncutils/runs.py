"""``python -m ncutils.runs``: the results store's command line; and the store's names under one roof.

The store itself is the package :mod:`ncutils.store` (keys, files, records, the memo cache,
listing and pruning) and measuring stored runs is :mod:`ncutils.measure`; this module
re-exports their public names for callers that import them from here, and runs the command
line (:func:`ncutils.runs_cli.main`):

``python -m ncutils.runs list``
    the entries (kind, dataset, architecture, epochs, size, age, last use);
``python -m ncutils.runs prune --unused-since 2026-12-01T09:00`` (or ``--older-than DAYS``)
    removes the entries not loaded or written since then: run it after a full ``make book``
    with the build's start time to keep exactly what the current profiles use;
``python -m ncutils.runs key --profile cpu``
    the key of everything a profile trains (CI caches the store under it);
``python -m ncutils.runs train --profile cpu``
    trains a profile's missing runs through a job engine.

The command line reads the book's chapters, so this module belongs to the book floor
(CONTRIBUTING.md): code of the core floor imports :mod:`ncutils.store`, never this module.

Example
-------
>>> from ncutils.train import TrainConfig
>>> trained_key(TrainConfig(epochs=2)) == trained_key(TrainConfig(epochs=2, data_dir="x"))
True
"""

from __future__ import annotations

import sys

from ncutils.layer_stats import TABLE_OPTIONS
from ncutils.measure import measure, measure_run, measure_statistics, stored_statistics, stored_sweeps
from ncutils.runs_cli import main
from ncutils.store import (CHECKPOINT, DATASET_PACKAGES, EVENTS, KINDS, LAST_USED, MANIFEST, STORE_FORMAT,
                           StoredRun, computed, computed_payload, data_fingerprint, default_runs_dir, entries,
                           entry_dir, load_computed, load_measurement, load_statistics, load_trained,
                           load_weights, measurement_key, measurement_payload, package_version, prune,
                           save_weights, statistics_key, statistics_payload, store_measurement,
                           store_statistics, store_trained, trained_key, trained_payload)

__all__ = [
    "CHECKPOINT", "DATASET_PACKAGES", "EVENTS", "KINDS", "LAST_USED", "MANIFEST", "STORE_FORMAT", "TABLE_OPTIONS",
    "StoredRun", "computed", "computed_payload", "data_fingerprint", "default_runs_dir", "entries", "entry_dir",
    "load_computed", "load_measurement", "load_statistics", "load_trained", "load_weights", "main", "measure",
    "measure_run", "measure_statistics", "measurement_key", "measurement_payload", "package_version", "prune",
    "save_weights", "statistics_key", "statistics_payload", "store_measurement", "store_statistics",
    "store_trained", "stored_statistics", "stored_sweeps", "trained_key", "trained_payload",
]

if __name__ == "__main__":
    sys.exit(main())
