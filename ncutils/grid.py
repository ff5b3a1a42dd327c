"""Training and measuring a grid of runs: :func:`run_grid`, seeds as an axis.

:func:`run_grid` trains every entry of a :class:`~ncutils.grid_spec.Grid` (or loads it from
the results store: every run goes through :func:`ncutils.train.train`), for every seed asked
for, measures it (:func:`ncutils.measure.measure_run`) and stacks the runs' tables with the
labels and the ``seed`` as columns, so criteria can group by them. The declarations
(:class:`~ncutils.grid_spec.Grid`, :class:`~ncutils.grid_spec.GridEntry`,
:class:`~ncutils.grid_spec.GridResult`, :func:`~ncutils.grid_spec.sweep_schedule`) live in
:mod:`ncutils.grid_spec` and are re-exported here.

Example
-------
>>> from ncutils.train import TrainConfig
>>> config = TrainConfig(dataset="digits", arch="mlp", arch_kwargs={"depth": 3}, epochs=1)
>>> grid = Grid.from_configs([config], labels=[{"dataset": "digits"}])
>>> [entry.with_seed(s).config.seed for entry in grid.entries for s in (0, 1)]
[0, 1]
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ncutils import store
from ncutils._checks import resolve_device
from ncutils.grid_spec import SEED_COLUMN, Grid, GridEntry, GridResult, sweep_schedule
from ncutils.measure import MeasuredRun, measure_run
from ncutils.train import TrainConfig, train

__all__ = ["THREADS_PER_RUN", "Grid", "GridEntry", "GridResult", "run_grid", "sweep_schedule"]

#: Torch threads of every run a grid trains on the CPU. Fixed (and recorded) so that a
#: run's numbers do not depend on how many runs train side by side: parallelism comes from
#: worker processes, one run each.
THREADS_PER_RUN = 1


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


def _num_classes(result: MeasuredRun) -> int:
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
    manifest = store.entry_dir("trained", store.trained_key(config), runs_dir) / store.MANIFEST
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
        Root of the results store (default: :func:`ncutils.store.default_runs_dir`).
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
            trained = train(entry.config, runs_dir=runs_dir, force=retrain, progress=progress)
            if index in trained_here:
                trained.from_cache = False  # trained by a worker of this call
            result = measure_run(trained, force=force)
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
