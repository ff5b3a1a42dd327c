"""Kothapalli (TMLR 2023), chapters K1-K2: settings and pre-registered criteria.

K1 (the terminal phase, after Papyan, Han, Donoho 2020): once training error is zero,
NC1, the ETF error and the self-duality of the last hidden layer fall, and the network's
decisions become the nearest-class-centre rule. K2 (the locally elastic SDE of Zhang,
Wang, Su 2021): features separate iff the same-class effect of a step beats the cross-class
one, alpha > beta. The criteria (declared as :class:`~ncutils.chapter.Criterion` objects) are
pure functions of history tables and estimates with their thresholds as arguments; this
module trains nothing (see :func:`ncutils.train.train` with ``track_last_layer=True``
and :func:`ncutils.theory.lesde.train_trials`).

References
----------
Kothapalli (2023), "Neural Collapse: A Review on Modelling Principles and Generalization", TMLR.
Papyan, Han, Donoho (2020), PNAS. Zhang, Wang, Su (2021), NeurIPS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncutils import store, verdicts
from ncutils._checks import resolve_device
from ncutils.chapter import Budget, Chapter, Criterion, Finding
from ncutils.data import available_datasets, load_dataset
from ncutils.grid_spec import Grid
from ncutils.models import architecture_version, build_model, check_arch_kwargs
from ncutils.papers._validation import error_text, seed_problems
from ncutils.rank_stats import spearman
from ncutils.store import Computation, computed, computed_payload
from ncutils.store.keys import ARCHITECTURES_COVERED
from ncutils.theory import lesde
from ncutils.theory.lesde import bootstrap_median
from ncutils.train import TrainConfig

__all__ = [
    "k1_run_name",
    "k1_value",
    "k2_interval_text",
    "K1",
    "K2",
    "K1_METRICS",
    "k1_config",
    "k1_configs",
    "k1_equilibrium",
    "k1_datasets",
    "k1_grid",
    "k1_lr_phases",
    "k1_lr_phases_text",
    "k1_reason",
    "k1_run",
    "k1_schedule_facts",
    "k1_verdict",
    "k2_data",
    "k2_heldout_rise",
    "k2_heldout_table",
    "k2_reason",
    "k2_level",
    "k2_levels",
    "k2_network",
    "k2_verdict",
    "phase_check",
    "tpt_onset",
    "validate_k1_parameters",
    "validate_k2_parameters",
]

#: The metrics K1's criterion halves and ranks over the terminal phase (history columns).
K1_METRICS = ("ll_nc1", "ll_etf_error", "ll_self_duality")

# Papyan et al.'s protocol (their official code): SGD, momentum 0.9, weight decay 5e-4, batch 128,
# lr x0.1 at epochs//3 and 2*epochs//3.
_PAPYAN = dict(optimizer="sgd", momentum=0.9, weight_decay=5e-4, batch_size=128,
               schedule="multistep", lr_decay=0.1)

_ARCHS: dict[str, dict[str, Any]] = {
    "mlp": dict(arch="mlp", arch_kwargs={"depth": 4, "width": 256}),
    "cnn": dict(arch="vgg", arch_kwargs={"config": [8, "M", 16, "M"], "fc_widths": [64],
                                         "batchnorm": True}),
    "vgg11": dict(arch="vgg", arch_kwargs={"config": "vgg11", "fc_widths": [512, 512]}),
    "resnet18": dict(arch="resnet18", arch_kwargs={}),
}


def k1_config(network: str, dataset: str = "mnist5k", *, epochs: int = 60, lr: float = 0.05,
              seed: int = 0, limit_train: int | None = None, limit_test: int | None = None,
              device: str = "auto", **overrides: Any) -> TrainConfig:
    """A K1 run: Papyan et al.'s protocol with the last layer tracked every epoch.

    ``network``: ``"mlp"`` (4 Linear layers of 256), ``"cnn"`` (a small VGG: 8 and 16
    channels, BatchNorm, one hidden fc of 64), ``"vgg11"`` or ``"resnet18"`` (the paper
    settings). Weights are kept at initialisation (the K1 null), at the first epoch of 100%
    train accuracy (the TPT onset) and at the last epoch.
    """
    if network not in _ARCHS:
        raise KeyError(f"unknown K1 network {network!r}; choose among {sorted(_ARCHS)}")
    settings = dict(_PAPYAN, **_ARCHS[network])
    settings.update(dataset=dataset, epochs=epochs, lr=lr, seed=seed, limit_train=limit_train,
                    limit_test=limit_test, device=device, sweep_epochs=(0,),
                    save_at_train_acc=(1.0,), track_last_layer=True)
    settings.update(overrides)
    return TrainConfig(**settings)


def k1_datasets(parameters: Mapping[str, Any]) -> list[str]:
    """The K1 chapter's datasets: ``dataset`` and then ``extra_datasets`` (default none), each
    trained with every network and seed (the gpu and paper profiles: CIFAR-10, then FashionMNIST)."""
    dataset, extra = parameters["dataset"], parameters.get("extra_datasets", [])
    if not isinstance(dataset, str):
        raise ValueError(f"dataset must be a dataset name, got {dataset!r}")
    if not isinstance(extra, (list, tuple)) or any(not isinstance(name, str) for name in extra):
        raise ValueError(f"extra_datasets must list dataset names, got {extra!r}")
    names = [dataset, *extra]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset and extra_datasets repeat a name: {names}")
    return names


def k1_lengths(parameters: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The (network, epochs) pairs the K1 chapter trains on each dataset: every network for
    ``epochs``, then each of ``long_networks`` (default none) for ``long_epochs`` too (a second
    training length with the same schedule shape; 0 or absent: none)."""
    pairs = [(network, int(parameters["epochs"])) for network in parameters["networks"]]
    long_epochs = parameters.get("long_epochs", 0) or 0
    if long_epochs and long_epochs != parameters["epochs"]:
        pairs += [(network, int(long_epochs)) for network in parameters.get("long_networks", [])]
    return pairs


def k1_configs(parameters: Mapping[str, Any]) -> list[TrainConfig]:
    """The K1 chapter's runs (one per dataset x (network, epochs) x seed), as its notebook trains them.

    Examples
    --------
    >>> runs = k1_configs({"networks": ["mlp", "cnn"], "dataset": "mnist5k", "extra_datasets": ["digits"],
    ...                    "epochs": 3, "lr": 0.1, "batch_size": 16, "seeds": [0, 1],
    ...                    "long_epochs": 9, "long_networks": ["mlp"]})
    >>> [(c.dataset, c.arch, c.epochs, c.seed) for c in runs][:3]
    [('mnist5k', 'mlp', 3, 0), ('mnist5k', 'mlp', 3, 1), ('mnist5k', 'vgg', 3, 0)]
    >>> [(c.dataset, c.arch, c.epochs, c.seed) for c in runs][4:6]
    [('mnist5k', 'mlp', 9, 0), ('mnist5k', 'mlp', 9, 1)]
    """
    return [k1_config(network, dataset, epochs=epochs, lr=parameters["lr"],
                      seed=seed, batch_size=parameters["batch_size"],
                      limit_train=parameters.get("limit_train"), limit_test=parameters.get("limit_test"),
                      device=parameters.get("device", "auto"), data_dir=parameters.get("data_dir"),
                      download=bool(parameters.get("download", False)))
            for dataset in k1_datasets(parameters) for network, epochs in k1_lengths(parameters)
            for seed in parameters["seeds"]]


def k1_grid(parameters: Mapping[str, Any]) -> Grid:
    """:func:`k1_configs` as a :class:`~ncutils.grid.Grid` labelled ``dataset``, ``network`` and
    ``length`` (its epochs; the seed is each config's own), for :func:`ncutils.grid.run_grid`."""
    configs = k1_configs(parameters)
    labels = [{"dataset": dataset, "network": network, "length": epochs} for dataset in k1_datasets(parameters)
              for network, epochs in k1_lengths(parameters) for _ in parameters["seeds"]]
    return Grid.from_configs(configs, labels)


def validate_k1_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with the K1 chapter's parameters, before anything is trained or loaded.

    Builds every run's :class:`~ncutils.train.TrainConfig` (known networks and dataset,
    ``lr > 0``, integer epochs, ...) and checks the seeds; the messages are those the
    notebook would raise.

    Examples
    --------
    >>> base = {"networks": ["mlp"], "dataset": "digits", "epochs": 3, "lr": 0.1, "batch_size": 16,
    ...         "seeds": [0]}
    >>> validate_k1_parameters(base)
    []
    >>> validate_k1_parameters({**base, "lr": 0})
    ['lr must be > 0, got 0']
    """
    missing = [key for key in ("networks", "dataset", "epochs", "lr", "batch_size", "seeds")
               if key not in parameters]
    if missing:
        return [f"parameters lack {missing}"]
    networks = parameters["networks"]
    if not isinstance(networks, (list, tuple)) or not networks:
        return [f"networks must list at least one of {sorted(_ARCHS)}, got {networks!r}"]
    problems = seed_problems(parameters["seeds"])
    if problems:
        return problems
    try:
        k1_datasets(parameters)
    except ValueError as error:
        return [error_text(error)]
    long_epochs, long_networks = parameters.get("long_epochs", 0), parameters.get("long_networks", [])
    if isinstance(long_epochs, bool) or not isinstance(long_epochs, int) or long_epochs < 0:
        problems.append(f"long_epochs must be an integer >= 0 (0: no second length), got {long_epochs!r}")
    elif not isinstance(long_networks, (list, tuple)) or any(n not in networks for n in long_networks):
        problems.append(f"long_networks must list networks among {list(networks)}, got {long_networks!r}")
    for network in networks:
        try:
            k1_configs({**parameters, "networks": [network], "long_networks": []})
        except (KeyError, ValueError, TypeError) as error:
            problems.append(error_text(error))
    return list(dict.fromkeys(problems))


def validate_k2_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with the K2 chapter's parameters, before the kernel starts.

    K2 trains no :class:`~ncutils.train.TrainConfig` grid (its networks are trained by
    :func:`ncutils.theory.lesde.train_trials`, per-sample SGD on many trials at once, and
    not stored), so this checks the parameters themselves: the dataset and its classes, each
    network's architecture and options, label-noise levels in [0, 1) including the clean
    level 0 and the null (K-1)/K the criterion compares, positive counts and ``lr > 0``.

    Examples
    --------
    >>> base = {"dataset": "digits", "classes": [0, 1, 2], "label_noise": [0.0, 2 / 3],
    ...         "networks": {"mlp": {"arch": "mlp", "depth": 3}}, "trials": 2, "iterations": 10,
    ...         "lr": 0.01, "log_every": 5, "probe_per_class": 3, "sg_window": 3}
    >>> validate_k2_parameters(base)
    []
    >>> validate_k2_parameters({**base, "lr": -0.01, "label_noise": [0.0]})
    ['lr must be > 0, got -0.01', 'label_noise must contain 0.0 and (K-1)/K = 0.6667 (the null), got [0.0]']
    """
    problems: list[str] = []
    if "dataset" in parameters and parameters["dataset"] not in available_datasets():
        problems.append(f"unknown dataset {parameters['dataset']!r}; available: {available_datasets()}")
    classes = parameters.get("classes", [0, 1, 2])
    if (not isinstance(classes, (list, tuple)) or len(classes) < 2
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in classes)
            or len(set(classes)) != len(classes)):
        problems.append(f"classes must list at least two distinct labels >= 0, got {classes!r}")
        classes = [0, 1, 2]
    for name in ("lr",):
        value = parameters.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            problems.append(f"{name} must be > 0, got {value!r}")
    for name in ("trials", "iterations", "log_every", "probe_per_class", "sg_window",
                 "sim_steps", "sim_trials", "sim_samples"):
        value = parameters.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be an integer >= 1, got {value!r}")
    noise = parameters.get("label_noise", [0.0, 2 / 3])
    if not isinstance(noise, (list, tuple)) or any(
            isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1 for p in noise):
        problems.append(f"label_noise must list levels in [0, 1), got {noise!r}")
    else:
        null = (len(classes) - 1) / len(classes)
        if not (any(np.isclose(p, 0.0) for p in noise) and any(np.isclose(p, null) for p in noise)):
            problems.append(f"label_noise must contain 0.0 and (K-1)/K = {null:.4g} (the null), got {list(noise)}")
    networks = parameters.get("networks", {})
    if not isinstance(networks, Mapping) or not networks:
        problems.append(f"networks must map names to {{'arch': ..., options}}, got {networks!r}")
    else:
        for name, spec in networks.items():
            if not isinstance(spec, Mapping) or "arch" not in spec:
                problems.append(f"network {name!r}: needs an 'arch' and its options, got {spec!r}")
                continue
            try:
                check_arch_kwargs(spec["arch"], {key: value for key, value in spec.items() if key != "arch"})
            except (KeyError, ValueError, TypeError) as error:
                problems.append(f"network {name!r}: {error_text(error)}")
    for name in ("grid_alphas", "grid_betas"):
        values = parameters.get(name, [0.0])
        if not isinstance(values, (list, tuple)) or not values:
            problems.append(f"{name} must list at least one number, got {values!r}")
    return problems


def tpt_onset(history: pd.DataFrame) -> int | None:
    """First epoch with train accuracy 1.0 (the terminal phase's onset), or None."""
    reached = history.loc[history["train_acc"] >= 1.0, "epoch"]
    return None if reached.empty else int(reached.iloc[0])


def k1_run(history: pd.DataFrame, *, metrics: Sequence[str] = K1_METRICS, half: float = 0.5,
           max_rho: float = -0.7, max_mismatch: float = 0.01, min_tpt_ratio: float = 3.0) -> dict[str, Any]:
    """K1's criterion on one run's history (as the chapter pre-registers it).

    Eligible when train accuracy reaches 1.0. Passes when the terminal phase (onset to last
    epoch, inclusive) lasts at least ``min_tpt_ratio`` times the epochs before it, each of
    ``metrics`` at the last epoch is at most ``half`` of its onset value and has Spearman
    rho <= ``max_rho`` against the epoch over the terminal phase, and the NCC mismatch at the
    last epoch is at most ``max_mismatch``.

    Returns
    -------
    dict
        ``eligible``, ``passed``, ``onset``, ``tpt_epochs``, ``pre_epochs``, ``tpt_ratio``,
        per metric ``{m}_onset``, ``{m}_last``, ``{m}_ratio``, ``{m}_rho``, and
        ``ll_ncc_mismatch_last``, ``failures`` (what failed).
    """
    history = history.sort_values("epoch")
    onset = tpt_onset(history)
    out: dict[str, Any] = {"eligible": onset is not None, "onset": onset, "failures": []}
    for metric in metrics:
        out[f"{metric}_last"] = float(history[metric].iloc[-1])
    out["ll_ncc_mismatch_last"] = float(history["ll_ncc_mismatch"].iloc[-1])
    if onset is None:
        out.update(passed=False, failures=["never reached 100% train accuracy"])
        return out
    last_epoch = int(history["epoch"].iloc[-1])
    tpt = history[history["epoch"] >= onset]
    out["pre_epochs"] = onset - 1
    out["tpt_epochs"] = last_epoch - onset + 1
    out["tpt_ratio"] = out["tpt_epochs"] / max(out["pre_epochs"], 1)
    if out["tpt_ratio"] < min_tpt_ratio:
        out["failures"].append(f"terminal phase {out['tpt_epochs']} epochs < {min_tpt_ratio:g} x "
                               f"{out['pre_epochs']} before it")
    for metric in metrics:
        start, end = float(tpt[metric].iloc[0]), float(tpt[metric].iloc[-1])
        rho = spearman(tpt["epoch"].to_numpy(float), tpt[metric].to_numpy(float))
        out[f"{metric}_onset"], out[f"{metric}_last"] = start, end
        out[f"{metric}_ratio"] = end / start if start else float("nan")
        out[f"{metric}_rho"] = rho
        if not end <= half * start:
            out["failures"].append(f"{metric}: last {end:.3g} > {half:g} x onset {start:.3g}")
        if not rho <= max_rho:
            out["failures"].append(f"{metric}: Spearman {rho:.3g} > {max_rho:g} over the TPT")
    mismatch = float(history["ll_ncc_mismatch"].iloc[-1])
    out["ll_ncc_mismatch_last"] = mismatch
    if not mismatch <= max_mismatch:
        out["failures"].append(f"NCC mismatch {mismatch:.3g} > {max_mismatch:g} at the last epoch")
    out["passed"] = not out["failures"]
    return out


def k1_lr_phases(history: pd.DataFrame, *, metrics: Sequence[str] = K1_METRICS) -> pd.DataFrame:
    """The terminal phase cut where the learning rate changes (reported beside K1's verdict).

    One row per stretch of constant ``lr`` from the TPT onset to the last epoch: ``lr``,
    ``start`` (the onset for the first stretch, else the last epoch of the stretch before),
    ``end`` (its last epoch), ``epochs`` (``end - start``, the epochs trained in it),
    ``loss_start``, and per metric ``{m}_start``, ``{m}_end`` and ``{m}_ratio`` (end / start:
    the ratios multiply to the criterion's last / onset). Empty when the run never reaches
    100% train accuracy.

    Examples
    --------
    >>> h = pd.DataFrame({"epoch": [1, 2, 3, 4], "train_acc": [0.9, 1.0, 1.0, 1.0],
    ...                   "lr": [0.1, 0.1, 0.01, 0.01], "loss": [1.0, 0.5, 0.4, 0.4],
    ...                   "ll_nc1": [1.0, 0.8, 0.4, 0.4]})
    >>> k1_lr_phases(h, metrics=["ll_nc1"])[["lr", "start", "end", "ll_nc1_ratio"]].to_dict("records")
    [{'lr': 0.1, 'start': 2, 'end': 2, 'll_nc1_ratio': 1.0}, {'lr': 0.01, 'start': 2, 'end': 4, 'll_nc1_ratio': 0.5}]
    """
    history = history.sort_values("epoch").reset_index(drop=True)
    onset = tpt_onset(history)
    columns = ["lr", "start", "end", "epochs", "loss_start"] + [f"{m}_{part}" for m in metrics
                                                                   for part in ("start", "end", "ratio")]
    if onset is None:
        return pd.DataFrame(columns=columns)
    tpt = history[history["epoch"] >= onset]
    stretch = (tpt["lr"] != tpt["lr"].shift()).cumsum()
    rows, start = [], tpt.iloc[0]
    for _, part in tpt.groupby(stretch, sort=True):
        end = part.iloc[-1]
        row = {"lr": float(part["lr"].iloc[0]), "start": int(start["epoch"]), "end": int(end["epoch"]),
               "epochs": int(end["epoch"] - start["epoch"]), "loss_start": float(start["loss"])}
        for metric in metrics:
            first, last = float(start[metric]), float(end[metric])
            row.update({f"{metric}_start": first, f"{metric}_end": last,
                        f"{metric}_ratio": last / first if first else float("nan")})
        rows.append(row)
        start = end
    return pd.DataFrame(rows, columns=columns)


def k1_lr_phases_text(phases: pd.DataFrame, metric: str = "ll_nc1") -> str:
    """``phases`` (:func:`k1_lr_phases`) in words: the metric's factor over each stretch."""
    if phases.empty:
        return "never reached 100% train accuracy"
    parts = [f"x{row[f'{metric}_ratio']:.3f} over epochs {row['start']}-{row['end']} at lr {row['lr']:g}"
             for row in phases.to_dict("records")]
    return ", ".join(parts)


def k1_equilibrium(history: pd.DataFrame, *, metric: str = "ll_nc1") -> dict[str, Any]:
    """Where NC1 stops falling in one run, against the learning-rate drops and the training loss.

    Over the terminal phase (onset to last epoch): the epoch and value of the metric's
    minimum; the last epoch before the first drop (``drop``: the last epoch at the largest
    learning rate of the terminal phase, ``None`` when no drop falls in it); the metric at the
    onset, at the drop and at the last epoch; and over the first stretch (onset to ``drop``,
    constant learning rate) the training loss at its minimum (``loss_min``, ``loss_min_epoch``),
    a quarter of the stretch before the drop (``loss_before`` at ``before_epoch``, at least two
    epochs before) and at the drop (``loss_drop``). ``None`` when the run never reaches 100% train accuracy.

    With weight decay and the training set fitted, cross-entropy keeps falling only while the
    logits grow; a training loss that stops falling (or rises) at a constant learning rate
    says that weight decay now holds the weights: an equilibrium, in which the last layer
    stops changing whatever the schedule does next.

    Examples
    --------
    >>> h = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "train_acc": [0.9, 1.0, 1.0, 1.0, 1.0],
    ...                   "lr": [0.1, 0.1, 0.1, 0.1, 0.01], "loss": [1.0, 0.2, 0.1, 0.15, 0.15],
    ...                   "ll_nc1": [1.0, 0.5, 0.3, 0.4, 0.4]})
    >>> out = k1_equilibrium(h)
    >>> out["min_epoch"], out["drop"], out["loss_min"], out["loss_before"], out["loss_drop"]
    (3, 4, 0.1, 0.2, 0.15)
    """
    history = history.sort_values("epoch").reset_index(drop=True)
    onset = tpt_onset(history)
    if onset is None:
        return {}
    tpt = history[history["epoch"] >= onset]
    lowest = tpt.loc[tpt[metric].idxmin()]
    top = tpt["lr"].max()
    first = tpt[tpt["lr"] == top]
    drop = int(first["epoch"].iloc[-1]) if (tpt["lr"] < top).any() else None
    stretch = first if drop is not None else tpt
    loss_low = stretch.loc[stretch["loss"].idxmin()]
    at_drop = stretch.iloc[-1]
    window = max(2, len(stretch) // 4)          # the last quarter of the stretch (at least 2 epochs)
    before = stretch.iloc[max(0, len(stretch) - 1 - window)]
    return {"onset": onset, "min_epoch": int(lowest["epoch"]), "min": float(lowest[metric]),
            "at_onset": float(tpt[metric].iloc[0]), "at_drop": float(at_drop[metric]),
            "last": float(tpt[metric].iloc[-1]), "last_epoch": int(tpt["epoch"].iloc[-1]), "drop": drop,
            "loss_min": float(loss_low["loss"]), "loss_min_epoch": int(loss_low["epoch"]),
            "loss_drop": float(at_drop["loss"]), "loss_before": float(before["loss"]),
            "before_epoch": int(before["epoch"])}


def k1_schedule_facts(histories: Mapping[str, pd.DataFrame], *, metrics: Sequence[str] = K1_METRICS,
                      settled: float = 0.05) -> dict[str, str]:
    """The K1 chapter's facts about where NC1 stops falling (glue texts), from the histories.

    Per run (``histories`` maps a run's name to its history), :func:`k1_lr_phases` and
    :func:`k1_equilibrium`. Keys: ``K1_phases`` (NC1's factor over each learning-rate stretch,
    per run), ``K1_low_lr_epochs`` (epochs trained after the first drop, of those after the
    onset), ``K1_low_lr_change`` (the largest relative change of any of ``metrics`` over one
    stretch after the first drop), ``K1_drop_loss`` (training loss at the first drop),
    ``K1_equilibrium`` (per run: NC1 at the onset, its minimum and where, at the first drop
    and at the end; the training loss's minimum in the first stretch and at the drop) and
    ``K1_schedule_reading``: a sentence that says whether NC1 had stopped falling *before*
    the first drop in every run that reaches one (its terminal-phase minimum before the drop,
    or within ``settled`` of it at the drop) while the training loss had stopped falling at
    the constant learning rate (over the last quarter of the stretch before the drop it falls
    by less than ``settled``), so the prose follows the numbers.
    """
    phases = {run: k1_lr_phases(history, metrics=metrics) for run, history in histories.items()}
    low = {run: table[table["lr"] < table["lr"].max()] for run, table in phases.items() if not table.empty}
    low = {run: table for run, table in low.items() if not table.empty}
    changes = [abs(1 - float(value)) for table in low.values() for metric in metrics
               for value in table[f"{metric}_ratio"]]
    largest = max(changes) if changes else float("nan")
    facts = {
        "K1_phases": "; ".join(f"{run}: NC1 {k1_lr_phases_text(table)}" for run, table in phases.items()),
        "K1_low_lr_epochs": ", ".join(f"{run}: {int(table['epochs'].sum())} of the {int(phases[run]['epochs'].sum())} "
                                      "after the onset" for run, table in low.items()) or "none",
        "K1_low_lr_change": f"{largest:.1%}" if changes else "n/a",
        "K1_drop_loss": ", ".join(f"{run}: {table['loss_start'].iloc[0]:.1e}" for run, table in low.items()) or "n/a",
    }
    found = {run: k1_equilibrium(history) for run, history in histories.items()}
    found = {run: item for run, item in found.items() if item}
    facts["K1_equilibrium"] = "; ".join(
        f"{run}: NC1 {e['at_onset']:.3g} at the onset (epoch {e['onset']}), lowest {e['min']:.3g} at epoch "
        f"{e['min_epoch']}, " + (f"{e['at_drop']:.3g} at the first drop (after epoch {e['drop']}), " if e["drop"] else "")
        + f"{e['last']:.3g} at epoch {e['last_epoch']}; training loss lowest {e['loss_min']:.1e} at epoch "
        f"{e['loss_min_epoch']}" + (f", {e['loss_before']:.1e} at epoch {e['before_epoch']} and {e['loss_drop']:.1e} "
                                    "at the drop" if e["drop"] else "")
        for run, e in found.items()) or "no run reaches 100% train accuracy"
    dropped = {run: e for run, e in found.items() if e["drop"]}
    if not dropped:
        facts["K1_schedule_reading"] = "No run's terminal phase reaches a learning-rate drop."
        return facts
    stopped = {run: e["min_epoch"] <= e["drop"] or e["at_drop"] <= (1 + settled) * e["min"] for run, e in dropped.items()}
    flat_loss = {run: e["loss_drop"] >= (1 - settled) * e["loss_before"] for run, e in dropped.items()}
    rising = [run for run, e in dropped.items() if e["loss_drop"] > 1.2 * e["loss_min"]]
    rebound = [f"{run} from {e['min']:.3g} at epoch {e['min_epoch']} to {e['at_drop']:.3g}" for run, e in dropped.items()
               if e["at_drop"] > (1 + settled) * e["min"]]
    if all(stopped.values()) and all(flat_loss.values()):
        facts["K1_schedule_reading"] = (
            "NC1 stops falling before the learning rate is ever dropped: in every run that reaches a drop, "
            f"NC1 has its terminal-phase minimum before the first drop or is within {settled:.0%} of it there, and "
            "at the constant learning rate before the drop the training loss has stopped falling (over the last "
            f"quarter of that stretch it falls by less than {settled:.0%}"
            + (f"; it rises by more than 20% in {', '.join(rising)}" if rising else "") + "). "
            "With the training set fitted, cross-entropy falls only while the logits grow, and weight decay stops "
            "that growth: the network sits at an equilibrium of the loss with weight decay, where the last layer "
            "no longer collapses further"
            + (f" (NC1 even rises again at the constant learning rate: {'; '.join(rebound)} at the drop)" if rebound else "")
            + ". The drops come after it and are not what stops NC1 "
            f"(after the first drop the criterion's metrics move by at most {largest:.1%} over a stretch).")
    else:
        moving = [run for run in dropped if not (stopped[run] and flat_loss[run])]
        held = [run for run in dropped if run not in moving]
        facts["K1_schedule_reading"] = (
            f"In {', '.join(moving)} NC1 or the training loss was still falling at the first drop, so there the "
            "drop cuts the fall short"
            + ("." if not held else
               "; in the other runs NC1 stops falling before any drop: "
               + "; ".join(f"{run}: lowest {e['min']:.3g} ({e['min'] / e['at_onset']:.2f}x its onset value) at epoch "
                           f"{e['min_epoch']}, {e['at_drop']:.3g} at the drop after epoch {e['drop']}, while the training "
                           f"loss goes from {e['loss_min']:.1e} at epoch {e['loss_min_epoch']} to {e['loss_drop']:.1e}"
                           for run, e in ((run, dropped[run]) for run in held))
               + ". With the training set fitted, cross-entropy falls only while the logits grow, and weight decay "
               "stops that growth: an equilibrium of the loss with weight decay, in which NC1 no longer falls "
               "(and can rise), limits NC1, not the drops.")
            + f" After the first drop the criterion's metrics move by at most {largest:.1%} over a stretch.")
    return facts


def k1_verdict(histories: Mapping[Any, pd.DataFrame], **thresholds: Any) -> tuple[pd.DataFrame, verdicts.Outcome]:
    """K1 over several runs: one row per run (:func:`k1_run`) and the verdict of the several-runs rule (book/method.md).

    Ineligible runs (no 100% train accuracy) are left out of the count; fewer than two
    eligible runs give "inconclusive".
    """
    rows = []
    for label, history in histories.items():
        rows.append({"run": label, **k1_run(history, **thresholds)})
    table = pd.DataFrame(rows)
    eligible = table[table["eligible"]]
    if len(eligible) < 2:
        return table, verdicts.inconclusive(
            f"{len(eligible)} eligible run(s) of {len(table)} (need 2)",
            passed_runs=int(eligible["passed"].sum()) if len(eligible) else 0,
            eligible_runs=len(eligible))
    return table, verdicts.combine_runs(list(eligible["passed"].astype(bool)))


#: The code K2's stored trials run (:func:`k2_levels`): the trainer of
#: :func:`ncutils.theory.lesde.train_trials`, and this module (:func:`k2_data` relabels the
#: classes, :func:`k2_levels` sets the trials up), with everything they import.
K2_TRIALS = Computation("lesde-trials", ("ncutils.theory.lesde", "ncutils.papers.kothapalli"),
                        covered=ARCHITECTURES_COVERED)


def k1_reason(table: pd.DataFrame, criterion: Any) -> str:
    """One sentence from :func:`k1_verdict`'s table: per eligible run, the last/onset ratio of
    each metric and its Spearman trend, against what ``criterion`` (K1's declared
    :class:`~ncutils.chapter.Criterion`) asks, and how many runs pass."""
    eligible = table[table["eligible"]] if "eligible" in table else table.iloc[:0]
    if eligible.empty:
        return "no run reached 100% train accuracy"
    short = {"ll_nc1": "NC1", "ll_etf_error": "ETF error", "ll_self_duality": "self-duality"}
    parts = [f"{row['run']}: last/onset " + ", ".join(f"{name} {row[f'{metric}_ratio']:.2f}x (Spearman "
                                                      f"{row[f'{metric}_rho']:.2f})" for metric, name in short.items())
             for row in eligible.to_dict("records")]
    return ("; ".join(parts) + f"; the criterion asks each at most {criterion['half']:g}x with Spearman at most "
            f"{criterion['max_rho']:g} ({int(eligible['passed'].sum())} of {len(eligible)} eligible runs pass)")


def k1_run_name(dataset: str, network: str, length: int, seed: int) -> str:
    """A K1 run's name in tables and figures: ``"mnist5k mlp 60 epochs seed 0"``."""
    return f"{dataset} {network} {length} epochs seed {seed}"


def k1_value(table: pd.DataFrame) -> str:
    """K1's recorded value: the worst ratio, Spearman and mismatch over the eligible runs of
    :func:`k1_verdict`'s table, and how many pass."""
    eligible = table[table["eligible"]]
    if eligible.empty:
        return "no eligible run"
    spearman = max(eligible["ll_nc1_rho"].max(), eligible["ll_etf_error_rho"].max(),
                   eligible["ll_self_duality_rho"].max())
    return (f"last/onset NC1 at most {eligible['ll_nc1_ratio'].max():.3g}, ETF error "
            f"{eligible['ll_etf_error_ratio'].max():.3g}, self-duality {eligible['ll_self_duality_ratio'].max():.3g}; "
            f"Spearman at most {spearman:.2f}; NCC mismatch at most {eligible['ll_ncc_mismatch_last'].max():.4f}; "
            f"TPT/pre-TPT at least {eligible['tpt_ratio'].min():.2g} "
            f"({int(eligible['passed'].sum())}/{len(eligible)} runs pass)")


def k2_interval_text(row: Mapping[str, float]) -> str:
    """A median and its bootstrap interval: ``"1.06e-03 [9.92e-04, 1.15e-03]"``."""
    return f"{row['median']:.2e} [{row['low']:.2e}, {row['high']:.2e}]"


def k2_data(dataset: str, classes: Sequence[int], *, device: str = "cpu",
            **options: Any) -> tuple[Any, Any, Any, Any]:
    """K2's data: the training and test splits of ``dataset`` restricted to ``classes``,
    relabelled ``0 .. K-1`` in the order given; ``(x, y, x_val, y_val)`` as tensors on
    ``device`` (``"auto"``: a GPU when there is one), where
    :func:`~ncutils.theory.lesde.train_trials` then trains. ``options`` go to
    :func:`ncutils.data.load_dataset` (``data_dir``, ``download``)."""
    remap = {int(c): i for i, c in enumerate(classes)}
    where = resolve_device(device)

    def subset(split: str) -> tuple[Any, Any]:
        data = load_dataset(dataset, split, **options)
        keep = torch.isin(data.labels, torch.tensor(list(remap)))
        labels = torch.tensor([remap[int(y)] for y in data.labels[keep]], dtype=torch.long)
        return data.inputs[keep].to(where), labels.to(where)

    return (*subset("train"), *subset("test"))


def k2_level(result: Any, *, window: int, tail_fraction: float = 0.1,
             seed: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """What K2 reads from one network trained at one corruption level.

    ``result`` is a :class:`ncutils.theory.lesde.TrialsResult`. Per trial, alpha-hat,
    beta-hat and alpha-hat - beta-hat (:func:`~ncutils.theory.lesde.estimate_alpha_beta`,
    Savitzky-Golay ``window`` in logged points, per iteration) averaged over the second half
    of training; the criterion's median over trials with its bootstrap 95% interval; and,
    reported only, the tail indices ``r_alpha`` and ``r_beta``
    (:func:`~ncutils.theory.lesde.tail_index` of A-hat and B-hat over the last
    ``tail_fraction`` of the iterations) of the class-mean logits averaged over trials
    first, as the official code does (one value per level, no interval).

    Returns
    -------
    (dict, ndarray)
        The row (``median``, ``low``, ``high``, ``alpha_hat``, ``beta_hat``, ``r_alpha``,
        ``r_beta``, ``val_acc`` and ``probe_train_acc`` at the last iteration averaged over
        trials, ``seconds``) and the per-trial alpha-hat - beta-hat the criterion uses.
    """
    iterations = np.asarray(result.iterations)
    estimate = lesde.estimate_alpha_beta(result.class_means, window=window, delta=_log_interval(iterations))
    second = iterations >= iterations[-1] / 2
    per_trial = estimate["alpha_minus_beta"][:, second].mean(axis=1)
    median, low, high = lesde.bootstrap_median(per_trial, seed=seed)
    pooled = lesde.estimate_alpha_beta(np.asarray(result.class_means).mean(axis=0), window=window,
                                       delta=_log_interval(iterations))
    row = {"median": median, "low": low, "high": high,
           "alpha_hat": float(np.median(estimate["alpha_hat"][:, second].mean(axis=1))),
           "beta_hat": float(np.median(estimate["beta_hat"][:, second].mean(axis=1))),
           "r_alpha": float(lesde.tail_index(pooled["A_hat"], iterations, tail_fraction=tail_fraction)),
           "r_beta": float(lesde.tail_index(pooled["B_hat"], iterations, tail_fraction=tail_fraction)),
           "val_acc": float(np.asarray(result.val_accuracy)[:, -1].mean()),
           "probe_train_acc": float(np.asarray(result.train_accuracy)[:, -1].mean()),
           "seconds": float(result.seconds)}
    return row, per_trial


def k2_levels(networks: Mapping[str, Mapping[str, Any]], data: Sequence[Any], *, dataset: str,
              classes: Sequence[int], label_noise: Sequence[float], trials: int, iterations: int, lr: float,
              log_every: int, probe_per_class: int, seed: int, window: int, tail_fraction: float = 0.1,
              runs_dir: Any = None) -> tuple[dict[tuple[str, float], tuple[Any, np.ndarray]], pd.DataFrame]:
    """Train (or load) every network at every corruption level and read K2's numbers off each.

    Each (network, p) is :func:`ncutils.theory.lesde.train_trials` on ``data`` (``(x, y,
    x_val, y_val)`` of :func:`k2_data`), one thread, kept in the results store as a
    ``computed`` entry keyed by these settings, the data's device and the code of
    :data:`K2_TRIALS` (a rebuild after an edit elsewhere loads the trials); then
    :func:`k2_level`.

    Parameters
    ----------
    networks : mapping
        Name -> ``{"arch": ..., **architecture options}`` (:func:`ncutils.models.build_model`).

    Returns
    -------
    (dict, DataFrame)
        ``(name, p) -> (TrialsResult, per-trial alpha-hat - beta-hat)``, and one row per
        (network, p): ``network``, ``p`` and :func:`k2_level`'s columns.
    """
    x, y, x_val, y_val = data
    results: dict[tuple[str, float], tuple[Any, np.ndarray]] = {}
    rows = []
    for name, spec in networks.items():
        spec = dict(spec)
        arch = spec.pop("arch")

        def build(arch: str = arch, spec: dict[str, Any] = spec) -> Any:
            return build_model(arch, input_shape=tuple(x.shape[1:]), num_classes=len(classes), **spec)

        for p in label_noise:
            settings = dict(network=name, arch=arch, spec=spec, dataset=dataset, classes=list(classes),
                            trials=trials, iterations=iterations, lr=lr, label_noise=p, log_every=log_every,
                            probe_per_class=probe_per_class, seed=seed, threads=1, device=str(x.device))
            result, _ = computed(
                computed_payload("lesde-trials", settings, computation=K2_TRIALS,
                                 architectures=[arch], datasets=[dataset]),
                lambda build=build, p=p: lesde.train_trials(
                    build, x, y, x_val, y_val, trials=trials, iterations=iterations, lr=lr, label_noise=p,
                    log_every=log_every, probe_per_class=probe_per_class, seed=seed, threads=1),
                runs_dir=runs_dir)
            row, per_trial = k2_level(result, window=window, tail_fraction=tail_fraction, seed=seed)
            results[(name, p)] = (result, per_trial)
            rows.append({"network": name, "p": p, **row})
    return results, pd.DataFrame(rows)


def _log_interval(iterations: np.ndarray) -> float:
    steps = np.diff(iterations)
    if steps.size == 0 or np.any(steps != steps[0]):
        raise ValueError(f"the logged iterations must be evenly spaced, got {iterations[:5]}...")
    return float(steps[0])


def k2_network(estimates: Mapping[float, Sequence[float]], *, clean: float = 0.0,
               null: float = 2 / 3, resamples: int = 2000, level: float = 0.95,
               seed: int = 0, clean_above: float = 0.0, null_at_most: float = 0.0) -> dict[str, Any]:
    """K2's criterion on one network, for either of its quantities.

    ``estimates`` maps a label-corruption level p to one number per trial: as first
    registered, alpha-hat - beta-hat averaged over the second half of training
    (:func:`k2_level`); as amended on 2026-12-06, the rise of the held-out class alignment
    (:func:`k2_heldout_rise`). Passes when the bootstrap ``level`` interval of the median over
    trials lies above ``clean_above`` at ``p = clean`` and reaches down to ``null_at_most``
    (contains it or lies below it) at ``p = null`` (= (K-1)/K: labels carry no information).
    """
    rows = {}
    for p, values in estimates.items():
        median, low, high = bootstrap_median(values, resamples=resamples, level=level, seed=seed)
        rows[float(p)] = {"median": median, "low": low, "high": high, "trials": int(np.isfinite(values).sum())}
    found = {p: rows[p] for p in rows}
    clean_row = next((row for p, row in found.items() if np.isclose(p, clean)), None)
    null_row = next((row for p, row in found.items() if np.isclose(p, null)), None)
    if clean_row is None or null_row is None:
        raise ValueError(f"estimates need p = {clean} and p = {null}, got {sorted(found)}")
    clean_ok = bool(clean_row["low"] > clean_above)
    null_ok = bool(null_row["low"] <= null_at_most)
    return {"levels": found, "clean_pass": clean_ok, "null_pass": null_ok, "passed": clean_ok and null_ok,
            "clean": clean_row, "null": null_row}


def k2_heldout_rise(result: Any) -> np.ndarray:
    """Per trial, how much the held-out class alignment rose over training (the amended K2 quantity).

    ``a(t)`` is :func:`ncutils.theory.lesde.class_alignment` of the class-mean logits of the
    validation samples grouped by their *true* labels (``result.val_class_means``): the share
    of those logits along the class directions, whatever their scale. The rise is ``a`` at the
    last logged iteration minus ``a`` before the first step. Held-out samples carry no
    memorised label, so at ``p = (K-1)/K`` nothing the network learns from its labels can
    align them with their true classes.
    """

    means = getattr(result, "val_class_means", None)
    if means is None:
        raise ValueError("this TrialsResult has no val_class_means (trained before they were recorded)")
    a = lesde.class_alignment(np.asarray(means))            # (trials, L)
    return a[:, -1] - a[:, 0]


def k2_heldout_table(results: Mapping[tuple[str, float], Any]) -> pd.DataFrame:
    """One row per (network, p): the held-out class alignment before training and at the end
    (medians over trials), its rise (:func:`k2_heldout_rise`, median), and the validation
    accuracy at the last iteration (mean over trials)."""
    rows = []
    for (name, p), result in results.items():
        a = lesde.class_alignment(np.asarray(result.val_class_means))
        rows.append({"network": name, "p": p, "align_start": float(np.median(a[:, 0])),
                     "align_last": float(np.median(a[:, -1])), "rise": float(np.median(a[:, -1] - a[:, 0])),
                     "val_acc": float(np.asarray(result.val_accuracy)[:, -1].mean())})
    return pd.DataFrame(rows)


def k2_reason(results: Mapping[str, Mapping[str, Any]], quantity: str, *, clean_above: float = 0.0,
              null_at_most: float = 0.0) -> str:
    """One sentence from :func:`k2_network`'s numbers: per network the median and interval at
    the clean level and at the null, and what the criterion asks."""
    parts = [f"{name}: {quantity} {r['clean']['median']:.3g} [{r['clean']['low']:.3g}, {r['clean']['high']:.3g}] "
             f"on clean labels, {r['null']['median']:.3g} [{r['null']['low']:.3g}, {r['null']['high']:.3g}] at the null"
             for name, r in results.items()]
    failing = [name for name, r in results.items() if not r["passed"]]
    return ("; ".join(parts) + f"; the criterion asks the clean interval above {clean_above:g} and the null's to "
            f"reach {null_at_most:g} or below, in every network"
            + (f" ({', '.join(failing)} fail{'s' if len(failing) == 1 else ''})" if failing else " (all pass)"))


def k2_verdict(networks: Mapping[str, Mapping[float, Sequence[float]]], **options: Any
               ) -> tuple[dict[str, dict[str, Any]], verdicts.Outcome]:
    """K2 over networks: every network must pass (the claim is about every network trained)."""
    results = {name: k2_network(estimates, **options) for name, estimates in networks.items()}
    return results, verdicts.combine_runs([r["passed"] for r in results.values()], every=True, min_runs=1)


def phase_check(table: pd.DataFrame, *, margin: float = 0.1, min_share: float = 0.95,
                max_beta: float = 0.0) -> dict[str, Any]:
    """The simulator's library check (:func:`ncutils.theory.lesde.phase_diagram` rows).

    Over the grid points with ``|alpha - beta| >= margin`` and ``beta < max_beta`` (where the
    symmetric mode outgrows the others, so the sign of alpha - beta decides: see
    :mod:`ncutils.theory.lesde`), the sign of alpha - beta must predict ``separated`` in at
    least ``min_share`` of (point, trial) rows. ``|alpha - beta|`` is compared with
    ``margin`` up to 1e-9, so a grid step equal to the margin counts whatever its
    floating-point round-off (0.5 - 0.4 is 0.09999999999999998).

    Returns
    -------
    dict
        ``share`` and ``points`` (rows) of the tested region, ``passed``; reported, not
        tested: ``share_all`` / ``points_all`` (the same over both signs of beta) and
        ``separated_beta_positive`` / ``rows_beta_positive`` (the share of rows with
        ``beta > 0`` and ``alpha - beta >= margin`` still separated at the final step: the
        LE-ODE loses separation there as t grows, at a rate the horizon decides).
    """
    gap = table["alpha"] - table["beta"]
    far = table[gap.abs() >= margin - 1e-9]
    predicted = far["alpha"] > far["beta"]
    agree = predicted == far["separated"]
    region = far["beta"] < max_beta
    share = float(agree[region].mean()) if region.any() else float("nan")
    positive = far[(far["beta"] > 0) & predicted]
    return {"share": share, "points": int(region.sum()), "share_all": float(agree.mean()),
            "points_all": int(len(far)), "passed": bool(share >= min_share),
            "separated_beta_positive": float(positive["separated"].mean()) if len(positive) else float("nan"),
            "rows_beta_positive": int(len(positive))}


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
    networks = " and ".join(names.get(network, network) for network in parameters["networks"])
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
