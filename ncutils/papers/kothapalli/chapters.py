"""Kothapalli (2023): the declarations of the K1 and K2 chapters (parameters, runs, findings, budget, scale)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils import store
from ncutils._checks import resolve_device
from ncutils.chapter import Budget, Chapter, Criterion, Finding
from ncutils.models import architecture_version
from ncutils.papers.kothapalli.k1 import k1_configs, k1_datasets, k1_lengths, validate_k1_parameters
from ncutils.papers.kothapalli.k2 import K2_TRIALS, validate_k2_parameters

__all__ = ["BUDGET", "K1", "K1_CRITERION", "K2", "K2_CRITERION", "K2_CRITERION_FIRST", "k1_scale", "k2_fingerprint", "k2_scale"]


# ----------------------------------------------------------------------------- the chapters
#: K1 and K2 share the cpu book's 3 minutes.
BUDGET = Budget("Kothapalli K1-K2", 180.0)

def k1_scale(parameters: Mapping[str, Any]) -> str:
    """What the K1 chapter trains at these parameters, in one line.

    Examples
    --------
    >>> k1_scale(K1.defaults)
    'MLP and small VGG on mnist5k (1000 training samples); 60 epochs, MLP also 350; 1 seed'
    """
    names = {"mlp": "MLP", "cnn": "small VGG", "vgg11": "VGG11", "resnet18": "ResNet-18"}
    resized = parameters.get("network_kwargs") or {}
    networks = " and ".join(names.get(network, network) + (
        f" ({', '.join(f'{key} {value}' for key, value in resized[network].items())})" if resized.get(network) else "")
        for network in parameters["networks"])
    subset = f" ({parameters['limit_train']} training samples)" if parameters.get("limit_train") else ""
    seeds = len(parameters["seeds"])
    longer = sorted({epochs for _, epochs in k1_lengths(parameters)} - {int(parameters["epochs"])})
    also = (f", {' and '.join(names.get(n, n) for n in parameters.get('long_networks', []))} also "
            f"{', '.join(map(str, longer))}") if longer else ""
    return (f"{networks} on {', '.join(k1_datasets(parameters))}{subset}; {parameters['epochs']} epochs{also}; "
            f"{seeds} seed{'s' if seeds != 1 else ''}")

def k2_scale(parameters: Mapping[str, Any]) -> str:
    """What the K2 chapter trains at these parameters, in one line.

    Examples
    --------
    >>> k2_scale(K2.defaults)
    'mlp and cnn on 3 classes of digits; 20 trials x 1500 one-sample SGD steps at 3 label-noise levels'
    """
    return (f"{' and '.join(parameters['networks'])} on {len(parameters['classes'])} classes of "
            f"{parameters['dataset']}; {parameters['trials']} trials x {parameters['iterations']} one-sample SGD "
            f"steps at {len(parameters['label_noise'])} label-noise levels")

#: K2's settings that change what :func:`ncutils.theory.lesde.train_trials` computes; its
#: architectures count by version, its code is :data:`K2_TRIALS`.
_K2_SETTINGS = ("dataset", "classes", "networks", "label_noise", "trials", "iterations", "lr",
                "log_every", "probe_per_class", "seed")

def k2_fingerprint(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What keys the K2 trials in the results store: settings, device type, code and versions."""
    networks = parameters.get("networks") or {}
    supplier = store.DATASET_PACKAGES.get(parameters.get("dataset"))
    # cpu and cuda give different numbers: the device type the trials run on keys them
    device = resolve_device(parameters.get("device", "cpu")).type
    return {"settings": {**{name: parameters.get(name) for name in _K2_SETTINGS}, "device": device},
            "architectures": {name: [spec.get("arch"), architecture_version(spec.get("arch"))]
                              for name, spec in networks.items()},
            "source": K2_TRIALS.source(),
            "packages": {name: store.package_version(name) for name in ("torch", "numpy", supplier) if name}}

_PAPYAN_SETTING = ("VGG11 and ResNet-18 on CIFAR-10 and FashionMNIST, 350 epochs of SGD with "
                   "learning-rate drops at 1/3 and 2/3 (Papyan, Han and Donoho's protocol)")

#: K1's criterion, as pre-registered with the chapter (unchanged).
K1_CRITERION = Criterion(
    "2026-12-01",
    "per eligible run (100% train accuracy): the terminal phase (onset to last epoch) lasts at least "
    "{min_tpt_ratio:g}x the epochs before it; NC1, the ETF error and the self-duality error at the last epoch are "
    "each at most {half:g}x their onset value and fall over the terminal phase (Spearman with the epoch at most "
    "{max_rho:g}); the NCC mismatch at the last epoch is at most {max_mismatch:g}; reproduced when at least 2/3 of "
    "at least 2 eligible runs pass",
    {"half": 0.5, "max_rho": -0.7, "max_mismatch": 0.01, "min_tpt_ratio": 3.0})

K1 = Chapter(
    stem="kothapalli_terminal_phase",
    title="K1 · The terminal phase: NC1–NC4 once training error is zero",
    defaults={"networks": ["mlp", "cnn"], "dataset": "mnist5k", "extra_datasets": [], "epochs": 60,
              "lr": 0.05, "batch_size": 32, "seeds": [0], "limit_train": 1000, "limit_test": 1000,
              # a second training length, the paper's 350 epochs (drops at 116 and 233), for the MLP
              "long_epochs": 350, "long_networks": ["mlp"],
              # per network, settings laid over its architecture (e.g. {vgg11: {width: 0.25}}); None: as declared
              "network_kwargs": None,
              "device": "auto", "data_dir": None, "download": False},
    findings=(Finding("K1", "kothapalli2023", "NC1-NC4 emerge in the terminal phase of training and the "
                                              "classifier becomes the nearest-class-center rule.",
                      criteria=(K1_CRITERION,)),),
    budget=BUDGET,
    validate=validate_k1_parameters,
    trains=k1_configs,
    datasets=k1_datasets,
    scale=k1_scale,
    paper_setting=_PAPYAN_SETTING,
)

#: K2's criterion as first registered (on alpha-hat - beta-hat of training probe samples).
K2_CRITERION_FIRST = Criterion(
    "2026-12-01",
    "per network: the median over trials of alpha-hat - beta-hat (averaged over the second half of training; "
    "class-mean logits of training probe samples grouped by their training labels) has a bootstrap {level:.0%} "
    "interval above {clean_above:g} at p = 0 and reaching {null_at_most:g} or below at p = (K-1)/K; every network",
    {"level": 0.95, "clean_above": 0.0, "null_at_most": 0.0})

#: K2's criterion as amended on 2026-12-06 (decides the verdict).
K2_CRITERION = Criterion(
    "2026-12-06",
    "per network: the median over trials of the rise, from initialisation to the last iteration, of the held-out "
    "class alignment (the cosine between the class-mean logits of validation samples grouped by their true labels, "
    "each row's common shift removed, and the simplex pattern e_c - 1/K: the scale-free share of the symmetric mode "
    "that alpha - beta drives) has a bootstrap {level:.0%} interval above {clean_above:g} at p = 0 and reaching "
    "{null_at_most:g} or below at p = (K-1)/K; every network. The official readout (tail index r-hat of A-hat and "
    "validation accuracy against p) is reported beside it, not tested",
    {"level": 0.95, "clean_above": 0.0, "null_at_most": 0.0},
    reason=("the first criterion reads alpha-hat - beta-hat on training probe samples grouped by their training "
            "labels, which the networks memorise (the probe fit at p = 2/3 is well above the 1/3 of chance), so "
            "p = 2/3 is no null for it; and alpha-hat - beta-hat = K d log|s|/dt is a relative rate blind to scale, "
            "so a near-zero |s| grown by memorised labels reads as fast as a large one. The amended quantity is read "
            "on held-out samples grouped by their true labels, where p = (K-1)/K is a null, and does not depend on "
            "the logits' scale; its thresholds are the first criterion's"),
    seen=("the first criterion's cpu verdict (not reproduced; mlp: clean 1.06e-3, p = 2/3 2.61e-3; cnn: clean "
          "1.49e-3, p = 2/3 2.45e-3) and a review's numbers on the same runs (probe fit at p = 2/3 0.40 after 1,500 "
          "and 0.58 after 10,000 iterations; |s| 0.010 -> 0.081 at p = 2/3 and 0.049 -> 16.5 on clean labels; r-hat "
          "of A-hat 0.64 / 0.69 / 0.82 for the MLP at p = 0, 1/3, 2/3); no value of the amended quantity had been "
          "computed"))

K2 = Chapter(
    stem="kothapalli_lesde",
    title="K2 · The locally elastic SDE: alpha against beta",
    defaults={
        # the simulated phase diagram (library check)
        "grid_alphas": [-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        "grid_betas": [-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        "sim_steps": 200,
        "sim_trials": 5,
        "sim_samples": 20,
        # trained networks (the verdict)
        "dataset": "digits",
        "classes": [0, 1, 2],
        "networks": {"mlp": {"arch": "mlp", "depth": 3, "width": 64},
                     "cnn": {"arch": "vgg", "config": [8, "M", 16, "M"], "fc_widths": [32], "batchnorm": False}},
        "label_noise": [0.0, 0.3333333333333333, 0.6666666666666666],
        "trials": 20,
        "iterations": 1500,
        "lr": 0.01,
        "log_every": 25,
        "probe_per_class": 30,
        "sg_window": 11,
        "seed": 0,
        "data_dir": None,
        "download": False,  # torchvision datasets (gpu, paper: MNIST) are fetched only when True
        "device": "cpu",  # where the trials train ("auto": a GPU when there is one)
    },
    findings=(Finding("K2", "kothapalli2023", "In the locally elastic SDE model features separate and collapse "
                                              "if and only if the same-class effect beats the cross-class effect "
                                              r"($\alpha > \beta$).",
                      criteria=(K2_CRITERION_FIRST, K2_CRITERION)),),
    budget=BUDGET,
    validate=validate_k2_parameters,
    trains_nothing=("K2 trains with ncutils.theory.lesde.train_trials (per-sample SGD over many trials at once), "
                    "not a TrainConfig grid"),
    fingerprint=k2_fingerprint,
    datasets=lambda parameters: [parameters["dataset"]],
    scale=k2_scale,
    paper_setting="a LeNet-like network on MNIST, 100 trials of 10,000 one-sample SGD steps",
)
