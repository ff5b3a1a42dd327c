"""Measuring stored runs: the sweeps of their stored epochs, kept in the store apart from training.

Training (:func:`ncutils.train.train`) keeps the weights of the epochs a chapter may measure;
measuring them is this separate step. :func:`measure_run` gives a trained run's sweeps at
its sweep epochs and at the first epochs reaching its ``save_at_train_acc`` thresholds, and
the per-epoch series of a run that tracked its last layer: each table is loaded from the
store when stored for the current measuring code and options, else computed from stored
statistics (an edit to a metric: milliseconds a table, no forward pass), else measured from
the stored weights (an edit to the statistics code: the forward passes). Statistics and
tables are keyed apart (:func:`ncutils.store.keys.statistics_key`,
:func:`~ncutils.store.keys.measurement_key`); each load or measurement is logged to
``<runs_dir>/events.log``.

Example
-------
>>> from ncutils.train import TrainConfig, train
>>> config = TrainConfig(dataset="digits", arch="mlp", epochs=2, sweep_epochs=(0, 2), device="cpu")
>>> measured = measure_run(train(config, runs_dir="/tmp/ncutils-doc-runs", progress=False))  # doctest: +SKIP
>>> sorted(measured.sweeps["epoch"].unique())  # doctest: +SKIP
[0, 2]
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from torch import nn

from ncutils.layer_stats import TABLE_OPTIONS, SweepStatistics, measure_statistics
from ncutils.series import series_table
from ncutils.store.files import default_runs_dir, log_event
from ncutils.store.keys import measurement_key, measurement_payload, statistics_key, statistics_payload
from ncutils.store.records import (StoredRun, load_measurement, load_statistics, store_measurement,
                                   store_statistics)
from ncutils.sweep import sweep_table
from ncutils.train import RunResult, load_data

if TYPE_CHECKING:  # annotations only
    from ncutils.data import Dataset

__all__ = ["MeasuredRun", "measure", "measure_run", "measure_statistics", "stored_statistics",
           "stored_sweeps", "sweep_epochs"]


def measure(model: nn.Module, train_data: Dataset, test_data: Dataset, **options: Any) -> pd.DataFrame:
    """The layer sweep of ``model`` on a run's data: :func:`measure_statistics`, then the table.

    ``options`` go to :func:`ncutils.sweep.layer_sweep` (``conv_policy``, ``batch_size``,
    ``alignment_rank``, ``metrics``, ...).
    """
    table_options = {name: options[name] for name in TABLE_OPTIONS if name in options}
    return sweep_table(measure_statistics(model, train_data, test_data, **options), model, **table_options)


def stored_statistics(run: StoredRun, epoch: int, *, model_at: Callable[[int], nn.Module],
                      data: Callable[[], tuple[Dataset, Dataset]], options: Mapping[str, Any],
                      runs_dir: str | os.PathLike | None = None, force: bool = False) -> SweepStatistics:
    """The sweep statistics of one stored epoch of ``run``: loaded, or measured from its weights.

    Arguments as :func:`stored_sweeps`. The statistics are kept under
    :func:`~ncutils.store.keys.statistics_key` (the store's middle level): e.g. per-layer class statistics for
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
        log_event(runs_root, f"measured statistics {key} (run {run.key}, epoch {epoch}) "
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
            log_event(runs_root, f"computed metrics {measurement} (run {key}, epoch {epoch}) "
                                  f"in {seconds:.2f} s")
        tables.append(table)
    if epochs and not computed_now:
        log_event(runs_root, f"loaded {len(epochs)} measurements of run {key}")
    if not tables:
        return pd.DataFrame({"epoch": pd.Series(dtype="int64")}), 0
    return pd.concat(tables, ignore_index=True), len(computed_now)


def sweep_epochs(result: RunResult) -> list[int]:
    """The epochs a run's sweeps measure: its ``sweep_epochs`` and the first epochs reaching
    each threshold of ``save_at_train_acc`` (where the papers' figures read the layers)."""
    thresholds = {epoch for epoch in result.train_acc_epochs.values() if epoch is not None}
    return sorted(set(result.config.sweep_epochs) | thresholds)


@dataclass
class MeasuredRun:
    """A trained run with its measurements (:func:`measure_run`).

    Attributes
    ----------
    run : RunResult
        The trained run; its other attributes (``config``, ``key``, ``model``, ``model_at``,
        ``from_cache``, ...) read through this object too.
    sweeps : DataFrame
        ``epoch`` plus the columns of :func:`ncutils.sweep.layer_sweep`, one row per
        (epoch of :func:`sweep_epochs`, probe point).
    history : DataFrame
        The run's history; with ``track_last_layer`` also
        :data:`~ncutils.series.LAST_LAYER_COLUMNS`, computed from the stored statistics.
    measured_from_cache : bool
        Every sweep was loaded from the store (nothing measured).
    """

    run: RunResult
    sweeps: pd.DataFrame
    history: pd.DataFrame
    measured_from_cache: bool

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "run":  # copy and pickle probe these before run is set
            raise AttributeError(name)
        return getattr(self.run, name)

    def statistics_at(self, epoch: int, force: bool = False) -> SweepStatistics:
        """The sweep statistics of a stored epoch (:func:`stored_statistics` of the run).

        Per-layer class statistics for a metric the sweep table lacks come from
        ``.class_stats()``, with no forward pass when the sweep stored them.

        Raises
        ------
        KeyError
            The epoch is not stored.
        """
        return stored_statistics(self.run.stored, epoch, model_at=self.run.model_at,
                                 data=lambda: load_data(self.run.config),
                                 options=self.run.config.sweep_options(), runs_dir=self.run.runs_dir,
                                 force=force)


def measure_run(result: RunResult, *, epochs: Sequence[int] | None = None,
                force: bool = False) -> MeasuredRun:
    """Measure a trained run (or load its measurements): its sweeps and, when tracked, its series.

    Parameters
    ----------
    result : RunResult
        From :func:`ncutils.train.train`.
    epochs : sequence of int, optional
        Stored epochs to sweep (default :func:`sweep_epochs`).
    force : bool
        Measure again even when stored.

    Returns
    -------
    MeasuredRun

    Raises
    ------
    KeyError
        An epoch whose weights the run does not store.
    """
    chosen = sweep_epochs(result) if epochs is None else list(epochs)
    sweeps, measured = stored_sweeps(
        result.stored, chosen, model_at=result.model_at, data=lambda: load_data(result.config),
        options=result.config.sweep_options(), runs_dir=result.runs_dir, force=force)
    history = result.history
    if result.config.track_last_layer:
        table = series_table(result.stored.manifest["series_epochs"], result.stored.series())
        history = history.merge(table, on="epoch", how="left", validate="one_to_one")
    return MeasuredRun(result, sweeps, history, measured_from_cache=measured == 0)
