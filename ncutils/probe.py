"""Layer sweeps: Neural Collapse metrics at every probe point of a model.

:func:`layer_sweep` measures every hidden representation a model lists in
``model.probe_points`` (see :mod:`ncutils.models`) with at most two forward
passes over the training data, however many probe points there are:

- pass 1 feeds a :class:`~ncutils.stats.ClassStats` per probe point (counts, class
  means, within-class sums of squares) and records the network's predictions;
- pass 2 feeds a :class:`~ncutils.stats.ProjectedScatter` per probe point (the
  C x C matrix behind the exact NC1) and the nearest-class-center (NCC) predictions
  against the class means of pass 1.

Features are captured with forward hooks on the probe points' submodules and are
reduced to ``(N, D)`` by the conv-map policy right inside the hook, so no probe
point's activations outlive their batch. When all probe points' training features
fit in ``memory_budget`` bytes they are kept from pass 1 and pass 2 runs without a
forward pass; otherwise pass 2 recomputes the forward pass. Nothing of size D x D
is ever built: a ResNet-18 with D = 65,536 at its first stage sweeps in O(D C)
memory per probe point (plus the kept features when they fit).

The classes are fixed once, before the first batch, so the passes never read the
device on the host: statistics have fixed shapes, checks accumulate as device flags
read once after each pass, NCC counts stay on the device until the end, and the
consumer layers' SVDs (for the alignment) run once per layer at the end, batched by
shape. On a GPU the host only launches work; it waits for results only between passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ncutils import metrics
from ncutils._checks import as_tensor, check_labels, check_min_classes
from ncutils._alignment import alignment_request, batched_alignments
from ncutils.metrics import _nearest_centre
from ncutils.stats import ClassStats, ProjectedScatter

__all__ = ["CONV_POLICIES", "SWEEP_METRICS", "CapturedBatch", "capture", "iter_features",
           "layer_sweep", "reduce_features"]

CONV_POLICIES: tuple[str, ...] = ("flatten", "avgpool")

#: Groups of columns :func:`layer_sweep` can compute; the cheap class-statistics columns
#: (traces, CDNV, NC2) are always there. ``"nc1"`` needs the second pass (the projected
#: scatter), ``"ncc"`` the nearest-class-centre counts (train, test, mismatch),
#: ``"alignment"`` one SVD per consumer layer.
SWEEP_METRICS: tuple[str, ...] = ("nc1", "ncc", "alignment")

# Called once per probe point and batch: (probe point index, features (B, D), batch rows).
FeatureSink = Callable[[int, torch.Tensor, slice], None]


@dataclass(frozen=True)
class CapturedBatch:
    """The representations of one batch at the probe points asked for.

    Attributes
    ----------
    rows : slice
        Which samples of the inputs this batch holds.
    features : dict of str to Tensor (B, D)
        Probe point name -> features, reduced by the conv policy, on the capture device.
    shapes : dict of str to tuple
        Probe point name -> the per-sample shape before reduction (``(channels, H, W)`` for maps).
    predictions : Tensor (B,)
        The network's predicted labels (argmax of the logits).
    """

    rows: slice
    features: dict[str, torch.Tensor]
    shapes: dict[str, tuple[int, ...]]
    predictions: torch.Tensor


def _selected_points(model: nn.Module, points: Sequence[str] | None) -> list[tuple[int, Any]]:
    available = list(getattr(model, "probe_points", None) or [])
    if not available:
        raise ValueError(
            "model has no probe_points: build it with ncutils.models.build_model "
            "or set model.probe_points to a list of ProbePoint(name, module, consumer)"
        )
    if points is None:
        return list(enumerate(available))
    if isinstance(points, str):
        points = [points]
    names = [point.name for point in available]
    unknown = [name for name in points if name not in names]
    if unknown:
        raise KeyError(f"unknown probe points {unknown}; the model has {names}")
    if len(set(points)) != len(points):
        raise ValueError(f"probe points repeat: {list(points)}")
    wanted = set(points)
    return [(index, point) for index, point in enumerate(available) if point.name in wanted]


def iter_features(
    model: nn.Module,
    inputs: Any,
    points: Sequence[str] | None = None,
    *,
    batch_size: int = 1024,
    conv_policy: str = "flatten",
    device: str | torch.device | None = None,
    progress: bool = False,
    desc: str = "capture",
) -> Iterator[CapturedBatch]:
    """Stream the representations at named probe points, one batch at a time.

    The model runs in eval mode under ``torch.no_grad`` (each submodule's training flag
    is restored when the iterator ends or is closed); features are reduced by the conv
    policy inside the forward hook, so no map outlives its batch. Use it to cluster,
    project or plot features without keeping all of them (:func:`capture` keeps them).

    Parameters
    ----------
    model : nn.Module
        A model of :mod:`ncutils.models` (it carries ``probe_points``).
    inputs : Tensor or ndarray of shape (N, *input_shape)
        Inputs; moved to the model's device (and dtype) one batch at a time.
    points : sequence of str, optional
        Names of probe points (``model.probe_points[i].name``); all by default.
    batch_size : int, default 1024
    conv_policy : {"flatten", "avgpool"}, default "flatten"
        See :func:`reduce_features`.
    device : str or torch.device, optional
        Where the yielded features live; default the model's device.
    progress : bool, default False
        A tqdm bar over the batches.
    desc : str
        The bar's label.

    Yields
    ------
    CapturedBatch
        In input order; ``features`` keyed by probe point name in depth order.

    Raises
    ------
    KeyError
        An unknown probe point name (the message lists the model's).
    ValueError
        A model without probe points, a bad batch size or conv policy, empty inputs, a
        probe point that is not called exactly once per forward pass.

    Example
    -------
    >>> import torch
    >>> from ncutils.models import build_model
    >>> model = build_model("mlp", input_shape=(10,), num_classes=3, depth=3, width=8)
    >>> batches = list(iter_features(model, torch.randn(50, 10), ["input"], batch_size=20))
    >>> [batch.features["input"].shape[0] for batch in batches]
    [20, 20, 10]
    """
    selected = _selected_points(model, points)
    _check_capture_options(batch_size, conv_policy)
    inputs = as_tensor(inputs, "inputs")
    if inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("inputs are empty: need at least one sample")
    modules = dict(model.named_modules())
    for _, point in selected:
        if point.module is not None and point.module not in modules:
            raise KeyError(f"probe point {point.name!r}: model has no submodule {point.module!r}")
    parameter = next(model.parameters(), None)
    model_device = parameter.device if parameter is not None else inputs.device
    out_device = torch.device(device) if device is not None else model_device
    model_dtype = parameter.dtype if parameter is not None else None
    with _evaluation_mode(model), torch.no_grad():
        yield from _forward_batches(model, modules, selected, inputs, batch_size=batch_size,
                                    conv_policy=conv_policy, model_device=model_device,
                                    model_dtype=model_dtype, out_device=out_device,
                                    desc=desc, progress=progress)


def capture(
    model: nn.Module,
    inputs: Any,
    points: Sequence[str] | None = None,
    *,
    batch_size: int = 1024,
    conv_policy: str = "flatten",
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """The representations of all ``inputs`` at named probe points, kept in memory.

    :func:`iter_features` collected into one ``(N, D)`` tensor per probe point (in the
    model's dtype); ``"predictions"`` is not a probe point name and is not included. For
    wide layers over many samples prefer :func:`iter_features` or :func:`layer_sweep`
    (which never keeps more than its memory budget).

    Parameters
    ----------
    model, inputs, points, batch_size, conv_policy, device, progress
        As in :func:`iter_features`.

    Returns
    -------
    dict of str to Tensor (N, D)
        Probe point name -> features, in depth order.

    Example
    -------
    >>> import torch
    >>> from ncutils.models import build_model
    >>> model = build_model("mlp", input_shape=(10,), num_classes=3, depth=3, width=8)
    >>> features = capture(model, torch.randn(50, 10))
    >>> {name: tuple(value.shape) for name, value in features.items()}  # doctest: +SKIP
    {'input': (50, 10), 'hidden1': (50, 8), 'hidden2': (50, 8)}
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in iter_features(model, inputs, points, batch_size=batch_size, conv_policy=conv_policy,
                               device=device, progress=progress):
        for name, features in batch.features.items():
            parts.setdefault(name, []).append(features)
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def _check_capture_options(batch_size: Any, conv_policy: Any) -> None:
    if conv_policy not in CONV_POLICIES:
        raise ValueError(f"conv_policy must be one of {CONV_POLICIES}, got {conv_policy!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _forward_batches(model: nn.Module, modules: dict[str, nn.Module], selected: list[tuple[int, Any]],
                     inputs: torch.Tensor, *, batch_size: int, conv_policy: str,
                     model_device: torch.device, model_dtype: torch.dtype | None,
                     out_device: torch.device, desc: str, progress: bool) -> Iterator[CapturedBatch]:
    """The forward passes behind :func:`iter_features` and the sweep (no argument checks)."""
    captured: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    def keep(point: Any, raw: Any) -> None:
        if not isinstance(raw, torch.Tensor):
            raise ValueError(
                f"probe point {point.name!r} produced a {type(raw).__name__}, "
                "not a tensor: point it at a submodule that returns one tensor"
            )
        calls[point.name] = calls.get(point.name, 0) + 1
        shapes[point.name] = tuple(raw.shape[1:])
        features = reduce_features(raw, conv_policy).to(out_device)
        if point.module is not None and features.untyped_storage().data_ptr() == raw.untyped_storage().data_ptr():
            # a later in-place op (ReLU(inplace=True)) would rewrite a view before it is read
            features = features.clone()
        captured[point.name] = features

    def make_hook(point: Any) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            keep(point, output)

        return hook

    handles = [modules[point.module].register_forward_hook(make_hook(point))
               for _, point in selected if point.module is not None]
    try:
        for rows in _batches(inputs.shape[0], batch_size, desc, progress):
            batch = inputs[rows].to(model_device)
            if model_dtype is not None and batch.is_floating_point():
                batch = batch.to(model_dtype)
            captured.clear()
            calls.clear()
            for _, point in selected:
                if point.module is None:
                    keep(point, batch)
            logits = model(batch)
            for _, point in selected:
                if calls.get(point.name, 0) != 1:
                    raise ValueError(
                        f"probe point {point.name!r} ran {calls.get(point.name, 0)} times in one forward "
                        "pass; a probe point must be a submodule called exactly once"
                    )
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                raise ValueError("the model must return logits of shape (B, K)")
            yield CapturedBatch(rows, {point.name: captured[point.name] for _, point in selected},
                                dict(shapes), logits.argmax(dim=1).to(out_device))
    finally:
        for handle in handles:
            handle.remove()


def reduce_features(features: torch.Tensor, conv_policy: str = "flatten") -> torch.Tensor:
    """Reduce one batch of captured activations to a ``(B, D)`` matrix.

    Parameters
    ----------
    features : Tensor of shape (B, D) or (B, channels, *spatial)
        Activations of one probe point for one batch.
    conv_policy : {"flatten", "avgpool"}
        ``"flatten"`` reshapes a map channel-major to ``channels * prod(spatial)``
        (the convention of Parker et al. 2023 and Rangamani et al. 2023, whose
        official codes flatten conv maps); ``"avgpool"`` averages over the spatial
        axes (global average pooling) and keeps ``channels`` features. ``(B, D)``
        inputs are returned unchanged under both policies.

    Returns
    -------
    Tensor of shape (B, D)

    Examples
    --------
    >>> import torch
    >>> reduce_features(torch.ones(2, 3, 4, 4), "avgpool").shape
    torch.Size([2, 3])
    """
    if conv_policy not in CONV_POLICIES:
        raise ValueError(f"conv_policy must be one of {CONV_POLICIES}, got {conv_policy!r}")
    if features.ndim < 2:
        raise ValueError(
            f"captured features must have shape (B, D) or (B, C, ...), got {tuple(features.shape)}"
        )
    if features.ndim == 2:
        return features
    if conv_policy == "avgpool":
        return features.mean(dim=tuple(range(2, features.ndim)))
    return features.reshape(features.shape[0], -1)


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
        NC4, Papyan et al. 2020) and ``alignment`` (:func:`ncutils.metrics.subspace_alignment`
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
    plan = _SweepPlan.check(
        model,
        inputs,
        labels,
        test_inputs=test_inputs,
        test_labels=test_labels,
        batch_size=batch_size,
        conv_policy=conv_policy,
        memory_budget=memory_budget,
        device=device,
        alignment_rank=alignment_rank,
        metrics=metrics,
        num_classes=num_classes,
        classes=classes,
    )
    with _evaluation_mode(model), torch.no_grad():
        return plan.run(progress=progress)


class _SweepPlan:
    """Validated arguments of one sweep and the passes that run it."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    @classmethod
    def check(
        cls,
        model: nn.Module,
        inputs: Any,
        labels: Any,
        *,
        test_inputs: Any,
        test_labels: Any,
        batch_size: int,
        conv_policy: str,
        memory_budget: int | None,
        device: str | torch.device | None,
        alignment_rank: int | None = None,
        metrics: Collection[str] | None = None,
        num_classes: int | None = None,
        classes: Any = None,
    ) -> _SweepPlan:
        """Check every argument before any work starts; raise ValueError/KeyError naming the problem."""
        _check_capture_options(batch_size, conv_policy)
        wanted = set(SWEEP_METRICS if metrics is None else ([metrics] if isinstance(metrics, str) else metrics))
        unknown = sorted(wanted - set(SWEEP_METRICS))
        if unknown:
            raise ValueError(f"unknown sweep metrics {unknown}; choose among {list(SWEEP_METRICS)}")
        if alignment_rank is not None and (isinstance(alignment_rank, bool) or not isinstance(alignment_rank, int)
                                           or alignment_rank < 1):
            raise ValueError(f"alignment_rank must be a positive integer or None, got {alignment_rank!r}")
        if memory_budget is not None and (isinstance(memory_budget, bool)
                                          or not isinstance(memory_budget, (int, float))):
            raise ValueError(f"memory_budget must be a number of bytes, got {memory_budget!r}")
        if memory_budget is not None and not memory_budget >= 0:
            raise ValueError(f"memory_budget must be >= 0 bytes, got {memory_budget!r}")
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        points = [point for _, point in _selected_points(model, None)]
        if len({point.name for point in points}) != len(points):
            raise ValueError(f"probe point names repeat: {[point.name for point in points]}")
        classifier_name = getattr(model, "classifier_name", None)
        modules = dict(model.named_modules())
        for point in points:
            if point.module is not None and point.module not in modules:
                raise KeyError(f"probe point {point.name!r}: model has no submodule {point.module!r}")
            if point.consumer is not None:
                if point.consumer not in modules:
                    raise KeyError(
                        f"probe point {point.name!r}: model has no consumer submodule {point.consumer!r}"
                    )
                if not isinstance(getattr(modules[point.consumer], "weight", None), torch.Tensor):
                    raise ValueError(
                        f"probe point {point.name!r}: consumer {point.consumer!r} has no weight tensor"
                    )
        if classifier_name is not None and classifier_name not in modules:
            raise KeyError(f"model.classifier_name {classifier_name!r} is not a submodule of the model")

        inputs, labels = _check_data(inputs, labels, "inputs", "labels")
        sweep_classes = _sweep_classes(labels, classes, num_classes, batch_size)
        if (test_inputs is None) != (test_labels is None):
            raise ValueError("give both test_inputs and test_labels, or neither")
        if test_inputs is not None:
            test_inputs, test_labels = _check_data(test_inputs, test_labels, "test_inputs", "test_labels")
            if test_inputs.shape[1:] != inputs.shape[1:]:
                raise ValueError(
                    f"test_inputs have sample shape {tuple(test_inputs.shape[1:])} but inputs "
                    f"have {tuple(inputs.shape[1:])}"
                )

        parameter = next(model.parameters(), None)
        model_device = parameter.device if parameter is not None else inputs.device
        stats_device = torch.device(device) if device is not None else model_device
        if memory_budget is None:
            memory_budget = 2**30 if model_device.type == "cpu" else 0
        labels = labels.to(stats_device)
        sweep_classes = sweep_classes.to(stats_device)
        return cls(
            model=model,
            modules=modules,
            points=points,
            classifier_name=classifier_name,
            inputs=inputs,
            labels=labels,
            classes=sweep_classes,
            positions=torch.searchsorted(sweep_classes, labels),
            test_inputs=test_inputs,
            test_labels=None if test_labels is None else test_labels.to(stats_device),
            batch_size=batch_size,
            conv_policy=conv_policy,
            memory_budget=memory_budget,
            model_device=model_device,
            model_dtype=parameter.dtype if parameter is not None else None,
            stats_device=stats_device,
            alignment_rank=alignment_rank,
            wanted=wanted,
        )

    # -- the passes -------------------------------------------------------------------

    def run(self, *, progress: bool) -> pd.DataFrame:
        n_points, n_train = len(self.points), self.labels.shape[0]
        stats = [ClassStats(device=self.stats_device, classes=self.classes) for _ in range(n_points)]
        kept = _FeatureStore(n_train, n_points, self.memory_budget, self.stats_device)
        self.sample_shapes: list[tuple[int, ...] | None] = [None] * n_points

        def accumulate_stats(index: int, features: torch.Tensor, rows: slice) -> None:
            stats[index]._update_positions(features, self.positions[rows])
            kept.add(index, features, rows)

        network_predictions = self._forward_pass(
            self.inputs, accumulate_stats, desc="sweep pass 1/2 (class means)", progress=progress
        )
        for class_stats, point in zip(stats, self.points):  # pass 1's device flags, read once
            try:
                class_stats.finalize()
            except ValueError as error:
                raise ValueError(f"layer_sweep, probe point {point.name!r}: {error}") from None
        present = stats[0].classes  # the same labels everywhere: given classes never seen are left out
        positions = (self.positions if present.numel() == self.classes.numel()
                     else torch.searchsorted(present, self.labels))

        want_nc1, want_ncc = "nc1" in self.wanted, "ncc" in self.wanted
        scatters = [ProjectedScatter(class_stats) if want_nc1 else None for class_stats in stats]
        # rows: NCC correct on train, NCC != network on train, NCC correct on test
        ncc_counts = torch.zeros(3, n_points, dtype=torch.long, device=self.stats_device)

        def accumulate_scatter(index: int, features: torch.Tensor, rows: slice) -> None:
            if want_nc1:
                scatters[index]._update_positions(features, positions[rows])
            if want_ncc:
                predicted = _nearest_centre(features, stats[index].means, present)
                ncc_counts[0, index] += (predicted == self.labels[rows]).sum()
                ncc_counts[1, index] += (predicted != network_predictions[rows]).sum()

        if (want_nc1 or want_ncc) and kept.complete:
            self._replay(kept, accumulate_scatter, progress=progress)
        elif want_nc1 or want_ncc:
            self._forward_pass(self.inputs, accumulate_scatter, desc="sweep pass 2/2 (scatter, NCC)",
                               progress=progress)
        del kept

        if self.test_inputs is not None and want_ncc:
            def classify_test(index: int, features: torch.Tensor, rows: slice) -> None:
                predicted = _nearest_centre(features, stats[index].means, present)
                ncc_counts[2, index] += (predicted == self.test_labels[rows]).sum()

            self._forward_pass(self.test_inputs, classify_test, desc="sweep test pass", progress=progress)
        n_test = float("nan") if self.test_inputs is None else self.test_labels.shape[0]
        correct, mismatched, test_correct = ncc_counts.tolist()
        nan = float("nan")
        alignments = self._alignments(stats) if "alignment" in self.wanted else [nan] * n_points

        rows = []
        for index, point in enumerate(self.points):
            row: dict[str, Any] = {"layer": index, "name": point.name,
                                   "depth": index / (n_points - 1) if n_points > 1 else 0.0,
                                   "dim": stats[index].dim, "conv_policy": self.conv_policy}
            row.update(
                metrics.summary_from_stats(
                    stats[index], scatters[index], classifier_weight=self._classifier_weight(point, stats[index].dim)
                )
            )
            # NC3 applies only where the classifier reads, NC1 only with the scatter: keep
            # the columns in every table
            row.setdefault("self_duality", float("nan"))
            row.setdefault("nc1", float("nan"))
            row["ncc_train_acc"] = correct[index] / n_train if want_ncc else nan
            row["ncc_test_acc"] = test_correct[index] / n_test if want_ncc else nan
            row["ncc_mismatch"] = mismatched[index] / n_train if want_ncc else nan
            row["alignment"] = alignments[index]
            rows.append(row)
        return pd.DataFrame(rows)

    def _forward_pass(
        self, inputs: torch.Tensor, sink: FeatureSink, *, desc: str, progress: bool
    ) -> torch.Tensor:
        """One forward pass over ``inputs`` in batches, feeding every probe point to ``sink``.

        Returns the network's predictions (argmax of the logits) on the stats device.
        """
        predictions = []
        for batch in _forward_batches(self.model, self.modules, list(enumerate(self.points)), inputs,
                                      batch_size=self.batch_size, conv_policy=self.conv_policy,
                                      model_device=self.model_device, model_dtype=self.model_dtype,
                                      out_device=self.stats_device, desc=desc, progress=progress):
            for index, point in enumerate(self.points):
                self.sample_shapes[index] = batch.shapes[point.name]
                sink(index, batch.features[point.name], batch.rows)
            predictions.append(batch.predictions)
        return torch.cat(predictions)

    def _replay(self, kept: _FeatureStore, sink: FeatureSink, *, progress: bool) -> None:
        """Pass 2 without a forward pass: feed the kept features in the same batches as pass 1."""
        for rows in _batches(kept.n_samples, self.batch_size, "sweep pass 2/2 (kept features)", progress):
            for index, buffer in enumerate(kept.buffers):
                sink(index, buffer[rows], rows)

    # -- per probe point extras -------------------------------------------------------

    def _classifier_weight(self, point: Any, dim: int) -> torch.Tensor | None:
        """The classifier's weight at the probe point the classifier reads (for NC3), else None."""
        if point.consumer is None or point.consumer != self.classifier_name:
            return None
        weight = self.modules[point.consumer].weight.detach()
        # avgpooled maps read by a classifier over flattened maps: NC3 does not apply
        if weight.ndim != 2 or weight.shape[1] != dim:
            return None
        return weight.to(self.stats_device)

    def _alignments(self, stats: list[ClassStats]) -> list[float]:
        """Consumer-weight / class-mean alignment (Rangamani R2) per probe point, NaN where it
        does not apply; all layers' SVDs at once on the stats device (see
        :func:`ncutils._alignment.batched_alignments`)."""
        requests: list[tuple[torch.Tensor, torch.Tensor, int] | None] = []
        for index, point in enumerate(self.points):
            request = None
            if point.consumer is not None:
                weight = self.modules[point.consumer].weight.detach().to(self.stats_device)
                class_means = _consumer_view(stats[index].means, self.sample_shapes[index], weight)
                if class_means is not None:
                    request = alignment_request(weight, class_means, self.alignment_rank)
            requests.append(request)
        return batched_alignments(requests)


def _sweep_classes(labels: torch.Tensor, classes: Any, num_classes: int | None, batch_size: int) -> torch.Tensor:
    """The sweep's classes, fixed before any batch: given, or ``torch.unique(labels)`` once.

    Raises ValueError for fewer than two classes present or for labels outside given classes
    (naming the first such sample and its batch), before any forward pass.
    """
    present = torch.unique(labels)
    check_min_classes(present, 2, "layer_sweep")
    if classes is None and num_classes is None:
        return present
    fixed = ClassStats(classes=classes, num_classes=num_classes).fixed_classes.to(labels.device)
    unknown = ~torch.isin(present, fixed)
    if bool(unknown.any()):
        first = int((~torch.isin(labels, fixed)).nonzero()[0, 0])
        batch = first // batch_size
        raise ValueError(
            f"labels {present[unknown].tolist()} are not among the classes {fixed.tolist()} (first at "
            f"sample {first}, in batch {batch}: samples {batch * batch_size}:"
            f"{min((batch + 1) * batch_size, labels.shape[0])})"
        )
    return fixed


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


class _FeatureStore:
    """Training features of every probe point, kept from pass 1 only if all fit the budget.

    Buffers are allocated at each probe point's first batch, while the planned total
    (N x D x bytes per entry, summed over the probe points seen so far) stays within
    the budget; the first probe point that would overflow it drops every buffer, and
    pass 2 then recomputes the forward pass.
    """

    def __init__(self, n_samples: int, n_points: int, budget: float, device: torch.device) -> None:
        self.n_samples, self.budget, self.device = n_samples, budget, device
        self.buffers: list[torch.Tensor | None] = [None] * n_points
        self.planned_bytes = 0
        self.dropped = False

    def add(self, index: int, features: torch.Tensor, rows: slice) -> None:
        if self.dropped:
            return
        buffer = self.buffers[index]
        if buffer is None:
            self.planned_bytes += self.n_samples * features.shape[1] * features.element_size()
            if self.planned_bytes > self.budget:
                self.dropped = True
                self.buffers = [None] * len(self.buffers)
                return
            buffer = torch.empty(
                (self.n_samples, features.shape[1]), dtype=features.dtype, device=self.device
            )
            self.buffers[index] = buffer
        buffer[rows] = features

    @property
    def complete(self) -> bool:
        return not self.dropped and all(buffer is not None for buffer in self.buffers)


def _check_data(inputs: Any, labels: Any, inputs_name: str, labels_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = as_tensor(inputs, inputs_name)
    labels = check_labels(labels, labels_name)
    if inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError(f"{inputs_name} are empty: need at least one sample")
    if inputs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{inputs_name} and {labels_name} have mismatched lengths: "
            f"{inputs.shape[0]} samples but {labels.shape[0]} labels"
        )
    return inputs, labels


def _batches(n_samples: int, batch_size: int, desc: str, progress: bool) -> Iterator[slice]:
    starts = range(0, n_samples, batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        yield slice(start, min(start + batch_size, n_samples))


@contextmanager
def _evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode and restore every submodule's own training flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training

