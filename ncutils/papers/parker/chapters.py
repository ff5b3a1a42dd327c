"""The four Parker chapters (P1-P4), declared once: one shared grid, one budget, four findings.

The chapters train the same networks (:data:`GRID_DEFAULTS`, :func:`architecture_grid`): P2-P4
load P1's runs from the results store. P1 adds the MLP activation sweep, P4 the number of
datasets its ranking needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.chapter import Budget, Chapter, Criterion, Finding
from ncutils.papers.parker.configs import (
    PER_DATASET_PARAMETERS,
    activation_grid,
    architecture_grid,
    validate_parameters,
)
from ncutils.train import TrainConfig

__all__ = ["BUDGET", "GRID_DEFAULTS", "P1", "P2", "P3", "P4", "PAPER_SETTING", "SEEN_2026_12_06", "scale"]


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


#: What had been seen when the amendments of 2026-12-06 were written: the cpu verdicts of the
#: book at commit 37a9a01 and a review's numbers of these runs (quoted in each reason).
SEEN_2026_12_06 = ("the cpu verdicts of the book at commit 37a9a01 and a review's numbers of the same runs "
                   "(quoted in the reason) had been seen; no result of the amended criterion had been computed")

_ELIGIBLE = {"min_train_acc": 0.99}  # a run counts only at >= 99% train accuracy at its last epoch

P1 = _chapter(
    "parker_p1_depth", "P1 · Collapse grows with depth",
    Finding("P1", PAPER, "NC emerges in most hidden layers and its degree grows with depth.", criteria=(
        Criterion("2026-11-22",
                  "in every eligible run (train accuracy >= {min_train_acc:.0%}), Spearman(depth, log NC1) over the "
                  "hidden layers <= {max_spearman} and NC1(last hidden) <= NC1(first hidden) / {min_reduction:g}",
                  {**_ELIGIBLE, "max_spearman": -0.7, "min_reduction": 10.0}),
        Criterion("2026-12-01",
                  "Spearman(depth, log NC1) over the hidden layers <= {max_spearman} and NC1(last) <= NC1(first) / "
                  "{min_reduction:g}, not met by the same network at initialisation, in >= 2/3 of >= 2 eligible runs "
                  "over every seed",
                  {**_ELIGIBLE, "max_spearman": -0.7, "min_reduction": 10.0},
                  reason="one seed is no verdict and a criterion is a test only if its null (the untrained network) "
                         "fails it; the claim is about most layers, not every network",
                  seen="no result of the amended criterion had been computed"),
    )),
    # the MLP activation sweep; on cpu on the cheapest dataset only
    {"activations": ["relu", "leaky_relu", "tanh", "sigmoid", "silu"], "activation_dataset": "digits"},
    trains=_p1_runs)
P2 = _chapter(
    "parker_p2_variance", "P2 · Within-class variability falls in the shallow layers",
    Finding("P2", PAPER, "Almost all of the reduction of within-class variance happens in the shallow layers.", criteria=(
        Criterion("2026-11-22",
                  "in every eligible run, {min_fraction:g} of the log drop of tr Sigma_W / tr Sigma_T from the input "
                  "to the last hidden layer is reached by hidden layer ceil(L/2)",
                  {**_ELIGIBLE, "min_fraction": 0.5}),
        Criterion("2026-12-01",
                  "along the hidden layers, the share of the log drop of NC1 reached at {position:.3g} of them is >= "
                  "{min_share:g} and exceeds a uniform decline's by >= {min_excess:g}, in >= 2/3 of >= 2 eligible runs",
                  {**_ELIGIBLE, "position": 1 / 3, "min_share": 0.8, "min_excess": 0.3},
                  reason="a uniform decline already passes the original at L = 5, 6 and 10 while the paper claims "
                         "almost all of the reduction happens in the shallow layers; the paper's code measures the "
                         "hidden layers only; one seed is no verdict",
                  seen="no result of the amended criterion had been computed"),
        Criterion("2026-12-06",
                  "the share of the log drop of NC1 reached at {position:.3g} of the hidden layers is >= {min_share:g} "
                  "and exceeds a uniform decline's by >= {min_excess:g}, and NC1 falls at least {min_drop_factor:g}x "
                  "from the first to the last hidden layer; the same network at initialisation must not meet these "
                  "conditions; in >= 2/3 of >= 2 eligible runs",
                  {**_ELIGIBLE, "position": 1 / 3, "min_share": 0.8, "min_excess": 0.3, "min_drop_factor": 10.0},
                  reason="the criterion of 2026-12-01 had no guard: a share is a ratio to the total fall, and where "
                         "NC1 hardly falls (the untrained MLP on mnist1d, seed 0: share 2.25, NC1 falling and rising "
                         "again) it reads any wiggle as 'almost all of the fall'; a fall of less than 10x is no "
                         "reduction to place, and a share the untrained network also reaches is no evidence of learning",
                  seen=SEEN_2026_12_06),
    )))
P3 = _chapter(
    "parker_p3_angles", "P3 · Class means spread apart with depth",
    Finding("P3", PAPER, "The angular separation between class means increases with depth.", criteria=(
        Criterion("2026-11-22",
                  "in every eligible run, Spearman(depth, mean pairwise angle of the centred class means) >= "
                  "{min_spearman} and the last hidden layer within {max_gap_degrees:g} degrees of arccos(-1/(C-1))",
                  {**_ELIGIBLE, "min_spearman": 0.7, "max_gap_degrees": 5.0}),
        Criterion("2026-12-01",
                  "coherence (mean |cos + 1/(C-1)|, the paper's equiangularity) falls with depth (Spearman <= "
                  "{max_spearman}) to at most {max_ratio:g} of its first-hidden-layer value, while the untrained "
                  "network does not, in >= 2/3 of >= 2 eligible runs",
                  {**_ELIGIBLE, "max_spearman": -0.7, "max_ratio": 0.5},
                  reason="centred means sum to zero, so their mean angle sits at the simplex value whatever the "
                         "network does (raw pixels 96.35, noise 96.38, simplex 96.38 degrees): the original cannot "
                         "fail; one seed is no verdict",
                  seen="no result of the amended criterion had been computed"),
        Criterion("2026-12-06",
                  "the same per-run conditions (Spearman(depth, coherence) <= {max_spearman}, coherence(last) / "
                  "coherence(first) <= {max_ratio:g}, not met at initialisation) in every one of >= {min_runs} "
                  "eligible runs: the claim says the separation increases 'consistently' with depth",
                  {**_ELIGIBLE, "max_spearman": -0.7, "max_ratio": 0.5, "min_runs": 2},
                  reason="the book's rule for several runs, written before any result, asks every run to pass where "
                         "the paper says 'every' or 'consistently', and the abstract says the angular separation "
                         "'increases consistently with hidden layer depth'; the criterion of 2026-12-01 used the "
                         "2/3 rule instead. The reading that 'consistently' speaks of the layers of one network, "
                         "not of networks, is shown beside it",
                  seen=SEEN_2026_12_06 + " (7 of 10 runs pass the per-run conditions)"),
    )))
P4 = _chapter(
    "parker_p4_difficulty", "P4 · Harder datasets need deeper layers",
    Finding("P4", PAPER, "Simple datasets need only the shallow layers; hard ones use the whole network.", criteria=(
        Criterion("2026-11-22",
                  "for every architecture with >= {min_datasets} eligible datasets, Spearman(difficulty, "
                  "depth-needed) >= {min_spearman}, depth-needed being the first probe point whose NCC train "
                  "accuracy reaches {ncc_fraction:.0%} of the last hidden layer's (a tie rule was added after the results)",
                  {**_ELIGIBLE, "ncc_fraction": 0.99, "min_spearman": 0.7, "min_datasets": 3}),
        Criterion("2026-12-01",
                  "per architecture and seed: >= min_datasets datasets of distinct difficulty (4 on gpu/paper, 3 on "
                  "cpu), Spearman(difficulty, depth-needed) >= {min_spearman}, hardest dataset's depth-needed >= "
                  "{min_hardest_depth:g}; >= 2/3 of >= 2 evaluable pairs pass",
                  {**_ELIGIBLE, "ncc_fraction": 0.99, "min_spearman": 0.7, "min_hardest_depth": 0.8},
                  reason="the tie rule was written after the results; the hardest dataset needed half of the network, "
                         "not the whole of it as the claim says; one seed is no verdict",
                  seen="no result of the amended criterion had been computed"),
    )),
    {"min_datasets": 3})
