"""Kothapalli (2023), K1: the terminal phase of training, its runs (Papyan's protocol) and its criterion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ncutils import verdicts
from ncutils.grid_spec import Grid
from ncutils.papers._validation import error_text, seed_problems
from ncutils.rank_stats import spearman
from ncutils.train import TrainConfig

__all__ = ["K1_METRICS", "k1_config", "k1_configs", "k1_datasets", "k1_equilibrium", "k1_grid", "k1_lengths", "k1_lr_phases", "k1_lr_phases_text", "k1_reason", "k1_run", "k1_run_name", "k1_schedule_facts", "k1_value", "k1_verdict", "tpt_onset", "validate_k1_parameters"]


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
                      download=bool(parameters.get("download", False)), **_resized(network, parameters))
            for dataset in k1_datasets(parameters) for network, epochs in k1_lengths(parameters)
            for seed in parameters["seeds"]]

def _resized(network: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The ``arch_kwargs`` override of ``network`` from ``network_kwargs`` (e.g. a narrower
    VGG-11 for a quick run), or nothing: a network without an entry keeps its settings (and
    its runs' keys in the results store)."""
    changes = (parameters.get("network_kwargs") or {}).get(network)
    if not changes:
        return {}
    return {"arch_kwargs": {**_ARCHS[network]["arch_kwargs"], **changes}}

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
    >>> validate_k1_parameters({**base, "network_kwargs": {"cnn": {"width": 0.5}}})[0][:40]
    'network_kwargs must map networks among ['
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
    resized = parameters.get("network_kwargs") or {}
    if not isinstance(resized, Mapping) or any(name not in networks or not isinstance(changes, Mapping)
                                               for name, changes in resized.items()):
        problems.append(f"network_kwargs must map networks among {list(networks)} to architecture settings "
                        f"(e.g. {{vgg11: {{width: 0.25}}}}), got {resized!r}")
        return problems
    for network in networks:
        try:
            k1_configs({**parameters, "networks": [network], "long_networks": []})
        except (KeyError, ValueError, TypeError) as error:
            problems.append(error_text(error))
    return list(dict.fromkeys(problems))

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
