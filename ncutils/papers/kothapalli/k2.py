"""Kothapalli (2023), K2: the locally elastic SDE, its trials' data and estimates, and its criteria."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncutils import verdicts
from ncutils._checks import resolve_device
from ncutils.data import available_datasets, load_dataset
from ncutils.models import build_model, check_arch_kwargs
from ncutils.papers._validation import error_text
from ncutils.store import Computation, computed, computed_payload
from ncutils.store.keys import ARCHITECTURES_COVERED
from ncutils.theory import lesde
from ncutils.theory.lesde import bootstrap_median

__all__ = ["K2_TRIALS", "k2_data", "k2_heldout_rise", "k2_heldout_table", "k2_interval_text", "k2_level", "k2_levels", "k2_network", "k2_reason", "k2_verdict", "phase_check", "validate_k2_parameters"]


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

#: The code K2's stored trials run (:func:`k2_levels`): the trainer of
#: :func:`ncutils.theory.lesde.train_trials`, and this module (:func:`k2_data` relabels the
#: classes, :func:`k2_levels` sets the trials up), with everything they import.
K2_TRIALS = Computation("lesde-trials", ("ncutils.theory.lesde", "ncutils.papers.kothapalli.k2"),
                        covered=ARCHITECTURES_COVERED)

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
