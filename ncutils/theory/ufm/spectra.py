"""Layer Hessians, Gauss-Newton parts, gradients and per-layer measurements of a deep UFM state.

Vectorisation convention
------------------------
``vec(W_l)`` is the **row-major** flattening ``W_l.reshape(-1)`` (torch's
order): entry ``W[a, b]`` sits at index ``a * d_in + b``.  With this order
``vec(u w^T) = kron(u, w)``, so the paper's eigenvector
``mu_c^(l+1) kron mu_c'^(l)`` is the rank-one matrix ``mu_c^(l+1) mu_c'^(l)^T``
(output side first, input side second), and the layer Hessian of the data term
is ``A^T A kron Av_i[h_i h_i^T]`` with ``A = W_L ... W_{l+1}`` (linear model).
Every Hessian, Jacobian and basis vector in this module uses that order.

References
----------
C. Garrod and J. P. Keating, arXiv:2404.06106 (2024), Theorems 4.1-4.4.
V. Papyan, "Traces of Class/Cross-Class Structure Pervade Deep Learning
Spectra", JMLR 21 (2020) -- the within / cross / class split of the
Gauss-Newton matrix.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ncutils import metrics
from ncutils.stats import ClassStats
from ncutils.theory.ufm import _store
from ncutils.theory.ufm.model import (
    DTYPE,
    UFMConfig,
    UFMState,
    _apply_layer,
    _check_layer,
    _check_state,
    _propagate,
    data_loss,
    dnc_state,  # noqa: F401 - the examples below build deep-NC points
    forward,
    targets,
)

__all__ = [
    "LayerAnalysis",
    "layer_loss_function",
    "layer_hvp",
    "layer_hessian",
    "layer_jacobian",
    "gauss_newton_factor",
    "hessian_spectrum_from_jacobian",
    "class_means",
    "kron_basis",
    "eigenvector_alignment",
    "gauss_newton_split",
    "gradient_coefficients",
    "data_gradient",
    "analyse_layer",
    "layer_metrics",
    "weight_gram_spectra",
    "kink_fractions",
    "spectrum_frame",
]

#: Relative eigenvalue cutoff used for numerical ranks (eigenvalue / largest
#: eigenvalue of the Gauss-Newton matrix). Features at a stationary point are
#: exactly collapsed, so the within-class part sits at round-off level.
DEFAULT_RANK_RTOL = 1e-8


# --------------------------------------------------------------------------- layer Hessian
def _layer_output_function(state: UFMState, config: UFMConfig, layer: int) -> Callable:
    """``W -> output`` with every parameter except ``W_layer`` held fixed."""
    _check_layer(config, layer)
    fixed = state.detach()
    depth, activation = config.depth, config.activation
    below = _propagate(fixed.features, fixed.weights[: layer - 1], 1, depth, activation)
    above = fixed.weights[layer:]

    def output_of(weight: torch.Tensor) -> torch.Tensor:
        x = _apply_layer(weight, below, layer, depth, activation)
        return _propagate(x, above, layer + 1, depth, activation)

    return output_of


def layer_loss_function(
    state: UFMState, config: UFMConfig, layer: int, *, include_decay: bool = True
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss as a function of ``W_layer`` alone (other parameters fixed).

    With ``include_decay`` the function is the full :func:`ufm_loss` (up to the
    constant decay of the other parameters, which does not change derivatives);
    without it, the data-fit term only.
    """
    output_of = _layer_output_function(state, config, layer)
    y = targets(config.num_classes, config.per_class)[0]

    def loss_of(weight: torch.Tensor) -> torch.Tensor:
        loss = data_loss(output_of(weight), y)
        if include_decay:
            loss = loss + 0.5 * config.lambda_w * (weight**2).sum()
        return loss

    return loss_of


def layer_hvp(
    state: UFMState, config: UFMConfig, layer: int, direction: torch.Tensor,
    *, include_decay: bool = True,
) -> torch.Tensor:
    """Hessian-vector product ``H_l V`` with respect to ``W_layer`` (forward-over-reverse autograd).

    ``direction`` has the shape of ``W_layer`` (a matrix ``V``, i.e. ``vec(V)``
    in the row-major order of the module); the result has the same shape.
    """
    _check_layer(config, layer)
    _check_state(state, config)
    weight = state.weights[layer - 1].detach()
    if tuple(direction.shape) != tuple(weight.shape):
        raise ValueError(f"direction must have the shape of W_{layer} {tuple(weight.shape)}, "
                         f"got {tuple(direction.shape)}")
    grad_fn = torch.func.grad(layer_loss_function(state, config, layer, include_decay=include_decay))
    return torch.func.jvp(grad_fn, (weight,), (direction.to(DTYPE),))[1]


def layer_hessian(
    state: UFMState, config: UFMConfig, layer: int, *, include_decay: bool = True,
    chunk_size: int = 512,
) -> torch.Tensor:
    """Exact Hessian of the loss with respect to ``vec(W_layer)`` by autograd.

    Columns are Hessian-vector products along the unit vectors (forward-over-
    reverse, vmapped in chunks of ``chunk_size`` to bound memory). The result is
    ``(P, P)`` with ``P = d_out d_in``, in the row-major ``vec`` order of the
    module, not symmetrised. With ``include_decay`` the Hessian of the full loss
    (``lambda_W I`` added); otherwise of the data term only.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Section 4 (layer-wise Hessian).
    """
    _check_layer(config, layer)
    _check_state(state, config)
    weight = state.weights[layer - 1].detach()
    grad_fn = torch.func.grad(layer_loss_function(state, config, layer, include_decay=include_decay))
    size = weight.numel()
    basis = torch.eye(size, dtype=DTYPE).reshape(size, *weight.shape)

    def column(direction: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(grad_fn, (weight,), (direction,))[1]

    columns = torch.vmap(column, chunk_size=chunk_size)(basis)
    return columns.reshape(size, size).T.contiguous()


def layer_jacobian(state: UFMState, config: UFMConfig, layer: int) -> torch.Tensor:
    """Jacobian of the network output with respect to ``vec(W_layer)``.

    Returns
    -------
    torch.Tensor
        ``(K, N, P)``: entry ``[c, i, :]`` is ``d f_c(i) / d vec(W_layer)``.
    """
    _check_layer(config, layer)
    _check_state(state, config)
    weight = state.weights[layer - 1].detach()
    jacobian = torch.func.jacrev(_layer_output_function(state, config, layer))(weight)
    return jacobian.reshape(config.num_classes, config.num_samples, weight.numel())


def gauss_newton_factor(jacobian: torch.Tensor) -> torch.Tensor:
    """``F`` (P x K N) with ``F F^T = G``, the Gauss-Newton matrix ``(1/N) sum_i J_i^T J_i``."""
    k, n_samples, size = jacobian.shape
    return jacobian.reshape(k * n_samples, size).T / math.sqrt(n_samples)


def hessian_spectrum_from_jacobian(
    jacobian: torch.Tensor, lambda_w: float, num_eigenvalues: int | None = None
) -> np.ndarray:
    """Largest eigenvalues of ``G + lambda_W I`` from the small Gram ``F^T F``.

    For the linear and the ReLU UFM the output is (piecewise) linear in each
    ``W_l``, so the layer Hessian of the full loss *is* ``G + lambda_W I`` (the
    residual term vanishes almost everywhere; the tests check this against
    :func:`layer_hessian`). Its nonzero-``G`` eigenvalues come from the
    ``KN x KN`` Gram at a fraction of the cost; the remaining ``P - KN``
    eigenvalues equal ``lambda_W``.

    Returns
    -------
    numpy.ndarray
        Descending eigenvalues, ``min(P, num_eigenvalues or K N)`` of them.
    """
    factor = gauss_newton_factor(jacobian)
    size = factor.shape[0]
    gram = factor.T @ factor
    values = torch.linalg.eigvalsh(gram).clamp_min(0.0).flip(0)
    count = min(size, num_eigenvalues if num_eigenvalues is not None else values.numel())
    if count > values.numel():
        values = torch.cat([values, values.new_zeros(count - values.numel())])
    return (values[:count] + lambda_w).numpy()


# --------------------------------------------------------------------------- class structure
def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Un-centred class means ``[mu_1, ..., mu_K]`` as columns (width x K), float64.

    Features are ``(width, N)`` as in this module (one column per sample); the means come
    from :class:`ncutils.stats.ClassStats`, the statistics every other chapter uses.
    """
    if features.ndim != 2 or features.shape[1] != labels.shape[0]:
        raise ValueError(f"features must be (width, N) with N = len(labels) = {labels.shape[0]}, "
                         f"got {tuple(features.shape)}")
    stats = ClassStats.from_features(features.T, labels)
    if not torch.equal(stats.classes.cpu(), torch.arange(num_classes)):
        raise ValueError("every class needs at least one sample")
    return stats.means.T.to(DTYPE)


def kron_basis(means_out: torch.Tensor, means_in: torch.Tensor, *, normalise: bool = True) -> torch.Tensor:
    """Vectors ``v_cc' = mu_c^(l+1) kron mu_c'^(l)`` in the module's row-major ``vec`` order.

    Parameters
    ----------
    means_out : torch.Tensor
        ``(d_out, K)`` class means of the layer's output ``h^(l+1)``.
    means_in : torch.Tensor
        ``(d_in, K)`` class means of the layer's input ``h^(l)``.
    normalise : bool
        Scale each mean to unit norm first (so ``||v_cc'|| = 1``).

    Returns
    -------
    torch.Tensor
        ``(K, K, d_out * d_in)``; ``[c, c']`` equals ``vec(mu_c^(l+1) mu_c'^(l)^T)``.

    Examples
    --------
    >>> kron_basis(torch.eye(2, dtype=torch.float64), torch.eye(3, 2, dtype=torch.float64)).shape
    torch.Size([2, 2, 6])
    """
    if normalise:
        means_out = means_out / means_out.norm(dim=0, keepdim=True)
        means_in = means_in / means_in.norm(dim=0, keepdim=True)
    outer = means_out.T[:, None, :, None] * means_in.T[None, :, None, :]
    return outer.reshape(means_out.shape[1], means_in.shape[1], -1)


def eigenvector_alignment(hvp: Callable[[torch.Tensor], torch.Tensor], vectors: torch.Tensor) -> torch.Tensor:
    """How close each ``v`` is to an eigenvector: ``f = (v^T H v)^2 / (v^T v ||H v||^2)``.

    ``f`` is the squared cosine between ``v`` and ``H v``: it is 1 exactly when
    ``v`` is an eigenvector (with nonzero eigenvalue) and smaller otherwise.

    Parameters
    ----------
    hvp : callable
        ``v -> H v`` on flat vectors of length ``P``.
    vectors : torch.Tensor
        ``(..., P)``, e.g. the output of :func:`kron_basis`.

    Returns
    -------
    torch.Tensor
        ``f`` with the leading shape of ``vectors``.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorem 4.1 and its numerical check.

    Examples
    --------
    >>> h = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))
    >>> eigenvector_alignment(lambda v: h @ v, torch.eye(2, dtype=torch.float64)).tolist()
    [1.0, 1.0]
    """
    flat = vectors.reshape(-1, vectors.shape[-1]).to(DTYPE)
    values = []
    for v in flat:
        hv = hvp(v)
        values.append((v @ hv) ** 2 / ((v @ v) * (hv @ hv)))
    return torch.stack(values).reshape(vectors.shape[:-1])


def gauss_newton_split(jacobian: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Within-class, cross-class and class parts of the Gauss-Newton matrix, as factors.

    With ``j_ic = d f_c(i)/d vec(W_l)`` and ``delta_cc' = mean_{i in class c'} j_ic``,
    the Gauss-Newton matrix ``G = (1/N) sum_i sum_c j_ic j_ic^T`` of the loss
    ``||f - Y||^2 / (2N)`` splits exactly (balanced classes) into

    * ``G_within = (1/N) sum_i sum_c (j_ic - delta_{c y_i})(j_ic - delta_{c y_i})^T``,
    * ``G_cross = (1/K) sum_{c != c'} delta_cc' delta_cc'^T``,
    * ``G_class = (1/K) sum_c delta_cc delta_cc^T``.

    Each part is returned as a factor ``F`` (P x m) with part ``= F F^T``, so its
    rank and spectrum come from an ``m x m`` problem. Theory at deep NC (Theorem
    4.2): ranks 0, ``K(K-1)`` and ``K``.

    Parameters
    ----------
    jacobian : torch.Tensor
        ``(K, N, P)`` from :func:`layer_jacobian`.
    labels : torch.Tensor
        ``(N,)`` class of each sample, values ``0 .. K-1``, balanced.

    Returns
    -------
    dict
        ``{"within", "cross", "class"}`` -> factor.

    References
    ----------
    Papyan 2020 (JMLR), Section 3; Garrod & Keating 2024 (arXiv 2404.06106), Theorem 4.2.
    """
    k, n_samples, size = jacobian.shape
    if labels.shape != (n_samples,):
        raise ValueError(f"labels must have shape ({n_samples},), got {tuple(labels.shape)}")
    counts = torch.bincount(labels, minlength=k)
    if counts.numel() != k or bool((counts != counts[0]).any()):
        raise ValueError(f"the split needs balanced classes 0..{k - 1}, got counts {counts.tolist()}")
    # delta[c, c'] = mean over samples of class c' of j_{i c}
    delta = torch.zeros(k, k, size, dtype=DTYPE).index_add_(1, labels, jacobian) / counts[0]
    deviations = jacobian - delta[:, labels, :]
    diagonal = torch.eye(k, dtype=torch.bool)
    return {
        "within": deviations.reshape(k * n_samples, size).T / math.sqrt(n_samples),
        "cross": delta[~diagonal].T / math.sqrt(k),
        "class": delta[diagonal].T / math.sqrt(k),
    }


def _factor_eigenvalues(factor: torch.Tensor) -> torch.Tensor:
    if factor.shape[1] == 0:
        return factor.new_zeros(0)
    return torch.linalg.eigvalsh(factor.T @ factor).clamp_min(0.0).flip(0)


def data_gradient(state: UFMState, config: UFMConfig, layer: int) -> torch.Tensor:
    """Gradient of the data-fit term with respect to ``W_layer`` (shape of ``W_layer``).

    At a stationary point it equals ``-lambda_W W_layer``; this is the ``g`` of
    Theorem 4.3 (Garrod & Keating 2024, arXiv 2404.06106).
    """
    _check_layer(config, layer)
    weight = state.weights[layer - 1].detach()
    return torch.func.grad(layer_loss_function(state, config, layer, include_decay=False))(weight)


def gradient_coefficients(
    gradient: torch.Tensor, means_out: torch.Tensor, means_in: torch.Tensor
) -> torch.Tensor:
    """Squared coefficients of a layer gradient on the normalised basis ``mu_c^(l+1) kron mu_c'^(l)``.

    ``a_cc' = <b_cc', vec(g)>^2 / ||g||^2`` with ``b_cc' = vec(mu_c mu_c'^T)`` of
    unit-norm means, computed as ``(mu_c^T g mu_c')^2 / ||g||_F^2``. Theory for
    the data gradient at deep NC (Theorem 4.3): ``1/K`` on the diagonal, 0 off it
    (the gradient lies in the span of the diagonal vectors, equally weighted).

    Returns
    -------
    torch.Tensor
        ``(K, K)``; row ``c`` is the output-side class, column ``c'`` the input side.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorem 4.3.
    """
    if gradient.shape != (means_out.shape[0], means_in.shape[0]):
        raise ValueError(f"gradient must be (d_out, d_in) = {(means_out.shape[0], means_in.shape[0])}, "
                         f"got {tuple(gradient.shape)}")
    unit_out = means_out / means_out.norm(dim=0, keepdim=True)
    unit_in = means_in / means_in.norm(dim=0, keepdim=True)
    projections = unit_out.T @ gradient.to(DTYPE) @ unit_in
    return projections**2 / (gradient**2).sum()


# --------------------------------------------------------------------------- one layer, all at once
@dataclass
class LayerAnalysis:
    """Everything measured at one layer of one state (see :func:`analyse_layer`).

    Attributes
    ----------
    layer : int
        ``l`` of the analysed ``W_l``.
    eigenvalues : numpy.ndarray
        Largest eigenvalues of the layer Hessian of the full loss, descending.
    outlier_ratio : float
        ``lambda_1 / lambda_{K^2}``: 1 when the ``K^2`` outliers are equal.
    separation : float
        ``lambda_{K^2} / lambda_{K^2+1}``: how far the ``K^2`` outliers stand
        above the rest (``nan`` when ``W_l`` has only ``K^2`` entries).
    alignment : numpy.ndarray
        ``f_cc'`` (K x K), see :func:`eigenvector_alignment`.
    gradient_coefficients : numpy.ndarray
        ``a_cc'`` (K x K) of the data gradient, see :func:`gradient_coefficients`.
    split_ranks, split_traces : dict
        Numerical rank and share of ``tr G`` of the within / cross / class parts.
    dense_max_abs_error : float or None
        Largest difference between the dense autograd and the Jacobian spectra.
    """

    layer: int
    eigenvalues: np.ndarray          # descending, largest of the layer Hessian of the full loss
    outlier_ratio: float             # max / min of the K^2 largest
    separation: float                # lambda_{K^2} / lambda_{K^2 + 1}
    alignment: np.ndarray            # f_cc' (K x K)
    gradient_coefficients: np.ndarray  # a_cc' (K x K) of the data gradient
    split_ranks: dict[str, int]
    split_traces: dict[str, float]   # share of tr G in each part
    dense_max_abs_error: float | None = None  # dense autograd vs Gram route, when computed

    def summary(self) -> dict[str, float]:
        """Scalar summary: one row of a trajectory table."""
        k = self.alignment.shape[0]
        diagonal = np.diag(self.gradient_coefficients)
        off = self.gradient_coefficients[~np.eye(k, dtype=bool)]
        return {
            "layer": self.layer,
            "outlier_ratio": self.outlier_ratio,
            "separation": self.separation,
            "alignment_min": float(self.alignment.min()),
            "alignment_diag_mean": float(np.diag(self.alignment).mean()),
            "grad_diag_max_dev": float(np.abs(diagonal - 1.0 / k).max()),
            "grad_off_max": float(off.max()) if off.size else 0.0,
            **{f"rank_{name}": value for name, value in self.split_ranks.items()},
        }


def analyse_layer(
    state: UFMState, config: UFMConfig, layer: int, *, dense: bool = False,
    num_eigenvalues: int | None = None, rank_rtol: float = DEFAULT_RANK_RTOL,
    store: bool = False, runs_dir: str | os.PathLike | None = None, force: bool = False,
) -> LayerAnalysis:
    """Hessian spectrum, outlier structure, eigenvector alignment, GN split and gradient at one layer.

    The spectrum comes from the Jacobian (exact for these models, see
    :func:`hessian_spectrum_from_jacobian`). With ``dense=True`` the full
    Hessian is also built by autograd (:func:`layer_hessian`), its spectrum
    replaces the Jacobian one, the alignment uses its products, and
    ``dense_max_abs_error`` reports the largest difference between the two
    routes' top eigenvalues.

    ``f`` uses the class means of ``h^(l+1)`` (after the ReLU in the ReLU model)
    and of ``h^(l)``; numerical ranks count eigenvalues above
    ``rank_rtol`` times the largest eigenvalue of ``G``.

    Parameters
    ----------
    state, config : UFMState, UFMConfig
        The model and its parameters.
    layer : int
        Which ``W_l`` (``1 .. L``).
    dense : bool
        Also build the dense autograd Hessian (``P x P``, ``P = d^2``).
    num_eigenvalues : int, optional
        How many of the largest eigenvalues to keep (default ``4 K^2``).
    rank_rtol : float
        Relative cutoff of the numerical ranks.
    store : bool
        Keep the analysis in the results store (:func:`ncutils.store.computed`, under
        ``runs_dir``, default :func:`ncutils.store.default_runs_dir`; a ``runs_dir`` implies
        it) and load it from there when it is stored: worth it for ``dense=True`` (a ``P x P``
        eigendecomposition, seconds). The key covers the bytes of ``state`` (its sha256), the
        configuration, ``layer``, ``dense``, ``num_eigenvalues``, ``rank_rtol`` and the code of
        :data:`~ncutils.theory.ufm._store.ANALYSIS`; ``force`` computes it again.

    Returns
    -------
    LayerAnalysis

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorems 4.1-4.3.

    Examples
    --------
    >>> config = UFMConfig(width=6, per_class=2, depth=3)
    >>> analysis = analyse_layer(dnc_state(config), config, 2)
    >>> analysis.split_ranks
    {'within': 0, 'cross': 6, 'class': 3}
    """
    _check_layer(config, layer)
    _check_state(state, config)
    if store or runs_dir is not None:
        settings = {"state": _store.state_digest(state), "config": asdict(config), "layer": int(layer),
                    "dense": bool(dense), "rank_rtol": float(rank_rtol),
                    "num_eigenvalues": None if num_eigenvalues is None else int(num_eigenvalues)}
        return _store.stored(
            _store.payload("ufm-layer-analysis", settings, _store.ANALYSIS),
            lambda: analyse_layer(state, config, layer, dense=dense, num_eigenvalues=num_eigenvalues,
                                  rank_rtol=rank_rtol),
            runs_dir=runs_dir, force=force)
    k = config.num_classes
    labels = targets(k, config.per_class)[1]
    jacobian = layer_jacobian(state, config, layer)
    count = num_eigenvalues if num_eigenvalues is not None else min(k * config.num_samples, 4 * k * k)
    count = max(count, k * k + 1)
    eigenvalues = hessian_spectrum_from_jacobian(jacobian, config.lambda_w, count)
    factor = gauss_newton_factor(jacobian)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return factor @ (factor.T @ v) + config.lambda_w * v

    dense_error = None
    if dense:
        hessian = layer_hessian(state, config, layer)
        dense_values = torch.linalg.eigvalsh(hessian).flip(0).numpy()[: eigenvalues.size]
        dense_error = float(np.abs(dense_values - eigenvalues).max())
        eigenvalues = dense_values

        def hvp(v: torch.Tensor) -> torch.Tensor:  # noqa: F811 - the dense route wins
            return hessian @ v

    layers = forward(state.detach(), config.activation)
    means_in = class_means(layers[layer - 1], labels, k)
    means_out = class_means(layers[layer], labels, k)
    alignment = eigenvector_alignment(hvp, kron_basis(means_out, means_in))
    coefficients = gradient_coefficients(data_gradient(state, config, layer), means_out, means_in)

    parts = gauss_newton_split(jacobian, labels)
    reference = float(_factor_eigenvalues(factor)[0]) if factor.numel() else 0.0
    part_values = {name: _factor_eigenvalues(f) for name, f in parts.items()}
    total_trace = float((factor**2).sum())
    top = eigenvalues[: k * k]
    return LayerAnalysis(
        layer=layer,
        eigenvalues=eigenvalues,
        outlier_ratio=float(top.max() / top.min()),
        separation=float(eigenvalues[k * k - 1] / eigenvalues[k * k]) if eigenvalues.size > k * k else float("nan"),
        alignment=alignment.numpy(),
        gradient_coefficients=coefficients.numpy(),
        split_ranks={name: int((values > rank_rtol * reference).sum()) for name, values in part_values.items()},
        split_traces={name: float((f**2).sum()) / total_trace if total_trace > 0 else float("nan")
                      for name, f in parts.items()},
        dense_max_abs_error=dense_error,
    )


# --------------------------------------------------------------------------- per-layer collapse
def layer_metrics(state: UFMState, config: UFMConfig) -> pd.DataFrame:
    """Deep-NC metrics of the features ``h^(1) .. h^(L+1)`` (rows: layers).

    Columns: ``layer`` (1 = ``H_1``, ``L + 1`` = output), ``dim``, ``nc1``
    (``tr(Sigma_W Sigma_B^+)/K``, :func:`ncutils.metrics.nc1`), ``etf_error``
    (simplex-ETF error of the *centred* means, :func:`ncutils.metrics.etf_error`;
    orthogonal equal-norm means centre to a simplex, so it vanishes at deep NC),
    ``orthogonal_frame_error`` (``|| M^T M / ||M^T M||_F - I_K / sqrt(K) ||_F``
    for the *un-centred* means ``M``, the UFM's own geometry without bias) and
    ``mean_norm`` (average ``||mu_c||``).

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Definition of deep neural collapse;
    Papyan, Han, Donoho 2020 (PNAS) for NC1/NC2.
    """
    _check_state(state, config)
    k = config.num_classes
    labels = targets(k, config.per_class)[1]
    rows = []
    for index, features in enumerate(forward(state.detach(), config.activation), start=1):
        means = class_means(features, labels, k)
        gram = means.T @ means
        frame_error = torch.linalg.norm(gram / torch.linalg.norm(gram) - torch.eye(k, dtype=DTYPE) / math.sqrt(k))
        rows.append({
            "layer": index,
            "dim": features.shape[0],
            "nc1": metrics.nc1(features.T, labels),
            "etf_error": metrics.etf_error(features.T, labels),
            "orthogonal_frame_error": float(frame_error),
            "mean_norm": float(means.norm(dim=0).mean()),
        })
    return pd.DataFrame(rows)


def weight_gram_spectra(
    state: UFMState, config: UFMConfig, *, rank_rtol: float = DEFAULT_RANK_RTOL
) -> pd.DataFrame:
    """``W_l^T W_l`` per layer: numerical rank and top-K eigenvalues against Theorem 4.4.

    Theory at the deep-NC optimum: rank ``K``, every nonzero eigenvalue equal to
    ``(lambda_H / lambda_W) n ||mu_c^(1)||^2`` (class means of ``H_1``; our
    derivation from stationarity, see :func:`dnc_optimum`), the same at every
    layer. Columns: ``layer``, ``rank``, ``eig_1 .. eig_K`` (descending),
    ``theory_min``/``theory_max`` (over classes, from the learned ``H_1``), and
    ``max_rel_error`` of the sorted eigenvalues against the sorted theory values.

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorem 4.4.
    """
    _check_state(state, config)
    k = config.num_classes
    labels = targets(k, config.per_class)[1]
    first_means = class_means(state.features.detach(), labels, k)
    theory = torch.sort(config.lambda_h / config.lambda_w * config.per_class
                        * (first_means**2).sum(dim=0), descending=True).values
    rows = []
    for index, weight in enumerate(state.weights, start=1):
        weight = weight.detach()
        values = torch.linalg.eigvalsh(weight.T @ weight).flip(0)
        top = values[:k]
        row = {"layer": index, "rank": int((values > rank_rtol * values[0]).sum())}
        row.update({f"eig_{c + 1}": float(v) for c, v in enumerate(top)})
        row["theory_min"], row["theory_max"] = float(theory.min()), float(theory.max())
        row["max_rel_error"] = float(((top - theory).abs() / theory).max())
        rows.append(row)
    return pd.DataFrame(rows)


def kink_fractions(state: UFMState, config: UFMConfig, *, rtol: float = 1e-6) -> pd.DataFrame:
    """Share of the pre-activations ``W_l h^(l)`` (``l < L``) that sit at the ReLU's kink.

    A pre-activation counts when ``|z| <= rtol * max |z|`` over its layer. Where
    many sit there, the ReLU loss is not differentiable at the point, and a
    vanishing gradient norm is not to be expected even at a minimiser.

    Returns
    -------
    pandas.DataFrame
        ``layer`` (the ``l`` of ``W_l``) and ``kink_fraction``.

    Examples
    --------
    >>> config = UFMConfig(width=4, per_class=2, depth=3, activation="relu")
    >>> kink_fractions(dnc_state(config, frames="coordinate"), config)["kink_fraction"].tolist()
    [0.75, 0.75]
    """
    _check_state(state, config)
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    rows, x = [], state.features.detach()
    for index, weight in enumerate(state.weights[:-1], start=1):
        pre = weight.detach() @ x
        cutoff = rtol * float(pre.abs().max())
        rows.append({"layer": index, "kink_fraction": float((pre.abs() <= cutoff).double().mean())})
        x = torch.relu(pre) if config.activation == "relu" else pre
    return pd.DataFrame(rows)



# --------------------------------------------------------------------------- trajectories
def spectrum_frame(spectra: dict[int, np.ndarray], num_outliers: int, *, max_index: int | None = None) -> pd.DataFrame:
    """Tidy table of snapshot spectra: ``step``, ``index`` (1 = largest), ``eigenvalue``, ``group``.

    ``group`` is ``"top K^2 (outliers)"`` for the ``num_outliers`` largest and
    ``"bulk"`` for the rest; ``max_index`` keeps only the largest ones.
    """
    rows = []
    for step, values in sorted(spectra.items()):
        kept = values if max_index is None else values[:max_index]
        for index, value in enumerate(kept, start=1):
            group = f"top {num_outliers} (outliers)" if index <= num_outliers else "bulk"
            rows.append({"step": step, "index": index, "eigenvalue": float(value), "group": group})
    return pd.DataFrame(rows)
