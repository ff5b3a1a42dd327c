"""Grids of training runs: any list of :class:`~ncutils.train.TrainConfig`, seeds as an axis.

A chapter that needs several trained networks describes them as a :class:`Grid`: entries,
each a ``TrainConfig`` with the labels it carries in tables (``{"architecture": "mlp",
"dataset": "digits"}``, say), plus the combinations it leaves out and why. :func:`run_grid`
trains every entry (or loads it from the results store: every run goes through
:func:`ncutils.train.train`), for every seed asked for, and stacks the runs' tables with the
labels and the ``seed`` as columns, so criteria can group by them. Nothing here knows a
paper's settings: those live in :mod:`ncutils.papers`.

Example
-------
>>> from ncutils.train import TrainConfig
>>> config = TrainConfig(dataset="digits", arch="mlp", arch_kwargs={"depth": 3}, epochs=1)
>>> grid = Grid.from_configs([config], labels=[{"dataset": "digits"}])
>>> [entry.with_seed(s).config.seed for entry in grid.entries for s in (0, 1)]
[0, 1]
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ncutils import runs
from ncutils._checks import resolve_device
from ncutils.train import RunResult, TrainConfig, train

__all__ = ["Grid", "GridEntry", "GridResult", "run_grid", "sweep_schedule"]

#: The column every grid table carries beside the entries' own labels.
SEED_COLUMN = "seed"

#: Torch threads of every run a grid trains on the CPU. Fixed (and recorded) so that a
#: run's numbers do not depend on how many runs train side by side: parallelism comes from
#: worker processes, one run each.
THREADS_PER_RUN = 1


@dataclass(frozen=True)
class GridEntry:
    """One run of a grid: its labels in tables, and its training config.

    Attributes
    ----------
    labels : mapping of str to value
        The columns this run carries in the combined tables, in order (``seed`` is added
        by :func:`run_grid` from the config and must not be among them).
    config : TrainConfig
    """

    labels: Mapping[str, Any]
    config: TrainConfig

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        if SEED_COLUMN in self.labels:
            raise ValueError(f"labels must not hold {SEED_COLUMN!r}: run_grid adds it from the config")
        object.__setattr__(self, "labels", dict(self.labels))

    def with_seed(self, seed: int) -> GridEntry:
        """The same entry trained from another seed (data subsets keep their ``data_seed``)."""
        return GridEntry(self.labels, dataclasses.replace(self.config, seed=seed))

    @property
    def row(self) -> dict[str, Any]:
        """The labels plus the seed: the columns of this run in every table."""
        return {**self.labels, SEED_COLUMN: self.config.seed}


@dataclass(frozen=True)
class Grid:
    """Runs to train, plus the combinations left out and why.

    Attributes
    ----------
    entries : tuple of GridEntry
        All entries carry the same label names.
    skipped : tuple of (labels, reason)
        Combinations not trained, each with its labels (a mapping) and the reason.
    """

    entries: tuple[GridEntry, ...]
    skipped: tuple[tuple[Mapping[str, Any], str], ...] = ()

    def __post_init__(self) -> None:
        names = {tuple(entry.labels) for entry in self.entries}
        if len(names) > 1:
            raise ValueError(f"grid entries carry different label names: {sorted(names)}")

    @classmethod
    def from_configs(cls, configs: Iterable[TrainConfig],
                     labels: Sequence[Mapping[str, Any]] | None = None) -> Grid:
        """A grid of plain configs; labels default to ``{"run": index}``."""
        configs = list(configs)
        if labels is None:
            labels = [{"run": index} for index in range(len(configs))]
        if len(labels) != len(configs):
            raise ValueError(f"{len(configs)} configs but {len(labels)} label sets")
        return cls(tuple(GridEntry(label, config) for label, config in zip(labels, configs)))

    @property
    def label_names(self) -> list[str]:
        """The label columns of the entries (empty for an empty grid)."""
        return list(self.entries[0].labels) if self.entries else []

    def configs(self, seeds: Sequence[int] | None = None) -> list[TrainConfig]:
        """The configs ``run_grid(self, seeds=seeds)`` trains, in its order.

        ``seeds=None`` keeps each entry's own seed; otherwise every entry once per seed.
        """
        if seeds is None:
            return [entry.config for entry in self.entries]
        return [entry.with_seed(int(seed)).config for entry in self.entries for seed in seeds]

    def describe(self) -> pd.DataFrame:
        """One row per entry (``status`` "train") and per skipped combination, with the reason."""
        rows = [{**entry.labels, "status": "train", "epochs": entry.config.epochs,
                 "arch_kwargs": dict(entry.config.arch_kwargs),
                 "limit_train": entry.config.limit_train} for entry in self.entries]
        rows += [{**labels, "status": f"skipped: {reason}"} for labels, reason in self.skipped]
        return pd.DataFrame(rows)


@dataclass
class GridResult:
    """What :func:`run_grid` returns.

    Attributes
    ----------
    history : DataFrame
        The label columns, ``seed``, and the columns of
        :attr:`ncutils.train.RunResult.history` (``epoch``, ``loss``, ``train_acc``,
        ``test_acc``, ``lr``), one row per run and epoch.
    sweeps : DataFrame
        The label columns, ``seed``, ``num_classes`` and the columns of
        :attr:`ncutils.train.RunResult.sweeps`, one row per run, sweep epoch and probe point.
    runs : DataFrame
        One row per run: labels, ``seed``, store ``key``, ``from_cache``, ``train_seconds``
        (wall time of the training that produced the result), ``seconds`` (wall time of this
        call), ``epochs``, final ``train_acc`` and ``test_acc``.
    skipped : DataFrame
        The label columns and ``reason`` of the combinations not trained.
    results : dict
        ``(*label values, seed) -> RunResult`` (trained models included).
    label_names : list of str
        The label columns, ``seed`` last.
    """

    history: pd.DataFrame
    sweeps: pd.DataFrame
    runs: pd.DataFrame
    skipped: pd.DataFrame
    results: dict[tuple[Any, ...], RunResult] = field(repr=False)
    label_names: list[str] = field(default_factory=list)


def sweep_schedule(epochs: int, count: int) -> tuple[int, ...]:
    """Epochs at which to sweep the layers: ``count`` evenly spaced points from 0 to ``epochs``.

    Epoch 0 is the initialisation and the last epoch is always included; rounding may
    merge points when ``count > epochs + 1``.

    Parameters
    ----------
    epochs : int
        Length of the training (at least 1).
    count : int
        Number of sweeps wanted (at least 2: the initialisation and the end).

    Returns
    -------
    tuple of int
        Increasing epochs, first 0, last ``epochs``.

    Example
    -------
    >>> sweep_schedule(30, 5)
    (0, 8, 15, 23, 30)
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
        raise ValueError(f"sweep count must be an integer >= 2, got {count!r}")
    points = np.floor(np.linspace(0, epochs, int(count)) + 0.5).astype(int)
    return tuple(sorted({int(point) for point in points}))


def _check_seeds(seeds: Sequence[int] | None) -> list[int] | None:
    if seeds is None:
        return None
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must list at least one seed")
    bad = [seed for seed in seeds if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0]
    if bad:
        raise ValueError(f"seeds must be integers >= 0, got {bad}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    return [int(seed) for seed in seeds]


def _num_classes(result: RunResult) -> int:
    classifier = result.model.get_submodule(result.model.classifier_name)
    return int(classifier.out_features)


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_in_worker(config: TrainConfig, runs_dir: str | None, force: bool) -> float:
    """Worker process: train one run into the store (the parent loads it); its wall time."""
    started = time.perf_counter()
    with _torch_threads(THREADS_PER_RUN):
        train(config, runs_dir=runs_dir, force=force, progress=False)
    return time.perf_counter() - started


def _needs_training(config: TrainConfig, runs_dir: str | None, force: bool) -> bool:
    manifest = runs.entry_dir("trained", runs.trained_key(config), runs_dir) / runs.MANIFEST
    return force or not manifest.exists()


def _check_workers(workers: int | None) -> int | None:
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    return int(workers)


def _train_in_parallel(entries: Sequence[GridEntry], keys: Sequence[tuple[Any, ...]], *, workers: int,
                       runs_dir: str | None, force: bool, progress: bool) -> set[int]:
    """Train the entries side by side in worker processes; the indices trained."""
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's torch threads
    trained: set[int] = set()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_train_in_worker, entries[index].config, runs_dir, force): index
                   for index in range(len(entries))}
        bar = tqdm(as_completed(futures), total=len(futures), desc=f"training ({workers} workers)",
                   unit="run", disable=not progress)
        for future in bar:
            index = futures[future]
            seconds = future.result()  # re-raises a worker's error (DivergedError, bad data) here
            trained.add(index)
            if progress:
                bar.write(f"trained {'/'.join(map(str, keys[index]))} in {seconds:.1f} s "
                          f"({len(trained)} of {len(futures)})")
    return trained


def run_grid(grid: Grid | Sequence[TrainConfig], *, seeds: Sequence[int] | None = None,
             runs_dir: str | None = None, force: bool = False, progress: bool = True,
             workers: int | None = None) -> GridResult:
    """Train (or load from the results store) every run of a grid and stack the tables.

    Runs missing from the store are trained first, side by side in ``workers`` processes
    on the CPU (one torch thread each, :data:`THREADS_PER_RUN`, whatever ``workers`` is, so
    the numbers do not depend on it); then every run is loaded and its tables stacked.

    Parameters
    ----------
    grid : Grid or sequence of TrainConfig
        The runs; plain configs are labelled ``run`` = their index.
    seeds : sequence of int, optional
        Train every entry once per seed (``TrainConfig.seed`` replaced; ``data_seed`` kept,
        so the data subset stays the same). Default: each entry's own seed.
    runs_dir : path, optional
        Root of the results store (default: :func:`ncutils.runs.default_runs_dir`).
    force : bool
        Retrain even when a stored result exists.
    progress : bool
        Show a progress bar over the runs and one line per run trained (with its time).
    workers : int, optional
        Processes that train side by side. Default: the CPU count (capped by the number of
        runs to train) for CPU runs, 1 for GPU runs (one device).

    Returns
    -------
    GridResult
        Tables with the label columns and ``seed`` in front.

    Raises
    ------
    ValueError
        An empty grid, bad seeds or workers, or two runs with the same labels and seed.
    """
    if not isinstance(grid, Grid):
        grid = Grid.from_configs(grid)
    seeds = _check_seeds(seeds)
    workers = _check_workers(workers)
    if not grid.entries:
        raise ValueError("the grid has no runs (everything was skipped?)")
    entries = [entry.with_seed(seed) for entry in grid.entries for seed in seeds] if seeds else list(grid.entries)
    keys = [tuple(entry.row.values()) for entry in entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"grid runs repeat labels and seed: {keys}")
    missing = [index for index, entry in enumerate(entries) if _needs_training(entry.config, runs_dir, force)]
    cpu_missing = [index for index in missing if resolve_device(entries[index].config.device).type == "cpu"]
    if workers is None:
        workers = min(os.cpu_count() or 1, len(cpu_missing))
    trained_here: set[int] = set()
    if workers > 1 and len(cpu_missing) > 1:
        done = _train_in_parallel([entries[index] for index in cpu_missing],
                                  [keys[index] for index in cpu_missing], workers=min(workers, len(cpu_missing)),
                                  runs_dir=runs_dir, force=force, progress=progress)
        trained_here = {cpu_missing[index] for index in done}
    front = [*grid.label_names, SEED_COLUMN]
    histories, sweeps, table_rows, results = [], [], [], {}
    bar = tqdm(list(zip(entries, keys)), desc="runs", unit="run", disable=not progress)
    for index, (entry, key) in enumerate(bar):
        bar.set_postfix_str("/".join(str(value) for value in key))
        started = time.perf_counter()
        retrain = force and index not in trained_here
        with _torch_threads(THREADS_PER_RUN):
            result = train(entry.config, runs_dir=runs_dir, force=retrain, progress=progress)
        if index in trained_here:
            result.from_cache = False  # trained by a worker of this call
        seconds = time.perf_counter() - started
        results[key] = result
        histories.append(result.history.assign(**entry.row))
        sweeps.append(result.sweeps.assign(**entry.row, num_classes=_num_classes(result)))
        final = result.history.iloc[-1]
        table_rows.append({**entry.row, "key": result.key, "from_cache": result.from_cache,
                           "train_seconds": result.train_seconds, "seconds": seconds,
                           "epochs": entry.config.epochs, "train_acc": float(final["train_acc"]),
                           "test_acc": float(final["test_acc"])})

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[front + [column for column in frame.columns if column not in front]]

    skipped = pd.DataFrame([{**labels, "reason": reason} for labels, reason in grid.skipped],
                           columns=[*grid.label_names, "reason"])
    return GridResult(
        history=ordered(pd.concat(histories, ignore_index=True)),
        sweeps=ordered(pd.concat(sweeps, ignore_index=True)),
        runs=pd.DataFrame(table_rows),
        skipped=skipped,
        results=results,
        label_names=front,
    )
