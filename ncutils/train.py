"""TrainConfig and the training loop: checkpoints at the kept epochs, resume, divergence.

Why one module of this size: it is one concept, a training run, from its config to its
checkpoints, resume and divergence checks (and the stationarity measured at its end), which
share the run's state; measuring a stored run is elsewhere (:mod:`ncutils.measure`).

:func:`train` runs one :class:`TrainConfig`: it loads the data onto the device
(:mod:`ncutils.data`), builds the model (:mod:`ncutils.models`), trains it with index
minibatches on the device (no DataLoader, no per-sample Python) and records the loss
and the train/test accuracy every epoch. It does not measure inside the loop: it keeps
the weights of the epochs a chapter may measure, in the results store
(:mod:`ncutils.store`):

- every ``sweep_epochs`` epoch (0 is the initialisation);
- the first epoch whose train accuracy reaches each of ``save_at_train_acc``
  (data-dependent epochs, known only while training);
- the last epoch.

Measuring is a separate step: the layer sweeps of the ``sweep_epochs`` are measurements of
those stored weights (:func:`ncutils.measure.measure_run`), stored apart and keyed by the
measuring code: an edit to ``metrics.py`` re-measures (seconds) and never retrains; an edit
to this file, or to a module it imports, retrains (:data:`ncutils.store.keys.TRAINING`).
So this module imports no measuring code. See :mod:`ncutils.store` for the keys and the
layout on disk.

Checkpoints and resume
----------------------
At every kept epoch (and every ``checkpoint_every`` epochs) the model, optimizer,
scheduler, data-order generator, global RNG states, the history so far and the records
of the weights saved so far go to ``checkpoint.pt`` in the run's folder. A run that was
killed restarts from its last checkpoint and, on CPU, ends bit-identical to an
uninterrupted run. A NaN or infinite epoch loss stops the run with
:class:`DivergedError`, and nothing is stored as finished.
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ncutils import data as data_module
from ncutils import store
from ncutils._checks import CONV_POLICIES, resolve_device
from ncutils._io import atomic_write, exclusive_lock
from ncutils.data import Dataset, iterate_minibatches, load_dataset
# runs only for track_last_layer runs, whose key alone adds its code (store.keys.TRAINING)
from ncutils.layer_stats import last_layer_statistics
from ncutils.models import build_model, check_arch_kwargs

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "DivergedError",
    "RunResult",
    "TrainConfig",
    "config_key",
    "evaluate_accuracy",
    "load_data",
    "make_loss",
    "resolve_device",
    "run_epoch",
    "stationarity",
    "train",
]

LOSSES = ("ce", "mse")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "onecycle", "constant")
#: Arithmetic of the forward pass and loss in training: "bf16" autocasts them (the weights,
#: optimiser and every statistic stay float32/float64).
PRECISIONS = ("fp32", "bf16")
# One-cycle shape of Parker et al.'s code: start at lr/10, end at lr/(10 * 5e4).
ONECYCLE_DIV_FACTOR = 10.0
ONECYCLE_FINAL_DIV_FACTOR = 5e4
EVAL_BATCH_SIZE = 1024
_NON_RESULT_FIELDS = ("data_dir", "download", "checkpoint_every")
# Fields that change what is measured, not what is trained: keyed by the measurements only.
_SWEEP_FIELDS = ("conv_policy",)


class DivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _canonical(value: Any, name: str) -> Any:
    """A hashable, order-stable form: mappings -> sorted tuples of pairs, lists -> tuples."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(key), _canonical(item, name)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(item, name) for item in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{name} must hold only numbers, strings, booleans, None, lists and "
                     f"mappings, got {type(value).__name__}: {value!r}")


def _pairs(value: Any, name: str) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments given as a mapping or a tuple of (name, value) pairs."""
    if isinstance(value, Mapping):
        return _canonical(value, name)
    try:
        return _canonical(dict(value), name)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a mapping or a sequence of (name, value) pairs, "
                         f"got {value!r}") from error


def _sequence(value: Any, name: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a sequence, got {value!r}")
    return tuple(_canonical(list(value), name))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run and its sweeps (hashable; keys the results store).

    Parameters
    ----------
    dataset : str
        A name of :func:`ncutils.data.available_datasets`.
    label_map : str, mapping or None
        Coarse labels to train on (:data:`ncutils.data.LABEL_MAPS` name or a mapping,
        stored as sorted pairs).
    shuffle_labels : bool
        Train on the training labels (after ``label_map``) permuted at random across
        samples, seeded by ``data_seed`` (:func:`ncutils.data.shuffled_labels`): the
        shuffled-label network (a baseline, e.g. Yang's Y1). The sweeps measure
        the labels trained on; test labels and ``fine_labels`` stay true. Part of the key
        only when True.
    dataset_kwargs : mapping or pairs
        Options of the dataset (``gaussian`` only), stored as sorted pairs.
    arch : str
        A name of :func:`ncutils.models.available_architectures`.
    arch_kwargs : mapping or pairs
        Options of the architecture, stored as sorted pairs (lists become tuples).
    loss : {"ce", "mse"}
        Cross-entropy, or ``F.mse_loss`` between the logits and one-hot targets
        (mean over samples *and* classes).
    optimizer : {"sgd", "adam"}
        SGD uses ``momentum``; Adam ignores it (betas 0.9, 0.999).
    lr, momentum, weight_decay : float
        Weight decay is the optimizers' L2 term on every parameter.
    schedule : {"multistep", "onecycle", "constant"}
        multistep: ``lr`` times ``lr_decay`` at each of ``milestones`` (default
        ``(epochs // 3, 2 * epochs // 3)`` as in Papyan et al.'s code), stepped per
        epoch; onecycle: ``OneCycleLR`` with peak ``lr``, div factor 10 and final div
        factor 5e4 (Parker et al.'s code), stepped per batch, momentum not cycled.
    milestones : tuple of int or None
    lr_decay : float
    epochs, batch_size : int
    seed : int
        Seed of the initial weights and of the order of the minibatches.
    data_seed : int
        Seed of the data: the ``limit_train``/``limit_test`` subsets and the ``gaussian``
        mixture (``load_dataset(seed=data_seed)``), kept apart from ``seed`` so that runs
        with different seeds see the same data.
    device : str
        ``"auto"`` (cuda when present) or a torch device name.
    sweep_epochs : tuple of int
        Epochs whose weights are stored and swept; 0 is the initialisation.
    save_at_train_acc : tuple of float
        Also store the weights of the first epoch whose train accuracy reaches each of
        these thresholds in (0, 1] (e.g. ``(0.9, 0.99, 1.0)``); part of the key only
        when not empty.
    warmup_epochs : int
        Linear learning-rate warm-up over the first that many epochs, stepped per batch
        (batch ``i`` of the warm-up uses ``lr * (i + 1) / warm-up batches``), then the
        multistep or constant schedule (Rangamani et al.'s code warms up 1 epoch); part of
        the key only when not 0. Not with ``schedule="onecycle"``, which has its own ramp.
    conv_policy : {"flatten", "avgpool"}
        How the sweeps reduce conv maps (keys the measurements, not the training).
    track_last_layer : bool
        After every epoch, measure the statistics of the last hidden layer (the
        penultimate probe point) online and store them beside the history
        (:func:`ncutils.layer_stats.last_layer_statistics`); measuring the run
        (:func:`ncutils.measure.measure_run`) adds the columns
        :data:`~ncutils.series.LAST_LAYER_COLUMNS` computed from them: a cheap series over
        every epoch where weights are kept at a few (K1's terminal phase). Part of the key
        only when True (with the code of the statistics).
    precision : {"fp32", "bf16"}
        ``"bf16"`` trains with the forward pass and the loss under ``torch.autocast`` in
        bfloat16 (2.3x faster per ResNet-18 epoch on an H100); weights, optimiser state and
        all statistics stay in float32/float64, and sweeps always run in float32. Conv nets
        on CUDA train channels-last whatever the precision. Part of the key only when not
        ``"fp32"`` (the default, and the right choice on a CPU).
    limit_train, limit_test : int or None
        Stratified subsets (see :func:`ncutils.data.load_dataset`).
    data_dir : str or None
    download : bool
        Where torchvision data lives and whether to fetch it (not part of the key).
    checkpoint_every : int
        Also checkpoint every that many epochs (0: only at sweep epochs; not part of the key).

    Raises
    ------
    KeyError
        Unknown dataset, label map or architecture.
    ValueError
        Any other invalid value, e.g. a negative epoch count, an unknown loss or a
        sweep epoch beyond ``epochs``.

    Examples
    --------
    >>> config = TrainConfig(dataset="digits", arch="mlp", arch_kwargs={"depth": 3}, epochs=2)
    >>> config.arch_kwargs
    (('depth', 3),)
    """

    dataset: str = "mnist5k"
    label_map: Any = None
    shuffle_labels: bool = False
    dataset_kwargs: Any = ()
    arch: str = "mlp"
    arch_kwargs: Any = ()
    loss: str = "ce"
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    milestones: Any = None
    lr_decay: float = 0.1
    epochs: int = 30
    batch_size: int = 128
    seed: int = 0
    data_seed: int = 0
    device: str = "auto"
    sweep_epochs: Any = ()
    save_at_train_acc: Any = ()
    warmup_epochs: int = 0
    conv_policy: str = "flatten"
    track_last_layer: bool = False
    precision: str = "fp32"
    limit_train: int | None = None
    limit_test: int | None = None
    data_dir: str | None = None
    download: bool = False
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.dataset not in data_module.available_datasets():
            raise KeyError(f"unknown dataset {self.dataset!r}; available: "
                           f"{data_module.available_datasets()}")
        if isinstance(self.label_map, str):
            if self.label_map not in data_module.LABEL_MAPS:
                raise KeyError(f"unknown label map {self.label_map!r}; named maps: "
                               f"{sorted(data_module.LABEL_MAPS)}")
        elif self.label_map is not None:
            put("label_map", tuple(sorted((int(fine), int(coarse)) for fine, coarse
                                          in dict(_pairs(self.label_map, "label_map")).items())))
        put("dataset_kwargs", _pairs(self.dataset_kwargs, "dataset_kwargs"))
        if self.dataset == "gaussian":
            data_module._check_gaussian_options(dict(self.dataset_kwargs))
        else:
            _check(not self.dataset_kwargs,
                   f"dataset {self.dataset!r} takes no dataset_kwargs, got {self.dataset_kwargs}")
        put("arch_kwargs", _pairs(self.arch_kwargs, "arch_kwargs"))
        check_arch_kwargs(self.arch, dict(self.arch_kwargs))

        _check(self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}")
        _check(self.optimizer in OPTIMIZERS,
               f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.schedule in SCHEDULES,
               f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.precision in PRECISIONS,
               f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        _check(self.conv_policy in CONV_POLICIES,
               f"conv_policy must be one of {CONV_POLICIES}, got {self.conv_policy!r}")
        for name in ("lr", "momentum", "weight_decay", "lr_decay"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and not isinstance(value, bool)
                   and math.isfinite(value), f"{name} must be a finite number, got {value!r}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}")
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("data_seed", 0),
                              ("checkpoint_every", 0)):
            value = getattr(self, name)
            _check(_is_int(value) and value >= minimum,
                   f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            _check(value is None or (_is_int(value) and value >= 1),
                   f"{name} must be a positive integer or None, got {value!r}")
        _check(isinstance(self.download, bool), f"download must be a bool, got {self.download!r}")
        _check(isinstance(self.shuffle_labels, bool),
               f"shuffle_labels must be a bool, got {self.shuffle_labels!r}")
        _check(isinstance(self.track_last_layer, bool),
               f"track_last_layer must be a bool, got {self.track_last_layer!r}")
        resolve_device(self.device)

        milestones = self.milestones
        if milestones is None and self.schedule == "multistep":
            milestones = sorted({m for m in (self.epochs // 3, 2 * self.epochs // 3) if m >= 1})
        if milestones is not None:
            milestones = tuple(_canonical(list(milestones), "milestones"))
            _check(all(_is_int(m) and 1 <= m <= self.epochs for m in milestones)
                   and list(milestones) == sorted(set(milestones)),
                   f"milestones must be increasing integers in 1..epochs={self.epochs}, "
                   f"got {milestones}")
        put("milestones", milestones)
        sweeps = _sequence(self.sweep_epochs, "sweep_epochs")
        _check(all(_is_int(e) and 0 <= e <= self.epochs for e in sweeps),
               f"sweep_epochs must be integers in 0..epochs={self.epochs}, got {sweeps}")
        _check(len(set(sweeps)) == len(sweeps), f"sweep_epochs has duplicates: {sweeps}")
        put("sweep_epochs", tuple(sorted(sweeps)))
        thresholds = _sequence(self.save_at_train_acc, "save_at_train_acc")
        _check(all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1
                   for t in thresholds),
               f"save_at_train_acc must hold accuracies in (0, 1], got {thresholds}")
        _check(len(set(thresholds)) == len(thresholds),
               f"save_at_train_acc has duplicates: {thresholds}")
        put("save_at_train_acc", tuple(sorted(float(t) for t in thresholds)))
        _check(_is_int(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs,
               f"warmup_epochs must be an integer in 0..epochs={self.epochs}, got {self.warmup_epochs!r}")
        _check(not (self.warmup_epochs and self.schedule == "onecycle"),
               "warmup_epochs does not combine with schedule='onecycle' (it has its own ramp)")

    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the results (all but data_dir, download, checkpoint_every)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)
                if item.name not in _NON_RESULT_FIELDS}

    def training_fields(self) -> dict[str, Any]:
        """The fields that determine the trained run: :meth:`result_fields` less the sweep
        options, and less ``save_at_train_acc`` when empty (keys made before the field
        existed keep their meaning)."""
        fields = {name: value for name, value in self.result_fields().items()
                  if name not in _SWEEP_FIELDS}
        if not fields["save_at_train_acc"]:
            del fields["save_at_train_acc"]
        if not fields["shuffle_labels"]:
            del fields["shuffle_labels"]
        if not fields["warmup_epochs"]:
            del fields["warmup_epochs"]
        if fields["precision"] == "fp32":
            del fields["precision"]
        if not fields["track_last_layer"]:
            # (when True, the key also follows the statistics code: store.keys.trained_payload)
            del fields["track_last_layer"]
        return fields

    def sweep_options(self) -> dict[str, Any]:
        """The options of the sweeps (:func:`ncutils.sweep.layer_sweep` keywords).

        Examples
        --------
        >>> TrainConfig(conv_policy="avgpool").sweep_options()
        {'conv_policy': 'avgpool'}
        """
        return {name: getattr(self, name) for name in _SWEEP_FIELDS}


@dataclass
class RunResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    config : TrainConfig
    history : DataFrame
        One row per epoch: ``epoch``, ``loss`` (mean training loss over the epoch's
        batches, in train mode), ``train_acc`` and ``test_acc`` (eval mode, after the
        epoch, whole splits), ``lr`` (learning rate of the epoch's first batch). The
        series of a ``track_last_layer`` run are added by :func:`ncutils.measure.measure_run`.
    model : nn.Module
        The model at the last epoch, eval mode, on the run's device.
    key : str
        The trained run's key (:func:`ncutils.store.trained_key`).
    run_dir : Path
        The trained run's folder in the store.
    from_cache : bool
        The training was loaded from the store (nothing trained).
    train_seconds : float
        Wall time of the training (of the run that produced the store entry).
    stored_epochs : list of int
        Epochs whose weights are stored (:meth:`model_at`).
    train_acc_epochs : dict
        Threshold of ``save_at_train_acc`` -> first epoch reaching it (None: never).
    stored : StoredRun
        The store's entry (weights, manifest, series), for :mod:`ncutils.measure`.
    runs_dir : Path
        Root of the results store it came from.
    """

    config: TrainConfig
    history: pd.DataFrame
    model: nn.Module
    key: str
    run_dir: Path
    from_cache: bool = False
    train_seconds: float = field(default=float("nan"))
    stored_epochs: list[int] = field(default_factory=list)
    train_acc_epochs: dict[float, int | None] = field(default_factory=dict)
    stored: store.StoredRun | None = field(default=None, repr=False)
    runs_dir: Path | None = field(default=None, repr=False)

    def model_at(self, epoch: int, device: str | torch.device | None = None) -> nn.Module:
        """The model with the weights stored for ``epoch``, eval mode.

        Parameters
        ----------
        epoch : int
            One of :attr:`stored_epochs`.
        device : optional
            Default: the run's device.

        Raises
        ------
        KeyError
            The epoch is not stored (the message lists those that are).

        Examples
        --------
        >>> result = train(TrainConfig(dataset="digits", epochs=2, sweep_epochs=(0,)))  # doctest: +SKIP
        >>> initial = result.model_at(0)  # doctest: +SKIP
        """
        if self.stored is None:
            raise RuntimeError("this RunResult has no stored run to read weights from")
        target = resolve_device(self.config.device) if device is None else torch.device(device)
        return _model_from(self.stored, self.config, epoch, target)


def _build(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int,
           device: torch.device) -> nn.Module:
    return build_model(config.arch, input_shape=input_shape, num_classes=num_classes,
                       **dict(config.arch_kwargs)).to(device)


def _model_from(stored: store.StoredRun, config: TrainConfig, epoch: int,
                device: torch.device) -> nn.Module:
    state = stored.weights(epoch, device)
    # Building draws initial weights; the global RNG stream must not notice.
    with torch.random.fork_rng(devices=[]):
        model = _build(config, tuple(stored.manifest["input_shape"]),
                       stored.manifest["num_classes"], device)
    model.load_state_dict(state)
    return model.eval()


def config_key(config: TrainConfig) -> str:
    """Key of the trained run of ``config`` (:func:`ncutils.store.trained_key`).

    Examples
    --------
    >>> config_key(TrainConfig(epochs=2)) == config_key(TrainConfig(epochs=2, data_dir="x"))
    True
    """
    return store.trained_key(config)


# ---------------------------------------------------------------------------
# The training step and evaluation, shared with benchmarks/training.py.


def make_loss(name: str, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss of logits and integer labels: ``"ce"`` cross-entropy, ``"mse"`` on one-hot targets."""
    if name == "ce":
        return F.cross_entropy
    if name == "mse":
        def mse_one_hot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(logits, F.one_hot(labels, num_classes).to(logits.dtype))
        return mse_one_hot
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")


def run_epoch(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    batch_scheduler: Any = None,
    precision: str = "fp32",
) -> float:
    """One epoch of minibatch training on data already on the model's device.

    The batches are index tensors (:func:`ncutils.data.iterate_minibatches`); the
    loss is accumulated on the device (in float64) and read once, at the end. With
    ``precision="bf16"`` the forward pass and the loss run under ``torch.autocast``.

    Returns
    -------
    float
        Mean training loss over the epoch's samples.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    autocast = torch.autocast(device_type=inputs.device.type, dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    for batch in iterate_minibatches(labels.shape[0], batch_size, shuffle=True,
                                     generator=generator, device=inputs.device):
        with autocast:
            loss = loss_fn(model(inputs[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        total += loss.detach().double() * batch.shape[0]
    return float(total) / labels.shape[0]


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Fraction of samples whose argmax logit is the label, in eval mode."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=inputs.device)
    for batch in iterate_minibatches(labels.shape[0], batch_size, shuffle=False,
                                     device=inputs.device):
        correct += (model(inputs[batch]).argmax(dim=1) == labels[batch]).sum()
    return int(correct) / labels.shape[0]


def _rng_states(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    states = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


# ---------------------------------------------------------------------------
# The run.


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer,
                    steps_per_epoch: int) -> tuple[Any, Any]:
    """(per-epoch scheduler, per-batch scheduler); at most one is not None."""
    if config.warmup_epochs:
        # One per-batch schedule: the linear warm-up, then the multistep decay of the
        # epoch (milestones count epochs) or a constant rate.
        warmup_steps = config.warmup_epochs * steps_per_epoch
        milestones = list(config.milestones or ()) if config.schedule == "multistep" else []

        def factor(step: int) -> float:
            epoch = step // steps_per_epoch  # 0-based epoch of this batch
            decays = sum(1 for milestone in milestones if epoch >= milestone)
            return min(1.0, (step + 1) / warmup_steps) * config.lr_decay ** decays

        return None, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(config.milestones), gamma=config.lr_decay), None
    if config.schedule == "onecycle":
        return None, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
            div_factor=ONECYCLE_DIV_FACTOR, final_div_factor=ONECYCLE_FINAL_DIV_FACTOR,
            cycle_momentum=False)
    return None, None



# ---------------------------------------------------------------------------
# The run.


def load_data(config: TrainConfig, device: str | torch.device | None = None) -> tuple[Dataset, Dataset]:
    """The (train, test) datasets of a run, as its training and its sweeps see them.

    Examples
    --------
    >>> train_data, test_data = load_data(TrainConfig(dataset="digits", device="cpu"))
    >>> len(train_data), len(test_data)
    (1438, 359)
    """
    device = resolve_device(config.device) if device is None else torch.device(device)
    label_map = dict(config.label_map) if isinstance(config.label_map, tuple) else config.label_map
    loading = dict(data_dir=config.data_dir, download=config.download, label_map=label_map,
                   seed=config.data_seed, device=device, **dict(config.dataset_kwargs))
    train_data = load_dataset(config.dataset, "train", limit=config.limit_train, **loading)
    if config.shuffle_labels:
        train_data = data_module.shuffled_labels(train_data, seed=config.data_seed)
    return train_data, load_dataset(config.dataset, "test", limit=config.limit_test, **loading)


def stationarity(model: nn.Module, config: TrainConfig, train_data: Dataset, modules: Sequence[str], *,
                 seed: int = 0) -> pd.DataFrame:
    """How far each named layer's weight is from a stationary point of training with weight decay.

    Training descends the data loss plus ``(weight_decay / 2) ||theta||^2`` (SGD's coupled weight
    decay); at a stationary point ``g + lambda W = 0`` for every weight ``W``, ``g`` the gradient of
    the data loss. Per module this returns ``ratio = ||g + lambda W|| / ||lambda W||`` (0 at a
    stationary point; 1 where the gradient vanishes but the weight decay still pulls), with ``g``
    the mean of the minibatch gradients over the whole training set in training mode (BatchNorm
    on batch statistics, as SGD sees it; batches of ``config.batch_size``, one shuffled pass with
    ``seed``), on a copy of ``model`` (its running statistics are left alone).

    A layer whose data loss does not change when its weight is scaled (a BatchNorm follows it)
    has ``g`` orthogonal to ``W``, so ``ratio = sqrt(1 + ||g||^2 / ||lambda W||^2) >= 1``: no
    stationary point with weight decay exists there. ``scale_invariant`` says whether the loss
    of the first batch moves by less than ``1e-3`` relatively when the weight is doubled.

    Parameters
    ----------
    model : nn.Module
        The trained network (weights as stored).
    config : TrainConfig
        Its loss, weight decay and batch size.
    train_data : Dataset
        The training set it was trained on (:func:`load_data`).
    modules : sequence of str
        Dotted names of Linear/Conv layers whose ``weight`` is judged.
    seed : int
        The shuffle of the pass.

    Returns
    -------
    DataFrame
        ``name``, ``ratio``, ``grad_norm`` (``||g||``), ``decay_norm`` (``||lambda W||``),
        ``cosine`` (between ``g`` and ``W``), ``scale_invariant``.

    Examples
    --------
    >>> from ncutils.data import load_dataset
    >>> data = load_dataset("digits", "train", limit=64)
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    >>> table = stationarity(net, TrainConfig(dataset="digits", loss="mse", weight_decay=5e-4,
    ...                                       device="cpu"), data, ["1"])
    >>> bool(table["ratio"].iloc[0] > 1), bool(table["scale_invariant"].iloc[0])
    (True, False)
    """
    if config.weight_decay <= 0:
        raise ValueError("stationarity needs weight decay > 0 (the ratio divides by lambda ||W||)")
    copy = copy_module.deepcopy(model).train()
    named = dict(copy.named_modules())
    missing = [name for name in modules if name not in named or not hasattr(named[name], "weight")]
    if missing:
        raise ValueError(f"no layer with a weight named {missing}")
    weights = [named[name].weight for name in modules]
    loss_fn = make_loss(config.loss, train_data.num_classes)
    device = next(copy.parameters()).device
    inputs, labels = train_data.inputs.to(device), train_data.labels.to(device)
    n = len(labels)
    sums = [torch.zeros_like(weight, dtype=torch.float64) for weight in weights]
    generator = torch.Generator().manual_seed(seed)
    first = None
    for batch in data_module.iterate_minibatches(n, config.batch_size, shuffle=True, generator=generator):
        batch = batch.to(device)
        first = batch if first is None else first
        grads = torch.autograd.grad(loss_fn(copy(inputs[batch]), labels[batch]), weights)
        for total, grad in zip(sums, grads):
            total += grad.double() * (len(batch) / n)
    rows = []
    with torch.no_grad():
        for name, weight, grad in zip(modules, weights, sums):
            decay = config.weight_decay * weight.double()
            before = float(loss_fn(copy(inputs[first]), labels[first]))
            original = weight.detach().clone()
            weight.mul_(2.0)
            after = float(loss_fn(copy(inputs[first]), labels[first]))
            weight.copy_(original)
            rows.append({"name": name, "ratio": float((grad + decay).norm() / decay.norm()),
                         "grad_norm": float(grad.norm()), "decay_norm": float(decay.norm()),
                         "cosine": float((grad * weight.double()).sum() / (grad.norm() * weight.double().norm())),
                         "scale_invariant": bool(abs(after - before) <= 1e-3 * max(abs(before), 1e-12))})
    return pd.DataFrame(rows, columns=["name", "ratio", "grad_norm", "decay_norm", "cosine", "scale_invariant"])


def _ensure_data_files(config: TrainConfig) -> None:
    """Fetch (or fail clearly on) missing torchvision files: the key hashes them."""
    files = data_module.dataset_files(config.dataset, config.data_dir)
    if any(not path.is_file() for path in files):
        load_data(config, "cpu")  # downloads when config.download, else names what is missing


def train(
    config: TrainConfig,
    *,
    runs_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> RunResult:
    """Train (or load from the results store) the run of ``config``.

    The trained run is loaded when stored, else trained (resuming from a checkpoint
    when one is there). Nothing is measured here: :func:`ncutils.measure.measure_run`
    gives the sweeps of the stored epochs (and the series of a ``track_last_layer`` run).
    Each load and training is logged to ``<runs_dir>/events.log``.

    Parameters
    ----------
    config : TrainConfig
    runs_dir : path, optional
        Root of the results store (default ``$NCUTILS_RUNS_DIR`` or the project's ``runs/``).
    force : bool
        Discard the stored run and its checkpoint; train from scratch (its measurements are
        keyed by its weights: a retrained run is measured again).
    progress : bool
        Show a tqdm bar over the epochs.
    callback : callable, optional
        Called as ``callback(epoch, history_row)`` after each trained epoch (after its
        weights and checkpoint are written). An exception it raises stops the run,
        which a later call resumes from its last checkpoint.

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        ``config`` is not a TrainConfig.
    ncutils.data.DatasetNotFoundError
        torchvision files missing and not downloaded.
    DivergedError
        The mean training loss of an epoch is NaN or infinite (the message names the
        epoch and the config).

    Examples
    --------
    >>> config = TrainConfig(dataset="gaussian", arch="mlp", arch_kwargs={"depth": 3, "width": 32},
    ...                      epochs=2, sweep_epochs=(0, 2), device="cpu")
    >>> result = train(config, runs_dir="/tmp/ncutils-doc-runs", progress=False)  # doctest: +SKIP
    >>> result.history.columns.tolist(), result.stored_epochs  # doctest: +SKIP
    (['epoch', 'loss', 'train_acc', 'test_acc', 'lr'], [0, 2])
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = resolve_device(config.device)
    _ensure_data_files(config)
    key = store.trained_key(config)
    runs_root = Path(runs_dir) if runs_dir is not None else store.default_runs_dir()
    run_dir = store.entry_dir("trained", key, runs_root)
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    stored = store.load_trained(key, runs_root)
    label = f"{config.dataset}/{config.arch}"
    from_cache = stored is not None
    if stored is None:
        # one trainer per key: a second process (another chapter, a parallel build, `runs
        # train`) waits here, then loads what the first stored
        with exclusive_lock(runs_root / "locks" / f"{key}.lock"):
            stored = store.load_trained(key, runs_root)
            from_cache = stored is not None
            if stored is None:
                stored = _train_and_store(config, key, run_dir, load_data(config, device), device, progress,
                                          callback)
                store.log_event(runs_root, f"trained {key} ({label}, {config.epochs} epochs) in "
                                           f"{stored.manifest['train_seconds']:.1f} s")
    if from_cache:
        store.log_event(runs_root, f"loaded trained run {key} ({label})")
    manifest = stored.manifest
    return RunResult(
        config, stored.history, _model_from(stored, config, manifest["last_epoch"], device), key, run_dir,
        from_cache=from_cache, train_seconds=float(manifest.get("train_seconds", float("nan"))),
        stored_epochs=stored.epochs,
        train_acc_epochs={float(t): e for t, e in manifest.get("train_acc_epochs", {}).items()},
        stored=stored, runs_dir=runs_root)


def _train_and_store(config: TrainConfig, key: str, run_dir: Path,
                     data: tuple[Dataset, Dataset], device: torch.device, progress: bool,
                     callback: Callable[[int, dict[str, float]], None] | None) -> store.StoredRun:
    train_data, test_data = data
    checkpoint_path = run_dir / store.CHECKPOINT
    steps_per_epoch = -(-len(train_data) // config.batch_size)
    loss_fn = make_loss(config.loss, train_data.num_classes)

    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        model = _build(config, train_data.input_shape, train_data.num_classes, device)
        train_inputs = train_data.inputs
        if device.type == "cuda" and train_inputs.ndim == 4:
            # channels-last convolutions are the fast path of cuDNN's tensor cores
            model = model.to(memory_format=torch.channels_last)
            train_inputs = train_inputs.contiguous(memory_format=torch.channels_last)
        optimizer = _make_optimizer(config, model)
        epoch_scheduler, batch_scheduler = _make_scheduler(config, optimizer, steps_per_epoch)
        generator = torch.Generator().manual_seed(config.seed)
        history: list[dict[str, float]] = []
        series: list[dict[str, Any]] = []  # track_last_layer: one statistics state per epoch
        saved: dict[int, dict[str, Any]] = {}
        reached: dict[float, int | None] = {threshold: None for threshold in config.save_at_train_acc}
        start_epoch, elapsed = 1, 0.0

        checkpoint = _load_checkpoint(checkpoint_path, key, device)
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            for scheduler, name in ((epoch_scheduler, "epoch_scheduler"),
                                    (batch_scheduler, "batch_scheduler")):
                if scheduler is not None:
                    scheduler.load_state_dict(checkpoint[name])
            _set_rng_states(checkpoint["rng"], generator)
            history, saved, reached = checkpoint["history"], checkpoint["saved"], checkpoint["reached"]
            series = checkpoint.get("series", [])
            start_epoch, elapsed = checkpoint["epoch"] + 1, checkpoint["elapsed"]
        elif 0 in config.sweep_epochs:
            saved[0] = store.save_weights(run_dir, 0, model.state_dict(), ["sweep"])

        started = time.perf_counter() - elapsed
        bar = tqdm(range(start_epoch, config.epochs + 1), disable=not progress,
                   desc=f"{config.dataset}/{config.arch} {key}", initial=start_epoch - 1,
                   total=config.epochs, unit="epoch")
        for epoch in bar:
            learning_rate = optimizer.param_groups[0]["lr"]
            loss = run_epoch(model, train_inputs, train_data.labels, loss_fn=loss_fn,
                             optimizer=optimizer, batch_size=config.batch_size,
                             generator=generator, batch_scheduler=batch_scheduler,
                             precision=config.precision)
            if not math.isfinite(loss):
                raise DivergedError(f"training loss is {loss} at epoch {epoch} of run {key} "
                                    f"({run_dir}); config: {config}")
            row = {
                "epoch": epoch,
                "loss": loss,
                "train_acc": evaluate_accuracy(model, train_data.inputs, train_data.labels),
                "test_acc": evaluate_accuracy(model, test_data.inputs, test_data.labels),
                "lr": learning_rate,
            }
            if config.track_last_layer:
                series.append(last_layer_statistics(model, train_data, test_data))
            if epoch_scheduler is not None:
                epoch_scheduler.step()
            history.append(row)
            bar.set_postfix(loss=f"{loss:.4g}", train=f"{row['train_acc']:.3f}",
                            test=f"{row['test_acc']:.3f}")
            reasons = ["sweep"] if epoch in config.sweep_epochs else []
            for threshold, first in reached.items():
                if first is None and row["train_acc"] >= threshold:
                    reached[threshold] = epoch
                    reasons.append(f"train_acc>={threshold:g}")
            if epoch == config.epochs:
                reasons.append("last")
            if reasons:
                saved[epoch] = store.save_weights(run_dir, epoch, model.state_dict(), reasons)
            if epoch < config.epochs and (reasons or (
                    config.checkpoint_every and epoch % config.checkpoint_every == 0)):
                _save_checkpoint(checkpoint_path, {
                    "key": key,
                    "epoch": epoch,
                    "elapsed": time.perf_counter() - started,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch_scheduler": epoch_scheduler.state_dict() if epoch_scheduler else None,
                    "batch_scheduler": batch_scheduler.state_dict() if batch_scheduler else None,
                    "rng": _rng_states(generator, device),
                    "history": history,
                    "series": series,
                    "saved": saved,
                    "reached": reached,
                })
            if callback is not None:
                callback(epoch, dict(row))
        bar.close()
        train_seconds = time.perf_counter() - started

    store.store_trained(run_dir, key, store.trained_payload(config), pd.DataFrame(history), saved, {
        "series_epochs": [row["epoch"] for row in history] if config.track_last_layer else None,
        "input_shape": list(train_data.input_shape),
        "num_classes": train_data.num_classes,
        "classes": train_data.classes,
        "source": train_data.source,
        "last_epoch": config.epochs,
        "train_acc_epochs": {f"{threshold:g}": first for threshold, first in reached.items()},
        "train_seconds": train_seconds,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }, device, series=series if config.track_last_layer else None)
    checkpoint_path.unlink(missing_ok=True)
    stored = store.load_trained(key, run_dir.parent.parent)
    if stored is None:
        raise RuntimeError(f"the run just stored in {run_dir} could not be read back")
    return stored


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda target: torch.save(state, target))


def _load_checkpoint(path: Path, key: str, device: torch.device) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        # The checkpoint holds Python objects (history rows, generator states): a pickle
        # this process wrote itself, hence weights_only=False.
        checkpoint = torch.load(path, map_location=device, weights_only=False)
        if checkpoint.get("key") != key:
            raise ValueError(f"checkpoint key {checkpoint.get('key')!r} != {key!r}")
        # The weights it names were written before it; a damaged one cannot be re-made
        # without the epochs before it, so the run starts again.
        for record in checkpoint["saved"].values():
            store.read_verified(path.parent, record)
    except Exception as error:
        warnings.warn(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); "
                      f"training from scratch", RuntimeWarning, stacklevel=4)
        return None
    # RNG states must stay on the CPU whatever map_location did.
    checkpoint["rng"] = {name: (state.cpu() if isinstance(state, torch.Tensor)
                                else [s.cpu() for s in state])
                         for name, state in checkpoint["rng"].items()}
    return checkpoint
