"""The results store: trained runs, sweep statistics, measurements and computed results, keyed apart.

One module per concern:

- :mod:`ncutils.store.code`: which package code a result depends on (derived from imports);
- :mod:`ncutils.store.keys`: what each kind of entry is keyed by, hence what invalidates what;
- :mod:`ncutils.store.files`: the layout on disk, verified reads, immutable writes, the event log;
- :mod:`ncutils.store.records`: trained runs, statistics and measurements written and read back;
- :mod:`ncutils.store.memo`: the memo cache of results that are no TrainConfig run;
- :mod:`ncutils.store.listing`: what is stored, and pruning.

The store computes no number: measuring stored runs is :mod:`ncutils.measure`, training
:mod:`ncutils.train`. Its command line is ``python -m ncutils.runs`` (list, prune, a
profile's key, training a profile).

Example
-------
>>> from ncutils.train import TrainConfig
>>> len(trained_key(TrainConfig(dataset="digits", device="cpu")))
16
"""

from ncutils.store.code import Computation
from ncutils.store.files import (CHECKPOINT, EVENTS, KINDS, LAST_USED, MANIFEST, default_runs_dir, entry_dir,
                                 log_event, read_verified, resolve_runs_dir)
from ncutils.store.keys import (DATASET_PACKAGES, MEASUREMENT, STATISTICS, STORE_FORMAT, TRACKED_SERIES, TRAINING,
                                computed_payload, data_fingerprint, digest, measurement_key, measurement_payload,
                                package_version, statistics_key, statistics_payload, trained_key, trained_payload)
from ncutils.store.listing import PruneResult, entries, entries_text, prune
from ncutils.store.memo import computed, load_computed
from ncutils.store.records import (StoredRun, load_measurement, load_statistics, load_trained, load_weights,
                                   save_weights, store_measurement, store_statistics, store_trained)

__all__ = [
    "CHECKPOINT", "DATASET_PACKAGES", "EVENTS", "KINDS", "LAST_USED", "MANIFEST", "MEASUREMENT", "STATISTICS",
    "STORE_FORMAT", "TRACKED_SERIES", "TRAINING", "Computation", "StoredRun", "computed", "computed_payload",
    "data_fingerprint", "default_runs_dir", "digest", "entries", "entries_text", "entry_dir", "load_computed",
    "load_measurement", "load_statistics", "load_trained", "load_weights", "log_event", "measurement_key",
    "measurement_payload", "package_version", "prune", "PruneResult", "read_verified", "resolve_runs_dir", "save_weights", "statistics_key",
    "statistics_payload", "store_measurement", "store_statistics", "store_trained", "trained_key",
    "trained_payload",
]
