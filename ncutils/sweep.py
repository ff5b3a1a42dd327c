"""Layer sweeps in two levels: statistics from forward passes, then metrics from statistics.

The statistics level lives in :mod:`ncutils.layer_stats` (re-exported here); this module adds
the metrics level. :func:`sweep_statistics` measures every hidden representation a model lists in
``model.probe_points`` (see :mod:`ncutils.models`) with at most two forward passes over
the training data, however many probe points there are:

- pass 1 feeds a :class:`~ncutils.stats.ClassStats` per probe point (counts, class
  means, within-class sums of squares) and records the network's predictions;
- pass 2 feeds a :class:`~ncutils.stats.ProjectedScatter` per probe point (the
  C x C matrix behind the exact NC1) and counts the nearest-class-centre (NCC) labels
  against the true labels and the network's predictions.

It returns :class:`SweepStatistics`: per probe point those statistics, the NCC counts and
the classifier's weight where the classifier reads. :func:`sweep_table` turns them into
the metrics table with pure functions of :mod:`ncutils.metrics` (and, for the alignment
of Rangamani et al., the consumer layers' weights: one SVD each, batched by shape), no
forward pass. :func:`layer_sweep` is both in one call. The results store
(:mod:`ncutils.store`, measured by :mod:`ncutils.measure`) keeps the two levels apart: an edit to ``metrics``
recomputes tables from stored statistics; an edit to ``stats``, ``probe`` or
:mod:`ncutils.layer_stats` re-measures the statistics from stored weights.

Features are captured with forward hooks (:mod:`ncutils.probe`) and reduced to ``(N, D)``
by the conv-map policy right inside the hook, so no probe point's activations outlive
their batch. When all probe points' training features fit in ``memory_budget`` bytes they
are kept from pass 1 and pass 2 runs without a forward pass; otherwise pass 2 recomputes
the forward pass. Nothing of size D x D is ever built.

The classes are fixed once, before the first batch, so the passes never read the device
on the host: statistics have fixed shapes, checks accumulate as device flags read once
after each pass, and NCC counts stay on the device until the end. On a GPU the host only
launches work; it waits for results only between passes.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import pandas as pd
import torch
from torch import nn

from ncutils import metrics
from ncutils._alignment import alignment_request, batched_alignments
# the statistics level lives in its own module (it imports no metric); its names are
# this module's public API too
from ncutils.layer_stats import SWEEP_METRICS, PointStatistics, SweepStatistics, sweep_statistics

__all__ = ["SWEEP_METRICS", "PointStatistics", "SweepStatistics", "layer_sweep", "sweep_statistics",
           "sweep_table"]


def sweep_table(statistics: SweepStatistics, model: nn.Module | None = None, *,
                alignment_rank: int | None = None) -> pd.DataFrame:
    """The metrics table of a sweep from its statistics: pure functions, no forward pass.

    Parameters
    ----------
    statistics : SweepStatistics
    model : nn.Module, optional
        The swept model, for the alignment (its consumer layers' weights); needed only when
        the statistics include the ``"alignment"`` group.
    alignment_rank : int, optional
        The ``k`` of :func:`ncutils.metrics.subspace_alignment` (default: the number of classes).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`layer_sweep`, one row per probe point.

    Raises
    ------
    ValueError
        The alignment is asked for without a model, or a bad ``alignment_rank``.
    """
    _check_alignment_rank(alignment_rank)
    if not isinstance(statistics, SweepStatistics):
        raise ValueError(f"statistics must be SweepStatistics, got {type(statistics).__name__}")
    nan = float("nan")
    want_alignment = "alignment" in statistics.groups
    if want_alignment and model is None:
        raise ValueError("the alignment needs the model (its consumer layers' weights): pass model=")
    alignments = (_alignments(model, statistics, alignment_rank) if want_alignment
                  else [nan] * len(statistics.points))
    n_train = statistics.n_train
    n_test = nan if statistics.n_test is None else statistics.n_test
    rows = []
    for point, alignment in zip(statistics.points, alignments):
        row: dict[str, Any] = {"layer": point.layer, "name": point.name,
                               "depth": point.layer / (statistics.n_all_points - 1)
                               if statistics.n_all_points > 1 else 0.0,
                               "dim": point.class_stats.dim, "conv_policy": statistics.conv_policy}
        row.update(metrics.summary_from_stats(point.class_stats, point.scatter,
                                              classifier_weight=point.classifier_weight))
        # NC3 applies only where the classifier reads, NC1 only with the scatter: keep
        # the columns in every table
        row.setdefault("self_duality", nan)
        row.setdefault("nc1", nan)
        counts = point.ncc_counts
        row["ncc_train_acc"] = nan if counts is None else counts[0] / n_train
        row["ncc_test_acc"] = nan if counts is None else counts[2] / n_test
        row["ncc_mismatch"] = nan if counts is None else counts[1] / n_train
        row["ncc_test_mismatch"] = nan if counts is None else counts[3] / n_test
        row["alignment"] = alignment
        rows.append(row)
    return pd.DataFrame(rows)


def _check_alignment_rank(alignment_rank: Any) -> None:
    if alignment_rank is not None and (isinstance(alignment_rank, bool) or not isinstance(alignment_rank, int)
                                       or alignment_rank < 1):
        raise ValueError(f"alignment_rank must be a positive integer or None, got {alignment_rank!r}")


def _alignments(model: nn.Module, statistics: SweepStatistics, alignment_rank: int | None) -> list[float]:
    """Consumer-weight / class-mean alignment (Rangamani R2) per probe point, NaN where it
    does not apply; all layers' SVDs at once on the statistics' device (see
    :func:`ncutils._alignment.batched_alignments`)."""
    modules = dict(model.named_modules())
    requests: list[tuple[torch.Tensor, torch.Tensor, int] | None] = []
    for point in statistics.points:
        request = None
        if point.consumer is not None:
            if point.consumer not in modules:
                raise KeyError(f"probe point {point.name!r}: model has no consumer submodule {point.consumer!r}")
            means = point.class_stats.means
            weight = modules[point.consumer].weight.detach().to(means.device)
            class_means = _consumer_view(means, point.sample_shape, weight)
            if class_means is not None:
                request = alignment_request(weight, class_means, alignment_rank)
        requests.append(request)
    return batched_alignments(requests)


def layer_sweep(
    model: nn.Module,
    inputs: Any,
    labels: Any,
    *,
    test_inputs: Any = None,
    test_labels: Any = None,
    batch_size: int = 1024,
    conv_policy: str = "flatten",
    memory_budget: int | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
    alignment_rank: int | None = None,
    metrics: Collection[str] | None = None,
    num_classes: int | None = None,
    classes: Any = None,
) -> pd.DataFrame:
    """Measure Neural Collapse at every probe point of ``model`` in at most two data passes.

    :func:`sweep_statistics` (the passes) followed by :func:`sweep_table` (the metrics).

    Pass 1 accumulates per-class statistics of every probe point (and records the
    network's predictions), pass 2 the projected within-class scatter for the exact
    NC1 and the nearest-class-center predictions; one more pass over the test data,
    when given, gives the NCC test accuracy. The model runs in eval mode under
    ``torch.no_grad``; each submodule's training flag is restored afterwards.

    Parameters
    ----------
    model : nn.Module
        A classifier carrying ``probe_points`` (a list of ``ProbePoint(name, module,
        consumer)`` in depth order, from the input to the penultimate features) and
        ``classifier_name`` (the dotted name of its final ``nn.Linear``), as every
        model of :mod:`ncutils.models` does. Its output must be logits ``(B, K)``
        whose index k is the label value k.
    inputs : Tensor or ndarray of shape (N, *input_shape)
        Training inputs. Floating inputs are cast to the model's parameter dtype and
        moved to its device one batch at a time.
    labels : Tensor or ndarray of shape (N,)
        Integer labels (possibly non-contiguous, e.g. ``{3, 7, 9}``); at least 2 classes.
        They need not be the labels the network was trained on: the fine labels of a
        network trained on coarse ones measure collapse with respect to the fine classes
        (then ``ncc_mismatch``, which compares NCC labels with the network's predictions,
        and NC3 compare different label sets: leave ``"ncc"`` out or ignore them).
    test_inputs, test_labels : optional
        Test data for the NCC test accuracy (classified with the *training* class
        means); give both or neither.
    batch_size : int, default 1024
        Samples per forward pass.
    conv_policy : {"flatten", "avgpool"}, default "flatten"
        How conv maps become feature vectors, see :func:`reduce_features`.
    memory_budget : int, optional
        Bytes the kept training features of all probe points may take (in the
        features' dtype: 4 bytes per entry for float32 models). When they fit, pass 2
        reuses them; when they do not, pass 2 recomputes the forward pass. Default
        ``2**30`` for a model on the CPU (keeping is faster there) and 0 elsewhere: on a
        GPU recomputing the forward pass is faster than writing and reading kept features
        (and keeping a ResNet-18's took 14 GiB on an H100).
    progress : bool, default False
        Show a tqdm progress bar per pass.
    device : str or torch.device, optional
        Where statistics (and kept features) live; the forward pass always runs on
        the model's own device. Defaults to the model's device (CPU for a model
        without parameters). A CPU device here lets a GPU model sweep layers whose
        kept features would not fit in GPU memory.
    alignment_rank : int, optional
        The ``k`` of :func:`ncutils.metrics.subspace_alignment` (default: the number of
        classes, as Rangamani et al.).
    metrics : collection of str, optional
        Which groups of :data:`SWEEP_METRICS` to compute (default all). Leaving out
        ``"nc1"`` and ``"ncc"`` saves the second pass; columns not computed are NaN, so
        every table has the same columns.
    num_classes : int, optional
        The label values are ``0 .. num_classes - 1`` (e.g. a dataset's ``num_classes``).
    classes : tensor or sequence of ints, optional
        The label values, for non-contiguous labels. Give ``num_classes`` or ``classes``
        (not both); by default they are ``torch.unique(labels)``, found once. Either way
        the classes are fixed before the first batch; labels outside them raise
        ``ValueError`` (naming the first offending sample and its batch) before any
        forward pass. A given class absent from the training labels is left out of
        every metric (they cover the classes present, as without this argument).

    Returns
    -------
    pandas.DataFrame
        One row per probe point, columns ``layer`` (index in ``probe_points``),
        ``name``, ``depth`` (``layer / (L - 1)``: 0 = input, 1 = penultimate),
        ``dim`` (D after the conv policy), ``conv_policy``, every key of
        :func:`ncutils.metrics.summary_from_stats` (the classifier's weight is passed
        at the probe point the classifier reads, for NC3), ``ncc_train_acc``,
        ``ncc_test_acc`` (NaN without test data), ``ncc_mismatch`` (fraction of
        training samples whose NCC label differs from the network's prediction:
        NC4, Papyan et al. 2020), ``ncc_test_mismatch`` (the same on the test set, with
        the training class means; NaN without test data) and ``alignment`` (:func:`ncutils.metrics.subspace_alignment`
        between the weight of the probe point's consumer layer and the un-centered
        class means of its features, Rangamani et al. 2023; NaN where there is no
        consumer or the consumer cannot read the pooled features).

    References
    ----------
    Papyan, Han, Donoho (2020), "Prevalence of neural collapse during the terminal
    phase of deep learning training", PNAS.
    Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate
    Hidden Layers of Classification Neural Networks".
    Rangamani, Lindegaard, Galanti, Poggio (2023), "Feature Learning in Deep
    Classifiers through Intermediate Neural Collapse", ICML.

    Examples
    --------
    >>> import torch
    >>> from ncutils.models import build_model
    >>> model = build_model("mlp", input_shape=(10,), num_classes=3)
    >>> inputs, labels = torch.randn(60, 10), torch.arange(60) % 3
    >>> table = layer_sweep(model, inputs, labels)
    >>> table[["name", "depth", "dim", "nc1"]]  # doctest: +SKIP
    """
    _check_alignment_rank(alignment_rank)
    statistics = sweep_statistics(model, inputs, labels, test_inputs=test_inputs, test_labels=test_labels,
                                  batch_size=batch_size, conv_policy=conv_policy, memory_budget=memory_budget,
                                  progress=progress, device=device, metrics=metrics,
                                  num_classes=num_classes, classes=classes)
    return sweep_table(statistics, model, alignment_rank=alignment_rank)


def _consumer_view(
    class_means: torch.Tensor, sample_shape: tuple[int, ...] | None, weight: torch.Tensor
) -> torch.Tensor | None:
    """Class means ``(C, D)`` in the layout the consumer's weight reads, or None if it cannot.

    A Linear consumer (weight ``(out, D)``) reads the flat vector; a Conv consumer
    (weight ``(out, in_channels, *kernel)``) reads maps ``(C, in_channels, *spatial)``,
    which flattened class means give back by reshaping, and avgpooled ones as
    ``(C, in_channels)``.
    """
    n_classes, dim = class_means.shape
    if weight.ndim == 2:
        return class_means if weight.shape[1] == dim else None
    if weight.ndim != 4:  # metrics.subspace_alignment reads Linear and Conv2d weights only
        return None
    in_channels = weight.shape[1]
    if sample_shape is not None and len(sample_shape) >= 2 and dim == math.prod(sample_shape):
        if sample_shape[0] != in_channels:
            return None
        return class_means.reshape(n_classes, *sample_shape)
    return class_means if dim == in_channels else None
