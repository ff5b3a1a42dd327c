"""Parker et al. (2023): the training settings of the official code and the chapters' shared grid.

:func:`parker_config` (SGD 0.9, one-cycle, MSE), :func:`architecture_grid` and
:func:`activation_grid` (a :class:`ncutils.grid.Grid` labelled ``architecture``,
``dataset``, ``activation``), :func:`training_summary` (eligibility) and
:func:`training_report` (the table and the facts the chapters' shared prose glues).

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden Layers of
Classification Neural Networks", arXiv:2308.02760.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ncutils.data import available_datasets, load_dataset
from ncutils.grid_spec import Grid, GridEntry, GridResult, sweep_schedule
from ncutils.models import ACTIVATIONS, check_arch_kwargs
from ncutils.papers._validation import error_text, grouped_failures, seed_problems
from ncutils.papers.parker.criteria import eligible_runs
from ncutils.train import TrainConfig

__all__ = [
    "CONV_ARCHITECTURES",
    "DEFAULT_ACTIVATION",
    "GRID_PARAMETERS",
    "PAPER_ACCURACY_EPOCHS",
    "PER_DATASET_PARAMETERS",
    "PARKER_TRAINING",
    "activation_grid",
    "architecture_grid",
    "parker_config",
    "runs_text",
    "training_report",
    "training_summary",
    "TrainingReport",
    "validate_parameters",
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

#: Train accuracies at whose first epoch the official code measures every layer (its figures
#: plot each layer at these epochs); the runs keep their weights there.
PAPER_ACCURACY_EPOCHS: tuple[float, ...] = (0.9, 0.95, 0.975, 0.99)

#: Notebook parameters that :func:`architecture_grid` and :func:`activation_grid` read.
_TRAINING_KEYS = ("loss", "epochs", "lr", "batch_size", "weight_decay", "sweep_count",
                  "limit_train", "limit_test", "seed", "device", "data_dir", "download")

#: The parameters that decide the chapters' runs: chapters that share runs must agree on them
#: (``seeds`` goes to :func:`ncutils.grid.run_grid`).
GRID_PARAMETERS: tuple[str, ...] = ("datasets", "architectures", "seeds", *_TRAINING_KEYS)


#: Parameters that take one value for every dataset or a mapping dataset -> value
#: (:func:`_epochs_for`): ``-p epochs 10`` is as valid as ``epochs: {digits: 10, ...}``.
PER_DATASET_PARAMETERS: frozenset[str] = frozenset({"epochs"})


#: The activation of every architecture of :mod:`ncutils.models` unless told otherwise.
DEFAULT_ACTIVATION = "relu"


def _takes_activation(architecture: str) -> bool:
    try:
        check_arch_kwargs(architecture, {"activation": DEFAULT_ACTIVATION})
    except ValueError:
        return False
    return True


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
    ``(epochs, sweep_count)`` and at the first epochs reaching :data:`PAPER_ACCURACY_EPOCHS`
    (the weights are kept there), conv maps flattened.

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
        save_at_train_acc=PAPER_ACCURACY_EPOCHS,
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
        Labels ``architecture``, ``dataset``, ``activation``; entries in the order architectures x datasets; ``activation`` is the architecture's
        ``activation`` option or ``"relu"`` (every architecture's default).

    Raises
    ------
    ValueError, KeyError
        Empty or malformed lists, unknown names, invalid settings (before any training).

    Example
    -------
    >>> grid = architecture_grid({"datasets": ["digits", "mnist1d"], "epochs": 2,
    ...                           "architectures": {"mlp": {"depth": 3}, "vgg": {"width": 0.125}}})
    >>> [(e.labels["architecture"], e.labels["dataset"]) for e in grid.entries]
    [('mlp', 'digits'), ('mlp', 'mnist1d'), ('vgg', 'digits')]
    >>> grid.skipped[0]
    ({'architecture': 'vgg', 'dataset': 'mnist1d', 'activation': ''}, 'a conv net needs image inputs')
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
                skipped.append(({"architecture": architecture, "dataset": dataset, "activation": ""},
                                "a conv net needs image inputs"))
                continue
            run_options = {**options, "epochs": _epochs_for(options["epochs"], dataset)}
            config = parker_config(architecture, dataset, arch_kwargs=arch_kwargs, **run_options)
            activation = dict(config.arch_kwargs).get("activation", DEFAULT_ACTIVATION)
            entries.append(GridEntry({"architecture": architecture, "dataset": dataset,
                                      "activation": activation}, config))
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
    >>> [entry.labels["activation"] for entry in grid.entries]
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
        GridEntry({"architecture": architecture, "dataset": dataset, "activation": activation},
                  parker_config(architecture, dataset, arch_kwargs=architectures[architecture],
                                activation=activation, **options))
        for activation in activations
    )
    return Grid(entries)


def _name_list(parameters: Mapping[str, Any], name: str, known: Sequence[str] | None,
               problems: list[str]) -> list[str]:
    values = parameters.get(name)
    if not isinstance(values, (list, tuple)) or not values:
        problems.append(f"parameters[{name!r}] must list at least one name, got {values!r}")
        return []
    bad = [value for value in values if not isinstance(value, str)]
    if bad:
        problems.append(f"parameters[{name!r}] must list names (strings), got {bad}")
        return []
    if len(set(values)) != len(values):
        problems.append(f"parameters[{name!r}] has duplicates: {list(values)}")
    if known is not None:
        unknown = [value for value in values if value not in known]
        if unknown:
            problems.append(f"parameters[{name!r}]: unknown {unknown}; available: {sorted(known)}")
    return list(dict.fromkeys(values))


def validate_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with a Parker chapter's parameters, before anything is trained or loaded.

    Checks what :func:`architecture_grid` (and, when ``activations`` is given,
    :func:`activation_grid`) would refuse, with the same messages, but without reading any
    dataset: the lists of datasets, architectures and seeds, an ``epochs`` entry for every
    dataset when ``epochs`` is a mapping (one int serves all: :data:`PER_DATASET_PARAMETERS`),
    and the :class:`~ncutils.train.TrainConfig` of every architecture x dataset (known names,
    ``lr > 0``, integer epochs, ...).

    Parameters
    ----------
    parameters : mapping
        The chapter's resolved parameters (defaults, profile values, overrides).

    Returns
    -------
    list of str
        One message per problem; empty when the grids can be built.

    Examples
    --------
    >>> good = {"datasets": ["digits"], "architectures": {"mlp": {"depth": 3}}, "epochs": 2,
    ...         "seeds": [0]}
    >>> validate_parameters(good)
    []
    >>> validate_parameters({**good, "datasets": ["digits", "mnist5k"], "epochs": {"digits": 2}})
    ["epochs has no entry for dataset 'mnist5k'; it has ['digits']"]
    >>> validate_parameters({**good, "lr": -1.0})
    ['lr must be > 0, got -1.0 (mlp on digits)']
    """
    problems: list[str] = []
    datasets = _name_list(parameters, "datasets", available_datasets(), problems)
    architectures = parameters.get("architectures")
    if not isinstance(architectures, Mapping) or not architectures:
        problems.append("parameters['architectures'] must map at least one architecture to its options")
        architectures = {}
    if "seeds" in parameters:
        problems += seed_problems(parameters["seeds"])
    if "epochs" not in parameters:
        return problems + ["parameters lack ['epochs']"]
    epochs = parameters["epochs"]
    options = _training_options(parameters)
    known = set(available_datasets())
    activation_dataset = parameters.get("activation_dataset") if "activations" in parameters else None

    def epochs_of(dataset: str) -> int | None:
        try:
            return _epochs_for(epochs, dataset)
        except KeyError as error:
            problems.append(error_text(error))
            return None

    counts = {dataset: epochs_of(dataset) for dataset in datasets if dataset in known}
    failures: list[tuple[str, str]] = []
    for architecture, arch_kwargs in architectures.items():
        if not isinstance(arch_kwargs, Mapping):
            problems.append(f"options of architecture {architecture!r} must be a mapping, got {arch_kwargs!r}")
            continue
        for dataset, count in counts.items():
            if count is None:
                continue
            try:
                parker_config(architecture, dataset, arch_kwargs=arch_kwargs, **{**options, "epochs": count})
            except (KeyError, ValueError, TypeError) as error:
                failures.append((f"{architecture} on {dataset}", error_text(error)))
    if "activations" in parameters:
        activations = _name_list(parameters, "activations", sorted(ACTIVATIONS), problems)
        if not isinstance(activation_dataset, str):
            problems.append(f"parameters['activation_dataset'] must name a dataset, got {activation_dataset!r}")
        elif activation_dataset not in known:
            problems.append(f"unknown dataset {activation_dataset!r}; available: {available_datasets()}")
        elif "mlp" not in architectures:
            problems.append("parameters['architectures'] has no options for 'mlp'")
        elif activations and isinstance(architectures["mlp"], Mapping):
            count = counts[activation_dataset] if activation_dataset in counts else epochs_of(activation_dataset)
            if count is not None:
                for activation in activations:
                    try:
                        parker_config("mlp", activation_dataset, arch_kwargs=architectures["mlp"],
                                      activation=activation, **{**options, "epochs": count})
                    except (KeyError, ValueError, TypeError) as error:
                        failures.append((f"mlp ({activation}) on {activation_dataset}", error_text(error)))
    return list(dict.fromkeys(problems + grouped_failures(failures)))


def training_summary(result: GridResult, *, min_train_acc: float) -> pd.DataFrame:
    """One row per run: how far training went, and whether the run enters the criteria.

    Parameters
    ----------
    result : GridResult
        From :func:`ncutils.grid.run_grid` over :func:`architecture_grid` or
        :func:`activation_grid`.
    min_train_acc : float
        Train accuracy at the last epoch a run needs to enter the criteria (see
        :func:`eligible_runs`).

    Returns
    -------
    DataFrame
        ``architecture``, ``dataset``, ``activation``, ``seed``, ``epochs``, ``train_acc``,
        ``test_acc``, ``difficulty`` (1 - test accuracy), ``eligible``, ``from_cache``,
        ``train_seconds`` (wall time of the training that produced the cached result).
    """
    if not isinstance(result, GridResult):
        raise ValueError(f"result must be a GridResult, got {type(result).__name__}")
    keys = ["architecture", "dataset", "activation", "seed"]
    runs = eligible_runs(result.history, min_train_acc=min_train_acc, group_cols=keys)
    extra = result.runs[[*keys, "from_cache", "train_seconds"]]
    table = runs.rename(columns={"epoch": "epochs"}).merge(extra, on=keys, how="left")
    return table[[*keys, "epochs", "train_acc", "test_acc", "difficulty", "eligible",
                  "from_cache", "train_seconds"]]


@dataclass(frozen=True)
class TrainingReport:
    """What the Parker chapters say about their runs, computed rather than typed.

    Attributes
    ----------
    summary : DataFrame
        :func:`training_summary` of the grid's result.
    excluded_text : str
        The runs left out of the criteria ("mlp on digits, ..." or "none").
    facts : dict of str to str or int
        Glue keys (``<prefix>_<name>``) for the chapters' shared prose: ``runs`` (runs
        trained or loaded), ``terminal`` (runs at 100% train accuracy at their last
        epoch), ``eligible``, ``excluded``, ``trained`` (trained by this execution),
        ``skipped`` (combinations left out and why), ``batch_size``, ``epochs`` (per
        dataset), ``architectures`` (with their options), ``datasets``, ``loss``.
    """

    summary: pd.DataFrame
    excluded_text: str
    facts: dict[str, Any]


def _join(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


def runs_text(table: pd.DataFrame, columns: Sequence[str] = ("architecture", "dataset")) -> str:
    """The runs of a criterion table, as a claim names them: ``"mlp on digits, vgg on mnist5k"``.

    Parameters
    ----------
    table : DataFrame
        One row per run (e.g. from :func:`per_run`), with ``columns``.
    columns : sequence of str
        The first is the architecture, the second the dataset, any further ones (the
        activation) go in parentheses.

    Returns
    -------
    str
        ``"no eligible run"`` for an empty table.

    Example
    -------
    >>> runs_text(pd.DataFrame({"architecture": ["mlp", "vgg"], "dataset": ["digits", "mnist5k"]}))
    'mlp on digits, vgg on mnist5k'
    """
    if table.empty:
        return "no eligible run"
    first, second, *rest = columns
    parts = []
    for row in table[list(columns)].drop_duplicates().itertuples(index=False):
        extra = f" ({', '.join(str(value) for value in row[2:])})" if rest else ""
        parts.append(f"{row[0]}{extra} on {row[1]}")
    return ", ".join(parts)


def training_report(grid: Grid, result: GridResult, *, min_train_acc: float,
                    prefix: str = "parker") -> TrainingReport:
    """Summarise a trained Parker grid into the table and the facts its prose states.

    Parameters
    ----------
    grid : Grid
        From :func:`architecture_grid` or :func:`activation_grid`.
    result : GridResult
        ``ncutils.grid.run_grid(grid)``.
    min_train_acc : float
        The chapter's eligibility threshold (see :func:`eligible_runs`).
    prefix : str
        Prefix of the glue keys in :attr:`TrainingReport.facts`.

    Returns
    -------
    TrainingReport
    """
    summary = training_summary(result, min_train_acc=min_train_acc)
    excluded = summary.loc[~summary["eligible"]]
    excluded_text = _join([f"{row.architecture} ({row.activation}) on {row.dataset}"
                           for row in excluded.itertuples()])
    configs = [entry.config for entry in grid.entries]
    architectures: dict[str, str] = {}
    for entry in grid.entries:
        options = ", ".join(f"{key} {value}" for key, value in sorted(dict(entry.config.arch_kwargs).items()))
        architectures.setdefault(entry.labels["architecture"], options)
    epochs: dict[str, int] = {}
    for entry in grid.entries:
        epochs.setdefault(entry.labels["dataset"], entry.config.epochs)
    facts = {
        "runs": len(summary),
        "terminal": int((summary["train_acc"] >= 1.0).sum()),
        "eligible": int(summary["eligible"].sum()),
        "excluded": excluded_text,
        "trained": int((~summary["from_cache"]).sum()),
        "skipped": _join([f"{labels['architecture']} on {labels['dataset']} ({reason})"
                          for labels, reason in grid.skipped]),
        "batch_size": _join(sorted({str(config.batch_size) for config in configs})),
        "epochs": _join([f"{dataset} {count}" for dataset, count in epochs.items()]),
        "architectures": _join([f"{name} ({options or 'defaults'})" for name, options in architectures.items()]),
        "datasets": _join(list(epochs)),
        "loss": _join(sorted({config.loss for config in configs})),
    }
    return TrainingReport(summary, excluded_text, {f"{prefix}_{key}": value for key, value in facts.items()})
