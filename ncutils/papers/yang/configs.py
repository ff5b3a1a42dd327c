"""Yang et al. (2023), Y1-Y2: what is trained — the runs, grids and their parameter checks.

:func:`yang_config` (one run: cross-entropy, SGD with momentum and a step decay), :func:`y1_grid`
(networks trained on coarse labels, pairs of classes merged, beside the same network trained on
the fine labels: the reference, and on shuffled coarse labels: a baseline; the coarse runs keep
:func:`log_epochs` for a series across training) and :func:`y2_grid` (the synthetic setting:
Gaussian fine clusters nested in coarse classes, at several fine separations and training
lengths). :data:`ASSUMPTIONS` lists every choice the paper does not confirm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ncutils.data import modulo_label_map
from ncutils.grid_spec import Grid, GridEntry
from ncutils.papers._validation import error_text
from ncutils.train import TrainConfig

__all__ = [
    "ASSUMPTIONS",
    "FINE",
    "PAIRINGS",
    "PER_DATASET_PARAMETERS",
    "SHUFFLED",
    "YANG_TRAINING",
    "log_epochs",
    "validate_parameters",
    "y1_grid",
    "y1_sweep_grid",
    "y2_grid",
    "yang_config",
]

PAIRINGS: dict[str, dict[int, int]] = {
    # c and c + 5 merged (the default pairing; CIFAR-10: airplane+dog, automobile+frog,
    # bird+horse, cat+ship, deer+truck): pairs that share no obvious meaning
    "mod5": modulo_label_map(10, 5),
    # CIFAR-10 pairs of similar classes, the harder case for recovery: airplane+ship,
    # automobile+truck, cat+dog, deer+horse, and the two left, bird+frog
    "cifar10-semantic": {0: 0, 8: 0, 1: 1, 9: 1, 3: 3, 5: 3, 4: 4, 7: 4, 2: 2, 6: 2},
}

#: Training settings shared by every run (the paper's are unconfirmed: see ASSUMPTIONS).
YANG_TRAINING: dict[str, Any] = {"loss": "ce", "optimizer": "sgd", "momentum": 0.9,
                                 "schedule": "multistep", "lr_decay": 0.1}

#: What the chapter assumes where the paper could not be read (only its abstract could).
ASSUMPTIONS: tuple[str, ...] = (
    "Pairing: classes c and c + 5 form a super-class (our default: pairs that share no obvious "
    "meaning); on CIFAR-10 a "
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


def y1_sweep_grid(parameters: Mapping[str, Any]) -> Grid:
    """The learning-rate x weight-decay grid of Y1: coarse runs and fine references, no baseline.

    :func:`y1_grid` with ``datasets``, ``lrs`` and ``weight_decays`` replaced by
    ``grid_datasets``, ``grid_lrs`` and ``grid_weight_decays``, no shuffled-label network and
    no series across training: what the grid's verdict reads (the last epoch and the
    initialisation of each coarse run, the test accuracy of each fine-trained one). A grid
    run that :func:`y1_grid` also trains (same dataset, pairing, learning rate, weight decay
    and seed) is that very run, series included, so the store trains it once.

    Parameters
    ----------
    parameters : mapping
        :func:`y1_grid`'s keys plus ``grid_datasets``, ``grid_lrs``, ``grid_weight_decays``.

    Returns
    -------
    Grid
        Labels as :func:`y1_grid`'s.

    Example
    -------
    >>> base = {"datasets": ["digits"], "pairings": ["mod5"], "architecture": "mlp",
    ...         "arch_kwargs": {"depth": 3}, "epochs": 4, "lrs": [0.05], "weight_decays": [5e-4],
    ...         "batch_size": 64, "seeds": [0, 1], "reference_seeds": [0], "shuffled_seeds": [0],
    ...         "series_points": 3, "grid_datasets": ["digits"], "grid_lrs": [0.1, 0.05],
    ...         "grid_weight_decays": [5e-4]}
    >>> grid = y1_sweep_grid(base)
    >>> [(e.labels["lr"], e.labels["pairing"], e.config.seed, e.config.sweep_epochs) for e in grid.entries]
    [(0.1, 'mod5', 0, ()), (0.1, 'mod5', 1, ()), (0.1, 'fine', 0, ()), (0.05, 'mod5', 0, (0, 1, 4)), (0.05, 'mod5', 1, (0, 1, 4)), (0.05, 'fine', 0, ())]
    """
    _require(parameters, ("grid_datasets", "grid_lrs", "grid_weight_decays"))
    for key in ("grid_datasets", "grid_lrs", "grid_weight_decays"):
        if not isinstance(parameters[key], (list, tuple)) or not parameters[key]:
            raise ValueError(f"parameters[{key!r}] must be a non-empty list, got {parameters[key]!r}")
    sweep = y1_grid({**parameters, "datasets": list(parameters["grid_datasets"]),
                     "lrs": list(parameters["grid_lrs"]), "weight_decays": list(parameters["grid_weight_decays"]),
                     "shuffled_seeds": [], "series_points": 0})
    # the same run in the chapter's own grid (with its series): reuse it
    point = {(tuple(sorted(entry.labels.items())), entry.config.seed): entry
             for entry in y1_grid(parameters).entries}
    entries = tuple(point.get((tuple(sorted(entry.labels.items())), entry.config.seed), entry)
                    for entry in sweep.entries)
    return Grid(entries)


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
    problems = _not_lists(parameters, ("datasets", "pairings", "lrs", "weight_decays", "shuffled_seeds"))
    if not problems:
        try:
            y1_grid(parameters)
        except (KeyError, ValueError, TypeError) as error:
            problems.append(f"Y1: {error_text(error)}")
    if not problems and any(key.startswith("grid_") for key in parameters):
        problems += _not_lists(parameters, ("grid_datasets", "grid_lrs", "grid_weight_decays"))
        if not problems:
            try:
                y1_sweep_grid(parameters)
            except (KeyError, ValueError, TypeError) as error:
                problems.append(f"Y1 grid: {error_text(error)}")
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
