"""The four Parker chapters (P1-P4), declared once: one shared grid, one budget, four findings.

The chapters train the same networks (:data:`GRID_DEFAULTS`, :func:`architecture_grid`): P2-P4
load P1's runs from the results store. P1 adds the MLP activation sweep, P4 the number of
datasets its ranking needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.chapter import Budget, Chapter, Finding
from ncutils.papers.parker.configs import (
    PER_DATASET_PARAMETERS,
    activation_grid,
    architecture_grid,
    validate_parameters,
)
from ncutils.train import TrainConfig

__all__ = ["BUDGET", "GRID_DEFAULTS", "P1", "P2", "P3", "P4", "PAPER_SETTING", "scale"]


PAPER = "parker2023"

#: What the four chapters train on the cpu profile (the same values in every profile file:
#: chapters that share runs must agree on them).
GRID_DEFAULTS: dict[str, Any] = {
    "datasets": ["digits", "mnist5k", "mnist1d"],
    "architectures": {"mlp": {"depth": 7, "width": 256}, "vgg": {"config": "vgg11", "width": 0.125}},
    "epochs": {"digits": 40, "mnist5k": 30, "mnist1d": 60},
    "loss": "mse",
    "lr": 0.5,
    "batch_size": 128,
    "weight_decay": 0.0,
    "sweep_count": 5,
    "limit_train": None,
    "limit_test": None,
    "seeds": [0, 1],
    "device": "auto",
    "data_dir": None,
    "download": False,
}

#: The four chapters share one grid, so they share the cpu book's 5 minutes.
BUDGET = Budget("Parker P1-P4", 300.0)

PAPER_SETTING = ("MLP (7 x 4096), VGG11 and ResNet-18 on MNIST, FashionMNIST, CIFAR-10 and SVHN, "
                 "350 epochs, SGD with a one-cycle schedule, MSE loss")


def _architecture_text(name: str, kwargs: Mapping[str, Any]) -> str:
    if name == "mlp":
        return f"MLP {kwargs.get('depth', '?')} x {kwargs.get('width', '?')}"
    if name == "vgg":
        config, width = kwargs.get("config", "vgg"), kwargs.get("width", 1.0)
        label = config.upper() if isinstance(config, str) else "small VGG"
        return label if width == 1.0 else f"{label} (width x{width:g})"
    return name


def scale(parameters: Mapping[str, Any]) -> str:
    """What the Parker grid trains at these parameters, in one line.

    Examples
    --------
    >>> scale(GRID_DEFAULTS)
    'MLP 7 x 256, VGG11 (width x0.125) on digits, mnist5k, mnist1d; 30-60 epochs; 2 seeds'
    """
    architectures = ", ".join(_architecture_text(name, kwargs or {})
                              for name, kwargs in parameters["architectures"].items())
    epochs = parameters["epochs"]
    counts = sorted(set(epochs.values())) if isinstance(epochs, Mapping) else [epochs]
    epoch_text = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    seeds = len(parameters["seeds"])
    subset = f" ({parameters['limit_train']} training samples)" if parameters.get("limit_train") else ""
    return (f"{architectures} on {', '.join(parameters['datasets'])}{subset}; {epoch_text} epochs; "
            f"{seeds} seed{'s' if seeds != 1 else ''}")


def datasets(parameters: Mapping[str, Any]) -> list[str]:
    """The datasets the chapters read: the grid's and the activation sweep's."""
    extra = [parameters["activation_dataset"]] if parameters.get("activation_dataset") else []
    return list(dict.fromkeys([*parameters["datasets"], *extra]))


def _grid_runs(parameters: Mapping[str, Any]) -> list[TrainConfig]:
    return architecture_grid(parameters).configs(parameters.get("seeds"))


def _p1_runs(parameters: Mapping[str, Any]) -> list[TrainConfig]:
    seeds = parameters.get("seeds")
    return architecture_grid(parameters).configs(seeds) + activation_grid(parameters).configs(seeds)


def _chapter(stem: str, title: str, finding: Finding, extra: Mapping[str, Any] | None = None,
             trains: Any = _grid_runs) -> Chapter:
    return Chapter(stem=stem, title=title, defaults={**GRID_DEFAULTS, **(extra or {})}, findings=(finding,),
                   budget=BUDGET, validate=validate_parameters, per_dataset=PER_DATASET_PARAMETERS,
                   trains=trains, datasets=datasets, scale=scale, paper_setting=PAPER_SETTING)


P1 = _chapter(
    "parker_p1_depth", "P1 · Collapse grows with depth",
    Finding("P1", PAPER, "NC emerges in most hidden layers and its degree grows with depth."),
    # the MLP activation sweep; on cpu on the cheapest dataset only
    {"activations": ["relu", "leaky_relu", "tanh", "sigmoid", "silu"], "activation_dataset": "digits"},
    trains=_p1_runs)
P2 = _chapter(
    "parker_p2_variance", "P2 · Within-class variability falls in the shallow layers",
    Finding("P2", PAPER, "Almost all of the reduction of within-class variance happens in the shallow layers."))
P3 = _chapter(
    "parker_p3_angles", "P3 · Class means spread apart with depth",
    Finding("P3", PAPER, "The angular separation between class means increases with depth."))
P4 = _chapter(
    "parker_p4_difficulty", "P4 · Harder datasets need deeper layers",
    Finding("P4", PAPER, "Simple datasets need only the shallow layers; hard ones use the whole network."),
    {"min_datasets": 3})
