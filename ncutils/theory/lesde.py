"""The locally elastic SDE/ODE of Zhang, Wang, Su (NeurIPS 2021), and its estimators.

The LE-SDE models the K logits of every training sample. One SGD step on a sample of
class c' moves the logits of a sample of class c along the direction of class c'
(``u_c' = (e_c' - 1/K) / ||e_c' - 1/K||``), by ``alpha`` when c = c' (same class) and by
``beta`` otherwise; a uniformly drawn class per step gives the factor 1/K. With class
means ``Xbar_c`` and the rank-1 projectors ``P_c = u_c u_c^T``, sample i of class c moves as

    X_ci(t+1) = X_ci(t) + [alpha(t) P_c Xbar_c(t) + beta(t) sum_{c' != c} P_c' Xbar_c'(t)] / K
                + noise_scale * xi_ci(t),     xi ~ N(0, I_K).

This is the discretisation of the official simulator (``zjiayao/le_sde``, ``src/utils.py``
``fwd_euler``, lines 89-104) when there is one sample per class and no noise (its LE-ODE):
we follow it there exactly, and generalise it to ``samples_per_class`` samples (the drift
goes through the class means, as the SDE of the paper averages the effect of a step over
the samples of each class), any K, and optional Gaussian noise (an Euler-Maruyama LE-SDE).

What the sign of alpha - beta does, exactly, in this linear model: with
``a_c = <Xbar_c, u_c>`` (the class mean's own-class component),
``a(t+1) = a(t) + [alpha a - beta/(K-1) (11^T - I) a] / K``, so the *symmetric mode*
``s = sum_c a_c`` grows by the factor ``lambda_s = 1 + (alpha - beta)/K`` per step and every
mode orthogonal to it by ``lambda_o = 1 + (alpha + beta/(K-1))/K`` (:func:`mode_rates`);
``lambda_o > lambda_s`` exactly when ``beta > 0``. Separation (:func:`separation`: every
sample's largest logit is its class) is read from the class-mean margins
``m_ck = Xbar_c[c] - Xbar_c[k]``. Summing the update, with ``A_c(t) = sum_{s<t} a_c(s)``,
``m_ck(t) = m_ck(0) + (alpha A_c - beta A_k) / sqrt(K (K-1))`` (the common drift
``beta sum_c' A_c' u_c'`` moves all classes alike and drops out), and the margins' mean over
the pairs ``c != k`` is ``sqrt(K/(K-1)) mean_c a_c``: it follows the symmetric mode alone.
With ``|alpha|, |beta| < K`` (the chapter's grid):

- ``alpha < beta`` (either sign of beta): ``lambda_s < 1``, the mean margin decays to 0, so
  some class-mean margin ends at or below 0; the within-class deviations (centred, and never
  changed by the noise-free model) put some sample of that class below its mean: not
  separated.
- ``alpha > beta``, ``beta < 0``: ``lambda_s > 1`` and ``lambda_s > lambda_o``; from a
  positive symmetric start (``mean_c a_c(0) > 0``) every margin grows: separated.
- ``alpha > beta``, ``beta > 0``: the orthogonal part of ``A`` grows faster than the
  symmetric one; its contribution ``alpha A_c - beta A_k`` has zero mean over the pairs and
  is not zero for a generic start (with K >= 3 that needs ``alpha = +-beta``), so some
  margin turns negative once it outgrows the symmetric part: separation is lost, after a
  time set by ``log(lambda_o / lambda_s)`` and the start. So for ``beta > 0`` nothing stays
  separated whatever alpha - beta, and the sign of alpha - beta decides separation exactly
  where ``beta < 0`` (tests check the mean margin's rate and both outcomes).

Estimators (:func:`estimate_alpha_beta`), following ``src/data_analyzer.py``
``estimate_AB_L`` (lines 53-84): with ``s(t)`` the projection of the K x K class-mean
logit matrix on ``D = [e_c - 1/K]_c`` and ``f(t)`` the component along the mode weights
``w = (1, ..., 1, -(K-1)) / K`` (the official K = 3 code uses ``(1, 1, -2)/3``),
``A_B1 = K log|s(t)/s(0)|``, ``A_B2 = K log|f(t)/f(0)|``,
``A-hat = (A_B1 + (K-1) A_B2) / K``, ``B-hat = (A_B2 - A_B1)(K-1)/K``; alpha-hat and
beta-hat are their Savitzky-Golay derivatives (polynomial order 2, as the official
``savgol_diff``). In the LE-ODE ``A-hat(t) = K sum log(1 + ...)`` is ``alpha t`` to first
order, and ``alpha-hat - beta-hat = d A_B1 / dt`` depends on ``s`` alone.

Where we do not follow the official code:

- ``s(t) = sum_c <Xbar_c, e_c - 1/K>`` for any K. The official code hard-codes K = 3 and a
  combination of logit entries that equals this when every class-mean logit vector sums to
  zero; ours is invariant to adding a constant to the logits (as the cross-entropy is).
- The class-mean logits of a network are measured per trial on a fixed probe subset of the
  training samples at logged iterations (:func:`train_trials`); the official code logs the
  logits of the one sample trained on and averages over trials, so it has one estimate for
  all trials. Per-trial estimates give the spread over trials (a median with a bootstrap
  interval).
- The Savitzky-Golay window is given in logged points (``window``) and the derivative is per
  iteration (``delta`` = the logging interval).

:func:`tail_index` is the official tail index ``r-hat`` of ``A-hat`` (``estimate_tail_idx``).

:func:`train_trials` is the official measurement protocol vectorised over trials: one SGD
step on one random training sample per iteration, no momentum, cross-entropy, float64; every
trial has its own initial weights, sample order and (for ``label_noise > 0``) corrupted
labels, and the trials run as one batched model (``torch.func.functional_call`` + ``vmap``
for the forward pass, one backward pass of the summed losses).

References
----------
Zhang, Wang, Su (2021), "Imitating Deep Learning Dynamics via Locally Elastic Stochastic
Differential Equations", NeurIPS. Official code: https://github.com/zjiayao/le_sde.
Kothapalli (2023), "Neural Collapse: A Review on Modelling Principles and Generalization", TMLR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import signal
from torch import nn

from ncutils.stats import DEFAULT_RCOND

__all__ = [
    "TrialsResult",
    "bootstrap_median",
    "class_alignment",
    "class_directions",
    "corrupt_labels",
    "estimate_alpha_beta",
    "mode_projections",
    "mode_rates",
    "mode_weights",
    "phase_diagram",
    "projectors",
    "separation",
    "simulate",
    "tail_index",
    "train_trials",
]


# ---------------------------------------------------------------------------
# The model.


def _check_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def class_directions(num_classes: int) -> np.ndarray:
    """``D`` with rows ``e_c - 1/K`` (K x K, float64), the class directions of the logits.

    Examples
    --------
    >>> bool(np.abs(class_directions(3).sum(axis=0)).max() < 1e-15)
    True
    """
    k = _check_classes(num_classes)
    return np.eye(k) - 1.0 / k


def projectors(num_classes: int) -> np.ndarray:
    """The rank-1 projectors ``P_c`` onto ``e_c - 1/K``, shape (K, K, K), float64.

    Examples
    --------
    >>> P = projectors(3)
    >>> bool(np.allclose(P[0] @ P[0], P[0]))
    True
    """
    d = class_directions(num_classes)
    return np.einsum("ck,cl->ckl", d, d) / np.einsum("ck,ck->c", d, d)[:, None, None]


def mode_rates(alpha: Any, beta: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-step growth factors of the LE-ODE's class-mean modes.

    Returns ``(1 + (alpha - beta)/K, 1 + (alpha + beta/(K-1))/K)``: the symmetric mode
    (every class mean along its own class) and every mode orthogonal to it (module
    docstring). Broadcasts over ``alpha`` and ``beta``.
    """
    k = _check_classes(num_classes)
    alpha, beta = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    return 1.0 + (alpha - beta) / k, 1.0 + (alpha + beta / (k - 1)) / k


def _schedule(value: Any, steps: int, name: str) -> np.ndarray:
    """alpha or beta as an array (G, steps): a number, an array (G,), (G, steps) or a callable of t."""
    if callable(value):
        value = np.array([value(t) for t in range(1, steps + 1)], dtype=np.float64)[None, :]
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full((1, steps), float(array))
    elif array.ndim == 1:
        array = np.repeat(array[:, None], steps, axis=1)
    if array.ndim != 2 or array.shape[1] != steps:
        raise ValueError(f"{name} must be a number, an array (G,) or (G, steps={steps}) or a "
                         f"callable of the step, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def simulate(
    alpha: Any,
    beta: Any,
    *,
    num_classes: int = 3,
    samples_per_class: int = 1,
    steps: int = 100,
    trials: int = 1,
    init_scale: Any = 1.0,
    noise_scale: float = 0.0,
    record: Sequence[int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Simulate the LE-ODE (``noise_scale=0``, the official ``fwd_euler``) or LE-SDE.

    Vectorised over grid points, trials, classes and samples; float64; seeded.

    Parameters
    ----------
    alpha, beta : float, array (G,), array (G, steps) or callable of the step t = 1..steps
        Same-class and cross-class impacts; G grid points run side by side.
    num_classes : int
        K (logits are K-dimensional).
    samples_per_class : int
        n; with n = 1 the update is exactly the official simulator's.
    steps : int
        T Euler steps.
    trials : int
        Independent initial states (and noise) per grid point.
    init_scale : float or array (K,)
        Standard deviation of the Gaussian initial logits per class (the official code uses
        ``||x0_c|| / sqrt(3)`` of measured initial logits).
    noise_scale : float
        Standard deviation of the Gaussian noise per step (0: the LE-ODE).
    record : sequence of int, optional
        Steps to return (0 = the initial state); default every step.
    seed : int

    Returns
    -------
    ndarray, shape (G, trials, len(record), K, n, K)
        ``[g, trial, r, c, i, k]`` = logit k of sample i of class c at step ``record[r]``.

    Examples
    --------
    >>> X = simulate(1.0, -0.5, steps=50, trials=2, record=[0, 50])
    >>> X.shape
    (1, 2, 2, 3, 1, 3)
    """
    k = _check_classes(num_classes)
    for name, value, minimum in (("samples_per_class", samples_per_class, 1), ("steps", steps, 1),
                                 ("trials", trials, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not (isinstance(noise_scale, (int, float)) and noise_scale >= 0):
        raise ValueError(f"noise_scale must be a number >= 0, got {noise_scale!r}")
    a, b = _schedule(alpha, steps, "alpha"), _schedule(beta, steps, "beta")
    grid = max(a.shape[0], b.shape[0])
    if a.shape[0] not in (1, grid) or b.shape[0] not in (1, grid):
        raise ValueError(f"alpha and beta have {a.shape[0]} and {b.shape[0]} grid points")
    a, b = np.broadcast_to(a, (grid, steps)), np.broadcast_to(b, (grid, steps))
    record = list(range(steps + 1)) if record is None else [int(r) for r in record]
    if not record or any(r < 0 or r > steps for r in record):
        raise ValueError(f"record must hold steps in 0..{steps}, got {record}")
    scale = np.broadcast_to(np.asarray(init_scale, dtype=np.float64), (k,))
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(grid, trials, k, samples_per_class, k)) * scale[None, None, :, None, None]
    P = projectors(k)
    out = np.empty((grid, trials, len(record), k, samples_per_class, k))
    where = {r: [i for i, rr in enumerate(record) if rr == r] for r in set(record)}
    for i in where.get(0, []):
        out[:, :, i] = state
    for t in range(1, steps + 1):
        means = state.mean(axis=3)                                 # (G, trials, K, K)
        own = np.einsum("ckl,gtcl->gtck", P, means)                # P_c Xbar_c
        total = own.sum(axis=2, keepdims=True)                     # sum over c'
        drift = (a[:, t - 1, None, None, None] * own
                 + b[:, t - 1, None, None, None] * (total - own)) / k
        state = state + drift[:, :, :, None, :]
        if noise_scale:
            state = state + noise_scale * rng.normal(size=state.shape)
        for i in where.get(t, []):
            out[:, :, i] = state
    return out


# ---------------------------------------------------------------------------
# Separation.


def separation(states: np.ndarray) -> dict[str, np.ndarray]:
    """How separated simulated (or measured) logit features are, vectorised over leading axes.

    Parameters
    ----------
    states : ndarray (..., K, n, K)
        ``[..., c, i, k]``: logit k of sample i of class c (as :func:`simulate` returns).

    Returns
    -------
    dict of ndarray (...)
        ``accuracy``: fraction of samples whose largest logit is their class (separated:
        the logits classify every sample); ``ncc_accuracy``: nearest class mean (the
        classes' own means) = true class; ``nc1``: tr(Sigma_W Sigma_B^+)/K of the samples
        around their class means, as :func:`ncutils.metrics.nc1` (book/conventions.md; computed in
        closed form here, vectorised; tests compare it with ``metrics.nc1``); ``margin``:
        mean over samples of ``X_ci[c] - max_{k != c} X_ci[k]``.
    """
    x = np.asarray(states, dtype=np.float64)
    if x.ndim < 3 or x.shape[-1] != x.shape[-3]:
        raise ValueError(f"states must have shape (..., K, n, K), got {x.shape}")
    k = x.shape[-1]
    eye = np.eye(k, dtype=bool)
    own = np.einsum("...cik,ck->...ci", x, eye.astype(np.float64))
    other = np.where(eye[:, None, :], -np.inf, x).max(axis=-1)
    accuracy = (own > other).mean(axis=(-1, -2))
    margin = (own - other).mean(axis=(-1, -2))
    means = x.mean(axis=-2)                                        # (..., K, K)
    dist = ((x[..., :, :, None, :] - means[..., None, None, :, :]) ** 2).sum(axis=-1)  # (..., c, i, c')
    ncc = (dist.argmin(axis=-1) == np.arange(k)[:, None]).mean(axis=(-1, -2))
    centred = means - means.mean(axis=-2, keepdims=True)           # rows mu_c - mu_G
    sigma_b = np.einsum("...ck,...cl->...kl", centred, centred) / k
    dev = x - means[..., :, None, :]
    n_total = x.shape[-3] * x.shape[-2]
    sigma_w = np.einsum("...cik,...cil->...kl", dev, dev) / n_total
    # pinv with a relative cutoff, as metrics.nc1's DEFAULT_RCOND on eig(M^T M)
    nc1 = np.einsum("...kl,...lk->...", sigma_w, np.linalg.pinv(sigma_b, rcond=DEFAULT_RCOND, hermitian=True)) / k
    return {"accuracy": accuracy, "ncc_accuracy": ncc, "nc1": nc1, "margin": margin}


def phase_diagram(
    alphas: Sequence[float],
    betas: Sequence[float],
    *,
    num_classes: int = 3,
    samples_per_class: int = 20,
    steps: int = 200,
    trials: int = 5,
    init_scale: float = 0.5,
    within_scale: float | None = None,
    init_margin: float = 1.0,
    seed: int = 0,
) -> Any:
    """Simulate the LE-ODE over a grid of constant (alpha, beta) and measure separation.

    Each class mean starts at ``init_margin * u_c`` plus Gaussian noise of scale
    ``init_scale``, and each sample at its class mean plus a Gaussian deviation of scale
    ``within_scale`` (default ``init_scale``): noise-free, the deviations stay and the
    class means move. The head start ``init_margin > 0`` stands for the first steps of
    training, which push each class towards its own logit: the LE-ODE grows the symmetric
    mode's *magnitude* whatever its sign, so from a symmetric component of random sign
    half of the runs with alpha > beta would end with every class pointing away from itself.
    Returns one row per (alpha, beta, trial) with the initial and final :func:`separation`
    measures, ``sym_rate`` and ``other_rate`` (:func:`mode_rates`) and ``separated`` (final
    accuracy = 1).
    """
    import pandas as pd

    k = _check_classes(num_classes)
    aa, bb = np.meshgrid(np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64),
                         indexing="ij")
    aa, bb = aa.ravel(), bb.ravel()
    # class means and within-class deviations drawn apart: simulate() draws i.i.d. samples,
    # so build the initial state here and run the same update
    rng = np.random.default_rng(seed)
    within = init_scale if within_scale is None else within_scale
    units = class_directions(k) / np.linalg.norm(class_directions(k), axis=1, keepdims=True)
    centres = (init_margin * units[None, None, :, None, :]
               + rng.normal(size=(1, trials, k, 1, k)) * init_scale)
    deviations = rng.normal(size=(1, trials, k, samples_per_class, k)) * within
    deviations -= deviations.mean(axis=3, keepdims=True)
    start = centres + deviations
    final = _run_from(start, aa, bb, steps)
    first, last = separation(np.broadcast_to(start, final.shape)), separation(final)
    sym, other = mode_rates(aa, bb, k)
    rows = []
    for g in range(aa.size):
        for trial in range(trials):
            rows.append({"alpha": aa[g], "beta": bb[g], "trial": trial,
                         "sym_rate": sym[g], "other_rate": other[g],
                         **{f"initial_{name}": float(v[g, trial]) for name, v in first.items()},
                         **{f"final_{name}": float(v[g, trial]) for name, v in last.items()}})
    table = pd.DataFrame(rows)
    table["separated"] = table["final_accuracy"] >= 1.0
    return table


def _run_from(start: np.ndarray, alpha: np.ndarray, beta: np.ndarray, steps: int) -> np.ndarray:
    """The noise-free update of :func:`simulate` from a given state (1 or G, trials, K, n, K)."""
    k = start.shape[-1]
    P = projectors(k)
    state = np.broadcast_to(start, (alpha.size,) + start.shape[1:]).copy()
    a, b = alpha[:, None, None, None], beta[:, None, None, None]
    for _ in range(steps):
        own = np.einsum("ckl,gtcl->gtck", P, state.mean(axis=3))
        drift = (a * own + b * (own.sum(axis=2, keepdims=True) - own)) / k
        state += drift[:, :, :, None, :]
    return state


# ---------------------------------------------------------------------------
# Estimators.


def mode_weights(num_classes: int) -> np.ndarray:
    """Weights ``w = (1, ..., 1, -(K-1)) / K`` of the non-symmetric mode f (official K = 3: (1, 1, -2)/3)."""
    k = _check_classes(num_classes)
    w = np.ones(k) / k
    w[-1] = -(k - 1) / k
    return w


def mode_projections(class_means: Any) -> tuple[np.ndarray, np.ndarray]:
    """``s(t)`` and ``f(t)`` of class-mean logits (see the module docstring).

    Parameters
    ----------
    class_means : array (..., T, K, K)
        ``[..., t, c, k]``: mean logit k over the samples of class c at time t.

    Returns
    -------
    s, f : ndarray (..., T)
        ``s = sum_c <Xbar_c, e_c - 1/K>``; ``f = sum_c w_c <Xbar_c, e_c - 1/K>``.
    """
    x = np.asarray(class_means, dtype=np.float64)
    if x.ndim < 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"class_means must have shape (..., T, K, K), got {x.shape}")
    k = x.shape[-1]
    own = np.einsum("...ck,ck->...c", x, class_directions(k))
    return own.sum(axis=-1), own @ mode_weights(k)


def class_alignment(class_means: Any) -> np.ndarray:
    """The share of the class-mean logits that lies along the class directions: a scale-free ``s``.

    ``a = <Xbar, D>_F / (||Xbar D||_F ||D||_F)`` with ``D = I - 11^T/K`` (rows ``e_c - 1/K``,
    :func:`class_directions`): the cosine between the class-mean logit matrix, each row's
    common shift removed (softmax ignores it), and the simplex pattern in which every class
    mean points along its own class direction. The numerator is ``s`` of
    :func:`mode_projections`, the symmetric mode that the LE-SDE's ``alpha - beta`` drives; the
    denominator is the size of every non-common direction of the logits, so multiplying the
    logits by any factor leaves ``a`` unchanged (``K d log|a| / dt`` is ``alpha-hat - beta-hat``
    less ``K d log ||Xbar D||_F / dt``, the growth every direction shares). ``a`` lies in
    ``[-1, 1]``: 1 when the class means form the simplex pattern exactly, near 0 when they
    carry no class structure; ``nan`` where all rows are constant.

    Parameters
    ----------
    class_means : array (..., K, K)
        ``[..., c, k]``: mean logit k over the samples of class c.

    Returns
    -------
    ndarray (...)

    Examples
    --------
    >>> round(float(class_alignment(5.0 * class_directions(3) + 2.0)), 12)   # any scale, any common shift
    1.0
    >>> round(float(class_alignment(np.eye(3)[[1, 2, 0]])), 12)   # every class mean on another class
    -0.5
    """
    x = np.asarray(class_means, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"class_means must have shape (..., K, K), got {x.shape}")
    d = class_directions(x.shape[-1])
    centred = x @ d                                   # each row's common shift removed (D is symmetric)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("...ck,ck->...", x, d) / (np.linalg.norm(centred, axis=(-2, -1)) * np.linalg.norm(d))


def estimate_alpha_beta(
    class_means: Any,
    *,
    window: int = 21,
    delta: float = 1.0,
    polyorder: int = 2,
) -> dict[str, np.ndarray]:
    """alpha-hat and beta-hat from class-mean logits over time (official ``estimate_AB_L``).

    Parameters
    ----------
    class_means : array (..., T, K, K)
        As in :func:`mode_projections`; time along axis -3 at a constant interval.
    window : int
        Savitzky-Golay window in time points (odd; the official code uses 21 for
        simulations, 151 and 551 for networks logged at every iteration).
    delta : float
        Time between points (e.g. the logging interval in iterations), so the derivatives
        are per unit time (per iteration).
    polyorder : int

    Returns
    -------
    dict of ndarray (..., T)
        ``A_hat``, ``B_hat``, ``A_B1``, ``A_B2``, ``alpha_hat``, ``beta_hat`` and
        ``alpha_minus_beta`` (the derivative of ``A_B1``).
    """
    s, f = mode_projections(class_means)
    k = np.asarray(class_means).shape[-1]
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < polyorder + 2 \
            or window % 2 == 0:
        raise ValueError(f"window must be an odd integer > polyorder + 1, got {window!r}")
    if s.shape[-1] < window:
        raise ValueError(f"need at least window={window} time points, got {s.shape[-1]}")
    with np.errstate(divide="ignore", invalid="ignore"):
        a_b1 = k * np.log(np.abs(s / s[..., :1]))
        a_b2 = k * np.log(np.abs(f / f[..., :1]))
    a_hat = (a_b1 + (k - 1) * a_b2) / k
    b_hat = (a_b2 - a_b1) * (k - 1) / k

    def derivative(series: np.ndarray) -> np.ndarray:
        return signal.savgol_filter(series, window_length=window, polyorder=polyorder, deriv=1,
                                    delta=delta, axis=-1)

    return {"A_hat": a_hat, "B_hat": b_hat, "A_B1": a_b1, "A_B2": a_b2,
            "alpha_hat": derivative(a_hat), "beta_hat": derivative(b_hat),
            "alpha_minus_beta": derivative(a_b1)}


def tail_index(series: Any, iterations: Any, *, tail_fraction: float = 0.1) -> np.ndarray:
    """The tail index ``r-hat = 1 - mean over the last iterations of log A(t) / log t``.

    Convention: if ``A(t) = c t^(1-r)`` (the cumulative impact of ``alpha(t) ~ t^-r``), then
    ``log A / log t = 1 - r + log c / log t``, so ``r-hat`` tends to ``r``: ``r < 1`` means
    ``A`` grows without bound (the features keep separating), ``r > 1`` that it levels off;
    the official phase-transition figure draws the reference line ``r = 1``. ``r-hat`` is
    exact for ``c = 1`` and biased by ``-mean(log c / log t)`` otherwise (so it depends on
    the units of ``A``, e.g. per-iteration rates of 1e-3 give ``log c`` of about -7).

    Follows ``estimate_tail_idx`` of the official code (``zjiayao/le_sde``,
    ``src/data_analyzer.py``, lines 104-107; plotted against ``p_err`` by ``viz_tail_perr``,
    ``src/plotter.py`` lines 192-224, for ``A-hat`` and ``B-hat``): the series is negated
    first when more than half of its tail is negative; ``t`` is the iteration plus one (the
    official code's ``arange(1, T + 1)`` over a series logged at iterations ``0 .. T-1``);
    points where ``A < 0`` give ``log A = nan`` and are left out of the mean (``nanmean``).
    Where we do not follow it: a point with ``A = 0`` exactly is left out too (the official
    ``nanmean`` keeps its ``-inf`` and returns ``r-hat = inf``); the tail is the last
    ``tail_fraction`` of the iterations (the
    official default is the last 1,000 logged points of 10,000 iterations logged at every
    iteration, i.e. 0.1) rather than a count of points, since our series are logged every
    ``log_every`` iterations; and the series is whatever is passed (the chapter passes the
    "L"-form ``A_hat`` of :func:`estimate_alpha_beta`; the official figure's default is its
    "I"-form estimator ``estimate_AB_I``, which this module does not implement).

    Parameters
    ----------
    series : array (..., L)
        ``A(t)`` at the logged iterations (e.g. ``estimate_alpha_beta(...)["A_hat"]``);
        leading axes (trials) are kept.
    iterations : array (L,)
        The iterations of the points (increasing, >= 0).
    tail_fraction : float in (0, 1]
        The points with ``iteration >= (1 - tail_fraction) * last iteration`` form the tail.

    Returns
    -------
    ndarray (...)
        r-hat per leading index (``nan`` where no tail point has ``A > 0`` after the flip).

    Examples
    --------
    >>> t = np.arange(0, 10_000, 25)
    >>> round(float(tail_index((t + 1.0) ** 0.4, t)), 12)
    0.6
    """
    a = np.asarray(series, dtype=np.float64)
    t = np.asarray(iterations, dtype=np.float64)
    if t.ndim != 1 or a.ndim < 1 or a.shape[-1] != t.size:
        raise ValueError(f"series (..., L) and iterations (L,) must match, got {a.shape} and {t.shape}")
    if t.size == 0 or np.any(t < 0) or np.any(np.diff(t) <= 0):
        raise ValueError("iterations must be increasing and >= 0")
    if isinstance(tail_fraction, bool) or not isinstance(tail_fraction, (int, float)) \
            or not 0 < tail_fraction <= 1:
        raise ValueError(f"tail_fraction must be in (0, 1], got {tail_fraction!r}")
    keep = t >= (1 - tail_fraction) * t[-1]
    keep &= t > 0  # log t = 0 at t = iteration + 1 = 1
    if not keep.any():
        raise ValueError("the tail holds no iteration > 0")
    tail, steps = a[..., keep], t[keep] + 1.0
    flip = np.sum(tail < 0, axis=-1) > tail.shape[-1] / 2
    tail = np.where(flip[..., None], -tail, tail)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(tail) / np.log(steps)
    ratio = np.where(np.isfinite(ratio), ratio, np.nan)
    count = np.sum(np.isfinite(ratio), axis=-1)
    total = np.nansum(ratio, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, 1.0 - total / np.maximum(count, 1), np.nan)


def bootstrap_median(values: Any, *, resamples: int = 2000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """Median of ``values`` and its percentile bootstrap interval ``(median, low, high)``."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, size=(resamples, x.size))], axis=1)
    tail = (1 - level) / 2
    return float(np.median(x)), float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))


# ---------------------------------------------------------------------------
# The official measurement protocol, vectorised over trials.


@dataclass
class TrialsResult:
    """What :func:`train_trials` measured.

    Attributes
    ----------
    iterations : ndarray (L,)
        The logged iterations (0 = before the first step).
    class_means : ndarray (trials, L, K, K)
        Class-mean logits of the probe samples, classes by their (possibly corrupted)
        training labels.
    val_accuracy : ndarray (trials, L)
        Accuracy on the validation set (clean labels).
    train_accuracy : ndarray (trials, L)
        Accuracy of the probe samples against their training labels.
    label_noise : float
    seconds : float
    settings : dict
        The arguments of the call (trials, iterations, lr, ...).
    labels : ndarray (trials, N), optional
        Each trial's training labels (corrupted at ``label_noise``).
    order : ndarray (iterations, trials), optional
        The training sample each trial stepped on at each iteration.
    val_class_means : ndarray (trials, L, K, K), optional
        Class-mean logits of the validation samples, classes by their *true* labels (held-out
        samples the network never stepped on, so no memorised label enters them).
    """

    iterations: np.ndarray
    class_means: np.ndarray
    val_accuracy: np.ndarray
    train_accuracy: np.ndarray
    label_noise: float
    seconds: float = float("nan")
    settings: dict[str, Any] = field(default_factory=dict)
    labels: np.ndarray | None = None
    order: np.ndarray | None = None
    val_class_means: np.ndarray | None = None


def corrupt_labels(labels: torch.Tensor, p: float, num_classes: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Each label replaced with probability ``p`` by one of the *other* classes, uniformly.

    At ``p = (K-1)/K`` the corrupted label is uniform over the classes whatever the true one:
    the labels carry no information (the official code's p = 0.67 for K = 3).
    """
    flip = torch.rand(labels.shape, generator=generator) < p
    shift = torch.randint(1, num_classes, labels.shape, generator=generator)
    return torch.where(flip, (labels + shift) % num_classes, labels)


def train_trials(
    build: Callable[[], nn.Module],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    val_inputs: torch.Tensor,
    val_labels: torch.Tensor,
    *,
    trials: int = 20,
    iterations: int = 2000,
    lr: float = 0.005,
    label_noise: float = 0.0,
    log_every: int = 20,
    probe_per_class: int = 30,
    seed: int = 0,
    threads: int | None = 1,
) -> TrialsResult:
    """Per-sample SGD on ``trials`` independent networks at once (the official protocol).

    Each iteration every trial takes one SGD step (no momentum, cross-entropy, float64) on
    one training sample drawn uniformly at random. The trials are one batched model: their
    parameters are stacked (``torch.func.stack_module_state``), one ``vmap`` of
    ``functional_call`` gives every trial's logits on its own sample, and one backward pass
    of the *sum* of the trials' losses gives every trial's gradient at once (the trials share
    no parameter, so the gradient of the sum with respect to trial k's parameters is trial
    k's own gradient; tests compare a trial with a plain loop on one network). A model with
    BatchNorm or dropout cannot be used. Every ``log_every`` iterations the logits of a
    fixed stratified probe subset of the training samples (``probe_per_class`` per class)
    give the class-mean logits per trial, and the validation accuracy is measured (one
    forward pass per trial over probe and validation samples together: a ``vmap`` over
    trials of a shared batch turns convolutions into slow grouped float64 ones).

    Draws: trial k's initial weights come from ``torch.manual_seed(seed + k)``; one
    generator seeded with ``seed`` then draws every trial's corrupted labels and then the
    sample order, so all ``label_noise`` levels share the initial weights and the sample
    order of each trial (a paired design) and differ in the labels only. The draws are made
    on the CPU; training runs on the device of ``inputs`` (float64 there too).

    Parameters
    ----------
    build : callable
        Returns a fresh model (called once per trial under ``torch.manual_seed(seed + trial)``).
    inputs, labels : training data (labels 0..K-1)
    val_inputs, val_labels : validation data (clean labels)
    trials, iterations, lr, log_every, probe_per_class, seed
    label_noise : float
        Probability that a training label is replaced by another class (per trial).
    threads : int or None
        Torch threads while training (restored afterwards, and recorded: the numbers depend on it), ``None`` to leave
        the setting alone. One thread by default: these are small per-sample steps, and a
        second thread made them slower, not faster, while other processes shared the two
        cores (measured: 1.4x slower for the chapter's MLP, 3.6x for its CNN).

    Returns
    -------
    TrialsResult
    """
    previous = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
        torch.set_num_threads(int(threads))
    try:
        return _train_trials(build, inputs, labels, val_inputs, val_labels, trials=trials,
                             iterations=iterations, lr=lr, label_noise=label_noise, log_every=log_every,
                             probe_per_class=probe_per_class, seed=seed)
    finally:
        torch.set_num_threads(previous)


def _train_trials(build: Callable[[], nn.Module], inputs: torch.Tensor, labels: torch.Tensor,
                  val_inputs: torch.Tensor, val_labels: torch.Tensor, *, trials: int, iterations: int,
                  lr: float, label_noise: float, log_every: int, probe_per_class: int,
                  seed: int) -> TrialsResult:
    import time

    from torch.func import functional_call, stack_module_state, vmap

    started = time.perf_counter()
    num_classes = int(labels.max()) + 1
    if not 0 <= label_noise <= 1:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    for name, value in (("trials", trials), ("iterations", iterations), ("log_every", log_every),
                        ("probe_per_class", probe_per_class)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    generator = torch.Generator().manual_seed(seed)  # draws on the CPU, whatever the device
    device = inputs.device
    x = inputs.detach().to(torch.float64)
    xv = val_inputs.detach().to(device=device, dtype=torch.float64)
    yv = val_labels.detach().to(device)
    labels = labels.detach().cpu()
    models = []
    for trial in range(trials):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + trial)
            models.append(build().to(device=device, dtype=torch.float64))
    params, buffers = stack_module_state(models)
    if buffers:
        raise ValueError(f"train_trials needs models without buffers (BatchNorm), got {sorted(buffers)}")
    base = models[0].to("meta")
    names = list(params)
    leaves = [params[name].detach().requires_grad_(True) for name in names]
    train_labels = torch.stack([corrupt_labels(labels, label_noise, num_classes, generator)
                                for _ in range(trials)])                       # (trials, N)
    probe = torch.cat([torch.nonzero(labels == c).flatten()[:probe_per_class] for c in range(num_classes)])
    order = torch.randint(0, labels.shape[0], (iterations, trials), generator=generator)
    drawn_labels, drawn_order = train_labels, order
    train_labels, order, probe = train_labels.to(device), order.to(device), probe.to(device)
    probe_labels = train_labels[:, probe]                                     # (trials, P)

    def one_sample(p: dict[str, torch.Tensor], sample: torch.Tensor) -> torch.Tensor:
        return functional_call(base, p, (sample[None],))[0]

    logits_of = vmap(one_sample)                                              # (trials, K)
    measured = torch.cat([x[probe], xv])                                      # probe, then validation
    one_hot = torch.nn.functional.one_hot(probe_labels, num_classes).to(torch.float64)  # (trials, P, K)
    counts = one_hot.sum(dim=1)                                                       # (trials, K)
    val_one_hot = torch.nn.functional.one_hot(yv, num_classes).to(torch.float64)          # (V, K), true labels
    val_counts = val_one_hot.sum(dim=0).clamp(min=1)                                      # (K,)
    logged, means, val_means, val_acc, train_acc = [], [], [], [], []

    def log(iteration: int) -> None:
        with torch.no_grad():
            outputs = torch.stack([functional_call(base, {name: leaf[trial] for name, leaf in zip(names, leaves)},
                                                   (measured,)) for trial in range(trials)])
            logits, val_logits = outputs[:, :probe.numel()], outputs[:, probe.numel():]  # (trials, P | V, K)
            means.append((torch.einsum("tpc,tpk->tck", one_hot, logits)
                          / counts.clamp(min=1)[:, :, None]).cpu().numpy())
            val_means.append((torch.einsum("vc,tvk->tck", val_one_hot, val_logits)
                              / val_counts[None, :, None]).cpu().numpy())
            train_acc.append((logits.argmax(-1) == probe_labels).double().mean(1).cpu().numpy())
            val_acc.append((val_logits.argmax(-1) == yv).double().mean(1).cpu().numpy())
        logged.append(iteration)

    trial_index = torch.arange(trials, device=device)
    log(0)
    for it in range(1, iterations + 1):
        picked = order[it - 1]
        logits = logits_of(dict(zip(names, leaves)), x[picked])
        loss = torch.nn.functional.cross_entropy(logits, train_labels[trial_index, picked], reduction="sum")
        grads = torch.autograd.grad(loss, leaves)
        with torch.no_grad():
            for leaf, gradient in zip(leaves, grads):
                leaf -= lr * gradient
        if it % log_every == 0:
            log(it)
    return TrialsResult(np.asarray(logged), np.stack(means, axis=1), np.stack(val_acc, axis=1),
                        np.stack(train_acc, axis=1), float(label_noise),
                        time.perf_counter() - started,
                        {"trials": trials, "iterations": iterations, "lr": lr, "log_every": log_every,
                         "probe_per_class": probe_per_class, "seed": seed,
                         "threads": torch.get_num_threads(), "device": str(device),
                         "n_train": int(labels.shape[0]), "n_val": int(val_labels.shape[0])},
                        drawn_labels.numpy(), drawn_order.numpy(), np.stack(val_means, axis=1))
