"""Probe points: capture a model's hidden representations, batch by batch.

:func:`iter_features` streams the representations at a model's probe points (see
:mod:`ncutils.models`: ``model.probe_points``, depth-ordered from the input to the
penultimate features) one batch at a time, and :func:`capture` keeps them. Features are
captured with forward hooks and reduced to ``(N, D)`` by the conv-map policy
(:func:`reduce_features`) right inside the hook, so no probe point's activations outlive
their batch. The layer sweep (:mod:`ncutils.sweep`) is built on the same forward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ncutils._checks import CONV_POLICIES, as_tensor, check_labels

__all__ = ["CONV_POLICIES", "CapturedBatch", "capture", "iter_features", "reduce_features"]


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
    wide layers over many samples prefer :func:`iter_features` or :func:`ncutils.sweep.layer_sweep`
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

