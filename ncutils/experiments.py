"""Grids of training runs shared by chapters, and the Parker et al. (2023) settings.

A chapter that needs several trained networks describes them as a :class:`Grid` of
(architecture, dataset, activation) entries, each a :class:`ncutils.train.TrainConfig`, and
calls :func:`run_grid`. Every run goes through :func:`ncutils.train.train`, so its results
cache is shared: the four Parker chapters build the same grid from the same parameters, the
first one to execute trains it and the others load it. The combined tables carry the
columns ``architecture``, ``dataset`` and ``activation`` so that criteria
(:mod:`ncutils.criteria`) and figures (:mod:`ncutils.plots`) can group by them.

Parker et al.'s settings (their official code, see the project's paper notes): MSE loss on
one-hot targets, SGD with momentum 0.9 and no weight decay, a one-cycle learning-rate
schedule peaking at 0.1 (div factor 10, final div factor 5e4), layer sweeps on the training
set. Their epoch count is not confirmed by any stored source; the chapters state theirs.

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden Layers of
Classification Neural Networks", arXiv:2308.02760.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ncutils.criteria import eligible_runs
from ncutils.data import available_datasets, load_dataset
from ncutils.models import ACTIVATIONS, check_arch_kwargs
from ncutils.train import RunResult, TrainConfig, train

__all__ = [
    "CONV_ARCHITECTURES",
    "DEFAULT_ACTIVATION",
    "GRID_PARAMETERS",
    "PARKER_TRAINING",
    "Grid",
    "GridEntry",
    "GridResult",
    "activation_grid",
    "architecture_grid",
    "parker_config",
    "run_grid",
    "sweep_schedule",
    "training_summary",
]

#: Architectures that read images (C, H, W); they are skipped on vector datasets.
CONV_ARCHITECTURES: frozenset[str] = frozenset({"vgg", "resnet18", "convnet"})

#: Optimisation settings of Parker et al.'s official code (``nc_main.py``).
PARKER_TRAINING: dict[str, Any] = {
    "optimizer": "sgd",
    "momentum": 0.9,
    "schedule": "onecycle",
    "lr": 0.1,
    "weight_decay": 0.0,
    "loss": "mse",
}

#: Notebook parameters that :func:`architecture_grid` and :func:`activation_grid` read.
_TRAINING_KEYS = ("loss", "epochs", "lr", "batch_size", "weight_decay", "sweep_count",
                  "limit_train", "limit_test", "seed", "device", "data_dir", "download")

#: The parameters that decide :func:`architecture_grid`: chapters that share runs must agree on them.
GRID_PARAMETERS: tuple[str, ...] = ("datasets", "architectures", *_TRAINING_KEYS)


#: The activation of every architecture of :mod:`ncutils.models` unless told otherwise.
DEFAULT_ACTIVATION = "relu"


def _takes_activation(architecture: str) -> bool:
    try:
        check_arch_kwargs(architecture, {"activation": DEFAULT_ACTIVATION})
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class GridEntry:
    """One run of a grid: what it is called in tables, and its training config."""

    architecture: str
    dataset: str
    activation: str
    config: TrainConfig

    @property
    def labels(self) -> dict[str, str]:
        return {"architecture": self.architecture, "dataset": self.dataset,
                "activation": self.activation}


@dataclass(frozen=True)
class Grid:
    """Runs to train, plus the combinations left out and why.

    Attributes
    ----------
    entries : tuple of GridEntry
    skipped : tuple of (architecture, dataset, reason)
    """

    entries: tuple[GridEntry, ...]
    skipped: tuple[tuple[str, str, str], ...] = ()

    def describe(self) -> pd.DataFrame:
        """One row per entry (``status`` "train") and per skipped combination, with the reason."""
        rows = [{**entry.labels, "status": "train",
                 "epochs": entry.config.epochs, "arch_kwargs": dict(entry.config.arch_kwargs),
                 "limit_train": entry.config.limit_train} for entry in self.entries]
        rows += [{"architecture": architecture, "dataset": dataset, "activation": "",
                  "status": f"skipped: {reason}"} for architecture, dataset, reason in self.skipped]
        return pd.DataFrame(rows)


@dataclass
class GridResult:
    """What :func:`run_grid` returns.

    Attributes
    ----------
    history : DataFrame
        ``architecture``, ``dataset``, ``activation`` and the columns of
        :attr:`ncutils.train.RunResult.history` (``epoch``, ``loss``, ``train_acc``,
        ``test_acc``, ``lr``), one row per run and epoch.
    sweeps : DataFrame
        ``architecture``, ``dataset``, ``activation``, ``num_classes`` and the columns of
        :attr:`ncutils.train.RunResult.sweeps`, one row per run, sweep epoch and probe point.
    runs : DataFrame
        One row per run: labels, cache ``key``, ``from_cache``, ``train_seconds`` (wall
        time of the training that produced the result), ``seconds`` (wall time of this
        call), final ``train_acc`` and ``test_acc``.
    skipped : DataFrame
        ``architecture``, ``dataset``, ``reason`` of the combinations not trained.
    results : dict
        ``(architecture, dataset, activation) -> RunResult`` (trained models included).
    """

    history: pd.DataFrame
    sweeps: pd.DataFrame
    runs: pd.DataFrame
    skipped: pd.DataFrame
    results: dict[tuple[str, str, str], RunResult] = field(repr=False)


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


def _epochs_for(epochs: int | Mapping[str, int], dataset: str) -> int:
    """Epochs of a dataset: one number for all, or a mapping dataset -> epochs."""
    if isinstance(epochs, Mapping):
        if dataset not in epochs:
            raise KeyError(f"epochs has no entry for dataset {dataset!r}; it has {sorted(epochs)}")
        return epochs[dataset]
    return epochs


def parker_config(
    architecture: str,
    dataset: str,
    *,
    epochs: int,
    arch_kwargs: Mapping[str, Any] | None = None,
    activation: str | None = None,
    loss: str = PARKER_TRAINING["loss"],
    lr: float = PARKER_TRAINING["lr"],
    batch_size: int = 128,
    weight_decay: float = PARKER_TRAINING["weight_decay"],
    sweep_count: int = 5,
    limit_train: int | None = None,
    limit_test: int | None = None,
    seed: int = 0,
    device: str = "auto",
    data_dir: str | None = None,
    download: bool = False,
) -> TrainConfig:
    """The :class:`~ncutils.train.TrainConfig` of one Parker-style run.

    SGD with momentum 0.9 and a one-cycle schedule peaking at ``lr`` (Parker et al.'s code:
    div factor 10, final div factor 5e4), layer sweeps at :func:`sweep_schedule`
    ``(epochs, sweep_count)``, conv maps flattened.

    Parameters
    ----------
    architecture : str
        A name of :func:`ncutils.models.available_architectures`.
    dataset : str
        A name of :func:`ncutils.data.available_datasets`.
    epochs : int
        Training epochs.
    arch_kwargs : mapping, optional
        Options of the architecture (``depth``, ``width``, ``config``, ...).
    activation : str, optional
        Overrides ``arch_kwargs["activation"]`` (MLP and VGG only).
    loss : {"mse", "ce"}
        MSE on one-hot targets is Parker et al.'s choice.
    lr, batch_size, weight_decay, seed, device, data_dir, download, limit_train, limit_test
        As in :class:`~ncutils.train.TrainConfig`.
    sweep_count : int
        Number of layer sweeps, from initialisation to the last epoch.

    Returns
    -------
    TrainConfig

    Raises
    ------
    KeyError, ValueError
        From :class:`~ncutils.train.TrainConfig` for unknown names or invalid values.

    Example
    -------
    >>> config = parker_config("mlp", "digits", epochs=10, arch_kwargs={"depth": 7, "width": 64})
    >>> config.schedule, config.loss, config.sweep_epochs
    ('onecycle', 'mse', (0, 3, 5, 8, 10))
    """
    options = dict(arch_kwargs or {})
    if activation is not None:
        options["activation"] = activation
    if "activation" in options and options["activation"] not in ACTIVATIONS:
        # TrainConfig checks option names only; a bad value would fail at the first build
        raise ValueError(f"unknown activation {options['activation']!r}; choose one of {sorted(ACTIVATIONS)}")
    if activation is None and _takes_activation(architecture):
        # Spelled out so that the same network asked for with and without an explicit
        # activation has one config, hence one cache entry.
        options.setdefault("activation", DEFAULT_ACTIVATION)
    return TrainConfig(
        dataset=dataset, arch=architecture, arch_kwargs=options, loss=loss,
        optimizer=PARKER_TRAINING["optimizer"], lr=lr, momentum=PARKER_TRAINING["momentum"],
        weight_decay=weight_decay, schedule=PARKER_TRAINING["schedule"], epochs=epochs,
        batch_size=batch_size, seed=seed, device=device,
        sweep_epochs=sweep_schedule(epochs, sweep_count), limit_train=limit_train,
        limit_test=limit_test, data_dir=data_dir, download=download,
    )


def _training_options(parameters: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in ("epochs",) if key not in parameters]
    if missing:
        raise ValueError(f"parameters lack {missing}")
    return {key: parameters[key] for key in _TRAINING_KEYS if key in parameters}


def _is_image_dataset(dataset: str, options: Mapping[str, Any]) -> bool:
    if dataset not in available_datasets():
        raise KeyError(f"unknown dataset {dataset!r}; available: {available_datasets()}")
    sample = load_dataset(dataset, "train", limit=1, data_dir=options.get("data_dir"),
                          download=options.get("download", False))
    return len(sample.input_shape) == 3


def architecture_grid(parameters: Mapping[str, Any]) -> Grid:
    """Every architecture on every dataset of a chapter's parameters.

    Conv architectures (:data:`CONV_ARCHITECTURES`) are skipped on vector datasets
    (``mnist1d``, ``gaussian``), and the skip is listed with its reason.

    Parameters
    ----------
    parameters : mapping
        The chapter's parameters: ``datasets`` (list of names), ``architectures``
        (mapping architecture -> its ``arch_kwargs``), ``epochs`` (int, or mapping
        dataset -> int) and optionally the keyword arguments of :func:`parker_config`
        (``loss``, ``lr``, ``batch_size``, ``weight_decay``, ``sweep_count``,
        ``limit_train``, ``limit_test``, ``seed``, ``device``, ``data_dir``, ``download``).
        Other keys are ignored.

    Returns
    -------
    Grid
        Entries in the order architectures x datasets; ``activation`` is the architecture's
        ``activation`` option or ``"relu"`` (every architecture's default).

    Raises
    ------
    ValueError, KeyError
        Empty or malformed lists, unknown names, invalid settings (before any training).

    Example
    -------
    >>> grid = architecture_grid({"datasets": ["digits", "mnist1d"], "epochs": 2,
    ...                           "architectures": {"mlp": {"depth": 3}, "vgg": {"width": 0.125}}})
    >>> [(e.architecture, e.dataset) for e in grid.entries], grid.skipped[0][:2]
    ([('mlp', 'digits'), ('mlp', 'mnist1d'), ('vgg', 'digits')], ('vgg', 'mnist1d'))
    """
    datasets = list(parameters.get("datasets") or [])
    architectures = parameters.get("architectures")
    if not datasets:
        raise ValueError("parameters['datasets'] must list at least one dataset")
    if len(set(datasets)) != len(datasets):
        raise ValueError(f"parameters['datasets'] has duplicates: {datasets}")
    if not isinstance(architectures, Mapping) or not architectures:
        raise ValueError("parameters['architectures'] must map at least one architecture to its options")
    options = _training_options(parameters)
    images = {dataset: _is_image_dataset(dataset, options) for dataset in datasets}
    entries, skipped = [], []
    for architecture, arch_kwargs in architectures.items():
        if not isinstance(arch_kwargs, Mapping):
            raise ValueError(f"options of architecture {architecture!r} must be a mapping, got {arch_kwargs!r}")
        for dataset in datasets:
            if architecture in CONV_ARCHITECTURES and not images[dataset]:
                skipped.append((architecture, dataset, "a conv net needs image inputs"))
                continue
            run_options = {**options, "epochs": _epochs_for(options["epochs"], dataset)}
            config = parker_config(architecture, dataset, arch_kwargs=arch_kwargs, **run_options)
            activation = dict(config.arch_kwargs).get("activation", DEFAULT_ACTIVATION)
            entries.append(GridEntry(architecture, dataset, activation, config))
    return Grid(tuple(entries), tuple(skipped))


def activation_grid(parameters: Mapping[str, Any], *, architecture: str = "mlp") -> Grid:
    """One architecture with each activation of ``parameters["activations"]`` on one dataset.

    Parameters
    ----------
    parameters : mapping
        As for :func:`architecture_grid`, plus ``activations`` (list of names of
        :data:`ncutils.models.ACTIVATIONS`) and ``activation_dataset``. The architecture's
        options come from ``parameters["architectures"][architecture]``, so the ReLU entry
        is the same run as in :func:`architecture_grid` and is loaded from the cache.
    architecture : str
        Which architecture to vary (default ``"mlp"``).

    Returns
    -------
    Grid

    Example
    -------
    >>> grid = activation_grid({"architectures": {"mlp": {"depth": 3}}, "epochs": 2,
    ...                         "activations": ["relu", "tanh"], "activation_dataset": "digits"})
    >>> [entry.activation for entry in grid.entries]
    ['relu', 'tanh']
    """
    activations = list(parameters.get("activations") or [])
    dataset = parameters.get("activation_dataset")
    architectures = parameters.get("architectures") or {}
    if not activations:
        raise ValueError("parameters['activations'] must list at least one activation")
    if len(set(activations)) != len(activations):
        raise ValueError(f"parameters['activations'] has duplicates: {activations}")
    if architecture not in architectures:
        raise ValueError(f"parameters['architectures'] has no options for {architecture!r}")
    if not isinstance(dataset, str):
        raise ValueError(f"parameters['activation_dataset'] must name a dataset, got {dataset!r}")
    options = _training_options(parameters)
    options["epochs"] = _epochs_for(options["epochs"], dataset)
    entries = tuple(
        GridEntry(architecture, dataset, activation,
                  parker_config(architecture, dataset, arch_kwargs=architectures[architecture],
                                activation=activation, **options))
        for activation in activations
    )
    return Grid(entries)


def _num_classes(result: RunResult) -> int:
    classifier = result.model.get_submodule(result.model.classifier_name)
    return int(classifier.out_features)


def run_grid(grid: Grid, *, runs_dir: str | None = None, force: bool = False,
             progress: bool = True) -> GridResult:
    """Train (or load from the results cache) every run of a grid and combine the tables.

    Parameters
    ----------
    grid : Grid
        From :func:`architecture_grid` or :func:`activation_grid`.
    runs_dir : path, optional
        Root of the results cache (default: :func:`ncutils.train.train`'s).
    force : bool
        Retrain even when a cached result exists.
    progress : bool
        Show a progress bar over the runs (and each run's own bar over epochs).

    Returns
    -------
    GridResult

    Raises
    ------
    ValueError
        An empty grid, or two entries with the same labels.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a Grid, got {type(grid).__name__}")
    if not grid.entries:
        raise ValueError("the grid has no runs (everything was skipped?)")
    labels = [tuple(entry.labels.values()) for entry in grid.entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"grid entries repeat labels: {labels}")
    histories, sweeps, runs, results = [], [], [], {}
    bar = tqdm(grid.entries, desc="runs", unit="run", disable=not progress)
    for entry in bar:
        bar.set_postfix_str(f"{entry.architecture}/{entry.dataset}/{entry.activation}")
        started = time.perf_counter()
        result = train(entry.config, runs_dir=runs_dir, force=force, progress=progress)
        seconds = time.perf_counter() - started
        results[tuple(entry.labels.values())] = result
        histories.append(result.history.assign(**entry.labels))
        sweeps.append(result.sweeps.assign(**entry.labels, num_classes=_num_classes(result)))
        final = result.history.iloc[-1]
        runs.append({**entry.labels, "key": result.key, "from_cache": result.from_cache,
                     "train_seconds": result.train_seconds, "seconds": seconds,
                     "epochs": entry.config.epochs, "train_acc": float(final["train_acc"]),
                     "test_acc": float(final["test_acc"])})
    front = ["architecture", "dataset", "activation"]

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[front + [column for column in frame.columns if column not in front]]

    return GridResult(
        history=ordered(pd.concat(histories, ignore_index=True)),
        sweeps=ordered(pd.concat(sweeps, ignore_index=True)),
        runs=pd.DataFrame(runs),
        skipped=pd.DataFrame(list(grid.skipped), columns=["architecture", "dataset", "reason"]),
        results=results,
    )


def training_summary(result: GridResult, *, min_train_acc: float) -> pd.DataFrame:
    """One row per run: how far training went, and whether the run enters the criteria.

    Parameters
    ----------
    result : GridResult
        From :func:`run_grid`.
    min_train_acc : float
        Train accuracy at the last epoch a run needs to enter the criteria (see
        :func:`ncutils.criteria.eligible_runs`).

    Returns
    -------
    DataFrame
        ``architecture``, ``dataset``, ``activation``, ``epochs``, ``train_acc``,
        ``test_acc``, ``difficulty`` (1 - test accuracy), ``eligible``, ``from_cache``,
        ``train_seconds`` (wall time of the training that produced the cached result).
    """
    if not isinstance(result, GridResult):
        raise ValueError(f"result must be a GridResult, got {type(result).__name__}")
    keys = ["architecture", "dataset", "activation"]
    runs = eligible_runs(result.history, min_train_acc=min_train_acc, group_cols=keys)
    extra = result.runs[[*keys, "from_cache", "train_seconds"]]
    table = runs.rename(columns={"epoch": "epochs"}).merge(extra, on=keys, how="left")
    return table[[*keys, "epochs", "train_acc", "test_acc", "difficulty", "eligible",
                  "from_cache", "train_seconds"]]
