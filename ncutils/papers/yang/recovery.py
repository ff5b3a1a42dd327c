"""Yang et al. (2023), Y1-Y2: what is measured — fine labels recovered from coarse-trained features.

:func:`measure` turns a trained network into one table row per feature source (trained,
initialisation, raw input) and label set (true fine labels, fine labels drawn at random inside
each coarse class: the null), with :mod:`ncutils.cluster`; :func:`measure_run` /
:func:`measure_runs` do the same for stored runs through the results store (each k-means kept
as a ``computed`` entry keyed by :func:`recovery_payload`; the metrics are read from the
statistics kept beside it, so an edit to ``metrics.py`` clusters nothing again), and
:func:`y1_epoch_series` / :func:`epoch_series_facts` follow each coarse run across its stored
epochs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from ncutils import metrics
from ncutils.cluster import (chance_level, fine_class_stats, fine_structure,
                             fine_structure_statistic_from_stats, random_fine_labels)
from ncutils.data import Dataset, load_dataset
from ncutils.models import build_model
from ncutils.papers.yang.configs import SHUFFLED
from ncutils.papers.yang.criteria import _check_columns
from ncutils.probe import capture
from ncutils.store import Computation, computed, computed_payload, data_fingerprint, package_version
from ncutils.store.keys import ARCHITECTURES_COVERED
from ncutils.stats import ClassStats, ProjectedScatter
from ncutils.train import TrainConfig

__all__ = [
    "RECOVERY",
    "epoch_series_facts",
    "initial_model",
    "load_run_data",
    "measure",
    "measure_run",
    "measure_runs",
    "penultimate_features",
    "recovery_payload",
    "y1_epoch_series",
]

# ----------------------------------------------------------------------------- measurement
def load_run_data(config: TrainConfig, device: str | torch.device = "cpu") -> tuple[Dataset, Dataset]:
    """The train and test splits a run was trained and evaluated on (coarse and fine labels).

    Example
    -------
    >>> from ncutils.papers.yang.configs import yang_config
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
    >>> from ncutils.papers.yang.configs import yang_config
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


#: The code of a cached recovery (:func:`measure_run`): this module and every package module
#: it imports (the data, the features, the clustering and its scores, the statistics kept).
#: ``metrics`` is left out: coarse NC1 and
#: the fine-structure statistic are read from the kept statistics after the cache, so an edit
#: to ``metrics.py`` recomputes them in milliseconds and runs no k-means.
RECOVERY = Computation("yang-recovery", ("ncutils.papers.yang.recovery",), covered={
    **ARCHITECTURES_COVERED,
    "ncutils.metrics": "computed from the kept statistics after the cache, never cached"})

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

    What is cached: no ``metrics`` function runs here (see :data:`RECOVERY`).
    """
    train, test = features.data
    train_x, test_x, predicted_coarse = features.features(what)
    coarse, test_coarse = train.labels.cpu().numpy(), test.labels.cpu().numpy()
    fine, test_fine = train.fine_labels.cpu().numpy(), test.fine_labels.cpu().numpy()
    if labels == "random":  # the null: fine labels drawn at random inside each coarse class
        fine = random_fine_labels(coarse, fine, seed=seed + 1)
        test_fine = random_fine_labels(test_coarse, test_fine, seed=seed + 2)
    # one OpenMP thread: k-means on a few hundred points gains nothing from more, and beside
    # other processes (two notebooks, parallel training) spinning threads cost 4-5x the CPU time
    with threadpool_limits(limits=1):
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
    """What the store's key of one cached recovery hashes (:func:`ncutils.store.computed_payload`).

    The features: at a trained epoch, the run's trained key (its weights, data and training
    code) and the epoch; the raw input (``what="input"``) and the initialisation (``what=0``,
    rebuilt by :func:`initial_model`) are keyed by what decides them (the data fields and
    files; plus architecture, seed and ``device`` type for the initialisation), so runs
    that share them (seeds of one dataset, Y2's training lengths) share one k-means. Then
    the label set (``"fine"`` or the null's ``"random"``), the coarse label map the
    clustering uses, the options, the versions of scikit-learn and scipy, and the code of
    :data:`RECOVERY`.

    Example
    -------
    >>> from ncutils.papers.yang.configs import yang_config
    >>> config = yang_config("digits", pairing="mod5", arch="mlp", epochs=3, lr=0.05,
    ...                      weight_decay=5e-4)
    >>> payload = recovery_payload("0123456789abcdef", config, 3, "fine", n_init=10)
    >>> "ncutils.papers.yang.recovery" in payload["source"], "ncutils.metrics" in payload["source"]
    (True, False)
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
    return computed_payload("yang-recovery", settings, computation=RECOVERY,
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
    (:func:`ncutils.cluster.random_fine_labels`, train and test): the null, which must stay at chance.
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

    Each (feature set, label set) is one ``computed`` entry of :mod:`ncutils.store`, keyed by
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
    (:attr:`~ncutils.measure.MeasuredRun.sweeps`, its last probe point); the fine-structure
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
