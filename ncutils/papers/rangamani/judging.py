"""Rangamani et al. (2023): the chapter's runs, what is read of them from the results store, and each run judged."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ncutils.metrics import class_weighted_relative_traces_from_stats
from ncutils.store import Computation, computed, computed_payload
from ncutils.sweep import sweep_table
from ncutils.train import load_data, stationarity
from ncutils.papers.rangamani.criteria import alignment_exclusions, consumer_input_dims, nc_layer, r1_depth_run, r1_run, r2_run

__all__ = ["ChapterCriteria", "PLOT_RANK", "RUN_COLUMNS", "RunMeasurements", "STATIONARITY", "alignment_tables", "first_run", "judge_run", "judge_runs", "of_run", "runs_table", "scaled_epochs", "shown_epochs", "stored_measurements", "stored_stationarity", "training_facts"]

# --------------------------------------------------------------------------- the chapter's runs
#: The labels of one run in the chapter's tables (a :func:`chapter_grid` key plus the seed).
RUN_COLUMNS: tuple[str, ...] = ("architecture", "dataset", "seed")


def runs_table(result: Any, *, min_train_acc: float = 0.99) -> pd.DataFrame:
    """One row per trained run of a :func:`chapter_grid` result: how far it trained, and whether
    it is eligible (train accuracy at the last epoch at least ``min_train_acc``).

    Parameters
    ----------
    result : ncutils.grid.GridResult
        Keyed ``(architecture, dataset, seed)``.
    min_train_acc : float, default 0.99

    Returns
    -------
    DataFrame
        ``architecture``, ``dataset``, ``seed``, ``epochs``, ``train_acc``, ``test_acc`` (last
        epoch), ``first_100%`` (first epoch at 100% train accuracy, NaN if none),
        ``train_seconds`` and ``eligible``.
    """
    rows = []
    for (architecture, dataset, seed), run in result.results.items():
        history = run.history
        rows.append({"architecture": architecture, "dataset": dataset, "seed": seed,
                     "epochs": int(history["epoch"].max()), "train_acc": float(history["train_acc"].iloc[-1]),
                     "test_acc": float(history["test_acc"].iloc[-1]),
                     "first_100%": history.loc[history["train_acc"] >= 1.0, "epoch"].min(),
                     "train_seconds": run.train_seconds})
    table = pd.DataFrame(rows)
    table["eligible"] = table["train_acc"] >= min_train_acc
    return table


def _run_name(row: Any) -> str:
    return f"{row.architecture}/{row.dataset}/seed {row.seed}"


def training_facts(runs: pd.DataFrame) -> dict[str, str]:
    """The chapter's glue texts on :func:`runs_table`: ``R_excluded`` (runs left out, with their
    train accuracy), ``R_runs`` ("k of n" eligible) and ``R_train_acc`` (every final train accuracy).

    Example
    -------
    >>> runs = pd.DataFrame({"architecture": ["mlp", "mlp"], "dataset": "digits", "seed": [0, 1],
    ...                      "train_acc": [1.0, 0.5], "eligible": [True, False]})
    >>> training_facts(runs)["R_excluded"], training_facts(runs)["R_runs"]
    ('mlp/digits/seed 1 (0.500)', '1 of 2')
    """
    excluded = ", ".join(f"{_run_name(r)} ({r.train_acc:.3f})" for r in runs.itertuples() if not r.eligible)
    return {"R_excluded": excluded or "none",
            "R_runs": f"{int(runs['eligible'].sum())} of {len(runs)}",
            "R_train_acc": ", ".join(f"{a:.4f}" for a in runs["train_acc"])}


def of_run(frame: pd.DataFrame, key: Sequence[Any]) -> pd.DataFrame:
    """The rows of ``frame`` for one run, ``key`` = ``(architecture, dataset, seed)``."""
    mask = np.ones(len(frame), dtype=bool)
    for column, value in zip(RUN_COLUMNS, key):
        mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def first_run(result: Any, architecture: str) -> tuple[tuple[Any, ...], Any]:
    """``(key, run)`` of the first run of ``architecture`` in a :func:`chapter_grid` result (the
    one the chapter's figures show)."""
    key = next(key for key in result.results if key[0] == architecture)
    return key, result.results[key]


def scaled_epochs(run_epochs: int, stored: Sequence[int], paper_epochs: Sequence[int] = (10, 100, 350),
                  paper_length: int = 350) -> list[int]:
    """The stored epochs nearest to the paper's plotted epochs scaled to a run of ``run_epochs``.

    The official plots show epochs 10, 100 and 350 of 350; a shorter run shows
    ``round(run_epochs * e / 350)`` (at least 1) for each, each replaced by the nearest stored
    epoch (duplicates dropped).

    Example
    -------
    >>> scaled_epochs(30, [1, 2, 3, 5, 10, 20, 30])
    [1, 10, 30]
    """
    wanted = [max(1, round(run_epochs * e / paper_length)) for e in paper_epochs]
    return sorted({min(stored, key=lambda s: abs(s - w)) for w in wanted})


def shown_epochs(run: Any) -> list[int]:
    """:func:`scaled_epochs` of a trained run: among its swept epochs after the initialisation."""
    stored = sorted(run.sweeps["epoch"].unique())
    return scaled_epochs(run.config.epochs, [e for e in stored if e > 0])


# --------------------------------------------------------------------------- measured per run
#: The rank of the paper's alignment plot (its datasets have 10 classes).
PLOT_RANK = 10


@dataclass(frozen=True)
class RunMeasurements:
    """What R1 and R2 read off one stored run: its sweeps at epoch 0 and the last epoch.

    Attributes
    ----------
    initial, last : DataFrame
        The layer sweeps (:func:`ncutils.sweep.layer_sweep` columns) at epoch 0 and the last
        swept epoch, alignment at rank ``k``.
    last_epoch : int
    k : int
        The number of classes (the classifier's outputs).
    dims : dict
        :func:`consumer_input_dims` of the network.
    weighted : dict
        Epoch (0, last) -> probe point -> Rangamani's class-weighted relative within trace.
    plot_alignment : dict
        Epoch (0, last) -> sweep with the alignment at rank :data:`PLOT_RANK`, when ``k``
        differs from it; empty otherwise.
    stationarity : DataFrame or None
        :func:`ncutils.train.stationarity` of every probe point's consumer at the last epoch,
        ``name`` the probe point (None where not measured).
    """

    initial: pd.DataFrame
    last: pd.DataFrame
    last_epoch: int
    k: int
    dims: dict[str, int]
    weighted: dict[int, dict[str, float]]
    plot_alignment: dict[int, pd.DataFrame] = field(default_factory=dict)
    stationarity: pd.DataFrame | None = None


def stored_measurements(run: Any) -> RunMeasurements:
    """:class:`RunMeasurements` of one trained run, read from the results store.

    The sweeps are the run's (loaded with it). Rangamani's class-weighted traces and, where
    the number of classes is not :data:`PLOT_RANK`, the alignment at that rank are computed
    from the sweep statistics the store keeps for the run's epochs
    (:meth:`ncutils.measure.MeasuredRun.statistics_at`, i.e. :func:`ncutils.measure.stored_statistics`):
    no forward pass once they are stored, and nothing is trained.

    Parameters
    ----------
    run : ncutils.measure.MeasuredRun
    """
    sweeps = run.sweeps
    last_epoch = int(sweeps["epoch"].max())
    k = int(run.model.get_submodule(run.model.classifier_name).out_features)
    weighted, plot_alignment = {}, {}
    for epoch in (0, last_epoch):
        statistics = run.statistics_at(epoch)
        weighted[epoch] = {name: class_weighted_relative_traces_from_stats(stats)[0]
                           for name, stats in statistics.class_stats().items()}
        if k != PLOT_RANK:  # the paper's plot uses rank 10: computed apart where C != 10
            plot_alignment[epoch] = sweep_table(statistics, run.model_at(epoch), alignment_rank=PLOT_RANK)
    return RunMeasurements(initial=sweeps[sweeps["epoch"] == 0], last=sweeps[sweeps["epoch"] == last_epoch],
                           last_epoch=last_epoch, k=k, dims=consumer_input_dims(run.model),
                           weighted=weighted, plot_alignment=plot_alignment,
                           stationarity=stored_stationarity(run, last_epoch) if run.config.weight_decay > 0 else None)


#: What :func:`stored_stationarity` runs: :func:`ncutils.train.stationarity` and what it imports.
STATIONARITY = Computation("rangamani-stationarity", ("ncutils.train",))


def stored_stationarity(run: Any, epoch: int) -> pd.DataFrame:
    """:func:`ncutils.train.stationarity` of every probe point's consumer at ``epoch`` (the
    stored weights, over the run's training set), through the results store
    (:func:`ncutils.runs.computed`, keyed by the run, the epoch and the code that computes it):
    computed once, loaded after. ``name`` is the probe point whose consumer is judged."""
    model = run.model_at(epoch)
    consumers = {point.consumer: point.name for point in model.probe_points if point.consumer is not None}
    payload = computed_payload("rangamani-stationarity", {"run": run.key, "epoch": int(epoch), "seed": 0,
                                                          "modules": sorted(consumers)},
                               computation=STATIONARITY)

    def compute() -> pd.DataFrame:
        train_data, _ = load_data(run.config, next(model.parameters()).device)
        return stationarity(model, run.config, train_data, list(consumers), seed=0)

    table, _ = computed(payload, compute, runs_dir=getattr(run, "_runs_dir", None))
    return table.assign(name=table["name"].map(consumers))


# --------------------------------------------------------------------------- judged per run
def judge_run(measured: RunMeasurements, *, max_spearman: float = -0.7, min_factor: float = 10.0,
              top_threshold: float = 0.2, min_alignment: float = 0.9, min_margin: float = 0.2,
              max_random: float = 0.5, nc_cdnv: float = 0.2,
              max_stationarity: float = 0.1) -> tuple[dict[str, Any], pd.DataFrame]:
    """R1 and R2 of one run, with Rangamani's weighting beside ours and the two nulls.

    Pure: everything comes from ``measured``. R1 (:func:`r1_run`) with our relative within
    trace and with the class-weighted one (``R1w_*``; ``weighting_gap`` the largest difference
    between the two over layers and both epochs); R2 (:func:`r2_run`) at rank ``k``; the
    nulls: the untrained network (epoch 0 judged as if it were the last) for R1 and R2, and a
    random matrix (each layer's alignment replaced by the random-subspace expectation) for R2;
    the official NC layer (:func:`nc_layer`, CDNV below ``nc_cdnv``). The amendments of
    2026-12-06 beside the criteria first registered: ``R1a_*`` (:func:`r1_depth_run`) and
    ``R2a_*`` (:func:`r2_run` with the run's stationarity, at most ``max_stationarity`` in each
    counted layer; nulls judged on their alignment alone, as if stationary).

    Returns
    -------
    (dict, DataFrame)
        The run's row of the chapter's table (``nc_layer``, ``R1_*``, ``R1a_*``, ``R1w_*``,
        ``weighting_gap``, ``R2_*``, ``R2a_*``, ``null_*``), and the amended :func:`r2_run`'s
        table of its top layers (with their stationarity where measured).
    """
    initial, last, weighted = measured.initial, measured.last, measured.weighted
    r1_options = dict(max_spearman=max_spearman, min_factor=min_factor)
    r2_options = dict(k=measured.k, top_threshold=top_threshold, min_alignment=min_alignment,
                      min_margin=min_margin, max_random=max_random)
    r1 = r1_run(initial, last, **r1_options)
    r1a = r1_depth_run(initial, last, max_spearman=max_spearman)
    r2 = r2_run(initial, last, measured.dims, **r2_options)
    r2a = (r2_run(initial, last, measured.dims, **r2_options, stationarity=measured.stationarity,
                  max_stationarity=max_stationarity) if measured.stationarity is not None else r2)

    def swap(frame: pd.DataFrame, epoch: int) -> pd.DataFrame:
        return frame.assign(relative_within_trace=frame["name"].map(weighted[epoch]))

    pairs = ((initial, 0), (last, measured.last_epoch))
    r1_weighted = r1_run(swap(initial, 0), swap(last, measured.last_epoch), **r1_options)
    weighting_gap = max(abs(swap(frame, epoch)["relative_within_trace"] - frame["relative_within_trace"]).max()
                        for frame, epoch in pairs)
    r1_null = r1_run(initial, initial, **r1_options)
    r2_null = r2_run(initial, initial, measured.dims, **r2_options)
    exclusions = alignment_exclusions(measured.dims, measured.k, max_random=max_random)
    random_last = last.assign(alignment=last["name"].map(dict(zip(exclusions["name"], exclusions["random"]))))
    r2_random = r2_run(initial, random_last, measured.dims, **r2_options)
    row = {
        "nc_layer": nc_layer(last, threshold=nc_cdnv) or "none",
        "R1_spearman": r1["spearman"], "R1_initial": r1["initial"], "R1_final": r1["final"],
        "R1_factor": r1["factor"], "R1_passed": r1["passed"],
        "R1w_spearman": r1_weighted["spearman"], "R1w_factor": r1_weighted["factor"],
        "R1w_passed": r1_weighted["passed"], "weighting_gap": weighting_gap,
        "R2_top": ", ".join(r2["layers"]["name"]) or "none", "R2_counted": ", ".join(r2["counted"]) or "none",
        "R2_excluded": "; ".join(r2["excluded"]) or "none",
        "R2_min_alignment": r2["min_alignment"], "R2_margin_init": r2["min_margin_init"],
        "R2_margin_random": r2["min_margin_random"], "R2_passed": r2["passed"],
        "R1a_spearman": r1a["spearman"], "R1a_untrained_spearman": r1a["untrained_spearman"],
        "R1a_passed": r1a["passed"],
        "R2a_counted": ", ".join(r2a["counted"]) or "none", "R2a_excluded": "; ".join(r2a["excluded"]) or "none",
        "R2a_min_alignment": r2a["min_alignment"], "R2a_margin_init": r2a["min_margin_init"],
        "R2a_margin_random": r2a["min_margin_random"], "R2a_stationarity": r2a.get("max_stationarity", math.nan),
        "R2a_status": r2a["status"], "R2a_passed": r2a["passed"],
        "null_R1_spearman": r1_null["spearman"], "null_R1_factor": r1_null["factor"],
        "null_R1_passed": r1_null["passed"], "null_R2_untrained": r2_null["passed"],
        "null_R2_random": r2_random["passed"],
    }
    return row, r2a["layers"]


def alignment_tables(measured: RunMeasurements, *,
                     max_random: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The alignment figure's data for one run: alignment by layer, and the random baselines.

    Returns
    -------
    (DataFrame, DataFrame)
        ``layer``, ``name``, ``alignment``, ``rank``, ``epoch`` at epoch 0 and the last epoch, at
        rank ``k`` and (when it differs) :data:`PLOT_RANK`; and :func:`alignment_exclusions` at
        each of those ranks with ``rank`` and ``layer``.
    """
    alignments = [frame[["layer", "name", "alignment"]].assign(rank=measured.k, epoch=epoch)
                  for epoch, frame in ((0, measured.initial), (measured.last_epoch, measured.last))]
    alignments += [frame[["layer", "name", "alignment"]].assign(rank=PLOT_RANK, epoch=epoch)
                   for epoch, frame in measured.plot_alignment.items()]
    layers = dict(zip(measured.last["name"], measured.last["layer"]))
    baselines = []
    for rank in sorted({measured.k, PLOT_RANK}):
        table = alignment_exclusions(measured.dims, rank, max_random=max_random)
        baselines.append(table.assign(rank=rank, layer=table["name"].map(layers)))
    return pd.concat(alignments, ignore_index=True), pd.concat(baselines, ignore_index=True)


@dataclass(frozen=True)
class ChapterCriteria:
    """R1 and R2 over the chapter's runs (:func:`judge_runs`).

    Attributes
    ----------
    per_run : DataFrame
        One row per run: :data:`RUN_COLUMNS`, ``eligible`` and :func:`judge_run`'s columns.
    top_layers : DataFrame
        Every run's top layers (:func:`r2_run`), labelled by run.
    alignments, baselines : DataFrame
        :func:`alignment_tables` of every run, labelled by run.
    stationarity : DataFrame
        :attr:`RunMeasurements.stationarity` of every run (every probe point's consumer at the
        last epoch), labelled by run.
    """

    per_run: pd.DataFrame
    top_layers: pd.DataFrame
    alignments: pd.DataFrame
    baselines: pd.DataFrame
    stationarity: pd.DataFrame = field(default_factory=pd.DataFrame)


def judge_runs(result: Any, runs: pd.DataFrame, *, max_spearman: float = -0.7, min_factor: float = 10.0,
               top_threshold: float = 0.2, min_alignment: float = 0.9, min_margin: float = 0.2,
               max_random: float = 0.5, nc_cdnv: float = 0.2, max_stationarity: float = 0.1) -> ChapterCriteria:
    """:func:`stored_measurements` and :func:`judge_run` on every run of a :func:`chapter_grid`
    result; ``runs`` (:func:`runs_table`) says which are eligible. Thresholds as
    :func:`judge_run`."""
    per_run, layer_tables, alignments, baselines, stationary = [], [], [], [], []
    for key, run in result.results.items():
        label = dict(zip(RUN_COLUMNS, key))
        measured = stored_measurements(run)
        row, layers = judge_run(measured, max_spearman=max_spearman, min_factor=min_factor,
                                top_threshold=top_threshold, min_alignment=min_alignment, min_margin=min_margin,
                                max_random=max_random, nc_cdnv=nc_cdnv, max_stationarity=max_stationarity)
        eligible = bool(of_run(runs, key)["eligible"].iloc[0])
        per_run.append({**label, "epochs": measured.last_epoch, "eligible": eligible, **row})
        layer_tables.append(layers.assign(**label))
        run_alignments, run_baselines = alignment_tables(measured, max_random=max_random)
        alignments.append(run_alignments.assign(**label))
        baselines.append(run_baselines.assign(**label))
        if measured.stationarity is not None:
            stationary.append(measured.stationarity.assign(**label))
    layer_tables = [table for table in layer_tables if len(table)] or layer_tables[:1]
    return ChapterCriteria(pd.DataFrame(per_run), pd.concat(layer_tables, ignore_index=True),
                           pd.concat(alignments, ignore_index=True), pd.concat(baselines, ignore_index=True),
                           pd.concat(stationary, ignore_index=True) if stationary else pd.DataFrame())
