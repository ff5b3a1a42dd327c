"""Synthetic features whose Neural Collapse is known, and the dense reference NC1.

Features built by hand where the answer is known exactly: an exact simplex ETF
(:func:`simplex_etf`, every sample at its class mean: perfect collapse) and Gaussian mixtures
around it whose class means stay that ETF (:func:`recentred_noise`), whose NC1, trace ratio and
CDNV have closed-form expectations (:func:`mixture_expectations`); plus Gaussian classes with
random means for timing (:func:`gaussian_classes`). :func:`known_table` and
:func:`mixture_sweep` put what :mod:`ncutils.metrics` measures on them beside the known values.

:func:`dense_nc1` is the **reference**: NC1 the textbook way of public NC code, with the
``D x D`` covariances ``Sigma_W``, ``Sigma_B`` and an SVD pseudo-inverse of ``Sigma_B``
(``O(N D^2 + D^3)`` time, ``O(D^2)`` memory). :func:`ncutils.metrics.nc1` never forms a
``D x D`` matrix; the measuring chapter and the benchmarks compare the two.

Conventions are those of :mod:`ncutils.metrics` (``mu_G`` the unweighted mean of the class
means, ``Sigma_W`` sample-weighted, ``Sigma_B = M M^T / C``).

Example
-------
>>> generator = torch.Generator().manual_seed(0)
>>> etf = simplex_etf(4, 8, 2.0, generator)
>>> [round(float(v), 6) for v in etf.norm(dim=0)]
[2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from ncutils import metrics

__all__ = [
    "MIXTURE_METRICS",
    "collapsed_classes",
    "dense_nc1",
    "gaussian_classes",
    "known_etf_values",
    "known_table",
    "label_values",
    "mixture_expectations",
    "mixture_sweep",
    "recentred_noise",
    "simplex_etf",
]

#: The metrics with a closed form on the mixtures of :func:`mixture_expectations`.
MIXTURE_METRICS: tuple[str, ...] = ("nc1", "trace_ratio", "cdnv")

#: The metrics :func:`mixture_sweep` reports without a closed form (what else sees the noise).
_OTHER_METRICS: tuple[str, ...] = ("ncc_accuracy", "relative_within_trace", "equiangularity")


def simplex_etf(num_classes: int, dim: int, radius: float, generator: torch.Generator) -> torch.Tensor:
    """The centred class means of an exact simplex ETF, randomly rotated: ``(dim, num_classes)``.

    ``M = r sqrt(C / (C - 1)) U (I_C - 11^T / C)`` with ``U`` a random orthonormal
    ``(D, C)`` basis, so that every column has norm ``radius`` and every pair of columns has
    cosine ``-1 / (C - 1)``.

    Parameters
    ----------
    num_classes : int
        ``C >= 2``.
    dim : int
        ``D >= C``.
    radius : float
        ``r``, the norm of every centred class mean.
    generator : torch.Generator
        Draws the rotation (one ``randn(D, C)``).

    Returns
    -------
    torch.Tensor
        float64, columns ``mu_c - mu_G``.

    Example
    -------
    >>> etf = simplex_etf(3, 5, 1.0, torch.Generator().manual_seed(0))
    >>> round(float(etf[:, 0] @ etf[:, 1]), 6), round(float(etf.sum(dim=1).abs().max()), 6)
    (-0.5, 0.0)
    """
    if num_classes < 2 or dim < num_classes:
        raise ValueError(f"need 2 <= num_classes <= dim for a simplex ETF, got num_classes={num_classes}, dim={dim}")
    # A random orthonormal basis rotates the ETF away from the coordinate axes.
    basis, _ = torch.linalg.qr(torch.randn(dim, num_classes, generator=generator, dtype=torch.float64))
    centring = torch.eye(num_classes, dtype=torch.float64) - 1.0 / num_classes
    return radius * math.sqrt(num_classes / (num_classes - 1)) * basis @ centring


def label_values(num_classes: int) -> torch.Tensor:
    """Non-contiguous labels ``1, 4, 7, ...``, one per class: code that assumes labels
    ``0 .. C-1`` fails on them.

    Example
    -------
    >>> label_values(4).tolist()
    [1, 4, 7, 10]
    """
    return 3 * torch.arange(num_classes) + 1


def collapsed_classes(etf: torch.Tensor, samples_per_class: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class means around ``etf`` shifted by a random offset, and balanced, non-contiguous labels.

    The offset (one ``randn(D)``) makes centring matter; the labels are
    :func:`label_values` (``1, 4, 7, ...``).

    Parameters
    ----------
    etf : torch.Tensor
        ``(D, C)`` centred class means (:func:`simplex_etf`).
    samples_per_class : int
    generator : torch.Generator

    Returns
    -------
    (class_means, class_index, labels)
        ``(C, D)`` float64 means; ``(N,)`` each sample's class ``0 .. C-1``, class by class;
        ``(N,)`` its label ``3 c + 1``. ``class_means[class_index]`` are the perfectly
        collapsed features.

    Example
    -------
    >>> etf = simplex_etf(3, 4, 1.0, torch.Generator().manual_seed(0))
    >>> means, index, labels = collapsed_classes(etf, 2, torch.Generator().manual_seed(1))
    >>> tuple(means.shape), index.tolist(), labels.tolist()
    ((3, 4), [0, 0, 1, 1, 2, 2], [1, 1, 4, 4, 7, 7])
    """
    dim, num_classes = etf.shape
    class_index = torch.arange(num_classes).repeat_interleave(samples_per_class)
    offset = torch.randn(dim, generator=generator, dtype=torch.float64)
    return (offset[:, None] + etf).T, class_index, label_values(num_classes)[class_index]


def known_etf_values(num_classes: int) -> dict[str, float]:
    """What :func:`ncutils.metrics.summary` must return on an exact simplex ETF, every sample
    at its class mean and the classifier's rows the centred means (``W = M^T``).

    Example
    -------
    >>> round(known_etf_values(3)["mean_pairwise_angle"], 6)
    120.0
    """
    simplex_angle = math.degrees(math.acos(-1.0 / (num_classes - 1)))
    return {"nc1": 0.0, "equinorm": 0.0, "equiangularity": 0.0, "etf_error": 0.0,
            "self_duality": 0.0, "mean_pairwise_angle": simplex_angle, "ncc_accuracy": 1.0}


def known_table(measured: dict[str, float], known: dict[str, float]) -> pd.DataFrame:
    """One row per known value: ``metric``, ``measured``, ``known``, ``abs. difference``.

    Example
    -------
    >>> known_table({"nc1": 1e-12, "cdnv": 3.0}, {"nc1": 0.0})["abs. difference"].tolist()
    [1e-12]
    """
    return pd.DataFrame(
        [{"metric": name, "measured": measured[name], "known": value, "abs. difference": abs(measured[name] - value)}
         for name, value in known.items()]
    )


def recentred_noise(class_index: torch.Tensor, num_classes: int, dim: int, sigma: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Isotropic Gaussian noise of standard deviation ``sigma``, re-centred within each class.

    Adding it to features leaves every class mean exactly where it was: the mixtures of
    :func:`mixture_expectations`.

    Returns
    -------
    torch.Tensor
        ``(N, D)`` float64, zero mean in every class of ``class_index``.

    Example
    -------
    >>> index = torch.tensor([0, 0, 1, 1, 1])
    >>> noise = recentred_noise(index, 2, 3, 1.0, torch.Generator().manual_seed(0))
    >>> float(noise[:2].mean(dim=0).abs().max()) < 1e-15, float(noise[2:].mean(dim=0).abs().max()) < 1e-15
    (True, True)
    """
    noise = sigma * torch.randn(class_index.numel(), dim, generator=generator, dtype=torch.float64)
    counts = torch.bincount(class_index, minlength=num_classes).to(torch.float64)
    noise_means = torch.zeros(num_classes, dim, dtype=torch.float64).index_add_(0, class_index, noise)
    return noise - (noise_means / counts[:, None])[class_index]


def mixture_expectations(sigma: float, *, num_classes: int, dim: int, n_samples: int,
                         radius: float) -> dict[str, tuple[float, float]]:
    """Closed-form expectations of NC1, trace ratio and CDNV on an ETF Gaussian mixture.

    Class means an exact simplex ETF of radius ``r`` (:func:`simplex_etf`), balanced classes,
    noise of standard deviation ``sigma`` re-centred within each class
    (:func:`recentred_noise`). ``Sigma_B``'s non-zero eigenvalues are ``r^2 / (C - 1)``, and
    ``(N / sigma^2) tr(P Sigma_W)`` is chi-square with ``(C - 1)(N - C)`` degrees of freedom
    (``P`` the projector onto the means' span), hence::

        E NC1 = (C-1)^2 sigma^2 / (C r^2) * (N-C)/N,          rel. sd sqrt(2 / ((C-1)(N-C)))
        E tr Sigma_W / tr Sigma_B = D sigma^2 / r^2 * (N-C)/N, rel. sd sqrt(2 / (D (N-C)))
        E CDNV = D sigma^2 (N-C)/N / (2 r^2 C / (C-1)),         rel. sd sqrt(2 / (D (N-C)))

    Returns
    -------
    dict
        Metric (:data:`MIXTURE_METRICS`) -> ``(expectation, relative standard deviation)``.

    Example
    -------
    >>> nc1, sd = mixture_expectations(1.0, num_classes=2, dim=4, n_samples=4, radius=1.0)["nc1"]
    >>> nc1, round(sd, 6)
    (0.25, 1.0)
    """
    finite_sample = (n_samples - num_classes) / n_samples
    return {
        "nc1": ((num_classes - 1) ** 2 * sigma**2 / (num_classes * radius**2) * finite_sample,
                math.sqrt(2 / ((num_classes - 1) * (n_samples - num_classes)))),
        "trace_ratio": (dim * sigma**2 / radius**2 * finite_sample,
                        math.sqrt(2 / (dim * (n_samples - num_classes)))),
        "cdnv": (dim * sigma**2 * finite_sample / (2 * radius**2 * num_classes / (num_classes - 1)),
                 math.sqrt(2 / (dim * (n_samples - num_classes)))),
    }


def mixture_sweep(class_means: torch.Tensor, class_index: torch.Tensor, labels: torch.Tensor,
                  noise_levels: Sequence[float], *, radius: float, generator: torch.Generator,
                  device: str | torch.device = "cpu", progress: bool = False) -> pd.DataFrame:
    """Measure the ETF mixtures at every noise level against their closed forms.

    At each ``sigma`` (in order, each drawing its noise from ``generator``): the features
    ``class_means[class_index] + recentred_noise(...)`` on ``device``, measured by
    :func:`ncutils.metrics.summary`.

    Parameters
    ----------
    class_means : torch.Tensor
        ``(C, D)`` float64, centred means an exact ETF of norm ``radius``
        (:func:`collapsed_classes`).
    class_index : torch.Tensor
        ``(N,)`` each sample's class ``0 .. C-1``.
    labels : torch.Tensor
        ``(N,)`` the labels given to the metrics (on ``device``).
    noise_levels : sequence of float
    radius : float
    generator : torch.Generator
    device : str or torch.device
    progress : bool
        A tqdm bar over the noise levels.

    Returns
    -------
    DataFrame
        One row per (``noise``, ``metric``): ``measured``; for :data:`MIXTURE_METRICS` also
        ``closed form`` and ``z`` (the difference in units of the chi-square standard
        deviation); ``ncc_accuracy``, ``relative_within_trace`` and ``equiangularity`` are
        reported without a closed form.
    """
    from tqdm.auto import tqdm

    num_classes, dim = class_means.shape
    rows: list[dict[str, Any]] = []
    for sigma in tqdm(noise_levels, desc="noise levels", disable=not progress):
        noisy = class_means[class_index] + recentred_noise(class_index, num_classes, dim, sigma, generator)
        values = metrics.summary(noisy.to(device), labels)
        expectations = mixture_expectations(sigma, num_classes=num_classes, dim=dim,
                                            n_samples=class_index.numel(), radius=radius)
        for name, (expected, relative_sd) in expectations.items():
            rows.append({"noise": sigma, "metric": name, "measured": values[name], "closed form": expected,
                         "z": (values[name] - expected) / (expected * relative_sd)})
        for name in _OTHER_METRICS:
            rows.append({"noise": sigma, "metric": name, "measured": values[name]})
    return pd.DataFrame(rows)


def gaussian_classes(num_classes: int, dim: int, samples: int, generator: torch.Generator, *,
                     label_values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A non-collapsed float32 mixture: imbalanced classes around random means, unit noise.

    Class ``c`` is drawn with weight growing linearly from 1 to 2 over the classes; its mean
    is standard normal in ``R^D`` and every sample adds standard normal noise.

    Parameters
    ----------
    num_classes, dim, samples : int
    generator : torch.Generator
        Draws the labels, then the means, then the noise.
    label_values : torch.Tensor, optional
        The label of each class (default ``0 .. C-1``).

    Returns
    -------
    (features, labels)
        ``(samples, dim)`` float32 and ``(samples,)``, on the CPU.

    Example
    -------
    >>> features, labels = gaussian_classes(3, 5, 10, torch.Generator().manual_seed(0))
    >>> tuple(features.shape), features.dtype, int(labels.max()) <= 2
    ((10, 5), torch.float32, True)
    """
    weights = torch.linspace(1.0, 2.0, num_classes)  # imbalanced classes
    index = torch.multinomial(weights, samples, replacement=True, generator=generator)
    centres = torch.randn(num_classes, dim, generator=generator)
    features = centres[index] + torch.randn(samples, dim, generator=generator)
    values = torch.arange(num_classes) if label_values is None else torch.as_tensor(label_values)
    return features, values[index]


def dense_nc1(features: torch.Tensor, labels: torch.Tensor, rcond: float | None = metrics.DEFAULT_RCOND, *,
              dtype: torch.dtype = torch.float64) -> float:
    """The reference NC1: ``tr(Sigma_W Sigma_B^+) / C`` with dense ``D x D`` matrices.

    The route of public Neural Collapse code, kept naive on purpose: class means,
    ``Sigma_W`` from the residuals and ``Sigma_B`` from the centred means as ``D x D``
    matrices in ``dtype`` on the features' device, and ``torch.linalg.pinv`` (an SVD) of
    ``Sigma_B``. :func:`ncutils.metrics.nc1` computes the same number without any ``D x D``
    matrix; this is what it is checked and timed against.

    Parameters
    ----------
    features : torch.Tensor
        ``(N, D)``.
    labels : torch.Tensor
        ``(N,)`` integer labels, possibly non-contiguous.
    rcond : float or None, default :data:`ncutils.metrics.DEFAULT_RCOND`
        Relative cutoff of the pseudo-inverse's singular values (``rtol`` of
        ``torch.linalg.pinv``, the ``rcond`` of ``numpy.linalg.pinv``); None: torch's default.
    dtype : torch.dtype, default float64

    Returns
    -------
    float

    Example
    -------
    >>> features, labels = gaussian_classes(3, 6, 60, torch.Generator().manual_seed(0))
    >>> abs(dense_nc1(features, labels) - metrics.nc1(features, labels)) < 1e-10
    True
    """
    features = features.to(dtype)
    classes, inverse = torch.unique(labels, return_inverse=True)
    counts = torch.bincount(inverse).to(dtype)
    means = torch.zeros(classes.numel(), features.shape[1], dtype=dtype, device=features.device)
    means = means.index_add_(0, inverse, features) / counts[:, None]
    within = features - means[inverse]
    sigma_w = within.T @ within / features.shape[0]
    centred = means - means.mean(dim=0)
    sigma_b = centred.T @ centred / classes.numel()
    pinv = torch.linalg.pinv(sigma_b) if rcond is None else torch.linalg.pinv(sigma_b, rtol=rcond)
    return float(torch.trace(sigma_w @ pinv) / classes.numel())
