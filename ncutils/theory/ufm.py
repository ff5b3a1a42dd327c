"""Deep (linear and ReLU) unconstrained feature models: optimum, layer Hessians, gradients.

The deep unconstrained feature model (UFM) of Garrod & Keating (2024) treats the
features entering the last ``L`` layers of a network as free parameters and
stacks ``L`` weight matrices on top of them.  With ``K`` classes of ``n`` samples each
(``N = K n``), free features ``H_1`` (``d x N``), weights ``W_1 ... W_{L-1}``
(``d x d``) and ``W_L`` (``K x d``) and one-hot targets ``Y = I_K kron 1_n^T``
the loss is

.. math::

    \\mathcal L = \\frac{1}{2Kn}\\lVert W_L \\cdots W_1 H_1 - Y\\rVert_F^2
        + \\sum_{l=1}^{L} \\frac{\\lambda_W}{2}\\lVert W_l\\rVert_F^2
        + \\frac{\\lambda_H}{2}\\lVert H_1\\rVert_F^2 .

The ReLU variant applies a ReLU after every ``W_l`` with ``l < L``.

Notation used throughout (the paper's): ``h^(l)`` are the features that *enter*
``W_l`` (``h^(1) = H_1``), ``h^(l+1) = W_l h^(l)`` (or its ReLU), and
``h^(L+1)`` is the output.  ``mu_c^(l)`` is the mean of class ``c`` at layer
``l`` (un-centred: the model has no bias, and at deep neural collapse the class
means form an *orthogonal* frame).  Layers are numbered ``1 .. L``.

Vectorisation convention
------------------------
``vec(W_l)`` is the **row-major** flattening ``W_l.reshape(-1)`` (torch's
order): entry ``W[a, b]`` sits at index ``a * d_in + b``.  With this order
``vec(u w^T) = kron(u, w)``, so the paper's eigenvector
``mu_c^(l+1) kron mu_c'^(l)`` is the rank-one matrix ``mu_c^(l+1) mu_c'^(l)^T``
(output side first, input side second), and the layer Hessian of the data term
is ``A^T A kron Av_i[h_i h_i^T]`` with ``A = W_L ... W_{l+1}`` (linear model).
Every Hessian, Jacobian and basis vector in this module uses that order.

What the module computes, with the result of the paper it tests
----------------------------------------------------------------
* :func:`regularisation_condition` -- the condition (Garrod & Keating, Eq. 2)
  under which the deep-NC configuration is the global optimum of the linear UFM.
* :func:`dnc_optimum` -- the deep-NC optimum in closed form (one scalar problem),
  from which Theorem 4.4 (``W_l^T W_l`` has rank ``K``) and the outlier value of
  Theorem 4.1 follow.
* :func:`train` -- full-batch gradient descent with momentum, then L-BFGS, in
  float64, with snapshots of the layer spectrum along the way.
* :func:`layer_hessian` / :func:`layer_hvp` -- the exact Hessian of the loss with
  respect to one ``W_l`` by autograd (Theorem 4.1: ``K^2`` equal outliers with
  eigenvectors ``mu_c^(l+1) kron mu_c'^(l)``), :func:`eigenvector_alignment`.
* :func:`gauss_newton_split` -- within-class, cross-class and class parts of the
  Gauss-Newton matrix (Theorem 4.2: ranks ``0``, ``K(K-1)``, ``K``).
* :func:`gradient_coefficients` -- the data gradient on the normalised basis
  ``mu_c^(l+1) kron mu_c'^(l)`` (Theorem 4.3: ``1/K`` on the diagonal, ``0`` off).
* :func:`layer_metrics`, :func:`weight_gram_spectra` -- deep-NC metrics of the
  learned features and the ``W_l^T W_l`` spectra against the theory.

Theorem numbers follow arXiv v1 as pinned in ``papers/NOTES.md`` section 5.

References
----------
C. Garrod and J. P. Keating, "Unifying Low Dimensional Observations in Deep
Learning Through the Deep Linear Unconstrained Feature Model", arXiv:2404.06106
(2024).
V. Papyan, "Traces of Class/Cross-Class Structure Pervade Deep Learning
Spectra", JMLR 21 (2020) -- the within / cross / class split of the
Gauss-Newton matrix.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ncutils.stats import ClassStats

__all__ = [
    "UFMConfig",
    "UFMState",
    "LayerAnalysis",
    "UFMRun",
    "regularisation_condition",
    "dnc_optimum",
    "targets",
    "init_state",
    "dnc_state",
    "forward",
    "data_loss",
    "ufm_loss",
    "gradient_norm",
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
    "train",
    "snapshot_schedule",
    "spectrum_frame",
]

Activation = Literal["linear", "relu"]
_ACTIVATIONS = ("linear", "relu")
DTYPE = torch.float64

#: Relative eigenvalue cutoff used for numerical ranks (eigenvalue / largest
#: eigenvalue of the Gauss-Newton matrix). Features at a stationary point are
#: exactly collapsed, so the within-class part sits at round-off level.
DEFAULT_RANK_RTOL = 1e-8


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class UFMConfig:
    """Size, regularisation and non-linearity of one deep UFM.

    Parameters
    ----------
    num_classes : int
        ``K``, the number of classes (>= 2).
    per_class : int
        ``n``, samples per class (balanced, as in the paper).
    depth : int
        ``L``, the number of weight matrices (>= 2).
    width : int
        ``d``, the feature width of every hidden layer (>= ``K``).
    lambda_w, lambda_h : float
        Weight decay of every ``W_l`` and of ``H_1`` (> 0).
    activation : {"linear", "relu"}
        ``"relu"`` applies a ReLU after every ``W_l`` with ``l < L``.
    init_gain : float
        Entries of ``H_1`` and every ``W_l`` start i.i.d. ``N(0, (init_gain / sqrt(d))^2)``.
    seed : int
        Seed of the initialisation.

    Examples
    --------
    >>> UFMConfig(width=60).num_samples
    120
    """

    num_classes: int = 3
    per_class: int = 40
    depth: int = 5
    width: int = 60
    lambda_w: float = 1e-2
    lambda_h: float = 1e-2
    activation: str = "linear"
    init_gain: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, minimum in (("num_classes", 2), ("per_class", 1), ("depth", 2)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not isinstance(self.width, (int, np.integer)) or self.width < self.num_classes:
            raise ValueError(
                f"width must be an integer >= num_classes ({self.num_classes}), got {self.width!r}"
            )
        for name in ("lambda_w", "lambda_h", "init_gain"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")

    @property
    def num_samples(self) -> int:
        """``N = K n``."""
        return self.num_classes * self.per_class


@dataclass
class UFMState:
    """Parameters of a deep UFM: free features ``H_1`` (d x N) and ``W_1 .. W_L``."""

    features: torch.Tensor
    weights: list[torch.Tensor]

    def detach(self) -> "UFMState":
        """A copy cut from any autograd graph."""
        return UFMState(self.features.detach().clone(), [w.detach().clone() for w in self.weights])

    def tensors(self) -> list[torch.Tensor]:
        """``[H_1, W_1, ..., W_L]``."""
        return [self.features, *self.weights]


def _check_layer(config: UFMConfig, layer: int) -> None:
    if not isinstance(layer, (int, np.integer)) or not 1 <= layer <= config.depth:
        raise ValueError(f"layer must be an integer in 1..{config.depth} (depth L), got {layer!r}")


def _check_state(state: UFMState, config: UFMConfig) -> None:
    d, n_samples, k = config.width, config.num_samples, config.num_classes
    if tuple(state.features.shape) != (d, n_samples):
        raise ValueError(f"features H_1 must have shape {(d, n_samples)}, got {tuple(state.features.shape)}")
    if len(state.weights) != config.depth:
        raise ValueError(f"need {config.depth} weight matrices (depth L), got {len(state.weights)}")
    for index, weight in enumerate(state.weights, start=1):
        expected = (k if index == config.depth else d, d)
        if tuple(weight.shape) != expected:
            raise ValueError(f"W_{index} must have shape {expected}, got {tuple(weight.shape)}")


# --------------------------------------------------------------------------- theory
def regularisation_condition(
    num_classes: int, per_class: int, depth: int, lambda_w: float, lambda_h: float
) -> dict[str, float | bool]:
    """The paper's condition on the regularisation (Garrod & Keating 2024, Eq. 2).

    .. math:: (K n \\lambda_W^L \\lambda_H)^{1/L} < \\frac{(L-1)^{(L-1)/L}}{K L^2}

    Under it the deep-NC configuration is the global optimum of the deep linear UFM
    (the loss is not minimised by collapsing everything to zero).

    Parameters
    ----------
    num_classes, per_class, depth : int
        ``K``, ``n`` and ``L``.
    lambda_w, lambda_h : float
        The weight decays.

    Returns
    -------
    dict
        ``lhs``, ``rhs`` and ``satisfied`` (``lhs < rhs``).

    Examples
    --------
    >>> regularisation_condition(3, 40, 5, 1e-2, 1e-2)["satisfied"]
    True
    """
    config = UFMConfig(num_classes, per_class, depth, num_classes, lambda_w, lambda_h)
    k, n, big_l = config.num_classes, config.per_class, config.depth
    lhs = (k * n * lambda_w**big_l * lambda_h) ** (1.0 / big_l)
    rhs = (big_l - 1) ** ((big_l - 1) / big_l) / (k * big_l**2)
    return {"lhs": float(lhs), "rhs": float(rhs), "satisfied": bool(lhs < rhs)}


def dnc_optimum(
    num_classes: int, per_class: int, depth: int, lambda_w: float, lambda_h: float
) -> dict[str, float]:
    """The deep-NC optimum of the linear UFM in closed form (up to one scalar root).

    At deep neural collapse every ``W_l`` maps the orthogonal class means of its
    input to those of its output with one common singular value ``s``, and the
    stationarity conditions give ``lambda_W W_1^T W_1 = lambda_H H_1 H_1^T`` and
    ``W_l^T W_l = W_{l-1} W_{l-1}^T`` (Theorem 4.4), so the class means of
    ``H_1`` have norm ``m`` with ``m^2 = lambda_W s^2 / (lambda_H n)``. The loss
    then reduces to

    .. math:: \\tfrac12 (1 - s^L m)^2 + \\tfrac{K}{2}(L+1)\\lambda_W s^2 ,

    minimised here over ``s > 0`` (dense grid, then Brent's root of the derivative).  From
    the minimiser: the nonzero eigenvalues of every ``W_l^T W_l`` all equal
    ``s^2 = (lambda_H / lambda_W) n m^2`` (Theorem 4.4), and the ``K^2`` outlier
    eigenvalues of the layer Hessian of the full loss all equal
    ``m^2 s^{2(L-1)} / K + lambda_W`` at every layer (Theorem 4.1; the bulk is
    ``lambda_W``).  This is our derivation of the paper's statements for
    balanced classes.

    Returns
    -------
    dict
        ``singular_value`` (s), ``feature_norm`` (m, norm of a class mean of
        ``H_1``), ``output_scale`` (``s^L m``, the fitted value of the target 1),
        ``loss``, ``weight_gram_eigenvalue`` (s^2), ``hessian_outlier``,
        ``hessian_bulk`` (lambda_W), ``zero_loss`` (0.5, the loss at zero).

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Theorems 4.1 and 4.4.

    Examples
    --------
    >>> round(dnc_optimum(3, 40, 5, 1e-2, 1e-2)["singular_value"], 3)
    1.346
    """
    from scipy.optimize import brentq

    condition = regularisation_condition(num_classes, per_class, depth, lambda_w, lambda_h)
    k, n, big_l = num_classes, per_class, depth
    ratio = math.sqrt(lambda_w / (lambda_h * n))

    def reduced_loss(s):  # float or numpy array
        m = s * ratio
        return 0.5 * (1.0 - s**big_l * m) ** 2 + 0.5 * k * (big_l + 1) * lambda_w * s**2

    def slope_over_s(s: float) -> float:
        # d(reduced_loss)/ds divided by (L + 1) s: its sign change is the minimiser
        return k * lambda_w - ratio * s ** (big_l - 1) * (1.0 - ratio * s ** (big_l + 1))

    # The fitted output s^L m can not usefully exceed 1, which bounds s.
    s_max = (1.0 / ratio) ** (1.0 / (big_l + 1)) * 1.5
    grid = np.linspace(0.0, s_max, 4001)
    values = reduced_loss(grid)
    best = int(np.argmin(values))
    s = 0.0
    if best > 0:
        low, high = grid[best - 1], grid[min(best + 1, grid.size - 1)]
        s = float(brentq(slope_over_s, low, high, xtol=1e-15, rtol=4 * np.finfo(float).eps))
    m = s * ratio
    return {
        "singular_value": s,
        "feature_norm": m,
        "output_scale": s**big_l * m,
        "loss": float(reduced_loss(s)),
        "weight_gram_eigenvalue": s**2,
        "hessian_outlier": m**2 * s ** (2 * (big_l - 1)) / k + lambda_w,
        "hessian_bulk": lambda_w,
        "zero_loss": 0.5,
        "condition_satisfied": float(condition["satisfied"]),
    }


# --------------------------------------------------------------------------- the model
def targets(num_classes: int, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot targets ``Y = I_K kron 1_n^T`` (K x Kn, float64) and labels (Kn,).

    Samples are grouped by class: sample ``i`` has label ``i // n``.

    Examples
    --------
    >>> targets(2, 3)[0]
    tensor([[1., 1., 1., 0., 0., 0.],
            [0., 0., 0., 1., 1., 1.]], dtype=torch.float64)
    """
    if num_classes < 1 or per_class < 1:
        raise ValueError(f"num_classes and per_class must be >= 1, got {num_classes}, {per_class}")
    y = torch.kron(torch.eye(num_classes, dtype=DTYPE), torch.ones(1, per_class, dtype=DTYPE))
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return y, labels


def init_state(config: UFMConfig) -> UFMState:
    """Random float64 start: every entry ``N(0, (init_gain / sqrt(d))^2)``, seeded by ``config.seed``."""
    generator = torch.Generator().manual_seed(int(config.seed))
    std = config.init_gain / math.sqrt(config.width)
    d, k = config.width, config.num_classes

    def draw(rows: int, cols: int) -> torch.Tensor:
        return torch.randn(rows, cols, generator=generator, dtype=DTYPE) * std

    features = draw(d, config.num_samples)
    weights = [draw(d, d) for _ in range(config.depth - 1)] + [draw(k, d)]
    return UFMState(features, weights)


def dnc_state(config: UFMConfig, *, frames: str = "random") -> UFMState:
    """The exact deep-NC optimum of :func:`dnc_optimum`, built analytically.

    Every layer ``l`` gets an orthonormal frame ``U_l`` (d x K); ``H_1`` has
    column ``i`` equal to ``m u_{y_i}`` (``U_1``), ``W_l = s U_{l+1} U_l^T`` and
    ``W_L = s U_L^T``, with ``s`` and ``m`` from :func:`dnc_optimum`. Features
    are then exactly collapsed, class means orthogonal with norms ``m s^{l-1}``,
    and the output is ``s^L m Y``.

    Parameters
    ----------
    config : UFMConfig
        Sizes and decays (the activation is not used: the point is built once).
    frames : {"random", "coordinate"}
        ``"random"``: Haar-random frames (seeded by ``config.seed``);
        ``"coordinate"``: the first ``K`` coordinate vectors, so every feature is
        non-negative with disjoint class supports -- then the point is also a
        stationary point of the ReLU model.

    Returns
    -------
    UFMState

    Examples
    --------
    >>> config = UFMConfig(width=6, per_class=2, depth=3)
    >>> gradient_norm(dnc_state(config), config) < 1e-10
    True
    """
    if frames not in ("random", "coordinate"):
        raise ValueError(f"frames must be 'random' or 'coordinate', got {frames!r}")
    optimum = dnc_optimum(config.num_classes, config.per_class, config.depth,
                          config.lambda_w, config.lambda_h)
    s, m = optimum["singular_value"], optimum["feature_norm"]
    d, k = config.width, config.num_classes
    generator = torch.Generator().manual_seed(int(config.seed))

    def frame() -> torch.Tensor:
        if frames == "coordinate":
            return torch.eye(d, k, dtype=DTYPE)
        q, r = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=DTYPE))
        return q * torch.sign(torch.diagonal(r))  # sign fix: Haar-distributed frame

    frames_by_layer = [frame() for _ in range(config.depth)] + [torch.eye(k, dtype=DTYPE)]
    y = targets(k, config.per_class)[0]
    features = m * frames_by_layer[0] @ y
    weights = [s * frames_by_layer[index + 1] @ frames_by_layer[index].T for index in range(config.depth)]
    return UFMState(features, weights)


def _apply_layer(weight: torch.Tensor, x: torch.Tensor, index: int, depth: int, activation: str):
    out = weight @ x
    return torch.relu(out) if activation == "relu" and index < depth else out


def forward(state: UFMState, activation: str = "linear") -> list[torch.Tensor]:
    """Features of every layer: ``[h^(1) = H_1, h^(2), ..., h^(L), h^(L+1) = output]``.

    Each entry is ``(width, N)`` (the output ``(K, N)``); ``h^(l+1) = W_l h^(l)``,
    with a ReLU for ``l < L`` when ``activation == "relu"``.

    Examples
    --------
    >>> config = UFMConfig(width=4, per_class=2, depth=3)
    >>> [tuple(h.shape) for h in forward(init_state(config))]
    [(4, 6), (4, 6), (4, 6), (3, 6)]
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    depth = len(state.weights)
    layers = [state.features]
    for index, weight in enumerate(state.weights, start=1):
        layers.append(_propagate(layers[-1], [weight], index, depth, activation))
    return layers


def data_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Data-fit term ``||output - Y||_F^2 / (2 N)`` (N = K n columns)."""
    return ((output - y) ** 2).sum() / (2 * y.shape[1])


def ufm_loss(state: UFMState, config: UFMConfig, y: torch.Tensor | None = None) -> torch.Tensor:
    """The full deep-UFM loss (data fit + weight decay on every ``W_l`` and on ``H_1``).

    .. math:: \\frac{1}{2Kn}\\lVert h^{(L+1)} - Y\\rVert_F^2
        + \\sum_l \\frac{\\lambda_W}{2}\\lVert W_l\\rVert_F^2 + \\frac{\\lambda_H}{2}\\lVert H_1\\rVert_F^2

    References
    ----------
    Garrod & Keating 2024 (arXiv 2404.06106), Eq. 1.

    Examples
    --------
    >>> config = UFMConfig(width=4, per_class=2)
    >>> float(ufm_loss(init_state(config), config)) > 0
    True
    """
    if y is None:
        y = targets(config.num_classes, config.per_class)[0]
    output = forward(state, config.activation)[-1]
    decay = sum((w**2).sum() for w in state.weights)
    return (data_loss(output, y) + 0.5 * config.lambda_w * decay
            + 0.5 * config.lambda_h * (state.features**2).sum())


def gradient_norm(state: UFMState, config: UFMConfig) -> float:
    """Euclidean norm of the gradient of :func:`ufm_loss` over all parameters."""
    tensors = [t.detach().clone().requires_grad_(True) for t in state.tensors()]
    loss = ufm_loss(UFMState(tensors[0], tensors[1:]), config)
    grads = torch.autograd.grad(loss, tensors)
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))


# --------------------------------------------------------------------------- layer Hessian
def _propagate(x: torch.Tensor, weights: Sequence[torch.Tensor], first_index: int,
               depth: int, activation: str) -> torch.Tensor:
    """Apply ``W_first_index, W_first_index+1, ...`` (with their ReLUs) to ``x``."""
    for index, weight in enumerate(weights, start=first_index):
        x = _apply_layer(weight, x, index, depth, activation)
    return x


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
    from ncutils import metrics

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


# --------------------------------------------------------------------------- training
@contextlib.contextmanager
def _torch_threads(count: int | None):
    """Temporarily set torch's intra-op threads (``None``: leave as is)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class UFMRun:
    """Result of :func:`train`.

    ``history`` has one row per logged step (``step``, ``phase``, ``loss``,
    ``grad_norm``); ``snapshots`` one row per snapshot (``step`` plus
    :meth:`LayerAnalysis.summary`); ``spectra`` maps a snapshot step to its
    descending eigenvalues; ``final`` is the analysis at the end.
    """

    config: UFMConfig
    layer: int
    state: UFMState
    history: pd.DataFrame
    snapshots: pd.DataFrame
    spectra: dict[int, np.ndarray]
    final: LayerAnalysis
    final_loss: float
    final_grad_norm: float
    steps_run: int
    polish_iterations: int = 0
    condition: dict = field(default_factory=dict)


def train(
    config: UFMConfig,
    *,
    layer: int,
    steps: int,
    lr: float,
    momentum: float = 0.9,
    polish_iterations: int = 0,
    snapshot_steps: Sequence[int] = (),
    dense_final: bool = False,
    num_eigenvalues: int | None = None,
    log_every: int | None = None,
    threads: int | None = 1,
    progress: bool = True,
) -> UFMRun:
    """Train a deep UFM full batch in float64, recording the layer spectrum along the way.

    Phase 1: ``steps`` steps of gradient descent with heavy-ball ``momentum``
    (``momentum = 0`` is plain GD) at learning rate ``lr``, analysing ``W_layer``
    (:func:`analyse_layer`) at every step in ``snapshot_steps`` (step 0 = the
    initialisation). Phase 2: up to ``polish_iterations`` L-BFGS iterations
    (strong-Wolfe line search) to drive the gradient to round-off; the final
    analysis (with the dense autograd Hessian when ``dense_final``) is taken
    after it and also stored as a snapshot at step ``steps + polish_iterations``.

    Everything runs with ``threads`` torch threads (default 1: the matrices
    are tiny, and on a busy machine extra threads made each step, and even the
    dense eigendecomposition, several times slower in our measurements);
    ``None`` keeps torch's setting.

    Returns
    -------
    UFMRun

    Examples
    --------
    >>> run = train(UFMConfig(width=6, per_class=2, depth=3), layer=2, steps=50, lr=0.1,
    ...             progress=False)
    >>> run.final_grad_norm < 1.0
    True
    """
    _check_layer(config, layer)
    for name, value in (("steps", steps), ("polish_iterations", polish_iterations)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    bad = [s for s in snapshot_steps if not 0 <= int(s) <= steps]
    if bad:
        raise ValueError(f"snapshot_steps must lie in 0..steps ({steps}), got {bad}")

    condition = regularisation_condition(config.num_classes, config.per_class, config.depth,
                                         config.lambda_w, config.lambda_h)
    log_every = log_every or max(1, steps // 200)
    wanted = sorted({int(s) for s in snapshot_steps})
    with _torch_threads(threads):
        return _train_loop(config, layer, steps, lr, momentum, polish_iterations, wanted,
                           dense_final, num_eigenvalues, log_every, progress, condition)


def _train_loop(config, layer, steps, lr, momentum, polish_iterations, wanted, dense_final,
                num_eigenvalues, log_every, progress, condition) -> UFMRun:
    """The body of :func:`train` (arguments already checked)."""
    y = targets(config.num_classes, config.per_class)[0]
    start = init_state(config)
    tensors = [t.requires_grad_(True) for t in start.tensors()]
    state = UFMState(tensors[0], tensors[1:])
    optimiser = torch.optim.SGD(tensors, lr=lr, momentum=momentum)
    history, snapshot_rows, spectra = [], [], {}

    def snapshot(step: int, *, dense: bool = False) -> LayerAnalysis:
        analysis = analyse_layer(state.detach(), config, layer, dense=dense,
                                 num_eigenvalues=num_eigenvalues)
        snapshot_rows.append({"step": step, **analysis.summary()})
        spectra[step] = analysis.eigenvalues
        return analysis

    def backward() -> torch.Tensor:
        optimiser.zero_grad()
        loss = ufm_loss(state, config, y)
        loss.backward()
        return loss

    def loss_and_grad() -> tuple[float, float]:
        loss = backward()
        norm = math.sqrt(sum(float((t.grad**2).sum()) for t in tensors))
        return float(loss.detach()), norm

    bar = tqdm(range(steps + 1), desc=f"{config.activation} UFM", disable=not progress, leave=False)
    for step in bar:
        if step in wanted:
            snapshot(step)
        if step % log_every == 0 or step == steps:
            # reading numbers back costs a sync: only on logged steps
            loss, norm = loss_and_grad()
            history.append({"step": step, "phase": "gd", "loss": loss, "grad_norm": norm})
            bar.set_postfix(loss=f"{loss:.6g}", grad=f"{norm:.1e}", refresh=False)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss diverged at step {step}: lower lr (now {lr})")
        else:
            backward()
        if step < steps:
            optimiser.step()
    bar.close()

    iterations_done = 0
    if polish_iterations:
        lbfgs = torch.optim.LBFGS(tensors, lr=1.0, max_iter=polish_iterations, history_size=50,
                                  tolerance_grad=1e-15, tolerance_change=1e-20,
                                  line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            lbfgs.zero_grad()
            loss = ufm_loss(state, config, y)
            loss.backward()
            return loss

        lbfgs.step(closure)
        iterations_done = int(lbfgs.state[tensors[0]].get("n_iter", 0))
        loss, norm = loss_and_grad()
        history.append({"step": steps + iterations_done, "phase": "lbfgs", "loss": loss, "grad_norm": norm})
    final_loss, final_norm = loss_and_grad()
    final_step = steps + iterations_done
    # the final analysis replaces a phase-1 snapshot of the same step (no polish done)
    snapshot_rows[:] = [row for row in snapshot_rows if row["step"] != final_step]
    final = snapshot(final_step, dense=dense_final)
    return UFMRun(
        config=config,
        layer=layer,
        state=state.detach(),
        history=pd.DataFrame(history),
        snapshots=pd.DataFrame(snapshot_rows),
        spectra=spectra,
        final=final,
        final_loss=final_loss,
        final_grad_norm=final_norm,
        steps_run=steps,
        polish_iterations=iterations_done,
        condition=condition,
    )


def snapshot_schedule(steps: int, count: int) -> list[int]:
    """Step 0 and about ``count`` log-spaced steps in ``1 .. steps`` (unique, sorted).

    Examples
    --------
    >>> snapshot_schedule(1000, 4)
    [0, 1, 10, 100, 1000]
    """
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if steps == 0:
        return [0]
    spaced = np.unique(np.round(np.geomspace(1, steps, count)).astype(int))
    return [0, *(int(step) for step in spaced)]


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
