"""The statistics level of a layer sweep: per probe point class statistics, in at most two passes.

:func:`sweep_statistics` measures every hidden representation a model lists in
``model.probe_points`` (see :mod:`ncutils.models`) with at most two forward passes over
the training data, however many probe points there are:

- pass 1 feeds a :class:`~ncutils.stats.ClassStats` per probe point (counts, class
  means, within-class sums of squares) and records the network's predictions;
- pass 2 feeds a :class:`~ncutils.stats.ProjectedScatter` per probe point (the
  C x C matrix behind the exact NC1) and counts the nearest-class-centre (NCC) labels
  against the true labels and the network's predictions.

It returns :class:`SweepStatistics`: per probe point those statistics, the NCC counts and
the classifier's weight where the classifier reads. No metric is computed here:
:func:`ncutils.sweep.sweep_table` makes the table of them (this module imports no
:mod:`ncutils.metrics`, so the results store keys stored statistics apart from the
metrics: an edit to a metric recomputes tables, never the passes). The results store
measures stored runs with :func:`measure_statistics`; training that tracks the last
layer keeps :func:`last_layer_statistics` after every epoch.

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

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ncutils._checks import check_min_classes
from ncutils.probe import (_batches, _check_capture_options, _check_data, _evaluation_mode, _forward_batches,
                           _selected_points)
from ncutils.stats import ClassStats, ProjectedScatter, nearest_centre_labels

if TYPE_CHECKING:
    from ncutils.data import Dataset

__all__ = ["EVAL_BATCH_SIZE", "SWEEP_METRICS", "TABLE_OPTIONS", "PointStatistics", "SweepStatistics",
           "last_layer_statistics", "measure_statistics", "sweep_statistics"]

#: Groups of columns a sweep can compute; the cheap class-statistics columns (traces,
#: CDNV, NC2) are always there. ``"nc1"`` needs the second pass (the projected scatter),
#: ``"ncc"`` the nearest-class-centre counts (train, test, mismatch), ``"alignment"`` one
#: SVD per consumer layer (in :func:`sweep_table`, from the model's weights).
SWEEP_METRICS: tuple[str, ...] = ("nc1", "ncc", "alignment")
#: Version of :meth:`SweepStatistics.state`'s layout.
STATE_FORMAT = 1

# Called once per probe point and batch: (probe point index, features (B, D), batch rows).
FeatureSink = Callable[[int, torch.Tensor, slice], None]


@dataclass
class PointStatistics:
    """What a sweep keeps of one probe point.

    Attributes
    ----------
    layer : int
        Index in the model's ``probe_points``.
    name : str
    consumer : str or None
        The submodule that reads this probe point (for the alignment).
    sample_shape : tuple of int or None
        Per-sample shape before the conv policy (``(channels, H, W)`` for maps).
    class_stats : ClassStats
        Pass 1 on the training data.
    scatter : ProjectedScatter or None
        Pass 2 (None when ``"nc1"`` was not asked for).
    classifier_weight : float64 tensor (K, D) or None
        The classifier's weight where the classifier reads this point (for NC3).
    ncc_counts : tuple of 4 ints or None
        NCC labels equal to the training labels, different from the network's training
        predictions, equal to the test labels, different from the network's test
        predictions (the test counts are 0 without test data); None without ``"ncc"``.
    """

    layer: int
    name: str
    consumer: str | None
    sample_shape: tuple[int, ...] | None
    class_stats: ClassStats
    scatter: ProjectedScatter | None
    classifier_weight: torch.Tensor | None
    ncc_counts: tuple[int, int, int, int] | None


@dataclass
class SweepStatistics:
    """The statistics level of a layer sweep (:func:`sweep_statistics`): everything the
    metrics table needs but the consumer layers' weights.

    Attributes
    ----------
    points : list of PointStatistics
        In depth order.
    n_all_points : int
        Probe points of the model (``depth = layer / (n_all_points - 1)``).
    n_train : int
    n_test : int or None
    conv_policy : str
    groups : tuple of str
        The :data:`SWEEP_METRICS` groups measured.

    Example
    -------
    >>> import torch
    >>> from ncutils.models import build_model
    >>> model = build_model("mlp", input_shape=(10,), num_classes=3, depth=3, width=8)
    >>> statistics = sweep_statistics(model, torch.randn(60, 10), torch.arange(60) % 3)
    >>> again = SweepStatistics.from_state(statistics.state())
    >>> from ncutils.sweep import sweep_table
    >>> sweep_table(again, model).equals(sweep_table(statistics, model))
    True
    """

    points: list[PointStatistics]
    n_all_points: int
    n_train: int
    n_test: int | None
    conv_policy: str
    groups: tuple[str, ...]

    def class_stats(self) -> dict[str, ClassStats]:
        """Probe point name -> its pass-1 statistics (e.g. for a metric the table lacks)."""
        return {point.name: point.class_stats for point in self.points}

    def state(self) -> dict[str, Any]:
        """Plain tensors, numbers and strings on the CPU (``torch.load(weights_only=True)`` reads it)."""
        return {
            "format": STATE_FORMAT, "n_all_points": self.n_all_points, "n_train": self.n_train,
            "n_test": self.n_test, "conv_policy": self.conv_policy, "groups": list(self.groups),
            "points": [{
                "layer": point.layer, "name": point.name, "consumer": point.consumer,
                "sample_shape": None if point.sample_shape is None else list(point.sample_shape),
                "class_stats": point.class_stats.state(),
                "scatter": None if point.scatter is None else point.scatter.state(),
                "classifier_weight": None if point.classifier_weight is None else point.classifier_weight.cpu(),
                "ncc_counts": None if point.ncc_counts is None else list(point.ncc_counts),
            } for point in self.points],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | torch.device = "cpu") -> SweepStatistics:
        """Rebuild from :meth:`state` on ``device``.

        Raises
        ------
        ValueError
            A state of another layout version.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"sweep statistics of format {state.get('format')!r}; this code reads {STATE_FORMAT}")
        points = []
        for entry in state["points"]:
            class_stats = ClassStats.from_state(entry["class_stats"], device)
            weight = entry["classifier_weight"]
            points.append(PointStatistics(
                layer=int(entry["layer"]), name=entry["name"], consumer=entry["consumer"],
                sample_shape=None if entry["sample_shape"] is None else tuple(entry["sample_shape"]),
                class_stats=class_stats,
                scatter=None if entry["scatter"] is None else ProjectedScatter.from_state(class_stats, entry["scatter"]),
                classifier_weight=None if weight is None else weight.to(device),
                ncc_counts=None if entry["ncc_counts"] is None else tuple(int(c) for c in entry["ncc_counts"])))
        return cls(points=points, n_all_points=int(state["n_all_points"]), n_train=int(state["n_train"]),
                   n_test=None if state["n_test"] is None else int(state["n_test"]),
                   conv_policy=state["conv_policy"], groups=tuple(state["groups"]))


def sweep_statistics(
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
    metrics: Collection[str] | None = None,
    num_classes: int | None = None,
    classes: Any = None,
    points: Sequence[str] | None = None,
) -> SweepStatistics:
    """The statistics level of :func:`layer_sweep`: the passes over the data, no metric.

    Parameters are those of :func:`layer_sweep` (``metrics`` chooses which passes run),
    plus ``points``: names of the probe points to measure (all by default).

    Returns
    -------
    SweepStatistics
        On the statistics device; :func:`sweep_table` makes the metrics table of it.
    """
    plan = _SweepPlan.check(model, inputs, labels, test_inputs=test_inputs, test_labels=test_labels,
                            batch_size=batch_size, conv_policy=conv_policy, memory_budget=memory_budget,
                            device=device, metrics=metrics, num_classes=num_classes, classes=classes,
                            points=points)
    with _evaluation_mode(model), torch.no_grad():
        return plan.statistics(progress=progress)


#: Sweep options that only the table uses (:func:`ncutils.sweep.sweep_table`); the others
#: decide the passes (and key the stored statistics).
TABLE_OPTIONS = ("alignment_rank",)
#: Batch size of the last layer's statistics after every epoch.
EVAL_BATCH_SIZE = 1024


def measure_statistics(model: nn.Module, train_data: Dataset, test_data: Dataset,
                       **options: Any) -> SweepStatistics:
    """The sweep statistics of ``model`` on a run's data (train set; test set for the NCC test counts).

    ``options`` go to :func:`sweep_statistics` (``conv_policy``, ``batch_size``,
    ``metrics``, ...); :data:`TABLE_OPTIONS` are ignored here.
    """
    passes = {name: value for name, value in options.items() if name not in TABLE_OPTIONS}
    # the classes are known up front: the sweep then never asks the device which are present
    return sweep_statistics(model, train_data.inputs, train_data.labels, test_inputs=test_data.inputs,
                            test_labels=test_data.labels, progress=False,
                            num_classes=train_data.num_classes, **passes)


def last_layer_statistics(model: nn.Module, train_data: Dataset, test_data: Dataset) -> dict[str, Any]:
    """The statistics behind one row of the last layer's series (:mod:`ncutils.series`): plain tensors.

    Two sweeps of the model's last probe point (conv maps flattened): the training set
    (class statistics, projected scatter, NCC counts on train and test with the training
    means, the classifier's weight) and the test set (its own class statistics and scatter).

    Returns
    -------
    dict
        ``{"train": state, "test": state}`` of :meth:`SweepStatistics.state`.
    """
    point = [model.probe_points[-1].name]
    train_side = sweep_statistics(model, train_data.inputs, train_data.labels, test_inputs=test_data.inputs,
                                  test_labels=test_data.labels, points=point, metrics=("nc1", "ncc"),
                                  batch_size=EVAL_BATCH_SIZE, num_classes=train_data.num_classes)
    test_side = sweep_statistics(model, test_data.inputs, test_data.labels, points=point, metrics=("nc1",),
                                 batch_size=EVAL_BATCH_SIZE, num_classes=train_data.num_classes)
    return {"train": train_side.state(), "test": test_side.state()}


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
        metrics: Collection[str] | None = None,
        num_classes: int | None = None,
        classes: Any = None,
        points: Sequence[str] | None = None,
    ) -> _SweepPlan:
        """Check every argument before any work starts; raise ValueError/KeyError naming the problem."""
        _check_capture_options(batch_size, conv_policy)
        wanted = set(SWEEP_METRICS if metrics is None else ([metrics] if isinstance(metrics, str) else metrics))
        unknown = sorted(wanted - set(SWEEP_METRICS))
        if unknown:
            raise ValueError(f"unknown sweep metrics {unknown}; choose among {list(SWEEP_METRICS)}")
        if memory_budget is not None and (isinstance(memory_budget, bool)
                                          or not isinstance(memory_budget, (int, float))):
            raise ValueError(f"memory_budget must be a number of bytes, got {memory_budget!r}")
        if memory_budget is not None and not memory_budget >= 0:
            raise ValueError(f"memory_budget must be >= 0 bytes, got {memory_budget!r}")
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        every_point = [point for _, point in _selected_points(model, None)]
        if len({point.name for point in every_point}) != len(every_point):
            raise ValueError(f"probe point names repeat: {[point.name for point in every_point]}")
        indexed = _selected_points(model, points)
        points = [point for _, point in indexed]
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
            layers=[index for index, _ in indexed],
            n_all_points=len(every_point),
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
            wanted=wanted,
        )

    # -- the passes -------------------------------------------------------------------

    def statistics(self, *, progress: bool) -> SweepStatistics:
        """Pass 1, pass 2 (kept features or a second forward pass) and the test pass."""
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
        # rows: NCC correct on train, NCC != network on train, NCC correct on test, NCC != network on test
        ncc_counts = torch.zeros(4, n_points, dtype=torch.long, device=self.stats_device)

        def accumulate_scatter(index: int, features: torch.Tensor, rows: slice) -> None:
            if want_nc1:
                scatters[index]._update_positions(features, positions[rows])
            if want_ncc:
                predicted = nearest_centre_labels(features, stats[index].means, present)
                ncc_counts[0, index] += (predicted == self.labels[rows]).sum()
                ncc_counts[1, index] += (predicted != network_predictions[rows]).sum()

        if (want_nc1 or want_ncc) and kept.complete:
            self._replay(kept, accumulate_scatter, progress=progress)
        elif want_nc1 or want_ncc:
            self._forward_pass(self.inputs, accumulate_scatter, desc="sweep pass 2/2 (scatter, NCC)",
                               progress=progress)
        kept.buffers = []  # free the kept features before the test pass

        n_test = None if self.test_inputs is None else int(self.test_labels.shape[0])
        if n_test is not None and want_ncc:
            test_ncc = torch.empty(n_points, n_test, dtype=torch.long, device=self.stats_device)

            def classify_test(index: int, features: torch.Tensor, rows: slice) -> None:
                test_ncc[index, rows] = nearest_centre_labels(features, stats[index].means, present)

            test_predictions = self._forward_pass(self.test_inputs, classify_test, desc="sweep test pass",
                                                  progress=progress)
            ncc_counts[2] = (test_ncc == self.test_labels).sum(dim=1)
            ncc_counts[3] = (test_ncc != test_predictions).sum(dim=1)
        counts = ncc_counts.T.tolist() if want_ncc else [None] * n_points
        groups = tuple(group for group in SWEEP_METRICS if group in self.wanted)
        return SweepStatistics(
            points=[PointStatistics(layer=layer, name=point.name, consumer=point.consumer,
                                    sample_shape=self.sample_shapes[index], class_stats=stats[index],
                                    scatter=scatters[index],
                                    classifier_weight=self._classifier_weight(point, stats[index].dim),
                                    ncc_counts=None if counts[index] is None else tuple(counts[index]))
                    for index, (layer, point) in enumerate(zip(self.layers, self.points))],
            n_all_points=self.n_all_points, n_train=int(n_train), n_test=n_test,
            conv_policy=self.conv_policy, groups=groups)

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

    def _classifier_weight(self, point: Any, dim: int) -> torch.Tensor | None:
        """The classifier's weight at the probe point the classifier reads (for NC3), else None."""
        if point.consumer is None or point.consumer != self.classifier_name:
            return None
        weight = self.modules[point.consumer].weight.detach()
        # avgpooled maps read by a classifier over flattened maps: NC3 does not apply
        if weight.ndim != 2 or weight.shape[1] != dim:
            return None
        return weight.to(device=self.stats_device, dtype=torch.float64, copy=True)

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

