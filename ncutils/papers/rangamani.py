"""Rangamani, Lindegaard, Galanti, Poggio (ICML 2023), chapters R1-R2: settings and criteria.

The settings are those of the official code (``mariuslindegaard/Intermediate_Neural_Collapse``,
branch ICML2023; ``papers/NOTES.md`` section 2): MSE on one-hot targets, SGD with momentum
0.9, batch 128, one linear warm-up epoch, multi-step decay at ``i * epochs // steps``,
350 epochs, weights kept at :data:`CHECKPOINT_EPOCHS`; ``mlp_large`` and ``convnet_deep``
(:func:`ncutils.models.build_model` ``"rangamani_mlp"``, ``"rangamani_convnet"``) with lr
0.01 and weight decay 5e-4 / 2e-3, lr decay 0.1 in 3 steps; ResNet-18 with the "papyan"
grid's rates (decay 0.1 in 2 steps).

The criteria are pure functions of layer-sweep tables (:func:`ncutils.sweep.layer_sweep`
columns, one run) and return a dict with ``passed``; :func:`verdict` combines runs by
DESIGN.md 8.3 (:func:`ncutils.verdicts.combine_runs`).

References
----------
Rangamani, Lindegaard, Galanti, Poggio (2023), "Feature Learning in Deep Classifiers through
Intermediate Neural Collapse", ICML, PMLR 202.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncutils import verdicts
from ncutils.chapter import Budget, Chapter, Finding
from ncutils.grid import Grid, GridEntry
from ncutils.papers.parker.criteria import spearman
from ncutils.train import TrainConfig

__all__ = [
    "CHAPTER",
    "CHECKPOINT_EPOCHS",
    "PAPER_ARCHITECTURES",
    "PAPER_TRAINING",
    "RESNET_LR",
    "alignment_exclusions",
    "chapter_grid",
    "chapter_runs",
    "checkpoint_epochs",
    "consumer_input_dims",
    "decay_milestones",
    "depth_trend",
    "nc_layer",
    "r1_run",
    "r2_run",
    "random_subspace_alignment",
    "rangamani_config",
    "scale",
    "training_drop",
    "validate_parameters",
    "verdict",
]

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


def chapter_grid(parameters: Mapping[str, Any]) -> Grid:
    """The chapter's runs, labelled ``architecture`` (a key of ``parameters["architectures"]``)
    and ``dataset``; each architecture entry lists its ``datasets`` and settings, and may set
    its own ``epochs`` (else ``parameters["epochs"]``)."""
    entries = []
    for name, settings in parameters["architectures"].items():
        epochs = int(settings.get("epochs", parameters["epochs"]))
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
    from ncutils.papers._validation import error_text, grouped_failures, seed_problems

    problems: list[str] = []
    failures: list[tuple[str, str]] = []
    architectures = parameters.get("architectures")
    if not isinstance(architectures, Mapping) or not architectures:
        return ["parameters['architectures'] must map at least one network to its settings"]
    problems += seed_problems(parameters.get("seeds"))
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


# --------------------------------------------------------------------------- helpers
def consumer_input_dims(model: nn.Module) -> dict[str, int]:
    """Probe point name -> the dimension of the space the alignment lives in: ``in_features``
    of a Linear consumer, ``in_channels`` of a Conv2d consumer (the official reshape)."""
    modules = dict(model.named_modules())
    dims = {}
    for point in model.probe_points:
        if point.consumer is None:
            continue
        layer = modules[point.consumer]
        dims[point.name] = int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)
    return dims


@functools.lru_cache(maxsize=256)
def random_subspace_alignment(n: int, k: int, *, draws: int = 2000, seed: int = 0) -> float:
    """Expected mean cosine of the principal angles between two independent uniformly
    random k-dimensional subspaces of R^n (Monte Carlo, ``draws`` pairs, fixed seed).

    This is also the expected alignment of a Gaussian random matrix of any shape with
    ``n`` inputs against fixed class means: its top-k singular subspace in R^n is uniformly
    distributed (rotation invariance), so the value depends only on (n, k). 1 when k >= n.
    Memoised: the chapter asks for the same (n, k) for every run and null (seconds each at
    n = 2,048).

    Examples
    --------
    >>> round(random_subspace_alignment(32, 10, draws=500), 2)  # DESIGN 8.6: 0.49
    0.49
    """
    if k < 1 or n < 1:
        raise ValueError(f"n and k must be >= 1, got n={n}, k={k}")
    if k >= n:
        return 1.0
    generator = torch.Generator().manual_seed(seed)
    first = torch.linalg.qr(torch.randn(draws, n, k, generator=generator, dtype=torch.float64))[0]
    second = torch.linalg.qr(torch.randn(draws, n, k, generator=generator, dtype=torch.float64))[0]
    cosines = torch.linalg.svdvals(first.transpose(1, 2) @ second).clamp(max=1.0)
    return float(cosines.mean())


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; it has {list(frame.columns)}")


def _ordered(sweep: pd.DataFrame) -> pd.DataFrame:
    if "epoch" in sweep.columns and sweep["epoch"].nunique() > 1:
        raise ValueError("pass one epoch of one run (several epochs found)")
    return sweep.sort_values("layer").reset_index(drop=True)


def nc_layer(sweep: pd.DataFrame, *, threshold: float = 0.2) -> str | None:
    """The official "NC layer": the first probe point with CDNV below ``threshold``
    (``get_nc_layer``), or None."""
    _require(sweep, ["layer", "name", "cdnv"], "nc_layer")
    rows = _ordered(sweep)
    below = rows.loc[rows["cdnv"] < threshold, "name"]
    return None if below.empty else str(below.iloc[0])


# --------------------------------------------------------------------------- R1
def depth_trend(last: pd.DataFrame, *, metric: str = "relative_within_trace",
                max_spearman: float = -0.7) -> dict[str, Any]:
    """Spearman(layer, log ``metric``) over every probe point (input to penultimate) of
    one run's last-epoch sweep; passes when at most ``max_spearman``."""
    _require(last, ["layer", metric], "depth_trend")
    rows = _ordered(last)
    values = rows[metric].to_numpy(dtype=float)
    if len(values) < 3 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        return {"spearman": math.nan, "passed": False}
    rho = spearman(rows["layer"].to_numpy(dtype=float), np.log(values))
    return {"spearman": rho, "passed": bool(rho <= max_spearman)}


def training_drop(initial: pd.DataFrame, last: pd.DataFrame, *, metric: str = "relative_within_trace",
                  min_factor: float = 10.0) -> dict[str, Any]:
    """At the last hidden layer (the last probe point), ``metric`` at epoch 0 over its value
    at the last epoch; passes when at least ``min_factor``."""
    _require(initial, ["layer", metric], "training_drop")
    _require(last, ["layer", metric], "training_drop")
    before = float(_ordered(initial)[metric].iloc[-1])
    after = float(_ordered(last)[metric].iloc[-1])
    factor = before / after if after > 0 else math.inf
    return {"initial": before, "final": after, "factor": factor,
            "passed": bool(math.isfinite(before) and factor >= min_factor)}


def r1_run(initial: pd.DataFrame, last: pd.DataFrame, *, metric: str = "relative_within_trace",
           max_spearman: float = -0.7, min_factor: float = 10.0) -> dict[str, Any]:
    """R1 for one run: :func:`depth_trend` at the last epoch and :func:`training_drop`."""
    trend = depth_trend(last, metric=metric, max_spearman=max_spearman)
    drop = training_drop(initial, last, metric=metric, min_factor=min_factor)
    return {"spearman": trend["spearman"], "initial": drop["initial"], "final": drop["final"],
            "factor": drop["factor"], "depth_passed": trend["passed"], "drop_passed": drop["passed"],
            "passed": bool(trend["passed"] and drop["passed"])}


# --------------------------------------------------------------------------- R2
def alignment_exclusions(dims: Mapping[str, int], k: int, *, max_random: float = 0.5,
                         draws: int = 2000) -> pd.DataFrame:
    """Per probe point with a consumer: its dimension ``n``, the random-subspace expected
    alignment at ``k`` and why it is left out of R2 (``"trivial: n <= k"``, ``"random
    baseline > max_random"``) or ``""`` when it counts (DESIGN 8.6)."""
    rows = []
    for name, n in dims.items():
        baseline = random_subspace_alignment(n, k, draws=draws)
        reason = ("trivial: n <= k" if n <= k else
                  f"random baseline {baseline:.2f} > {max_random:g}" if baseline > max_random else "")
        rows.append({"name": name, "n": n, "random": baseline, "excluded": reason})
    return pd.DataFrame(rows, columns=["name", "n", "random", "excluded"])


def r2_run(initial: pd.DataFrame, last: pd.DataFrame, dims: Mapping[str, int], *, k: int,
           top_threshold: float = 0.2, min_alignment: float = 0.9, min_margin: float = 0.2,
           max_random: float = 0.5, draws: int = 2000) -> dict[str, Any]:
    """R2 for one run at rank ``k`` (the sweeps' ``alignment`` column must be at that rank).

    Top layers: probe points whose ``relative_within_trace`` at the last epoch is below
    ``top_threshold``. Each top layer that counts (:func:`alignment_exclusions`) must have an
    alignment of at least ``min_alignment`` that exceeds both its value at epoch 0 and the
    random-matrix expectation by at least ``min_margin``. A run with no counted top layer is
    not evaluable (``passed`` None).

    Returns
    -------
    dict
        ``layers`` (a table of the top layers), ``counted``, ``excluded`` (names with reasons),
        ``min_alignment``, ``min_margin_init``, ``min_margin_random``, ``passed``.
    """
    for frame in (initial, last):
        _require(frame, ["layer", "name", "alignment", "relative_within_trace"], "r2_run")
    first, final = _ordered(initial), _ordered(last)
    exclusions = alignment_exclusions(dims, k, max_random=max_random, draws=draws).set_index("name")
    init_alignment = dict(zip(first["name"], first["alignment"]))
    rows = []
    for row in final.itertuples():
        if not row.relative_within_trace < top_threshold or row.name not in exclusions.index:
            continue
        info = exclusions.loc[row.name]
        reason = info["excluded"] or ("" if math.isfinite(row.alignment) else "alignment not defined")
        rows.append({"name": row.name, "relative_within_trace": row.relative_within_trace,
                     "n": int(info["n"]), "alignment": row.alignment,
                     "alignment_init": init_alignment.get(row.name, math.nan),
                     "random": float(info["random"]), "excluded": reason})
    layers = pd.DataFrame(rows, columns=["name", "relative_within_trace", "n", "alignment",
                                         "alignment_init", "random", "excluded"])
    counted = layers[layers["excluded"] == ""].copy()
    counted["passed"] = ((counted["alignment"] >= min_alignment)
                         & (counted["alignment"] - counted["alignment_init"] >= min_margin)
                         & (counted["alignment"] - counted["random"] >= min_margin))
    excluded = [f"{r.name} ({r.excluded})" for r in layers.itertuples() if r.excluded]
    if counted.empty:
        return {"layers": layers, "counted": [], "excluded": excluded, "min_alignment": math.nan,
                "min_margin_init": math.nan, "min_margin_random": math.nan, "passed": None}
    return {
        "layers": layers, "counted": list(counted["name"]), "excluded": excluded,
        "min_alignment": float(counted["alignment"].min()),
        "min_margin_init": float((counted["alignment"] - counted["alignment_init"]).min()),
        "min_margin_random": float((counted["alignment"] - counted["random"]).min()),
        "passed": bool(counted["passed"].all()),
    }


def verdict(passed: Sequence[bool | None], *, reason_none: str = "no run could be evaluated") -> verdicts.Outcome:
    """DESIGN 8.3 over the evaluable runs (``None`` entries are left out): reproduced at
    >= 2/3 of at least 2 runs, not reproduced at <= 1/3, inconclusive otherwise."""
    evaluable = [bool(flag) for flag in passed if flag is not None]
    if not evaluable:
        return verdicts.inconclusive(reason_none, passed_runs=0, eligible_runs=0)
    return verdicts.combine_runs(evaluable)


# ----------------------------------------------------------------------------- the chapter
def scale(parameters: Mapping[str, Any]) -> str:
    """What the chapter trains at these parameters, in one line.

    Examples
    --------
    >>> scale(CHAPTER.defaults)
    'MLP 8 x 128 on digits, ConvNet 8 x 32 on digits; 30 epochs; 2 seeds'
    """
    names = {"rangamani_mlp": "MLP", "rangamani_convnet": "ConvNet", "resnet18": "ResNet-18"}
    parts = []
    for spec in parameters["architectures"].values():
        kwargs = spec.get("arch_kwargs") or {}
        size = f" {kwargs['depth']} x {kwargs['width']}" if "depth" in kwargs and "width" in kwargs else ""
        parts.append(f"{names.get(spec['arch'], spec['arch'])}{size} on {', '.join(spec['datasets'])}")
    seeds = len(parameters["seeds"])
    subset = f" ({parameters['limit_train']} training samples)" if parameters.get("limit_train") else ""
    return f"{', '.join(parts)}{subset}; {parameters['epochs']} epochs; {seeds} seed{'s' if seeds != 1 else ''}"


def chapter_runs(parameters: Mapping[str, Any]) -> list[TrainConfig]:
    """Every run the chapter trains: :func:`chapter_grid` once per seed."""
    return chapter_grid(parameters).configs(parameters.get("seeds"))


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
        "epochs": 30,
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
        Finding("R1", "rangamani2023", "Within-class covariance shrinks relative to between-class covariance "
                                       "with depth and over training."),
        Finding("R2", "rangamani2023", "In the top layers the span of the class means aligns with the top "
                                       "singular vectors of the layer's weight matrix."),
    ),
    budget=Budget("Rangamani R1-R2", 150.0),
    validate=validate_parameters,
    trains=chapter_runs,
    scale=scale,
    paper_setting=("MLP 10 x 1024, ConvNet 20 x 128 and ResNet-18 on MNIST, FashionMNIST, CIFAR-10 and SVHN; "
                   "350 epochs of SGD with weight decay, MSE loss"),
)
