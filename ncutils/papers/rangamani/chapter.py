"""Rangamani et al. (2023): the chapter's declaration (parameters, runs, findings and their criteria, budget, scale)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from ncutils.chapter import Budget, Chapter, Criterion, Finding
from ncutils.train import TrainConfig
from ncutils.papers.rangamani.configs import chapter_grid, validate_parameters

__all__ = ["CHAPTER", "R1_CRITERIA", "R2_CRITERIA", "chapter_runs", "scale", "training_lengths"]

# ----------------------------------------------------------------------------- the chapter
def scale(parameters: Mapping[str, Any]) -> str:
    """What the chapter trains at these parameters, in one line.

    Examples
    --------
    >>> scale(CHAPTER.defaults)
    'MLP 8 x 128 on digits, ConvNet 8 x 32 on digits; 150 epochs (and 30 shown beside); 2 seeds'
    """
    names = {"rangamani_mlp": "MLP", "rangamani_convnet": "ConvNet", "resnet18": "ResNet-18"}
    parts = []
    for spec in parameters["architectures"].values():
        kwargs = spec.get("arch_kwargs") or {}
        size = f" {kwargs['depth']} x {kwargs['width']}" if "depth" in kwargs and "width" in kwargs else ""
        parts.append(f"{names.get(spec['arch'], spec['arch'])}{size} on {', '.join(spec['datasets'])}")
    seeds = len(parameters["seeds"])
    subset = f" ({parameters['limit_train']} training samples)" if parameters.get("limit_train") else ""
    ladder = [int(e) for e in parameters.get("ladder_epochs", []) if int(e) != int(parameters["epochs"])]
    rungs = f" (and {', '.join(map(str, ladder))} shown beside)" if ladder else ""
    return (f"{', '.join(parts)}{subset}; {parameters['epochs']} epochs{rungs}; "
            f"{seeds} seed{'s' if seeds != 1 else ''}")


def training_lengths(parameters: Mapping[str, Any]) -> list[int]:
    """Every training length the chapter runs, shortest first: ``ladder_epochs`` and ``epochs``
    (the verdict's length; ``None`` stands for the per-architecture ``epochs``)."""
    return sorted({int(e) for e in parameters.get("ladder_epochs", [])} - {int(parameters["epochs"])}) + [None]


def chapter_runs(parameters: Mapping[str, Any]) -> list[TrainConfig]:
    """Every run the chapter trains: :func:`chapter_grid` at each of :func:`training_lengths`,
    once per seed."""
    return [config for epochs in training_lengths(parameters)
            for config in chapter_grid(parameters, epochs).configs(parameters.get("seeds"))]


_SEEN = ("the cpu verdicts at 30 epochs (R1 inconclusive, 2 of 4 runs: Spearman -0.98 to -0.95, untrained +0.98 "
         "to +1.00, falls 4.21x, 3.23x, 15.8x, 11.7x; R2 not reproduced, 0 of 3: min alignment 0.508, 0.465, "
         "0.484) and a review's numbers at 150 and 350 epochs (MLP falls 12.4x and 8.6x, ConvNet 42x at 150, "
         "MLP 31.6x at 350; MLP classifier alignment 0.51 / 0.60 / 0.73 at 30 / 150 / 350 epochs, random 0.24, "
         "initialisation 0.22)")

#: R1's criteria: as first registered, and as amended (the last decides the verdict).
R1_CRITERIA: tuple[Criterion, ...] = (
    Criterion("2026-12-01",
              "per eligible run (train accuracy >= {min_train_acc:.0%}): Spearman(layer, log tr S_W/(tr S_W + tr S_B)) "
              "<= {max_spearman} at the last epoch over every probe point, and a fall >= {min_factor:g}x of that "
              "ratio at the last hidden layer from epoch 0; reproduced when >= 2/3 of >= 2 eligible runs pass",
              {"min_train_acc": 0.99, "max_spearman": -0.7, "min_factor": 10.0}),
    Criterion("2026-12-06",
              "per eligible run (train accuracy >= {min_train_acc:.0%}): Spearman(layer, log tr S_W/(tr S_W + tr S_B)) "
              "over every probe point <= {max_spearman} at the last epoch, and the same network at initialisation "
              "(epoch 0) fails it (Spearman > {max_spearman}); reproduced when >= 2/3 of >= 2 eligible runs pass. "
              "The fall of that ratio over training at the last hidden layer is reported beside, not judged",
              {"min_train_acc": 0.99, "max_spearman": -0.7},
              reason="The paper's claim is the depth trend in a trained network (\"as we move deeper into a trained "
                     "neural network, the within-class covariance decreases relative to the between-class "
                     "covariance\"); the 10x fall over training at the last hidden layer was this book's addition, "
                     "not the paper's, and the untrained network was not required to fail the depth half. The "
                     "threshold -0.7 is unchanged.",
              seen=_SEEN),
)

#: R2's criteria: as first registered, and as amended (the last decides the verdict).
R2_CRITERIA: tuple[Criterion, ...] = (
    Criterion("2026-12-01",
              "per eligible run, every counted top layer (relative within trace below {top_threshold:g} at the last "
              "epoch): alignment at k = C >= {min_alignment} and >= {min_margin} above both its value at "
              "initialisation and a random matrix's expectation; layers with n <= k or a random k-subspace above "
              "{max_random} left out; reproduced when >= 2/3 of >= 2 evaluable runs pass",
              {"top_threshold": 0.2, "min_alignment": 0.9, "min_margin": 0.2, "max_random": 0.5}),
    Criterion("2026-12-06",
              "as first registered (top layers: relative within trace below {top_threshold:g}; alignment at k = C "
              ">= {min_alignment}, a bar of this book as the paper states none, and >= {min_margin} above its value "
              "at initialisation and a random matrix's expectation; layers with n <= k or a random k-subspace above "
              "{max_random} left out), and: a counted layer whose loss is invariant to the scale of its weight (a "
              "BatchNorm follows it) is left out, as no stationary point with weight decay exists there; every "
              "remaining counted layer must be stationary at the last epoch, ||g + lambda W|| / ||lambda W|| <= "
              "{max_stationarity} (g the gradient of the data loss over the training set at the stored final "
              "weights, lambda the weight decay), else the run is not converged: not evaluable, not a failure; "
              "reproduced when >= 2/3 of >= 2 evaluable runs pass, inconclusive with fewer",
              {"top_threshold": 0.2, "min_alignment": 0.9, "min_margin": 0.2, "max_random": 0.5,
               "max_stationarity": 0.1},
              reason="The alignment argument (W = -g / lambda, whose rows lie in the span of the layer's inputs, "
                     "which collapse onto the class means) holds at a stationary point of training with weight "
                     "decay; the 30-epoch cpu runs are far from one (the sum over steps of learning rate x weight "
                     "decay / (1 - momentum) is about 0.06, "
                     "so most of the initial weight is still there), so a low alignment there does not contradict "
                     "the paper. The alignment thresholds are unchanged.",
              seen=_SEEN),
)

CHAPTER = Chapter(
    stem="rangamani_intermediate",
    title="R1-R2 · Intermediate collapse and weight/class-mean alignment",
    defaults={
        # the paper's networks, narrower and shallower on cpu (gpu/paper: 10 x 1024 MLP, 20 x 128 ConvNet, ResNet-18)
        "architectures": {
            "mlp": {"arch": "rangamani_mlp", "arch_kwargs": {"depth": 8, "width": 128}, "datasets": ["digits"],
                    "lr": 0.05, "weight_decay": 5e-4, "lr_decay": 0.1, "decay_steps": 3, "batch_size": 64},
            "convnet": {"arch": "rangamani_convnet", "arch_kwargs": {"depth": 8, "width": 32}, "datasets": ["digits"],
                        "lr": 0.05, "weight_decay": 5e-4, "lr_decay": 0.1, "decay_steps": 3, "batch_size": 64},
        },
        "epochs": 150,
        # shorter training lengths shown beside the verdict's (same schedule shape), a ladder to extrapolate from
        "ladder_epochs": [30],
        "batch_size": 128,
        "warmup_epochs": 1,
        "seeds": [0, 1],
        "limit_train": None,
        "limit_test": None,
        "device": "auto",
        "data_dir": None,
        "download": False,
    },
    findings=(
        Finding("R1", "rangamani2023", "As we move deeper into a trained network, the within-class covariance "
                                       "decreases relative to the between-class covariance.",
                criteria=R1_CRITERIA),
        Finding("R2", "rangamani2023", "In the top layers the span of the class means aligns with the top "
                                       "singular vectors of the layer's weight matrix.",
                criteria=R2_CRITERIA),
    ),
    budget=Budget("Rangamani R1-R2", 150.0),
    validate=validate_parameters,
    trains=chapter_runs,
    datasets=lambda parameters: list(dict.fromkeys(
        dataset for spec in parameters["architectures"].values() for dataset in spec["datasets"])),
    scale=scale,
    paper_setting=("MLP 10 x 1024, ConvNet 20 x 128 and ResNet-18 on MNIST, FashionMNIST, CIFAR-10 and SVHN; "
                   "350 epochs of SGD with weight decay, MSE loss"),
)
