"""Rangamani's weight / class-mean alignment for many layers at once (the layer sweep's SVDs).

:func:`ncutils.metrics.subspace_alignment` measures one layer; a layer sweep needs it at
every consumer layer. These SVDs depend on the layers' shapes, not on the number of
samples, so the sweep runs them once, after its data passes, on the statistics' device:
same-shape matrices go through one batched ``torch.linalg.svd`` and the host reads all
values in one transfer. Same matrices, SVDs and cosines as the metric (values agree to
round-off). The layouts both read (:func:`_weight_input_major`, :func:`_means_input_major`)
live here, so that the metric imports this module and not the other way round.

References
----------
Rangamani, Lindegaard, Galanti, Poggio (2023), "Feature learning in deep classifiers
through intermediate neural collapse", ICML ("AngleBetweenSubspaces").
"""

from __future__ import annotations

import torch

__all__ = ["alignment_request", "batched_alignments", "top_left_bases"]

#: One layer's input-major float64 weight (in, p), class means (in, q) and subspace rank k.
Request = tuple[torch.Tensor, torch.Tensor, int]


def _weight_input_major(weight: torch.Tensor) -> torch.Tensor:
    """Weight as (in, ...): ``W^T`` for Linear (out, in); (in, out*kh*kw) for Conv2d."""
    if weight.ndim == 2:
        return weight.T
    if weight.ndim == 4:
        return weight.transpose(0, 1).reshape(weight.shape[1], -1)
    raise ValueError(
        f"weight must be a Linear (out, in) or Conv2d (out, in, kh, kw) weight, "
        f"got shape {tuple(weight.shape)}"
    )


def _means_input_major(class_means: torch.Tensor, in_dim: int, conv: bool) -> torch.Tensor:
    """Class means as (in, ...): ``means^T`` (in, C), or (in, C*H*W) for conv maps."""
    if class_means.ndim == 2 and class_means.shape[1] == in_dim:
        return class_means.T
    if conv and class_means.ndim >= 2 and class_means[0].numel() % in_dim == 0:
        # flat conv means (C, in*H*W) are channel-major, as torch.flatten leaves them
        if class_means.ndim == 2 or class_means.shape[1] == in_dim:
            per_channel = class_means.reshape(class_means.shape[0], in_dim, -1)
            return per_channel.transpose(0, 1).reshape(in_dim, -1)
    raise ValueError(
        f"class_means of shape {tuple(class_means.shape)} do not match a weight with "
        f"{in_dim} input {'channels' if conv else 'features'}"
    )


def alignment_request(weight: torch.Tensor, class_means: torch.Tensor, k: int | None) -> Request:
    """The matrices and rank of :func:`ncutils.metrics.subspace_alignment`, same checks and k rule."""
    weight_matrix = _weight_input_major(weight).to(torch.float64)
    in_dim = weight_matrix.shape[0]
    means_matrix = _means_input_major(class_means, in_dim, conv=weight.ndim == 4)
    means_matrix = means_matrix.to(device=weight_matrix.device, dtype=torch.float64)
    largest_k = min(in_dim, weight_matrix.shape[1], means_matrix.shape[1])
    if k is None:
        k = min(class_means.shape[0], largest_k)
    elif not 1 <= k <= largest_k:
        raise ValueError(f"k must be between 1 and {largest_k} for these shapes, got {k}")
    return weight_matrix, means_matrix, k


def top_left_bases(matrices: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
    """Top-k left singular vectors of each ``(matrix, k)``: one batched SVD per distinct shape."""
    bases: list[torch.Tensor | None] = [None] * len(matrices)
    groups: dict[tuple[int, ...], list[int]] = {}
    for slot, (matrix, _) in enumerate(matrices):
        groups.setdefault(tuple(matrix.shape), []).append(slot)
    for slots in groups.values():
        left = torch.linalg.svd(torch.stack([matrices[slot][0] for slot in slots]), full_matrices=False)[0]
        for position, slot in enumerate(slots):
            bases[slot] = left[position, :, : matrices[slot][1]]
    return bases


def batched_alignments(requests: list[Request | None]) -> list[float]:
    """:func:`ncutils.metrics.subspace_alignment` for many layers, batched, read once.

    ``requests`` holds ``(weight (in, p), class means (in, q), k)`` input-major float64
    matrices per probe point, or ``None`` (NaN). The SVDs depend on the layers' shapes, not
    on N: they run here, after the passes, grouped by shape, and the host reads the results
    once. The same SVDs and cosines as the metric, so the values agree to round-off.
    """
    wanted = [(slot, request) for slot, request in enumerate(requests) if request is not None]
    values = [float("nan")] * len(requests)
    if not wanted:
        return values
    finite = torch.stack([torch.isfinite(weight).all() for _, (weight, _, _) in wanted])
    if not bool(finite.all()):
        raise ValueError("weight contains NaN or infinite values")
    weight_bases = top_left_bases([(weight, k) for _, (weight, _, k) in wanted])
    means_bases = top_left_bases([(means, k) for _, (_, means, k) in wanted])
    products = [weight_basis.T @ means_basis for weight_basis, means_basis in zip(weight_bases, means_bases)]
    cosines: list[torch.Tensor | None] = [None] * len(products)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for slot, product in enumerate(products):
        by_shape.setdefault(tuple(product.shape), []).append(slot)
    for slots in by_shape.values():
        singular = torch.linalg.svdvals(torch.stack([products[slot] for slot in slots])).clamp_(max=1.0)
        for position, slot in enumerate(slots):
            cosines[slot] = singular[position].mean()
    for (slot, _), value in zip(wanted, torch.stack(cosines).tolist()):
        values[slot] = value
    return values
