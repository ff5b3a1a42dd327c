"""Yang, Steinhardt, Hu (2023), chapters Y1-Y2: fine-grained structure survives collapse.

Two halves. *Configurations*: :func:`yang_config` (one run: cross-entropy, SGD with momentum
and a step decay), :func:`y1_grid` (networks trained on coarse labels, pairs of classes
merged, beside the same network trained on the fine labels: the reference) and
:func:`y2_grid` (the synthetic setting: Gaussian fine clusters nested in coarse classes, at
several fine separations and training lengths). :func:`measure` turns a trained network into
one table row per feature source (trained, initialisation, raw input) and label set (true
fine labels, fine labels drawn at random inside each coarse class: the null), with
:mod:`ncutils.cluster`. *Criteria*: :func:`y1_table` / :func:`y1_outcome` and
:func:`y2_table` / :func:`y2_outcome`, pure functions of those tables with every threshold
an argument (DESIGN.md 8.6); the runs are combined by :func:`ncutils.verdicts.combine_runs`
(DESIGN.md 8.3).

No official code exists (``papers/NOTES.md`` section 3). Everything below that the paper does
not confirm is an *assumption* and :data:`ASSUMPTIONS` lists each one, for the chapter to show.

References
----------
Yang, Steinhardt, Hu (2023), "Are Neurons Actually Collapsed? On the Fine-Grained Structure in
Neural Representations", ICML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncutils import metrics, verdicts
from ncutils.cluster import chance_level, fine_structure, fine_structure_statistic, random_fine_labels
from ncutils.data import Dataset, load_dataset, modulo_label_map
from ncutils.grid import Grid, GridEntry
from ncutils.models import build_model
from ncutils.probe import capture
from ncutils.train import TrainConfig

__all__ = [
    "ASSUMPTIONS",
    "PAIRINGS",
    "PER_DATASET_PARAMETERS",
    "YANG_TRAINING",
    "initial_model",
    "load_run_data",
    "measure",
    "measure_runs",
    "penultimate_features",
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
    device, data_dir, download, dataset_kwargs
        As in :class:`~ncutils.train.TrainConfig`.
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
    return TrainConfig(
        dataset=dataset, label_map=None if pairing is None else dict(PAIRINGS[pairing]),
        dataset_kwargs=dict(dataset_kwargs or {}), arch=arch, arch_kwargs=dict(arch_kwargs or {}),
        loss=YANG_TRAINING["loss"], optimizer=YANG_TRAINING["optimizer"], lr=lr,
        momentum=YANG_TRAINING["momentum"], weight_decay=weight_decay, schedule=schedule,
        lr_decay=YANG_TRAINING["lr_decay"], epochs=epochs, batch_size=batch_size, seed=seed,
        device=device, limit_train=limit_train, limit_test=limit_test, data_dir=data_dir,
        download=download,
    )


#: Parameters that take one value for every dataset or a mapping dataset -> value.
PER_DATASET_PARAMETERS: frozenset[str] = frozenset({"epochs"})


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
        and ``reference_seeds`` (fine runs); optionally ``limit_train``, ``limit_test``,
        ``device``, ``data_dir``, ``download``. Other keys are ignored.

    Returns
    -------
    Grid
        Labels ``dataset``, ``pairing`` (``"fine"`` for the references), ``lr``,
        ``weight_decay``; each entry carries its own seed (run it with ``run_grid(grid)``,
        no ``seeds=``).

    Raises
    ------
    ValueError, KeyError
        Missing or malformed parameters, unknown names (before any training).

    Example
    -------
    >>> grid = y1_grid({"datasets": ["digits"], "pairings": ["mod5"], "architecture": "mlp",
    ...                 "arch_kwargs": {"depth": 3}, "epochs": 2, "lrs": [0.05],
    ...                 "weight_decays": [5e-4], "batch_size": 64, "seeds": [0, 1],
    ...                 "reference_seeds": [0]})
    >>> [(e.labels["pairing"], e.config.seed) for e in grid.entries]
    [('mod5', 0), ('mod5', 1), ('fine', 0)]
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
    common = {key: parameters[key] for key in ("limit_train", "limit_test", "device", "data_dir",
                                                "download", "batch_size") if key in parameters}
    entries = []
    for dataset in datasets:
        epochs = _per_dataset(parameters["epochs"], dataset, "epochs")
        for lr in parameters["lrs"]:
            for weight_decay in parameters["weight_decays"]:
                runs = [(p, s) for p in pairings for s in seeds] + [(None, s) for s in reference_seeds]
                for pairing, seed in runs:
                    config = yang_config(dataset, pairing=pairing, arch=parameters["architecture"],
                                         arch_kwargs=parameters.get("arch_kwargs"), epochs=epochs,
                                         lr=lr, weight_decay=weight_decay, seed=seed, **common)
                    entries.append(GridEntry({"dataset": dataset, "pairing": pairing or "fine",
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

    problems = _not_lists(parameters, ("datasets", "pairings", "lrs", "weight_decays"))
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


def _recovery(train_x: np.ndarray, train: Dataset, test_x: np.ndarray, test: Dataset, *,
              fine: np.ndarray, test_fine: np.ndarray, predicted: np.ndarray | None,
              n_init: int, seed: int, permutations: int, quantile: float) -> dict[str, float]:
    coarse, test_coarse = train.labels.cpu().numpy(), test.labels.cpu().numpy()
    found = fine_structure(train_x, coarse, fine, test_features=test_x, test_coarse_labels=test_coarse,
                           test_fine_labels=test_fine, test_predicted_coarse=predicted,
                           n_init=n_init, seed=seed)
    chance = chance_level(found, fine, test_fine, permutations=permutations, quantile=quantile,
                          seed=seed)
    statistic = fine_structure_statistic(train_x, coarse, fine)["ratio"]
    return {**found.summary(), "chance_train": chance.train_mean, "chance_train_upper": chance.train_upper,
            "chance_test": chance.test_mean, "chance_test_upper": chance.test_upper,
            "fine_statistic": float(np.nanmean(statistic)),
            "coarse_nc1": metrics.nc1(train_x, coarse)}


def measure(model: nn.Module, config: TrainConfig, *, sources: Sequence[str] = ("trained", "init", "input"),
            null: bool = True, n_init: int = 10, seed: int = 0, permutations: int = 200,
            quantile: float = 0.99) -> pd.DataFrame:
    """Fine-label recovery from one coarse-trained network, its initialisation and its input.

    For each feature source (``"trained"``: the penultimate features of ``model``; ``"init"``:
    those of :func:`initial_model`; ``"input"``: the raw, normalised inputs) the fine labels
    are recovered with :func:`ncutils.cluster.fine_structure` (k-means per coarse class) and
    scored with their permutation chance level; with ``null=True`` the same is done once more
    on the trained features with fine labels drawn at random inside each coarse class
    (:func:`ncutils.cluster.random_fine_labels`, train and test): the null of DESIGN.md 8.2.

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
        labels, training set) and ``dim``.

    Raises
    ------
    ValueError
        A config without coarse labels, an unknown source.
    """
    if config.label_map is None:
        raise ValueError("measure needs a run trained on coarse labels (config.label_map is None)")
    unknown = sorted(set(sources) - {"trained", "init", "input"})
    if unknown or not sources:
        raise ValueError(f"sources must be among 'trained', 'init', 'input', got {list(sources)}")
    train, test = load_run_data(config)
    fine, test_fine = train.fine_labels.numpy(), test.fine_labels.numpy()
    device = next(model.parameters()).device
    options = dict(n_init=n_init, seed=seed, permutations=permutations, quantile=quantile)
    rows = []
    for source in sources:
        if source == "input":
            train_x = train.inputs.reshape(len(train), -1).double().numpy()
            test_x = test.inputs.reshape(len(test), -1).double().numpy()
            predicted = None
        else:
            network = model if source == "trained" else initial_model(
                config, train.input_shape, train.num_classes).to(device)
            train_x = penultimate_features(network, train.inputs)
            test_x = penultimate_features(network, test.inputs)
            predicted = _predictions(network, test.inputs)
        row = _recovery(train_x, train, test_x, test, fine=fine, test_fine=test_fine,
                        predicted=predicted, **options)
        rows.append({"source": source, "labels": "fine", "dim": train_x.shape[1], **row})
        if null and source == "trained":
            coarse, test_coarse = train.labels.numpy(), test.labels.numpy()
            random = random_fine_labels(coarse, fine, seed=seed + 1)
            random_test = random_fine_labels(test_coarse, test_fine, seed=seed + 2)
            row = _recovery(train_x, train, test_x, test, fine=random, test_fine=random_test,
                            predicted=predicted, **options)
            rows.append({"source": source, "labels": "random", "dim": train_x.shape[1], **row})
    return pd.DataFrame(rows)


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
    reach ``min_train_acc``. The baselines (raw input, initialisation) and the null (random
    fine labels) are reported with their margins; they are no condition.

    Parameters
    ----------
    recovery : DataFrame
        Rows of :func:`measure` with the run's ``group_cols``, ``pairing`` and ``seed``.
    runs : DataFrame
        One row per trained run (:attr:`ncutils.grid.GridResult.runs`): ``group_cols``,
        ``pairing`` (``"fine"`` for references), ``seed``, ``train_acc``, ``test_acc``.
    min_train_acc, max_nc1_ratio, min_fraction : float
        The pre-registered thresholds.
    group_cols : sequence of str

    Returns
    -------
    DataFrame
        One row per coarse run: keys, ``train_acc``, ``eligible``, ``nc1_init``,
        ``nc1_final``, ``nc1_ratio``, ``collapsed``, ``recovered_test``,
        ``recovered_test_predicted``, ``recovered_train``, ``reference``, ``fraction``,
        ``recovered``, ``passed``, ``input_test``, ``init_test``, ``best_baseline``,
        ``baseline_margin``, ``null_test``, ``null_upper``, ``null_at_chance``.

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
    coarse_runs = runs[runs["pairing"] != "fine"][keys + ["train_acc"]]
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
    references = runs[(runs["pairing"] == "fine") & (runs["train_acc"] >= min_train_acc)]
    reference = references.groupby(group_cols, as_index=False)["test_acc"].mean().rename(
        columns={"test_acc": "reference"})
    table = table.merge(reference, on=group_cols, how="left")
    table["eligible"] = table["train_acc"] >= min_train_acc
    table["nc1_ratio"] = table["nc1_final"] / table["nc1_init"]
    table["collapsed"] = table["nc1_ratio"] <= max_nc1_ratio
    table["fraction"] = table["recovered_test"] / table["reference"]
    table["recovered"] = table["fraction"] >= min_fraction
    table["passed"] = table["collapsed"] & table["recovered"]
    table["best_baseline"] = table[["input_test", "init_test"]].max(axis=1)
    table["baseline_margin"] = table["recovered_test"] - table["best_baseline"]
    table["null_at_chance"] = table["null_test"] <= table["null_upper"]
    order = keys + ["train_acc", "eligible", "nc1_init", "nc1_final", "nc1_ratio", "collapsed",
                    "recovered_test", "recovered_test_predicted", "recovered_train", "reference",
                    "fraction", "recovered", "passed", "input_test", "init_test", "best_baseline",
                    "baseline_margin", "null_test", "null_upper", "null_at_chance"]
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


def measure_runs(result: Any, **options: Any) -> pd.DataFrame:
    """:func:`measure` on every coarse-trained run of a :class:`ncutils.grid.GridResult`.

    Runs trained on the fine labels (no ``label_map``) are skipped: they are the references.

    Parameters
    ----------
    result : GridResult
    **options
        Keyword arguments of :func:`measure`.

    Returns
    -------
    DataFrame
        :func:`measure`'s rows with the grid's label columns and ``seed`` in front.
    """
    tables = []
    for key, run in result.results.items():
        if run.config.label_map is None:
            continue
        table = measure(run.model, run.config, **options)
        for position, (name, value) in enumerate(zip(result.label_names, key)):
            table.insert(position, name, value)
        tables.append(table)
    if not tables:
        raise ValueError("the grid result holds no run trained on coarse labels")
    return pd.concat(tables, ignore_index=True)
