"""Training with scheduled layer sweeps, checkpoints, resume and a results cache.

:func:`train` runs one :class:`TrainConfig`: it loads the data onto the device
(:mod:`ncutils.data`), builds the model (:mod:`ncutils.models`), trains it with
index minibatches on the device (no DataLoader, no per-sample Python), records the
loss and the train/test accuracy every epoch and, at ``sweep_epochs``, a layer
sweep (:func:`ncutils.probe.layer_sweep` on the training set, test set for the NCC
test accuracy).

Results cache
-------------
Every run lives in ``<runs_dir>/<key>/``. The key hashes (sha256, 16 hex digits):

- every field of the config that changes the result (not ``data_dir``,
  ``download``, ``checkpoint_every``), with ``device="auto"`` resolved to the device
  *type* actually used (CPU and GPU runs differ numerically);
- ``ncutils.__version__`` and ``torch.__version__``;
- the bytes of the ncutils modules that determine a run's numbers
  (:data:`RESULT_MODULES`: data, models, train, probe, stats, metrics, _checks).
  Editing any of them invalidates the cache, even without a version bump; editing
  plots, findings or the book does not.

A finished run is four files: ``model.pt`` (state dict), ``history.csv``,
``sweeps.csv`` and ``manifest.json`` (config, versions, shapes and the sha256 of the
other three). Each is written to a temporary file and renamed into place, the
manifest last, so a run is visible only once complete. A second call with the same
config loads it; a missing file, a checksum mismatch or an unreadable file is
reported with a warning and the run is recomputed; ``force=True`` recomputes.
Only load runs directories you produced: ``checkpoint.pt`` is a pickle.

Checkpoints and resume
----------------------
At every sweep epoch (and every ``checkpoint_every`` epochs) the model, optimizer,
scheduler, data-order generator, global RNG states and the history so far go to
``checkpoint.pt``. A run that was killed restarts from its last checkpoint and, on
CPU, ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import ncutils
from ncutils import data as data_module
from ncutils.data import Dataset, iterate_minibatches, load_dataset
from ncutils.models import build_model, check_arch_kwargs
from ncutils._checks import resolve_device

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "RESULT_MODULES",
    "SCHEDULES",
    "DivergedError",
    "RunResult",
    "TrainConfig",
    "config_key",
    "evaluate_accuracy",
    "make_loss",
    "resolve_device",
    "run_epoch",
    "train",
]

LOSSES = ("ce", "mse")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("multistep", "onecycle", "constant")
CONV_POLICIES = ("flatten", "avgpool")
RESULT_MODULES = ("__init__", "_checks", "data", "metrics", "models", "probe", "stats", "train")
# One-cycle shape of Parker et al.'s code: start at lr/10, end at lr/(10 * 5e4).
ONECYCLE_DIV_FACTOR = 10.0
ONECYCLE_FINAL_DIV_FACTOR = 5e4
EVAL_BATCH_SIZE = 1024
_NON_RESULT_FIELDS = ("data_dir", "download", "checkpoint_every")
_RESULT_FILES = ("model.pt", "history.csv", "sweeps.csv")


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (hashable, so it keys the results cache).

    Parameters
    ----------
    dataset : str
        A name of :func:`ncutils.data.available_datasets`.
    label_map : str, mapping or None
        Coarse labels to train on (:data:`ncutils.data.LABEL_MAPS` name or a mapping,
        stored as sorted pairs).
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
        Epochs after which to run a layer sweep; 0 is the initialisation.
    conv_policy : {"flatten", "avgpool"}
        How the sweeps reduce conv maps.
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
    conv_policy: str = "flatten"
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
        sweeps = tuple(_canonical(list(self.sweep_epochs), "sweep_epochs"))
        _check(all(_is_int(e) and 0 <= e <= self.epochs for e in sweeps),
               f"sweep_epochs must be integers in 0..epochs={self.epochs}, got {sweeps}")
        _check(len(set(sweeps)) == len(sweeps), f"sweep_epochs has duplicates: {sweeps}")
        put("sweep_epochs", tuple(sorted(sweeps)))

    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the result (all but data_dir, download, checkpoint_every)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)
                if item.name not in _NON_RESULT_FIELDS}


@dataclass
class RunResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    config : TrainConfig
    history : DataFrame
        One row per epoch: ``epoch``, ``loss`` (mean training loss over the epoch's
        batches, in train mode), ``train_acc`` and ``test_acc`` (eval mode, after the
        epoch, whole splits), ``lr`` (learning rate of the epoch's first batch).
    sweeps : DataFrame
        ``epoch`` plus the columns of :func:`ncutils.probe.layer_sweep`, one row per
        (sweep epoch, probe point).
    model : nn.Module
        The trained model, eval mode, on the run's device.
    key : str
    run_dir : Path
    from_cache : bool
    train_seconds : float
        Wall time of the training (of the run that produced the cache entry).
    """

    config: TrainConfig
    history: pd.DataFrame
    sweeps: pd.DataFrame
    model: nn.Module
    key: str
    run_dir: Path
    from_cache: bool = False
    train_seconds: float = field(default=float("nan"))


# ---------------------------------------------------------------------------
# Cache keys.


def _source_hash() -> str:
    digest = hashlib.sha256()
    package_dir = Path(ncutils.__file__).parent
    for module in RESULT_MODULES:
        path = package_dir / f"{module}.py"
        digest.update(module.encode())
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()


def _key_payload(config: TrainConfig) -> dict[str, Any]:
    fields = config.result_fields()
    fields["device"] = resolve_device(config.device).type
    return {
        "config": fields,
        "ncutils_version": ncutils.__version__,
        "torch_version": torch.__version__,
        "source_sha256": _source_hash(),
    }


def config_key(config: TrainConfig) -> str:
    """Cache key of a run: sha256 (16 hex digits) of its result fields, versions and source.

    Examples
    --------
    >>> config_key(TrainConfig(epochs=2)) == config_key(TrainConfig(epochs=2, data_dir="x"))
    True
    """
    payload = json.dumps(_key_payload(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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
) -> float:
    """One epoch of minibatch training on data already on the model's device.

    The batches are index tensors (:func:`ncutils.data.iterate_minibatches`); the
    loss is accumulated on the device and read once, at the end.

    Returns
    -------
    float
        Mean training loss over the epoch's samples.
    """
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for batch in iterate_minibatches(labels.shape[0], batch_size, shuffle=True,
                                     generator=generator, device=inputs.device):
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


# ---------------------------------------------------------------------------
# Files: atomic writes, checksums, the cache entry, checkpoints.


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def _write_table(table: pd.DataFrame, path: Path) -> None:
    # Python's shortest repr round-trips float64 exactly with float_precision="round_trip".
    _atomic_write(path, lambda target: table.to_csv(target, index=False))


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def _build(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int,
           device: torch.device) -> nn.Module:
    return build_model(config.arch, input_shape=input_shape, num_classes=num_classes,
                       **dict(config.arch_kwargs)).to(device)


def _load_cached(run_dir: Path, key: str, config: TrainConfig,
                 device: torch.device) -> RunResult | None:
    """The cached run, or None; a damaged entry is reported and treated as absent."""
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") != key:
            raise ValueError(f"manifest key {manifest.get('key')!r} != {key!r}")
        for name in _RESULT_FILES:
            if not (run_dir / name).exists():
                raise ValueError(f"{name} is missing")
            if _sha256(run_dir / name) != manifest["sha256"][name]:
                raise ValueError(f"{name} does not match its checksum")
        history = _read_table(run_dir / "history.csv")
        sweeps = _read_table(run_dir / "sweeps.csv")
        with torch.random.fork_rng(devices=[]):
            model = _build(config, tuple(manifest["input_shape"]), manifest["num_classes"], device)
        model.load_state_dict(torch.load(run_dir / "model.pt", map_location=device,
                                         weights_only=True))
    except Exception as error:  # any damage: unreadable JSON, CSV, tensors, shapes
        warnings.warn(f"cached run {run_dir} is corrupted ({type(error).__name__}: {error}); "
                      f"recomputing it", RuntimeWarning, stacklevel=3)
        return None
    model.eval()
    return RunResult(config, history, sweeps, model, key, run_dir, from_cache=True,
                     train_seconds=float(manifest.get("train_seconds", float("nan"))))


def _store(run_dir: Path, key: str, config: TrainConfig, model: nn.Module,
           history: pd.DataFrame, sweeps: pd.DataFrame, train_data: Dataset,
           train_seconds: float) -> None:
    _atomic_write(run_dir / "model.pt", lambda target: torch.save(model.state_dict(), target))
    _write_table(history, run_dir / "history.csv")
    _write_table(sweeps, run_dir / "sweeps.csv")
    manifest = {
        "key": key,
        **_key_payload(config),
        "input_shape": list(train_data.input_shape),
        "num_classes": train_data.num_classes,
        "classes": train_data.classes,
        "source": train_data.source,
        "train_seconds": train_seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sha256": {name: _sha256(run_dir / name) for name in _RESULT_FILES},
    }
    _atomic_write(run_dir / "manifest.json",
                  lambda target: target.write_text(json.dumps(manifest, indent=2, default=str)))


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
    if config.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(config.milestones), gamma=config.lr_decay), None
    if config.schedule == "onecycle":
        return None, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
            div_factor=ONECYCLE_DIV_FACTOR, final_div_factor=ONECYCLE_FINAL_DIV_FACTOR,
            cycle_momentum=False)
    return None, None


def _sweep(model: nn.Module, train_data: Dataset, test_data: Dataset, epoch: int,
           config: TrainConfig) -> pd.DataFrame:
    from ncutils.probe import layer_sweep

    table = layer_sweep(model, train_data.inputs, train_data.labels,
                        test_inputs=test_data.inputs, test_labels=test_data.labels,
                        conv_policy=config.conv_policy, progress=False)
    table.insert(0, "epoch", epoch)
    return table


def _default_runs_dir() -> Path:
    return Path(os.environ.get("NCUTILS_RUNS_DIR", "runs"))


def train(
    config: TrainConfig,
    *,
    runs_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> RunResult:
    """Train (or load from the cache) the run described by ``config``.

    Parameters
    ----------
    config : TrainConfig
    runs_dir : path, optional
        Root of the results cache (default ``$NCUTILS_RUNS_DIR`` or ``./runs``).
    force : bool
        Discard any cached result or checkpoint of this config and train from scratch.
    progress : bool
        Show a tqdm bar over the epochs.
    callback : callable, optional
        Called as ``callback(epoch, history_row)`` after each epoch (after its sweep
        and checkpoint). An exception it raises stops the run, which a later call
        resumes from its last checkpoint.

    Returns
    -------
    RunResult

    Raises
    ------
    DivergedError
        The mean training loss of an epoch is NaN or infinite (the message names the
        epoch and the config).

    Examples
    --------
    >>> config = TrainConfig(dataset="gaussian", arch="mlp", arch_kwargs={"depth": 3, "width": 32},
    ...                      epochs=2, sweep_epochs=(2,), device="cpu")
    >>> result = train(config, runs_dir="/tmp/ncutils-doc-runs", progress=False)  # doctest: +SKIP
    >>> result.history.columns.tolist()  # doctest: +SKIP
    ['epoch', 'loss', 'train_acc', 'test_acc', 'lr']
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = resolve_device(config.device)
    key = config_key(config)
    run_dir = (Path(runs_dir) if runs_dir is not None else _default_runs_dir()) / key
    checkpoint_path = run_dir / "checkpoint.pt"
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    cached = _load_cached(run_dir, key, config, device)
    if cached is not None:
        return cached
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").unlink(missing_ok=True)

    loading = dict(data_dir=config.data_dir, download=config.download, label_map=config.label_map
                   if not isinstance(config.label_map, tuple) else dict(config.label_map),
                   seed=config.data_seed, device=device, **dict(config.dataset_kwargs))
    train_data = load_dataset(config.dataset, "train", limit=config.limit_train, **loading)
    test_data = load_dataset(config.dataset, "test", limit=config.limit_test, **loading)
    steps_per_epoch = -(-len(train_data) // config.batch_size)
    loss_fn = make_loss(config.loss, train_data.num_classes)

    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        model = _build(config, train_data.input_shape, train_data.num_classes, device)
        optimizer = _make_optimizer(config, model)
        epoch_scheduler, batch_scheduler = _make_scheduler(config, optimizer, steps_per_epoch)
        generator = torch.Generator().manual_seed(config.seed)
        history: list[dict[str, float]] = []
        sweeps: list[pd.DataFrame] = []
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
            history = checkpoint["history"]
            sweeps = checkpoint["sweeps"]
            start_epoch, elapsed = checkpoint["epoch"] + 1, checkpoint["elapsed"]
        elif 0 in config.sweep_epochs:
            sweeps.append(_sweep(model, train_data, test_data, 0, config))

        started = time.perf_counter() - elapsed
        bar = tqdm(range(start_epoch, config.epochs + 1), disable=not progress,
                   desc=f"{config.dataset}/{config.arch} {key}", initial=start_epoch - 1,
                   total=config.epochs, unit="epoch")
        for epoch in bar:
            learning_rate = optimizer.param_groups[0]["lr"]
            loss = run_epoch(model, train_data.inputs, train_data.labels, loss_fn=loss_fn,
                             optimizer=optimizer, batch_size=config.batch_size,
                             generator=generator, batch_scheduler=batch_scheduler)
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
            if epoch_scheduler is not None:
                epoch_scheduler.step()
            history.append(row)
            bar.set_postfix(loss=f"{loss:.4g}", train=f"{row['train_acc']:.3f}",
                            test=f"{row['test_acc']:.3f}")
            if epoch in config.sweep_epochs:
                sweeps.append(_sweep(model, train_data, test_data, epoch, config))
            if epoch < config.epochs and (epoch in config.sweep_epochs or (
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
                    "sweeps": sweeps,
                })
            if callback is not None:
                callback(epoch, dict(row))
        bar.close()
        train_seconds = time.perf_counter() - started

    sweeps_table = (pd.concat(sweeps, ignore_index=True) if sweeps
                    else pd.DataFrame({"epoch": pd.Series(dtype="int64")}))
    _store(run_dir, key, config, model, pd.DataFrame(history), sweeps_table, train_data,
           train_seconds)
    checkpoint_path.unlink(missing_ok=True)
    result = _load_cached(run_dir, key, config, device)
    if result is None:
        raise RuntimeError(f"the run just stored in {run_dir} could not be read back")
    result.from_cache = False
    return result


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic_write(path, lambda target: torch.save(state, target))


def _load_checkpoint(path: Path, key: str, device: torch.device) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        # The checkpoint holds Python objects (history rows, generator states): a pickle
        # this process wrote itself, hence weights_only=False.
        checkpoint = torch.load(path, map_location=device, weights_only=False)
        if checkpoint.get("key") != key:
            raise ValueError(f"checkpoint key {checkpoint.get('key')!r} != {key!r}")
    except Exception as error:
        warnings.warn(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); "
                      f"training from scratch", RuntimeWarning, stacklevel=3)
        return None
    # RNG states must stay on the CPU whatever map_location did.
    checkpoint["rng"] = {name: (state.cpu() if isinstance(state, torch.Tensor)
                                else [s.cpu() for s in state])
                         for name, state in checkpoint["rng"].items()}
    return checkpoint
