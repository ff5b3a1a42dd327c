"""Rangamani et al. (2023): the official code's settings, the chapter's grid and its parameter checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from ncutils.grid_spec import Grid, GridEntry
from ncutils.papers._validation import error_text, grouped_failures, seed_problems
from ncutils.train import TrainConfig

__all__ = ["CHECKPOINT_EPOCHS", "PAPER_ARCHITECTURES", "PAPER_TRAINING", "RESNET_LR", "chapter_grid", "checkpoint_epochs", "decay_milestones", "rangamani_config", "validate_parameters"]

#: Epochs whose weights the official code logs (``log-epochs`` of matrix_customnets.yaml).
CHECKPOINT_EPOCHS: tuple[int, ...] = (0, 1, 2, 3, 5, 10, 20, 40, 60, 80, 100, 125, 150, 175,
                                      200, 225, 250, 275, 300, 325, 350)

#: Optimisation shared by every run of the official grids.
PAPER_TRAINING: dict[str, Any] = {
    "loss": "mse", "optimizer": "sgd", "momentum": 0.9, "batch_size": 128, "epochs": 350,
    "warmup_epochs": 1, "schedule": "multistep",
}

#: The custom nets of ``config/matrix/matrix_customnets.yaml``: architecture, its keyword
#: arguments and optimiser settings (lr decay 0.1 in 3 steps: epochs 116 and 233 of 350).
PAPER_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "mlp_large": {"arch": "rangamani_mlp", "arch_kwargs": {"depth": 10, "width": 1024},
                  "lr": 0.01, "weight_decay": 5e-4, "lr_decay": 0.1, "decay_steps": 3},
    "convnet_deep": {"arch": "rangamani_convnet", "arch_kwargs": {"depth": 20, "width": 128},
                     "lr": 0.01, "weight_decay": 2e-3, "lr_decay": 0.1, "decay_steps": 3},
}

#: ResNet-18 learning rates of the "papyan" MSE grid (weight decay 5e-4, decay 0.1 in 2 steps).
RESNET_LR: dict[str, float] = {"mnist": 0.018420157, "fashionmnist": 0.094015077}


def decay_milestones(epochs: int, steps: int) -> tuple[int, ...]:
    """The official ``[i * epochs // steps for i in 1 .. steps - 1]`` (epochs >= 1 kept).

    Examples
    --------
    >>> decay_milestones(350, 3), decay_milestones(350, 2)
    ((116, 233), (175,))
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return tuple(sorted({i * epochs // steps for i in range(1, steps)} - {0}))


def checkpoint_epochs(epochs: int) -> tuple[int, ...]:
    """:data:`CHECKPOINT_EPOCHS` up to ``epochs``, plus ``epochs`` itself.

    Examples
    --------
    >>> checkpoint_epochs(30)
    (0, 1, 2, 3, 5, 10, 20, 30)
    """
    return tuple(sorted({e for e in CHECKPOINT_EPOCHS if e <= epochs} | {epochs}))


def rangamani_config(architecture: Mapping[str, Any], dataset: str, *, epochs: int,
                     batch_size: int = 128, warmup_epochs: int = 1, seed: int = 0,
                     device: str = "auto", limit_train: int | None = None,
                     limit_test: int | None = None, data_dir: str | None = None,
                     download: bool = False) -> TrainConfig:
    """One run: ``architecture`` holds ``arch``, ``arch_kwargs``, ``lr``, ``weight_decay``,
    ``lr_decay`` and ``decay_steps`` (as :data:`PAPER_ARCHITECTURES`); MSE, SGD 0.9, the
    official milestones for ``epochs`` and sweeps at :func:`checkpoint_epochs`."""
    missing = {"arch", "lr", "weight_decay", "lr_decay", "decay_steps"} - set(architecture)
    if missing:
        raise ValueError(f"architecture settings miss {sorted(missing)}: {dict(architecture)}")
    return TrainConfig(
        dataset=dataset, arch=architecture["arch"], arch_kwargs=dict(architecture.get("arch_kwargs", {})),
        loss="mse", optimizer="sgd", momentum=0.9, lr=float(architecture["lr"]),
        weight_decay=float(architecture["weight_decay"]), schedule="multistep",
        milestones=decay_milestones(epochs, int(architecture["decay_steps"])),
        lr_decay=float(architecture["lr_decay"]), epochs=epochs, batch_size=batch_size,
        warmup_epochs=warmup_epochs, seed=seed, device=device,
        sweep_epochs=checkpoint_epochs(epochs), limit_train=limit_train, limit_test=limit_test,
        data_dir=data_dir, download=download)


def chapter_grid(parameters: Mapping[str, Any], epochs: int | None = None) -> Grid:
    """The chapter's runs, labelled ``architecture`` (a key of ``parameters["architectures"]``)
    and ``dataset``; each architecture entry lists its ``datasets`` and settings, and may set
    its own ``epochs`` (else ``parameters["epochs"]``). ``epochs`` given: every run trains that
    long (a rung of ``parameters["ladder_epochs"]``), the schedule's shape unchanged."""
    entries = []
    length = epochs
    for name, settings in parameters["architectures"].items():
        epochs = int(length if length is not None else settings.get("epochs", parameters["epochs"]))
        for dataset in settings["datasets"]:
            lr = settings["lr"]
            if isinstance(lr, Mapping):  # per dataset (the ResNet grid)
                lr = lr[dataset]
            config = rangamani_config(
                {**settings, "lr": lr}, dataset, epochs=epochs,
                batch_size=int(settings.get("batch_size", parameters["batch_size"])),
                warmup_epochs=int(parameters["warmup_epochs"]), device=parameters["device"],
                limit_train=parameters.get("limit_train"), limit_test=parameters.get("limit_test"),
                data_dir=parameters.get("data_dir"), download=bool(parameters.get("download", False)))
            entries.append(GridEntry({"architecture": name, "dataset": dataset}, config))
    return Grid(tuple(entries))


def validate_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with the chapter's parameters, before anything is trained or loaded.

    Builds the :class:`~ncutils.train.TrainConfig` of every run of :func:`chapter_grid`
    (known architectures and datasets, ``lr > 0``, integer epochs and batch sizes, ...) and
    checks the seeds, reporting each problem with the message the notebook would raise.

    Examples
    --------
    >>> net = {"arch": "rangamani_mlp", "arch_kwargs": {"depth": 3, "width": 8}, "datasets": ["digits"],
    ...        "lr": 0.1, "weight_decay": 5e-4, "lr_decay": 0.1, "decay_steps": 3}
    >>> base = {"architectures": {"mlp": net}, "epochs": 3, "batch_size": 32, "warmup_epochs": 1,
    ...         "seeds": [0], "device": "cpu"}
    >>> validate_parameters(base)
    []
    >>> validate_parameters({**base, "architectures": {"mlp": {**net, "lr": {"mnist": 0.1}}}})
    ["mlp: lr has no entry for dataset 'digits'; it has ['mnist']"]
    """
    problems: list[str] = []
    failures: list[tuple[str, str]] = []
    architectures = parameters.get("architectures")
    if not isinstance(architectures, Mapping) or not architectures:
        return ["parameters['architectures'] must map at least one network to its settings"]
    problems += seed_problems(parameters.get("seeds"))
    ladder = parameters.get("ladder_epochs", [])
    if not isinstance(ladder, (list, tuple)) or any(isinstance(e, bool) or not isinstance(e, int) or e < 1
                                                   for e in ladder):
        problems.append(f"ladder_epochs must list positive integers, got {ladder!r}")
    for key in ("epochs", "batch_size", "warmup_epochs", "device"):
        if key not in parameters:
            problems.append(f"parameters lack [{key!r}]")
    if problems:
        return problems
    for name, settings in architectures.items():
        if not isinstance(settings, Mapping):
            problems.append(f"{name}: settings must be a mapping, got {settings!r}")
            continue
        datasets = settings.get("datasets")
        if not isinstance(datasets, (list, tuple)) or not datasets:
            problems.append(f"{name}: datasets must list at least one dataset, got {datasets!r}")
            continue
        for dataset in datasets:
            lr = settings.get("lr")
            if isinstance(lr, Mapping):
                if dataset not in lr:
                    problems.append(f"{name}: lr has no entry for dataset {dataset!r}; it has {sorted(lr)}")
                    continue
                lr = lr[dataset]
            try:
                epochs, batch_size = settings.get("epochs", parameters["epochs"]), settings.get(
                    "batch_size", parameters["batch_size"])
                for label, value in (("epochs", epochs), ("batch_size", batch_size),
                                     ("warmup_epochs", parameters["warmup_epochs"]),
                                     ("decay_steps", settings.get("decay_steps", 1))):
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise ValueError(f"{label} must be an integer, got {value!r}")
                rangamani_config(
                    {**settings, "lr": lr}, dataset, epochs=epochs, batch_size=batch_size,
                    warmup_epochs=parameters["warmup_epochs"], device=parameters["device"],
                    limit_train=parameters.get("limit_train"), limit_test=parameters.get("limit_test"),
                    data_dir=parameters.get("data_dir"), download=bool(parameters.get("download", False)))
            except (KeyError, ValueError, TypeError) as error:
                failures.append((f"{name} on {dataset}", error_text(error)))
    return list(dict.fromkeys(problems + grouped_failures(failures)))
