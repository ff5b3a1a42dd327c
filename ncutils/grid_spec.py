"""Grids of training runs, declared: entries with the labels they carry in tables, seeds as an axis.

A chapter that needs several trained networks describes them as a :class:`Grid`: entries,
each a :class:`~ncutils.train.TrainConfig` with the labels it carries in tables
(``{"architecture": "mlp", "dataset": "digits"}``, say), plus the combinations it leaves out
and why. This module only declares: :func:`ncutils.grid.run_grid` trains and measures a
grid (a paper module declares its grids here without importing the training and measuring
engine, so a key that follows a paper module does not follow that engine). Nothing here
knows a paper's settings: those live in :mod:`ncutils.papers`.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ncutils.train import TrainConfig

if TYPE_CHECKING:  # annotations only
    from ncutils.measure import MeasuredRun

__all__ = ["SEED_COLUMN", "Grid", "GridEntry", "GridResult", "sweep_schedule"]

#: The column every grid table carries beside the entries' own labels.
SEED_COLUMN = "seed"



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
        :attr:`ncutils.measure.MeasuredRun.history` (``epoch``, ``loss``, ``train_acc``,
        ``test_acc``, ``lr``), one row per run and epoch.
    sweeps : DataFrame
        The label columns, ``seed``, ``num_classes`` and the columns of
        :attr:`ncutils.measure.MeasuredRun.sweeps`, one row per run, sweep epoch and probe point.
    runs : DataFrame
        One row per run: labels, ``seed``, store ``key``, ``from_cache``, ``train_seconds``
        (wall time of the training that produced the result), ``seconds`` (wall time of this
        call), ``epochs``, final ``train_acc`` and ``test_acc``.
    skipped : DataFrame
        The label columns and ``reason`` of the combinations not trained.
    results : dict
        ``(*label values, seed) -> MeasuredRun`` (trained models included).
    label_names : list of str
        The label columns, ``seed`` last.
    """

    history: pd.DataFrame
    sweeps: pd.DataFrame
    runs: pd.DataFrame
    skipped: pd.DataFrame
    results: dict[tuple[Any, ...], MeasuredRun] = field(repr=False)
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
