"""Yang, Steinhardt, Hu (2023), chapters Y1-Y2: fine-grained structure survives collapse.

Two halves. *Configurations*: :func:`yang_config` (one run: cross-entropy, SGD with momentum
and a step decay), :func:`y1_grid` (networks trained on coarse labels, pairs of classes
merged, beside the same network trained on the fine labels: the reference, and on shuffled
coarse labels: a baseline; the coarse runs keep :func:`log_epochs` for a series across
training) and :func:`y2_grid` (the synthetic setting: Gaussian fine clusters nested in coarse
classes, at several fine separations and training lengths). :func:`measure` turns a trained
network into one table row per feature source (trained, initialisation, raw input) and label
set (true fine labels, fine labels drawn at random inside each coarse class: the null), with
:mod:`ncutils.cluster`; :func:`measure_run` / :func:`measure_runs` do the same for stored runs
through the results store (each k-means kept as a ``computed`` entry keyed by
:func:`recovery_payload`; the metrics are read from the statistics kept beside it, so an edit
to ``metrics.py`` clusters nothing again), and :func:`y1_epoch_series` /
:func:`epoch_series_facts` follow each coarse run across its stored epochs. *Criteria*:
:func:`y1_table` / :func:`y1_outcome` and :func:`y2_table` / :func:`y2_outcome`, pure
functions of those tables with every threshold an argument (DESIGN.md 8.6); the runs are
combined by :func:`ncutils.verdicts.combine_runs` (DESIGN.md 8.3).

No official code exists (``papers/NOTES.md`` section 3). Everything below that the paper does
not confirm is an *assumption* and :data:`ASSUMPTIONS` lists each one, for the chapter to show.

References
----------
Yang, Steinhardt, Hu (2023), "Are Neurons Actually Collapsed? On the Fine-Grained Structure in
Neural Representations", ICML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncutils import metrics, verdicts
from ncutils.cluster import (chance_level, fine_class_stats, fine_structure,
                             fine_structure_statistic_from_stats, random_fine_labels)
from ncutils.data import Dataset, load_dataset, modulo_label_map
from ncutils.grid import Grid, GridEntry
from ncutils.models import build_model
from ncutils.probe import capture
from ncutils.runs import computed, computed_payload, data_fingerprint, package_version
from ncutils.stats import ClassStats, ProjectedScatter
from ncutils.train import TrainConfig

__all__ = [
    "ASSUMPTIONS",
    "FINE",
    "PAIRINGS",
    "PER_DATASET_PARAMETERS",
    "RECOVERY_MODULES",
    "SHUFFLED",
    "YANG_TRAINING",
    "epoch_series_facts",
    "initial_model",
    "load_run_data",
    "log_epochs",
    "measure",
    "measure_run",
    "measure_runs",
    "penultimate_features",
    "recovery_payload",
    "y1_epoch_series",
    "y1_grid",
    "y1_outcome",
    "y1_table",
    "y2_grid",
    "y2_outcome",
    "y2_table",
    "validate_parameters",
    "yang_config",
]

#: Coarse label maps of 10-class datasets: fine label -> coarse label (5 super-classes).
PAIRINGS: dict[str, dict[int, int]] = {
    # c and c + 5 merged (NOTES.md's default; CIFAR-10: airplane+dog, automobile+frog,
    # bird+horse, cat+ship, deer+truck): pairs that share no obvious meaning
    "mod5": modulo_label_map(10, 5),
    # CIFAR-10 pairs of similar classes, the harder case for recovery: airplane+ship,
    # automobile+truck, cat+dog, deer+horse, and the two left, bird+frog
    "cifar10-semantic": {0: 0, 8: 0, 1: 1, 9: 1, 3: 3, 5: 3, 4: 4, 7: 4, 2: 2, 6: 2},
}

#: Training settings shared by every run (the paper's are unconfirmed: see ASSUMPTIONS).
YANG_TRAINING: dict[str, Any] = {"loss": "ce", "optimizer": "sgd", "momentum": 0.9,
                                 "schedule": "multistep", "lr_decay": 0.1}

#: What the chapter assumes where the paper could not be read (NOTES.md section 3).
ASSUMPTIONS: tuple[str, ...] = (
    "Pairing: classes c and c + 5 form a super-class (NOTES.md's default); on CIFAR-10 a "
    "semantic pairing (airplane+ship, automobile+truck, cat+dog, deer+horse, bird+frog) is a "
    "robustness check on the gpu and paper profiles.",
    "Architecture: ResNet-18 (CIFAR stem) on CIFAR-10; on the cpu profile an MLP with 5 hidden "
    "layers of 256 units on digits and mnist5k.",
    "Loss and optimiser: cross-entropy, SGD with momentum 0.9, learning rate divided by 10 at "
    "1/3 and 2/3 of training, weight decay on every parameter.",
    "Layer: the penultimate features (the classifier's input; ResNet-18: after average pooling).",
    "Clustering: k-means (10 restarts, k-means++) on the training features of each coarse class "
    "separately, k = 2 (the fine classes in it), features as they are (no scaling, no PCA).",
    "Scoring: the optimal one-to-one matching of clusters to fine labels inside each coarse "
    "class (Hungarian algorithm), fitted on the training set; test points go to the nearest "
    "centroid inside their true coarse class (and, reported too, inside the coarse class the "
    "network predicts).",
    "Reference: the test accuracy of the same architecture, same settings, trained on the 10 "
    "fine labels (mean over its seeds).",
    "Synthetic setting (Y2): the paper's model is unconfirmed; here fine Gaussian clusters "
    "nest in coarse ones (ncutils.data gaussian, hierarchical), an MLP is trained on the "
    "coarse labels, and the fine clusters' separation in input space is the control.",
    "Shuffled-label baseline: the same network and settings trained on the first pairing's "
    "coarse labels permuted at random across the training samples (seeded by the data seed; "
    "the test labels stay true), for as many epochs as the coarse runs; permuted labels carry no "
    "pairing, so its penultimate features are clustered inside the true coarse classes of every "
    "pairing. It is a baseline reported with its margin, not a verdict condition.",
    "Across training: the series reads the weights each coarse run keeps at a few log-spaced "
    "epochs (with the initialisation and the last epoch), with the same clustering as the "
    "verdict; it is shown, not judged.",
)


# ----------------------------------------------------------------------------- configurations
def yang_config(
    dataset: str,
    *,
    pairing: str | None,
    arch: str,
    arch_kwargs: Mapping[str, Any] | None = None,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int = 128,
    schedule: str = YANG_TRAINING["schedule"],
    dataset_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    download: bool = False,
    shuffle_labels: bool = False,
    sweep_epochs: Sequence[int] = (),
) -> TrainConfig:
    """One run: trained on the coarse labels of ``pairing``, or on the fine ones (``None``).

    Parameters
    ----------
    dataset : str
        A 10-class dataset of :func:`ncutils.data.available_datasets` (or ``gaussian`` with
        ``num_classes=10``).
    pairing : str or None
        A key of :data:`PAIRINGS`; ``None`` trains on the fine labels (the reference).
    arch, arch_kwargs, epochs, lr, weight_decay, batch_size, seed, limit_train, limit_test,
    device, data_dir, download, dataset_kwargs, sweep_epochs
        As in :class:`~ncutils.train.TrainConfig` (``sweep_epochs``: the stored epochs the
        series across training reads).
    shuffle_labels : bool, default False
        Train on the coarse labels permuted across samples (seeded by ``data_seed``): the
        shuffled-label baseline network. Needs a ``pairing``.
    schedule : {"multistep", "constant", "onecycle"}
        ``"constant"`` makes a shorter run the prefix of a longer one (Y2's training time).

    Returns
    -------
    TrainConfig

    Raises
    ------
    KeyError
        Unknown pairing (or dataset, architecture: from TrainConfig).

    Example
    -------
    >>> config = yang_config("digits", pairing="mod5", arch="mlp", epochs=3, lr=0.05,
    ...                      weight_decay=5e-4)
    >>> dict(config.label_map)[7], config.loss, config.optimizer
    (2, 'ce', 'sgd')
    """
    if pairing is not None and pairing not in PAIRINGS:
        raise KeyError(f"unknown pairing {pairing!r}; pairings: {sorted(PAIRINGS)}")
    if shuffle_labels and pairing is None:
        raise ValueError("shuffle_labels needs a pairing: the baseline is trained on shuffled coarse labels")
    return TrainConfig(
        dataset=dataset, label_map=None if pairing is None else dict(PAIRINGS[pairing]),
        dataset_kwargs=dict(dataset_kwargs or {}), arch=arch, arch_kwargs=dict(arch_kwargs or {}),
        loss=YANG_TRAINING["loss"], optimizer=YANG_TRAINING["optimizer"], lr=lr,
        momentum=YANG_TRAINING["momentum"], weight_decay=weight_decay, schedule=schedule,
        lr_decay=YANG_TRAINING["lr_decay"], epochs=epochs, batch_size=batch_size, seed=seed,
        device=device, limit_train=limit_train, limit_test=limit_test, data_dir=data_dir,
        download=download, shuffle_labels=shuffle_labels, sweep_epochs=tuple(sweep_epochs),
    )


#: Parameters that take one value for every dataset or a mapping dataset -> value.
PER_DATASET_PARAMETERS: frozenset[str] = frozenset({"epochs"})

#: The ``pairing`` label of the fine-label references and of the shuffled-label baselines.
FINE, SHUFFLED = "fine", "shuffled"
assert not {FINE, SHUFFLED} & set(PAIRINGS)


def log_epochs(epochs: int, count: int) -> tuple[int, ...]:
    """``count`` stored epochs for a series across training: 0, then log-spaced up to ``epochs``.

    Epoch 0 (the initialisation) and the last epoch are always included; rounding may merge
    points of a short training.

    Parameters
    ----------
    epochs : int
        Length of the training (at least 1).
    count : int
        At least 2.

    Returns
    -------
    tuple of int

    Example
    -------
    >>> log_epochs(60, 6), log_epochs(30, 6), log_epochs(5, 6)
    ((0, 1, 3, 8, 22, 60), (0, 1, 2, 5, 13, 30), (0, 1, 2, 3, 5))
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
        raise ValueError(f"series_points must be an integer >= 2 (or 0: no series), got {count!r}")
    if count == 2:
        return (0, int(epochs))
    points = np.floor(np.geomspace(1, epochs, int(count) - 1) + 0.5).astype(int)
    return (0, *sorted({int(point) for point in points}))


def _require(parameters: Mapping[str, Any], keys: Sequence[str]) -> None:
    missing = [key for key in keys if key not in parameters]
    if missing:
        raise ValueError(f"parameters lack {missing}")


def _seeds(values: Any, name: str) -> list[int]:
    seeds = list(values or [])
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"{name} must list integers >= 0, got {values!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} repeat: {seeds}")
    return seeds


def _per_dataset(value: Any, dataset: str, name: str) -> Any:
    if isinstance(value, Mapping):
        if dataset not in value:
            raise KeyError(f"{name} has no entry for dataset {dataset!r}; it has {sorted(value)}")
        return value[dataset]
    return value


def y1_grid(parameters: Mapping[str, Any]) -> Grid:
    """Coarse-label runs and their fine-label references, every dataset x pairing x (lr, wd).

    Parameters
    ----------
    parameters : mapping
        ``datasets`` (list), ``pairings`` (keys of :data:`PAIRINGS`), ``architecture`` and
        ``arch_kwargs``, ``epochs`` (int or mapping dataset -> int), ``lrs`` and
        ``weight_decays`` (lists: every pair is run), ``batch_size``, ``seeds`` (coarse runs)
        and ``reference_seeds`` (fine runs); optionally ``shuffled_seeds`` (the shuffled-label
        baselines; default ``[]``: none), ``series_points`` (stored epochs of the
        coarse runs for the series across training, :func:`log_epochs`; default 0: none),
        ``limit_train``, ``limit_test``, ``device``, ``data_dir``, ``download``. Other keys
        are ignored.

    Returns
    -------
    Grid
        Labels ``dataset``, ``pairing`` (``"fine"`` for the references, ``"shuffled"`` for
        the baselines), ``lr``, ``weight_decay``; each entry carries its own seed (run it
        with ``run_grid(grid)``, no ``seeds=``). Per dataset x (lr, weight decay), one
        shuffled-label network per ``shuffled_seeds``: trained on the *first* pairing's
        coarse labels permuted across samples (:attr:`TrainConfig.shuffle_labels`); permuted
        labels carry no pairing, so its features serve as the baseline of every pairing.

    Raises
    ------
    ValueError, KeyError
        Missing or malformed parameters, unknown names (before any training).

    Example
    -------
    >>> grid = y1_grid({"datasets": ["digits"], "pairings": ["mod5"], "architecture": "mlp",
    ...                 "arch_kwargs": {"depth": 3}, "epochs": 2, "lrs": [0.05],
    ...                 "weight_decays": [5e-4], "batch_size": 64, "seeds": [0, 1],
    ...                 "reference_seeds": [0], "shuffled_seeds": [0], "series_points": 3})
    >>> [(e.labels["pairing"], e.config.seed) for e in grid.entries]
    [('mod5', 0), ('mod5', 1), ('fine', 0), ('shuffled', 0)]
    >>> [e.config.sweep_epochs for e in grid.entries]
    [(0, 1, 2), (0, 1, 2), (), ()]
    """
    _require(parameters, ("datasets", "pairings", "architecture", "epochs", "lrs",
                          "weight_decays", "seeds", "reference_seeds"))
    datasets, pairings = list(parameters["datasets"]), list(parameters["pairings"])
    if not datasets or not pairings:
        raise ValueError("parameters['datasets'] and parameters['pairings'] must not be empty")
    unknown = [p for p in pairings if p not in PAIRINGS]
    if unknown:
        raise KeyError(f"unknown pairings {unknown}; pairings: {sorted(PAIRINGS)}")
    seeds = _seeds(parameters["seeds"], "seeds")
    reference_seeds = _seeds(parameters["reference_seeds"], "reference_seeds")
    shuffled = parameters.get("shuffled_seeds", [])
    shuffled_seeds = (_seeds(shuffled, "shuffled_seeds")
                      if not isinstance(shuffled, (list, tuple)) or shuffled else [])
    series_points = parameters.get("series_points", 0)
    common = {key: parameters[key] for key in ("limit_train", "limit_test", "device", "data_dir",
                                                "download", "batch_size") if key in parameters}
    entries = []
    for dataset in datasets:
        epochs = _per_dataset(parameters["epochs"], dataset, "epochs")
        series = log_epochs(epochs, series_points) if series_points != 0 else ()
        for lr in parameters["lrs"]:
            for weight_decay in parameters["weight_decays"]:
                runs = ([(p, p, s, False) for p in pairings for s in seeds]
                        + [(FINE, None, s, False) for s in reference_seeds]
                        + [(SHUFFLED, pairings[0], s, True) for s in shuffled_seeds])
                for label, pairing, seed, shuffle in runs:
                    config = yang_config(dataset, pairing=pairing, arch=parameters["architecture"],
                                         arch_kwargs=parameters.get("arch_kwargs"), epochs=epochs,
                                         lr=lr, weight_decay=weight_decay, seed=seed,
                                         shuffle_labels=shuffle,
                                         sweep_epochs=series if label == pairing else (), **common)
                    entries.append(GridEntry({"dataset": dataset, "pairing": label,
                                              "lr": lr, "weight_decay": weight_decay}, config))
    return Grid(tuple(entries))


def y2_grid(parameters: Mapping[str, Any]) -> Grid:
    """The synthetic setting: one MLP per fine separation x training length x seed.

    The data are ``gaussian(hierarchical=True, num_classes=10, num_coarse=5)`` with the
    chapter's ``y2_data`` options and ``fine_separation`` varied; the networks train on the
    coarse labels with a constant learning rate, so the run of ``e`` epochs is the first ``e``
    epochs of the longest run (same seed, same batch order): the training-time axis.

    Parameters
    ----------
    parameters : mapping
        ``y2_separations`` (list of float), ``y2_epochs`` (list of int, training lengths),
        ``y2_seeds``, ``y2_data`` (gaussian options other than ``fine_separation``),
        ``y2_arch_kwargs`` (MLP options), ``y2_lr``, ``y2_weight_decay``, ``y2_batch_size``;
        optionally ``device``.

    Returns
    -------
    Grid
        Labels ``fine_separation``, ``epochs``; seeds set per entry.

    Example
    -------
    >>> grid = y2_grid({"y2_separations": [0.0, 4.0], "y2_epochs": [5, 20], "y2_seeds": [0],
    ...                 "y2_data": {"dim": 8}, "y2_arch_kwargs": {"depth": 3, "width": 16},
    ...                 "y2_lr": 0.05, "y2_weight_decay": 5e-4, "y2_batch_size": 32})
    >>> [(e.labels["fine_separation"], e.labels["epochs"]) for e in grid.entries][:2]
    [(0.0, 5), (0.0, 20)]
    """
    _require(parameters, ("y2_separations", "y2_epochs", "y2_seeds", "y2_data", "y2_arch_kwargs",
                          "y2_lr", "y2_weight_decay", "y2_batch_size"))
    data = dict(parameters["y2_data"])
    if "fine_separation" in data:
        raise ValueError("y2_data must not set fine_separation: y2_separations does")
    data.update(hierarchical=True, num_classes=10, num_coarse=5)
    separations = [float(s) for s in parameters["y2_separations"]]
    epochs_list = list(parameters["y2_epochs"])
    if not separations or not epochs_list:
        raise ValueError("y2_separations and y2_epochs must not be empty")
    entries = []
    for separation in separations:
        for epochs in epochs_list:
            for seed in _seeds(parameters["y2_seeds"], "y2_seeds"):
                config = yang_config(
                    "gaussian", pairing="mod5", arch="mlp", arch_kwargs=parameters["y2_arch_kwargs"],
                    epochs=epochs, lr=parameters["y2_lr"], weight_decay=parameters["y2_weight_decay"],
                    batch_size=parameters["y2_batch_size"], schedule="constant",
                    dataset_kwargs={**data, "fine_separation": separation}, seed=seed,
                    device=parameters.get("device", "auto"))
                entries.append(GridEntry({"fine_separation": separation, "epochs": epochs}, config))
    return Grid(tuple(entries))


def _not_lists(parameters: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    return [f"parameters[{key!r}] must be a list, got {parameters[key]!r}"
            for key in keys if key in parameters and not isinstance(parameters[key], (list, tuple))]


def validate_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with the chapter's parameters, before anything is trained or loaded.

    Runs the checks of :func:`y1_grid` and :func:`y2_grid` (which build every
    :class:`~ncutils.train.TrainConfig` without reading data: known datasets and
    pairings, an ``epochs`` entry for every dataset, ``lr > 0``, the seeds, ...), each
    problem with the message the notebook would raise, plus the clustering options.

    Examples
    --------
    >>> base = {"datasets": ["digits"], "pairings": ["mod5"], "architecture": "mlp",
    ...         "arch_kwargs": {"depth": 3}, "epochs": {"digits": 2}, "lrs": [0.05],
    ...         "weight_decays": [5e-4], "batch_size": 64, "seeds": [0], "reference_seeds": [0]}
    >>> validate_parameters(base)
    []
    >>> validate_parameters({**base, "datasets": ["digits", "mnist5k"]})
    ["Y1: epochs has no entry for dataset 'mnist5k'; it has ['digits']"]
    """
    from ncutils.papers._validation import error_text

    problems = _not_lists(parameters, ("datasets", "pairings", "lrs", "weight_decays", "shuffled_seeds"))
    if not problems:
        try:
            y1_grid(parameters)
        except (KeyError, ValueError, TypeError) as error:
            problems.append(f"Y1: {error_text(error)}")
    if any(key.startswith("y2_") for key in parameters):
        problems += _not_lists(parameters, ("y2_separations", "y2_epochs", "y2_separated", "y2_unseparated"))
        if not problems:
            try:
                y2_grid(parameters)
            except (KeyError, ValueError, TypeError) as error:
                problems.append(f"Y2: {error_text(error)}")
            separations = [float(s) for s in parameters.get("y2_separations", [])]
            for key in ("y2_separated", "y2_unseparated"):
                missing = [s for s in parameters.get(key, []) if float(s) not in separations]
                if missing:
                    problems.append(f"{key} {missing} are not in y2_separations {separations}")
    for key in ("kmeans_restarts", "permutations"):
        value = parameters.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{key} must be an integer >= 1, got {value!r}")
    return problems


# ----------------------------------------------------------------------------- measurement
def load_run_data(config: TrainConfig, device: str | torch.device = "cpu") -> tuple[Dataset, Dataset]:
    """The train and test splits a run was trained and evaluated on (coarse and fine labels).

    Example
    -------
    >>> train, test = load_run_data(yang_config("digits", pairing="mod5", arch="mlp", epochs=1,
    ...                                         lr=0.1, weight_decay=0.0))
    >>> train.num_classes, int(train.fine_labels.max()) + 1
    (5, 10)
    """
    label_map = config.label_map if not isinstance(config.label_map, tuple) else dict(config.label_map)
    options = dict(data_dir=config.data_dir, download=config.download, label_map=label_map,
                   seed=config.data_seed, device=device, **dict(config.dataset_kwargs))
    return (load_dataset(config.dataset, "train", limit=config.limit_train, **options),
            load_dataset(config.dataset, "test", limit=config.limit_test, **options))


def initial_model(config: TrainConfig, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """The untrained network of ``config``: the weights :func:`ncutils.train.train` starts from.

    ``train`` seeds torch with ``config.seed`` and then builds the model, so the same two
    steps rebuild its initialisation exactly; the global RNG state is left as it was.

    Example
    -------
    >>> config = yang_config("digits", pairing="mod5", arch="mlp", arch_kwargs={"depth": 3},
    ...                      epochs=1, lr=0.1, weight_decay=0.0, seed=3)
    >>> a, b = initial_model(config, (1, 8, 8), 5), initial_model(config, (1, 8, 8), 5)
    >>> bool(torch.equal(a.classifier.weight, b.classifier.weight))
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.arch, input_shape=tuple(input_shape), num_classes=num_classes,
                            **dict(config.arch_kwargs))
    return model.eval()


def penultimate_features(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """Features at the model's last probe point (the classifier's input), float64 numpy."""
    point = model.probe_points[-1].name
    return capture(model, inputs, [point], batch_size=batch_size, device="cpu")[point].double().numpy()


@torch.no_grad()
def _predictions(model: nn.Module, inputs: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    device = next(model.parameters()).device
    model.eval()
    parts = [model(inputs[i:i + batch_size].to(device)).argmax(dim=1).cpu()
             for i in range(0, inputs.shape[0], batch_size)]
    return torch.cat(parts).numpy()


#: The package modules whose code decides a cached recovery (:func:`measure_run`): the data,
#: the features (``probe``), the clustering and its scores (``cluster``), the statistics kept
#: for the metrics (``stats``) and this module. ``metrics`` is *not* among them: coarse NC1 and
#: the fine-structure statistic are read from the kept statistics after the cache, so an edit
#: to ``metrics.py`` recomputes them in milliseconds and runs no k-means.
RECOVERY_MODULES: tuple[str, ...] = ("cluster", "papers/yang", "probe", "stats", "data", "_checks")

_SOURCES = ("trained", "init", "input")


class _Features:
    """The data and features of one network, loaded only when a recovery is computed.

    ``network(epoch)`` gives the network at a stored epoch; ``"input"`` stands for the raw
    inputs. Only the latest features are kept (a ResNet's are 200 MB on CIFAR-10).
    """

    def __init__(self, config: TrainConfig, model: nn.Module, model_at: Any = None,
                 label_map: Mapping[int, int] | None = None):
        self.config = config if label_map is None else dataclasses.replace(
            config, label_map=dict(label_map), shuffle_labels=False)
        self.device = next(model.parameters()).device.type
        self._network = _network_of(model, config, model_at)
        self._data: tuple[Dataset, Dataset] | None = None
        self._last: tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None = None

    @property
    def data(self) -> tuple[Dataset, Dataset]:
        if self._data is None:
            self._data = load_run_data(self.config)
        return self._data

    def features(self, what: int | str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._last is None or self._last[0] != what:
            train, test = self.data
            if what == "input":
                found = (train.inputs.reshape(len(train), -1).double().numpy(),
                         test.inputs.reshape(len(test), -1).double().numpy(), None)
            else:
                network = self._network(what, train)
                found = (penultimate_features(network, train.inputs),
                         penultimate_features(network, test.inputs), _predictions(network, test.inputs))
            self._last = (what, found)
        return self._last[1]


def _network_of(model: nn.Module, config: TrainConfig, model_at: Any = None) -> Any:
    """``epoch -> network``: the last epoch is ``model``, 0 the initialisation, others stored."""
    def network(epoch: int, train: Dataset) -> nn.Module:
        if epoch == config.epochs:
            return model
        if epoch == 0:
            device = next(model.parameters()).device
            return initial_model(config, train.input_shape, train.num_classes).to(device)
        if model_at is None:
            raise ValueError(f"epoch {epoch} needs a stored run (measure_run), not a bare model")
        return model_at(epoch)
    return network


def _recovery_unit(features: _Features, what: int | str, labels: str, *, predicted: bool,
                   n_init: int, seed: int, permutations: int, quantile: float) -> dict[str, Any]:
    """One feature set x one label set: k-means scores, chance level, and the statistics kept.

    What is cached: no ``metrics`` function runs here (see :data:`RECOVERY_MODULES`).
    """
    train, test = features.data
    train_x, test_x, predicted_coarse = features.features(what)
    coarse, test_coarse = train.labels.cpu().numpy(), test.labels.cpu().numpy()
    fine, test_fine = train.fine_labels.cpu().numpy(), test.fine_labels.cpu().numpy()
    if labels == "random":  # the null: fine labels drawn at random inside each coarse class
        fine = random_fine_labels(coarse, fine, seed=seed + 1)
        test_fine = random_fine_labels(test_coarse, test_fine, seed=seed + 2)
    found = fine_structure(train_x, coarse, fine, test_features=test_x, test_coarse_labels=test_coarse,
                           test_fine_labels=test_fine,
                           test_predicted_coarse=predicted_coarse if predicted else None,
                           n_init=n_init, seed=seed)
    chance = chance_level(found, fine, test_fine, permutations=permutations, quantile=quantile, seed=seed)
    x, y = torch.from_numpy(train_x), torch.from_numpy(coarse)
    coarse_stats = ClassStats.from_features(x, y)
    scatter = ProjectedScatter(coarse_stats).update(x, y)
    return {"scores": {**found.summary(), "chance_train": chance.train_mean,
                       "chance_train_upper": chance.train_upper, "chance_test": chance.test_mean,
                       "chance_test_upper": chance.test_upper},
            "dim": int(train_x.shape[1]), "coarse_stats": coarse_stats.state(),
            "coarse_scatter": scatter.state(),
            "fine_stats": {c: stats.state() for c, stats in fine_class_stats(train_x, coarse, fine).items()}}


def _unit_row(unit: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics of a recovery, read from its kept statistics (outside the cache)."""
    coarse = ClassStats.from_state(unit["coarse_stats"])
    nc1 = metrics.nc1_from_stats(coarse, ProjectedScatter.from_state(coarse, unit["coarse_scatter"]))
    ratio = fine_structure_statistic_from_stats(
        {c: ClassStats.from_state(state) for c, state in unit["fine_stats"].items()})["ratio"].to_numpy()
    finite = ratio[~np.isnan(ratio)]
    return {**unit["scores"], "fine_statistic": float(finite.mean()) if finite.size else float("nan"),
            "coarse_nc1": float(nc1), "dim": unit["dim"]}


def _options(n_init: int = 10, seed: int = 0, permutations: int = 200,
             quantile: float = 0.99) -> dict[str, Any]:
    return {"n_init": int(n_init), "seed": int(seed), "permutations": int(permutations),
            "quantile": float(quantile)}


#: The config fields that decide a run's data (with the checksums of its files).
_DATA_FIELDS = ("dataset", "dataset_kwargs", "limit_train", "limit_test", "data_seed")


def _features_identity(run_key: str, config: TrainConfig, what: int | str, device: str) -> dict[str, Any]:
    """What decides a feature set: a trained epoch is the run's; the input and the
    initialisation are shared by every run on the same data (and seed and architecture)."""
    if what != "input" and what != 0:
        return {"epoch": int(what), "run": run_key}
    data = {name: getattr(config, name) for name in _DATA_FIELDS}
    data["files"] = data_fingerprint(config)
    if what == "input":
        return {"input": data}
    return {"init": data, "arch": config.arch, "arch_kwargs": config.arch_kwargs, "seed": config.seed,
            "device": device}


def recovery_payload(run_key: str, config: TrainConfig, what: int | str, labels: str, *,
                     label_map: Mapping[int, int] | None = None, predicted: bool = True,
                     device: str = "cpu", **options: Any) -> dict[str, Any]:
    """What the store's key of one cached recovery hashes (:func:`ncutils.runs.computed_payload`).

    The features: at a trained epoch, the run's trained key (its weights, data and training
    code) and the epoch; the raw input (``what="input"``) and the initialisation (``what=0``,
    rebuilt by :func:`initial_model`) are keyed by what decides them (the data fields and
    files; plus architecture, seed and ``device`` type for the initialisation), so runs
    that share them (seeds of one dataset, Y2's training lengths) share one k-means. Then
    the label set (``"fine"`` or the null's ``"random"``), the coarse label map the
    clustering uses, the options, the versions of scikit-learn and scipy, and the code of
    :data:`RECOVERY_MODULES`.

    Example
    -------
    >>> config = yang_config("digits", pairing="mod5", arch="mlp", epochs=3, lr=0.05,
    ...                      weight_decay=5e-4)
    >>> payload = recovery_payload("0123456789abcdef", config, 3, "fine", n_init=10)
    >>> sorted(payload["source"]), "metrics" in payload["source"]
    (['_checks', 'cluster', 'data', 'papers/yang', 'probe', 'stats'], False)
    >>> other = dataclasses.replace(config, seed=1)
    >>> [recovery_payload("a", config, what, "fine") == recovery_payload("b", other, what, "fine")
    ...  for what in ("input", 0, 3)]
    [True, False, False]
    """
    label_map = dict(config.label_map) if label_map is None else dict(label_map)
    # nested: the initialisation's seed must not meet the k-means option of the same name
    settings = {"features": _features_identity(run_key, config, what, device), "labels": labels,
                "predicted": bool(predicted),
                "label_map": sorted((int(k), int(v)) for k, v in label_map.items()),
                "method": "kmeans", **_options(**options),
                "packages": {name: package_version(name) for name in ("scikit-learn", "scipy")}}
    return computed_payload("yang-recovery", settings, modules=RECOVERY_MODULES,
                                 architectures=(config.arch,), datasets=(config.dataset,))


def _rows(features: _Features, config: TrainConfig, sources: Sequence[str], null: bool, *,
          run_key: str | None, label_map: Mapping[int, int] | None, predicted: bool,
          runs_dir: Any, force: bool, options: Mapping[str, Any]) -> pd.DataFrame:
    unknown = sorted(set(sources) - set(_SOURCES))
    if unknown or not sources:
        raise ValueError(f"sources must be among 'trained', 'init', 'input', got {list(sources)}")
    wanted = []
    for source in sources:
        what = {"trained": config.epochs, "init": 0, "input": "input"}[source]
        wanted.append((source, what, "fine"))
        if null and source == "trained":
            wanted.append((source, what, "random"))
    rows = []
    for source, what, labels in wanted:
        row, loaded = _recovered(features, config, what, labels, run_key=run_key, label_map=label_map,
                                 predicted=predicted and source != "input", runs_dir=runs_dir,
                                 force=force, options=options)
        rows.append({"source": source, "labels": labels, **row, "from_cache": loaded})
    return pd.DataFrame(rows)


def _recovered(features: _Features, config: TrainConfig, what: int | str, labels: str, *,
               run_key: str | None, label_map: Mapping[int, int] | None, predicted: bool,
               runs_dir: Any, force: bool, options: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    def compute() -> dict[str, Any]:
        return _recovery_unit(features, what, labels, predicted=predicted, **options)

    if run_key is None:
        return _unit_row(compute()), False
    payload = recovery_payload(run_key, config, what, labels, label_map=label_map, predicted=predicted,
                               device=features.device, **options)
    unit, loaded = computed(payload, compute, runs_dir=runs_dir, force=force)
    return _unit_row(unit), loaded


def measure(model: nn.Module, config: TrainConfig, *, sources: Sequence[str] = _SOURCES,
            null: bool = True, n_init: int = 10, seed: int = 0, permutations: int = 200,
            quantile: float = 0.99) -> pd.DataFrame:
    """Fine-label recovery from one coarse-trained network, its initialisation and its input.

    For each feature source (``"trained"``: the penultimate features of ``model``; ``"init"``:
    those of :func:`initial_model`; ``"input"``: the raw, normalised inputs) the fine labels
    are recovered with :func:`ncutils.cluster.fine_structure` (k-means per coarse class) and
    scored with their permutation chance level; with ``null=True`` the same is done once more
    on the trained features with fine labels drawn at random inside each coarse class
    (:func:`ncutils.cluster.random_fine_labels`, train and test): the null of DESIGN.md 8.2.
    Nothing is cached here (a bare model has no store key): :func:`measure_run` is the same
    for a stored run, through the results store.

    Parameters
    ----------
    model : nn.Module
        The trained network (a model of :mod:`ncutils.models`), trained on coarse labels.
    config : TrainConfig
        Its config (with a ``label_map``).
    sources : sequence of {"trained", "init", "input"}
    null : bool, default True
    n_init, seed : int
        Restarts and ``random_state`` of k-means.
    permutations : int, default 200
    quantile : float, default 0.99
        Of the permutation distribution: the tolerance a null is judged against.

    Returns
    -------
    DataFrame
        One row per (``source``, ``labels`` in {"fine", "random"}): the scores of
        :meth:`ncutils.cluster.FineStructure.summary`, ``chance_train``/``_upper``,
        ``chance_test``/``_upper``, ``fine_statistic`` (mean over coarse classes of
        ``tr Sigma_B / tr Sigma_W`` of the fine classes), ``coarse_nc1`` (NC1 on the coarse
        labels, training set), ``dim`` and ``from_cache`` (always False here).

    Raises
    ------
    ValueError
        A config without coarse labels, an unknown source.
    """
    if config.label_map is None:
        raise ValueError("measure needs a run trained on coarse labels (config.label_map is None)")
    features = _Features(config, model)
    return _rows(features, config, sources, null, run_key=None, label_map=None, predicted=True,
                 runs_dir=None, force=False,
                 options=_options(n_init=n_init, seed=seed, permutations=permutations, quantile=quantile))


def _store_root(run: Any, runs_dir: Any) -> Any:
    return runs_dir if runs_dir is not None else Path(run.run_dir).parent.parent


def measure_run(run: Any, *, sources: Sequence[str] = _SOURCES, null: bool = True,
                label_map: Mapping[int, int] | None = None, predicted: bool = True,
                runs_dir: Any = None, force: bool = False, **options: Any) -> pd.DataFrame:
    """:func:`measure` of a stored run, each recovery cached in the results store.

    Each (feature set, label set) is one ``computed`` entry of :mod:`ncutils.runs`, keyed by
    :func:`recovery_payload`: the run's trained key, the epoch (0 for ``"init"``, the last
    for ``"trained"``) or ``"input"``, the labels, the coarse label map and the options. It
    keeps the k-means scores and the class statistics; coarse NC1 and the fine-structure
    statistic are computed from those after loading, so an edit to ``metrics.py`` recomputes
    no clustering.

    Parameters
    ----------
    run : ncutils.train.RunResult
        A run trained on coarse labels (shuffled or not).
    sources, null, **options
        As in :func:`measure` (``n_init``, ``seed``, ``permutations``, ``quantile``).
    label_map : mapping, optional
        Cluster inside the coarse classes of this map instead of the run's (a shuffled-label
        network read against each pairing); the data's coarse labels are always the true ones.
    predicted : bool, default True
        Also score test points inside the coarse class the network predicts (meaningless
        for a network trained on shuffled labels: pass False).
    runs_dir : path, optional
        The store; default: the one the run is in.
    force : bool
        Recompute and overwrite the cached recoveries.

    Returns
    -------
    DataFrame
        :func:`measure`'s rows; ``from_cache`` says which were loaded.
    """
    config = run.config
    if config.label_map is None and label_map is None:
        raise ValueError("measure_run needs a run trained on coarse labels (config.label_map is None)")
    features = _Features(config, run.model, run.model_at, label_map)
    return _rows(features, config, sources, null, run_key=run.key, label_map=label_map,
                 predicted=predicted, runs_dir=_store_root(run, runs_dir), force=force,
                 options=_options(**options))


# ----------------------------------------------------------------------------- criteria
def _pick(recovery: pd.DataFrame, keys: list[str], source: str, labels: str,
          columns: Mapping[str, str]) -> pd.DataFrame:
    part = recovery[(recovery["source"] == source) & (recovery["labels"] == labels)]
    return part[keys + list(columns)].rename(columns=dict(columns))


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def y1_table(recovery: pd.DataFrame, runs: pd.DataFrame, *, min_train_acc: float,
             max_nc1_ratio: float, min_fraction: float,
             group_cols: Sequence[str] = ("dataset", "lr", "weight_decay")) -> pd.DataFrame:
    """Y1 per coarse-trained run: did collapse happen, and are the fine labels recovered?

    A run is *eligible* when its coarse train accuracy is at least ``min_train_acc``. It
    *passes* when both halves hold (DESIGN.md 8.6): **collapse** — coarse NC1 of the
    penultimate features at the last epoch is at most ``max_nc1_ratio`` times its value at
    initialisation — and **recovery** — the fine test accuracy recovered by clustering (test
    points inside their true coarse class) is at least ``min_fraction`` times the reference:
    the mean test accuracy of the fine-trained runs of the same group (``group_cols``) that
    reach ``min_train_acc``. The baselines (raw input, initialisation, and the network of the
    same group trained on shuffled coarse labels: ``source="shuffled"`` rows, mean over its
    seeds) and the null (random fine labels) are reported with their margins; they are no
    condition (DESIGN.md 8.6).

    Parameters
    ----------
    recovery : DataFrame
        Rows of :func:`measure` with the run's ``group_cols``, ``pairing`` and ``seed``.
    runs : DataFrame
        One row per trained run (:attr:`ncutils.grid.GridResult.runs`): ``group_cols``,
        ``pairing`` (``"fine"`` for references, ``"shuffled"`` for the shuffled-label
        baselines), ``seed``, ``train_acc``, ``test_acc``.
    min_train_acc, max_nc1_ratio, min_fraction : float
        The pre-registered thresholds.
    group_cols : sequence of str

    Returns
    -------
    DataFrame
        One row per coarse run: keys, ``train_acc``, ``eligible``, ``nc1_init``,
        ``nc1_final``, ``nc1_ratio``, ``collapsed``, ``recovered_test``,
        ``recovered_test_predicted``, ``recovered_train``, ``reference``, ``fraction``,
        ``recovered``, ``passed``, ``input_test``, ``init_test``, ``shuffled_test`` (NaN
        without a shuffled-label network), ``shuffled_train_acc`` (its train accuracy on the
        shuffled labels), ``input_margin``, ``init_margin``, ``shuffled_margin`` (recovered
        minus each baseline), ``best_baseline`` (the largest of the three), ``baseline_margin``,
        ``null_test``, ``null_upper``, ``null_at_chance``.

    Example
    -------
    >>> rec = pd.DataFrame({"dataset": "d", "pairing": "mod5", "seed": 0,
    ...     "source": ["trained", "init", "input", "trained"],
    ...     "labels": ["fine", "fine", "fine", "random"], "test_accuracy": [0.9, 0.8, 0.85, 0.52],
    ...     "train_accuracy": [0.9, 0.8, 0.85, 0.53], "test_accuracy_predicted": 0.88,
    ...     "coarse_nc1": [0.05, 1.0, 1.2, 0.05], "chance_test_upper": 0.56})
    >>> runs = pd.DataFrame({"dataset": "d", "pairing": ["mod5", "fine"], "seed": 0,
    ...                      "train_acc": 1.0, "test_acc": [0.97, 0.95]})
    >>> row = y1_table(rec, runs, min_train_acc=0.99, max_nc1_ratio=0.1, min_fraction=0.9,
    ...                group_cols=["dataset"]).iloc[0]
    >>> bool(row.passed), round(float(row.fraction), 3), round(float(row.baseline_margin), 2)
    (True, 0.947, 0.05)
    """
    group_cols = list(group_cols)
    keys = group_cols + ["pairing", "seed"]
    _check_columns(recovery, keys + ["source", "labels", "test_accuracy", "coarse_nc1",
                                     "train_accuracy", "test_accuracy_predicted",
                                     "chance_test_upper"], "recovery")
    _check_columns(runs, keys + ["train_acc", "test_acc"], "runs")
    coarse_runs = runs[~runs["pairing"].isin([FINE, SHUFFLED])][keys + ["train_acc"]]
    table = coarse_runs.merge(
        _pick(recovery, keys, "trained", "fine", {"coarse_nc1": "nc1_final",
                                                  "test_accuracy": "recovered_test",
                                                  "test_accuracy_predicted": "recovered_test_predicted",
                                                  "train_accuracy": "recovered_train"}), on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "init", "fine", {"coarse_nc1": "nc1_init",
                                                               "test_accuracy": "init_test"}),
                        on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "input", "fine", {"test_accuracy": "input_test"}),
                        on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "trained", "random", {"test_accuracy": "null_test",
                                                                    "chance_test_upper": "null_upper"}),
                        on=keys, how="left")
    shuffled = recovery[(recovery["source"] == SHUFFLED) & (recovery["labels"] == "fine")]
    table = table.merge(shuffled.groupby(group_cols + ["pairing"], as_index=False)["test_accuracy"].mean()
                        .rename(columns={"test_accuracy": "shuffled_test"}), on=group_cols + ["pairing"],
                        how="left")
    shuffled_runs = runs[runs["pairing"] == SHUFFLED].groupby(group_cols, as_index=False)["train_acc"].mean()
    table = table.merge(shuffled_runs.rename(columns={"train_acc": "shuffled_train_acc"}), on=group_cols,
                        how="left")
    references = runs[(runs["pairing"] == FINE) & (runs["train_acc"] >= min_train_acc)]
    reference = references.groupby(group_cols, as_index=False)["test_acc"].mean().rename(
        columns={"test_acc": "reference"})
    table = table.merge(reference, on=group_cols, how="left")
    table["eligible"] = table["train_acc"] >= min_train_acc
    table["nc1_ratio"] = table["nc1_final"] / table["nc1_init"]
    table["collapsed"] = table["nc1_ratio"] <= max_nc1_ratio
    table["fraction"] = table["recovered_test"] / table["reference"]
    table["recovered"] = table["fraction"] >= min_fraction
    table["passed"] = table["collapsed"] & table["recovered"]
    for baseline in ("input", "init", "shuffled"):
        table[f"{baseline}_margin"] = table["recovered_test"] - table[f"{baseline}_test"]
    table["best_baseline"] = table[["input_test", "init_test", "shuffled_test"]].max(axis=1)
    table["baseline_margin"] = table["recovered_test"] - table["best_baseline"]
    table["null_at_chance"] = table["null_test"] <= table["null_upper"]
    order = keys + ["train_acc", "eligible", "nc1_init", "nc1_final", "nc1_ratio", "collapsed",
                    "recovered_test", "recovered_test_predicted", "recovered_train", "reference",
                    "fraction", "recovered", "passed", "input_test", "init_test", "shuffled_test",
                    "shuffled_train_acc", "input_margin", "init_margin", "shuffled_margin",
                    "best_baseline", "baseline_margin", "null_test", "null_upper", "null_at_chance"]
    return table[order]


def y1_outcome(table: pd.DataFrame) -> verdicts.Outcome:
    """Combine :func:`y1_table`'s eligible runs (DESIGN.md 8.3); inconclusive without a reference.

    Example
    -------
    >>> t = pd.DataFrame({"eligible": [True, True, False], "passed": [True, True, False],
    ...                   "reference": [0.9, 0.9, 0.9]})
    >>> y1_outcome(t).state
    'reproduced'
    """
    _check_columns(table, ["eligible", "passed", "reference"], "table")
    eligible = table[table["eligible"]]
    if not eligible.empty and eligible["reference"].isna().all():
        return verdicts.inconclusive("no fine-label reference network reached the train accuracy "
                                     "required", passed_runs=0, eligible_runs=len(eligible))
    eligible = eligible[eligible["reference"].notna()]
    return verdicts.combine_runs([bool(flag) for flag in eligible["passed"]])


def y2_table(recovery: pd.DataFrame, runs: pd.DataFrame, *, separated: Sequence[float],
             unseparated: Sequence[float], min_train_acc: float, max_nc1_ratio: float,
             min_keep: float, min_accuracy: float) -> pd.DataFrame:
    """Y2 per (fine separation, seed) at the longest training: the checks of DESIGN.md 8.6.

    Where the fine clusters are ``separated`` in input space: coarse NC1 falls at least
    ``1 / max_nc1_ratio`` times from initialisation, the fine-structure statistic keeps at
    least ``min_keep`` of its value at initialisation, and the recovered fine test accuracy is
    at least ``min_accuracy``. Where they are ``unseparated``: the recovered accuracy stays at
    chance (at most the upper permutation quantile). Other separations are ``shown`` only (the
    transition). A row is eligible when its coarse train accuracy is at least
    ``min_train_acc``.

    Parameters
    ----------
    recovery : DataFrame
        Rows of :func:`measure` with ``fine_separation``, ``epochs`` and ``seed``.
    runs : DataFrame
        ``fine_separation``, ``epochs``, ``seed``, ``train_acc``.
    separated, unseparated : sequence of float
        Values of ``fine_separation`` (disjoint).
    min_train_acc, max_nc1_ratio, min_keep, min_accuracy : float

    Returns
    -------
    DataFrame
        One row per (``fine_separation``, ``seed``): ``role``, ``epochs``, ``train_acc``,
        ``eligible``, ``nc1_init``, ``nc1_final``, ``nc1_ratio``, ``statistic_init``,
        ``statistic_final``, ``statistic_kept``, ``recovered_test``, ``chance_upper``,
        ``input_test``, ``passed`` (NaN-free bool; ``True`` for shown rows).

    Example
    -------
    >>> rec = pd.DataFrame({"fine_separation": [4.0, 4.0, 0.0, 0.0], "epochs": 50, "seed": 0,
    ...     "source": ["trained", "init"] * 2, "labels": "fine", "coarse_nc1": [0.05, 1.0, 0.05, 1.0],
    ...     "fine_statistic": [2.0, 3.0, 0.01, 0.01], "test_accuracy": [0.97, 0.9, 0.51, 0.5],
    ...     "chance_test_upper": [0.56, 0.56, 0.56, 0.56]})
    >>> runs = pd.DataFrame({"fine_separation": [4.0, 0.0], "epochs": 50, "seed": 0, "train_acc": 1.0})
    >>> y2_table(rec, runs, separated=[4.0], unseparated=[0.0], min_train_acc=0.99,
    ...          max_nc1_ratio=0.1, min_keep=0.5, min_accuracy=0.9)["passed"].tolist()
    [True, True]
    """
    separated, unseparated = [float(s) for s in separated], [float(s) for s in unseparated]
    if set(separated) & set(unseparated):
        raise ValueError(f"separated and unseparated overlap: {sorted(set(separated) & set(unseparated))}")
    if not separated or not unseparated:
        raise ValueError("Y2 needs at least one separated and one unseparated setting")
    keys = ["fine_separation", "epochs", "seed"]
    _check_columns(recovery, keys + ["source", "labels", "coarse_nc1", "fine_statistic",
                                     "test_accuracy", "chance_test_upper"], "recovery")
    _check_columns(runs, keys + ["train_acc"], "runs")
    longest = runs.groupby(["fine_separation", "seed"], as_index=False)["epochs"].max()
    table = longest.merge(runs[keys + ["train_acc"]], on=keys)
    table = table.merge(_pick(recovery, keys, "trained", "fine", {
        "coarse_nc1": "nc1_final", "fine_statistic": "statistic_final",
        "test_accuracy": "recovered_test", "chance_test_upper": "chance_upper"}), on=keys, how="left")
    table = table.merge(_pick(recovery, keys, "init", "fine", {
        "coarse_nc1": "nc1_init", "fine_statistic": "statistic_init"}), on=keys, how="left")
    if (recovery["source"] == "input").any():
        table = table.merge(_pick(recovery, keys, "input", "fine", {"test_accuracy": "input_test"}),
                            on=keys, how="left")
    else:
        table["input_test"] = np.nan
    table["role"] = np.where(table["fine_separation"].isin(separated), "separated",
                             np.where(table["fine_separation"].isin(unseparated), "unseparated", "shown"))
    table["eligible"] = table["train_acc"] >= min_train_acc
    table["nc1_ratio"] = table["nc1_final"] / table["nc1_init"]
    table["statistic_kept"] = table["statistic_final"] / table["statistic_init"]
    sep_ok = ((table["nc1_ratio"] <= max_nc1_ratio) & (table["statistic_kept"] >= min_keep)
              & (table["recovered_test"] >= min_accuracy))
    chance_ok = table["recovered_test"] <= table["chance_upper"]
    table["passed"] = np.where(table["role"] == "separated", sep_ok,
                               np.where(table["role"] == "unseparated", chance_ok, True)).astype(bool)
    order = ["fine_separation", "seed", "role", "epochs", "train_acc", "eligible", "nc1_init",
             "nc1_final", "nc1_ratio", "statistic_init", "statistic_final", "statistic_kept",
             "recovered_test", "chance_upper", "input_test", "passed"]
    return table[order].sort_values(["fine_separation", "seed"]).reset_index(drop=True)


def y2_outcome(table: pd.DataFrame) -> verdicts.Outcome:
    """One run of Y2 is one seed: it passes when every judged setting passes (DESIGN.md 8.3).

    A seed is eligible when every judged (separated or unseparated) setting is eligible.

    Example
    -------
    >>> t = pd.DataFrame({"seed": [0, 0, 1, 1], "role": ["separated", "unseparated"] * 2,
    ...                   "eligible": True, "passed": [True, True, False, True]})
    >>> y2_outcome(t).reason
    'mixed: 1 of 2'
    """
    _check_columns(table, ["seed", "role", "eligible", "passed"], "table")
    judged = table[table["role"] != "shown"]
    per_seed = judged.groupby("seed").agg(eligible=("eligible", "all"), passed=("passed", "all"))
    return verdicts.combine_runs([bool(flag) for flag in per_seed.loc[per_seed["eligible"], "passed"]])


def _coarse_maps(result: Any) -> dict[Any, dict[str, dict[int, int]]]:
    """Dataset -> {pairing label: label map} of the result's coarse (unshuffled) runs."""
    names = list(result.label_names)
    maps: dict[Any, dict[str, dict[int, int]]] = {}
    if "pairing" not in names:
        return maps
    for key, run in result.results.items():
        labels = dict(zip(names, key))
        if run.config.label_map is not None and not run.config.shuffle_labels:
            maps.setdefault(labels.get("dataset"), {})[labels["pairing"]] = dict(run.config.label_map)
    return maps


def measure_runs(result: Any, *, null: bool = True, runs_dir: Any = None, force: bool = False,
                 **options: Any) -> pd.DataFrame:
    """:func:`measure_run` on every coarse-trained run of a :class:`ncutils.grid.GridResult`.

    Runs trained on the fine labels (no ``label_map``) are skipped: they are the references.
    A run trained on shuffled coarse labels gives ``source="shuffled"`` rows (its trained
    features, true fine labels, no null): one per pairing of the result's coarse runs of its
    dataset, clustered inside that pairing's true coarse classes, with ``pairing`` set to it.
    Every recovery is cached in the results store (:func:`measure_run`).

    Parameters
    ----------
    result : GridResult
    null : bool, default True
        Also the null on the trained features (Y1 judges it; Y2's table does not read it).
    runs_dir, force
        As in :func:`measure_run`.
    **options
        ``n_init``, ``seed``, ``permutations``, ``quantile`` (as in :func:`measure`).

    Returns
    -------
    DataFrame
        :func:`measure`'s rows with the grid's label columns and ``seed`` in front.
    """
    maps = _coarse_maps(result)
    tables = []
    for key, run in result.results.items():
        if run.config.label_map is None:
            continue
        labels = dict(zip(result.label_names, key))
        if not run.config.shuffle_labels:
            parts = [(labels, measure_run(run, null=null, runs_dir=runs_dir, force=force, **options))]
        else:
            targets = maps.get(labels.get("dataset")) or {labels.get("pairing"): dict(run.config.label_map)}
            parts = []
            for pairing, label_map in targets.items():
                table = measure_run(run, sources=("trained",), null=False, label_map=label_map,
                                    predicted=False, runs_dir=runs_dir, force=force, **options)
                table["source"] = SHUFFLED
                parts.append(({**labels, "pairing": pairing} if "pairing" in labels else labels, table))
        for values, table in parts:
            for position, name in enumerate(result.label_names):
                table.insert(position, name, values[name])
            tables.append(table)
    if not tables:
        raise ValueError("the grid result holds no run trained on coarse labels")
    return pd.concat(tables, ignore_index=True)


def y1_epoch_series(result: Any, *, runs_dir: Any = None, force: bool = False,
                    **options: Any) -> pd.DataFrame:
    """Across training: coarse NC1, the fine-structure statistic and the recovered fine accuracy.

    For every coarse-trained (unshuffled) run of ``result`` and every epoch of its
    ``sweep_epochs`` (stored weights, :meth:`ncutils.train.RunResult.model_at`): coarse NC1 of
    the penultimate features on the training set, read from the run's layer sweep
    (:attr:`~ncutils.train.RunResult.sweeps`, its last probe point); the fine-structure
    statistic and the fine labels recovered by k-means inside each true coarse class, from
    the same features (:func:`measure_run`'s cached recoveries: epoch 0 and the last epoch are
    the ``"init"`` and ``"trained"`` entries of :func:`measure_runs`, shared).

    Parameters
    ----------
    result : GridResult
        Of :func:`y1_grid` with ``series_points``.
    runs_dir, force, **options
        As in :func:`measure_runs`.

    Returns
    -------
    DataFrame
        One row per (run, epoch): the grid's labels, ``seed``, ``epoch``, ``train_acc``
        (coarse, NaN at epoch 0), ``coarse_nc1``, ``nc1_ratio`` (over epoch 0),
        ``fine_statistic``, ``statistic_kept`` (over epoch 0), ``recovered_test``,
        ``recovered_test_predicted``, ``recovered_train``, ``chance_test_upper``,
        ``from_cache``. Empty (with these columns) when no run stored a series.
    """
    columns = ["epoch", "train_acc", "coarse_nc1", "nc1_ratio", "fine_statistic", "statistic_kept",
               "recovered_test", "recovered_test_predicted", "recovered_train", "chance_test_upper",
               "from_cache"]
    rows = []
    for key, run in result.results.items():
        config = run.config
        if config.label_map is None or config.shuffle_labels or not config.sweep_epochs:
            continue
        labels = dict(zip(result.label_names, key))
        point = run.model.probe_points[-1].name
        sweeps = run.sweeps[run.sweeps["name"] == point].set_index("epoch")["nc1"]
        history = run.history.set_index("epoch")["train_acc"]
        features = _Features(config, run.model, run.model_at)
        for epoch in sorted(config.sweep_epochs):
            row, loaded = _recovered(features, config, int(epoch), "fine", run_key=run.key, label_map=None,
                                     predicted=True, runs_dir=_store_root(run, runs_dir), force=force,
                                     options=_options(**options))
            rows.append({**labels, "epoch": int(epoch),
                         "train_acc": float(history.get(epoch, np.nan)),
                         "coarse_nc1": float(sweeps.get(epoch, np.nan)),
                         "fine_statistic": row["fine_statistic"], "recovered_test": row["test_accuracy"],
                         "recovered_test_predicted": row["test_accuracy_predicted"],
                         "recovered_train": row["train_accuracy"],
                         "chance_test_upper": row["chance_test_upper"], "from_cache": loaded})
    names = list(result.label_names)
    if not rows:
        return pd.DataFrame(columns=names + columns)
    table = pd.DataFrame(rows)
    first = table[table["epoch"] == 0].set_index(names)[["coarse_nc1", "fine_statistic"]]
    start = table.join(first, on=names, rsuffix="_start")
    table["nc1_ratio"] = start["coarse_nc1"] / start["coarse_nc1_start"]
    table["statistic_kept"] = start["fine_statistic"] / start["fine_statistic_start"]
    return table[names + columns]


def epoch_series_facts(series: pd.DataFrame, *, prefix: str = "Y1_series") -> dict[str, Any]:
    """The numbers the chapter's sentence on :func:`y1_epoch_series` quotes (its glue keys).

    Per run, first (epoch 0) and last epoch; then over runs: the fall of coarse NC1
    (``nc1_fall_min``/``_max``: epoch-0 value over last-epoch value), the mean recovered fine
    test accuracy and fine-structure statistic at the first and last epoch, the largest drop
    of a run's recovered accuracy from its best epoch to its last (``peak_drop_max``), the
    lowest recovered accuracy after the initialisation (``recovered_min_trained``), the
    number of runs and the epochs (text).

    Example
    -------
    >>> series = pd.DataFrame({"dataset": "d", "seed": 0, "epoch": [0, 5, 10],
    ...     "coarse_nc1": [1.0, 0.2, 0.05], "recovered_test": [0.5, 1.0, 0.75],
    ...     "fine_statistic": [3.0, 2.0, 1.5]})
    >>> facts = epoch_series_facts(series, prefix="s")
    >>> facts["s_nc1_fall_min"], facts["s_peak_drop_max"], facts["s_epochs"]
    (20.0, 0.25, '0, 5, 10 (d)')
    """
    _check_columns(series, ["epoch", "coarse_nc1", "recovered_test", "fine_statistic", "seed"], "series")
    if series.empty:
        return {f"{prefix}_runs": 0}
    keys = [c for c in series.columns if c in ("dataset", "pairing", "lr", "weight_decay", "seed")]
    ordered = series.sort_values("epoch")
    grouped = ordered.groupby(keys, sort=True)
    first, last = grouped.first(), grouped.last()
    peak = grouped["recovered_test"].max()
    trained = ordered[ordered["epoch"] > 0]
    epochs = (ordered.groupby("dataset")["epoch"].unique() if "dataset" in ordered.columns
              else pd.Series({"all": ordered["epoch"].unique()}))
    fall = first["coarse_nc1"] / last["coarse_nc1"]
    return {
        f"{prefix}_runs": int(len(first)),
        f"{prefix}_epochs": "; ".join(f"{', '.join(str(int(e)) for e in sorted(values))} ({name})"
                                      for name, values in epochs.items()),
        f"{prefix}_nc1_fall_min": float(fall.min()),
        f"{prefix}_nc1_fall_max": float(fall.max()),
        f"{prefix}_recovered_first": float(first["recovered_test"].mean()),
        f"{prefix}_recovered_last": float(last["recovered_test"].mean()),
        f"{prefix}_recovered_min_trained": (float(trained["recovered_test"].min()) if len(trained)
                                            else float("nan")),
        f"{prefix}_peak_drop_max": float((peak - last["recovered_test"]).max()),
        f"{prefix}_statistic_first": float(first["fine_statistic"].mean()),
        f"{prefix}_statistic_last": float(last["fine_statistic"].mean()),
    }
