"""Shared input validation for the public entry points of ``ncutils``.

Every public function that receives features, labels or weights calls these
helpers first, so that bad input fails with a ``ValueError`` naming the
problem *before* any work starts, and so that every module converts numpy
arrays, flattens convolutional maps and checks labels the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "CONV_POLICIES",
    "as_tensor",
    "flatten_features",
    "check_finite",
    "check_labels",
    "check_features_labels",
    "check_min_classes",
    "row_chunks",
    "block_budget",
    "resolve_device",
]

#: How a probe point's conv maps become feature vectors (:func:`ncutils.probe.reduce_features`).
#: Here, not in :mod:`ncutils.probe`, because a TrainConfig checks its sweep option too, and a
#: trained run's key must not follow the probing code (:mod:`ncutils.store.code`).
CONV_POLICIES: tuple[str, ...] = ("flatten", "avgpool")


def as_tensor(value: Any, name: str) -> torch.Tensor:
    """Return ``value`` as a torch tensor; numpy arrays and sequences are converted.

    Tensors are returned as they are (same device, same dtype, no copy).
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ValueError(f"{name} must be numeric, got a numpy array of dtype object")
        return torch.from_numpy(np.ascontiguousarray(value))
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{name} must be a torch tensor or a numpy array, got {type(value).__name__}"
        ) from error


def flatten_features(features: Any, name: str = "features") -> torch.Tensor:
    """Return features as a 2-D tensor ``(N, D)``.

    ``(N, D)`` is kept; ``(N, C, H, W)`` (or any ``(N, ...)``) is flattened
    channel-major to ``(N, C*H*W)``, the convention of the book's conventions page (book/conventions.md).
    """
    features = as_tensor(features, name)
    if features.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, D) or (N, C, H, W), got shape {tuple(features.shape)}"
        )
    if features.dtype == torch.bool or features.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {features.dtype}")
    if features.ndim > 2:
        features = features.reshape(features.shape[0], -1)
    return features


def check_finite(tensor: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` when ``tensor`` holds NaN or infinite entries.

    Fast path: one sum in the tensor's own dtype. Under IEEE arithmetic a sum that
    contains NaN or +-inf is never finite, so a finite sum proves every entry
    finite; only a non-finite sum (bad entries, or an overflow of large finite
    ones) triggers the exact element-wise scan. ``isfinite`` alone costs several
    passes and temporaries over wide features.
    """
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise ValueError(f"{name} contain {bad} NaN or infinite value(s)")


def check_labels(labels: Any, name: str = "labels") -> torch.Tensor:
    """Return labels as a 1-D integer (int64) tensor; reject floats, bools and empties."""
    labels = as_tensor(labels, name)
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got shape {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
    if labels.numel() == 0:
        raise ValueError(f"{name} are empty: need at least one sample")
    return labels.long()


def check_features_labels(
    features: Any,
    labels: Any,
    *,
    features_name: str = "features",
    labels_name: str = "labels",
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a ``(features, labels)`` pair and return ``(features (N, D), labels (N,))``.

    Checks, in this order: shapes, emptiness, matching lengths, integer labels,
    finite features. Labels are moved to the features' device. ``check_values=False``
    skips the finiteness scan (a full pass over the features) for callers that
    check their float64 results instead or that validated the same tensor already.
    """
    features = flatten_features(features, features_name)
    if features.shape[0] == 0:
        raise ValueError(f"{features_name} are empty: need at least one sample")
    if features.shape[1] == 0:
        raise ValueError(f"{features_name} have zero dimensions (shape {tuple(features.shape)})")
    labels = check_labels(labels, labels_name)
    if labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"{features_name} and {labels_name} have mismatched lengths: "
            f"{features.shape[0]} samples but {labels.shape[0]} labels"
        )
    if check_values:
        check_finite(features, features_name)
    return features, labels.to(features.device)


def check_min_classes(classes: torch.Tensor, minimum: int = 2, what: str = "this metric") -> None:
    """Raise ``ValueError`` when fewer than ``minimum`` classes are present."""
    if classes.numel() < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} classes, got {classes.numel()} "
            f"(classes {classes.tolist()})"
        )


def row_chunks(
    n_rows: int, row_bytes: int, budget_bytes: int = 16 * 2**20, min_rows: int = 64
) -> range:
    """Start indices of row blocks for per-sample float64 work; the block size is ``step``.

    Blocks hold about ``budget_bytes`` (16 MB: large enough that per-block overhead
    and thread synchronisation stay small, small enough to stay near cache and to
    bound memory whatever N) but at least ``min_rows`` rows, so that very wide
    features (64 rows of D = 65,536 is 32 MB) do not degenerate into tiny blocks.
    """
    rows = max(min_rows, budget_bytes // max(1, row_bytes), 1)
    return range(0, n_rows, rows)


#: Bytes of float64 work per row block, per device type. On a CPU a block should stay near
#: the cache (16 MB); on a GPU each block costs a dozen kernel launches whatever its size, so
#: blocks are as large as memory comfortably allows and a batch is usually one block.
BLOCK_BUDGET_BYTES: dict[str, int] = {"cpu": 16 * 2**20, "cuda": 512 * 2**20}


def block_budget(device: torch.device | str) -> int:
    """Row-block budget in bytes for float64 work on ``device`` (see :data:`BLOCK_BUDGET_BYTES`)."""
    kind = torch.device(device).type
    return BLOCK_BUDGET_BYTES.get(kind, BLOCK_BUDGET_BYTES["cpu"])


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; other names as torch parses them.

    The one place where a device request becomes a device, so that training, the
    probes and the provenance of a figure always agree on where work ran.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'auto' or a torch device name, got {device!r}") from error
