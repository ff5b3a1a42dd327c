"""The Yang chapter (Y1-Y2), declared once: its parameters, its runs, its findings and budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.chapter import Budget, Chapter, Finding
from ncutils.papers.yang.configs import PER_DATASET_PARAMETERS, validate_parameters, y1_grid, y2_grid
from ncutils.train import TrainConfig

__all__ = ["CHAPTER", "scale"]

PAPER = "yang2023"


def _runs(parameters: Mapping[str, Any]) -> list[TrainConfig]:
    # every entry carries its own seed (coarse, reference and shuffled runs differ)
    return y1_grid(parameters).configs() + y2_grid(parameters).configs()


def scale(parameters: Mapping[str, Any]) -> str:
    """What the chapter trains at these parameters, in one line.

    Examples
    --------
    >>> scale(CHAPTER.defaults)
    'MLP 6 x 256 on digits, mnist5k (classes merged in pairs); 30-60 epochs; 1 x 1 (lr x weight decay); 2 seeds; Y2: a 32-dimensional Gaussian mixture'
    """
    kwargs = parameters["arch_kwargs"] or {}
    size = f" {kwargs['depth']} x {kwargs['width']}" if "depth" in kwargs and "width" in kwargs else ""
    architecture = {"mlp": "MLP", "resnet18": "ResNet-18"}.get(parameters["architecture"], parameters["architecture"])
    epochs = parameters["epochs"]
    counts = sorted(set(epochs.values())) if isinstance(epochs, Mapping) else [epochs]
    epoch_text = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    seeds = len(parameters["seeds"])
    return (f"{architecture}{size} on {', '.join(parameters['datasets'])} (classes merged in pairs); "
            f"{epoch_text} epochs; {len(parameters['lrs'])} x {len(parameters['weight_decays'])} "
            f"(lr x weight decay); {seeds} seed{'s' if seeds != 1 else ''}; "
            f"Y2: a {parameters['y2_data']['dim']}-dimensional Gaussian mixture")


CHAPTER = Chapter(
    stem="yang_fine_structure",
    title="Y1–Y2 · Does fine-grained structure survive collapse?",
    defaults={
        "datasets": ["digits", "mnist5k"], "pairings": ["mod5"], "architecture": "mlp",
        "arch_kwargs": {"depth": 6, "width": 256}, "epochs": {"digits": 60, "mnist5k": 30},
        "lrs": [0.05], "weight_decays": [0.0005], "batch_size": 64, "seeds": [0, 1], "reference_seeds": [0],
        "shuffled_seeds": [0], "series_points": 5, "limit_train": None, "limit_test": None,
        "y2_separations": [0.0, 1.0, 2.0, 4.0], "y2_separated": [4.0], "y2_unseparated": [0.0],
        "y2_epochs": [5, 20, 100], "y2_seeds": [0, 1],
        "y2_data": {"dim": 32, "n_per_class": 100, "separation": 4.0, "noise": 1.0},
        "y2_arch_kwargs": {"depth": 4, "width": 64}, "y2_lr": 0.05, "y2_weight_decay": 0.0005,
        "y2_batch_size": 32, "kmeans_restarts": 10, "permutations": 200, "device": "auto",
        "data_dir": None, "download": False,
    },
    findings=(
        Finding("Y1", PAPER, "A network trained on coarse labels still encodes the fine labels: clustering its "
                             "features recovers them (93% CIFAR-10 test accuracy)."),
        Finding("Y2", PAPER, "Fine labels are recoverable from coarse-label features in a simplified synthetic "
                             "setting."),
    ),
    budget=Budget("Yang Y1-Y2", 120.0),
    validate=validate_parameters,
    per_dataset=PER_DATASET_PARAMETERS,
    trains=_runs,
    datasets=lambda parameters: list(parameters["datasets"]),
    scale=scale,
    paper_setting="ResNet-18 on CIFAR-10 with classes merged in pairs, 350 epochs, a grid of learning rates "
                  "and weight decays",
)
