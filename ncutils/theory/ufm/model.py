"""The deep UFM itself: configuration, parameters, forward pass, loss and the deep-NC optimum.

With ``K`` classes of ``n`` samples each (``N = K n``), free features ``H_1``
(``d x N``), weights ``W_1 ... W_{L-1}`` (``d x d``) and ``W_L`` (``K x d``) and
one-hot targets ``Y = I_K kron 1_n^T`` the loss is

.. math::

    \\mathcal L = \\frac{1}{2Kn}\\lVert W_L \\cdots W_1 H_1 - Y\\rVert_F^2
        + \\sum_{l=1}^{L} \\frac{\\lambda_W}{2}\\lVert W_l\\rVert_F^2
        + \\frac{\\lambda_H}{2}\\lVert H_1\\rVert_F^2 ;

the ReLU variant applies a ReLU after every ``W_l`` with ``l < L``. Everything is
float64. The notation is that of :mod:`ncutils.theory.ufm`.

References
----------
C. Garrod and J. P. Keating, arXiv:2404.06106 (2024), Eqs. 1-2 and Theorem 4.4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

__all__ = [
    "UFMConfig",
    "UFMState",
    "regularisation_condition",
    "dnc_optimum",
    "targets",
    "init_state",
    "dnc_state",
    "forward",
    "data_loss",
    "ufm_loss",
    "gradient_norm",
]

Activation = Literal["linear", "relu"]
_ACTIVATIONS = ("linear", "relu")
DTYPE = torch.float64


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


def _propagate(x: torch.Tensor, weights: Sequence[torch.Tensor], first_index: int,
               depth: int, activation: str) -> torch.Tensor:
    """Apply ``W_first_index, W_first_index+1, ...`` (with their ReLUs) to ``x``."""
    for index, weight in enumerate(weights, start=first_index):
        x = _apply_layer(weight, x, index, depth, activation)
    return x



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
