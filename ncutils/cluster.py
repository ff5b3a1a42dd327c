"""Fine-grained structure: recover labels a network never saw by clustering its features.

A network trained on *coarse* labels (pairs of classes merged, say) may still separate the
*fine* classes inside each coarse class (Yang, Steinhardt, Hu 2023). This module measures
how much, from features alone:

- :func:`fine_structure` clusters the training features inside each coarse class (k = the
  number of fine classes it holds; or once globally, k = all fine classes), matches clusters
  to fine labels with the optimal one-to-one matching (Hungarian algorithm, scipy's
  ``linear_sum_assignment``) and scores the matched accuracy, the adjusted Rand index and
  the purity. Test points are assigned to the nearest cluster centroid inside their coarse
  class: the true one, and optionally the one a network predicted.
- :func:`chance_level`: the matched accuracy when the fine labels are drawn at random inside
  each coarse class, by permutations. Optimal matching lifts it above ``1/k`` (the matching
  picks the best of ``k!`` assignments), and it depends on the cluster sizes; this is the
  tolerance a null is judged against.
- :func:`fine_structure_statistic`: per coarse class, ``tr Sigma_B / tr Sigma_W`` of the fine
  classes inside it (:class:`ncutils.stats.ClassStats` on the fine labels, the trace
  conventions of :func:`ncutils.metrics.trace_ratio_from_stats`): a scale-free signal-to-noise
  of the fine structure, which can stay large while NC1 on the coarse labels goes to zero.
  :func:`fine_class_stats` and :func:`fine_structure_statistic_from_stats` split it into the
  statistics (kept in a results store) and the number read from them.
- :func:`random_fine_labels`: fine labels permuted inside each coarse class (the null).

Nothing here knows models or files: features in, numbers out. Features are float64 numpy
internally (scikit-learn); labels may be non-contiguous. Every fine label must lie in exactly
one coarse class.

References
----------
Yang, Steinhardt, Hu (2023), "Are Neurons Actually Collapsed? On the Fine-Grained Structure
in Neural Representations", ICML.
Hubert, Arabie (1985), "Comparing partitions", J. Classification (adjusted Rand index).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> fine = np.repeat(np.arange(4), 30)
>>> coarse = fine % 2
>>> features = 6.0 * np.eye(4)[fine] + rng.standard_normal((120, 4))
>>> result = fine_structure(features, coarse, fine, seed=0)
>>> round(result.train_accuracy, 2)
1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

from ncutils.metrics import trace_ratio_from_stats
from ncutils.stats import ClassStats

__all__ = [
    "METHODS",
    "ChanceLevel",
    "FineStructure",
    "chance_level",
    "fine_class_stats",
    "fine_structure",
    "fine_structure_statistic",
    "fine_structure_statistic_from_stats",
    "matched_accuracy",
    "purity",
    "random_fine_labels",
]

#: Clustering methods of :func:`fine_structure`.
METHODS: tuple[str, ...] = ("kmeans", "gmm", "spectral")


# ----------------------------------------------------------------------------- validation
def _as_features(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.ndim < 2:
        raise ValueError(f"{name} must have shape (N, D) or (N, C, H, W), got shape {array.shape}")
    array = array.reshape(array.shape[0], -1).astype(np.float64, copy=False)
    if array.shape[0] == 0:
        raise ValueError(f"{name} are empty: need at least one sample")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def _as_labels(values: Any, name: str, n: int) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} entries but there are {n} samples")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(array == np.round(array)):
            raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def _hierarchy(coarse: np.ndarray, fine: np.ndarray, what: str) -> dict[int, np.ndarray]:
    """Coarse class -> sorted fine classes in it; raises when a fine class spans two coarse ones."""
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    owners, counts = np.unique(pairs[:, 0], return_counts=True)
    shared = owners[counts > 1]
    if shared.size:
        spread = {int(f): sorted(int(c) for c in pairs[pairs[:, 0] == f, 1]) for f in shared[:5]}
        raise ValueError(f"{what}: fine labels must each lie in one coarse class; "
                         f"fine -> coarse classes seen: {spread}")
    return {int(c): np.unique(fine[coarse == c]) for c in np.unique(coarse)}


# ----------------------------------------------------------------------------- scores
def matched_accuracy(clusters: Any, labels: Any) -> float:
    """Accuracy under the best one-to-one matching of clusters to labels (Hungarian).

    With more clusters than labels (or fewer) the unmatched ones count as errors.

    Parameters
    ----------
    clusters, labels : array-like of int, shape (N,)
        Any integer values.

    Returns
    -------
    float
        In [0, 1].

    Example
    -------
    >>> matched_accuracy([0, 0, 1, 1, 1], [7, 7, 3, 3, 7])
    0.8
    """
    table, n = _checked_contingency(clusters, labels, "matched_accuracy")
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum()) / n


def purity(clusters: Any, labels: Any) -> float:
    """Fraction of samples carrying their cluster's majority label.

    Example
    -------
    >>> purity([0, 0, 1, 1, 1], [7, 7, 3, 3, 7])
    0.8
    """
    table, n = _checked_contingency(clusters, labels, "purity")
    return float(table.max(axis=1).sum()) / n


def _checked_contingency(clusters: Any, labels: Any, what: str) -> tuple[np.ndarray, int]:
    """The contingency table of validated ``clusters`` and ``labels``, and the sample count."""
    clusters = _as_labels(clusters, "clusters", len(np.asarray(clusters)))
    labels = _as_labels(labels, "labels", clusters.shape[0])
    if clusters.size == 0:
        raise ValueError(f"{what} needs at least one sample")
    return _contingency(clusters, labels), int(clusters.shape[0])


def _contingency(clusters: np.ndarray, labels: np.ndarray) -> np.ndarray:
    _, rows = np.unique(clusters, return_inverse=True)
    _, cols = np.unique(labels, return_inverse=True)
    table = np.zeros((rows.max() + 1, cols.max() + 1), dtype=np.int64)
    np.add.at(table, (rows, cols), 1)
    return table


def _ari(clusters: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    # one cluster and one label: identical partitions, which sklearn scores 1
    return float(adjusted_rand_score(labels, clusters))


# ----------------------------------------------------------------------------- clustering
def _cluster(features: np.ndarray, k: int, method: str, seed: int, n_init: int) -> np.ndarray:
    if k == 1:
        return np.zeros(features.shape[0], dtype=np.int64)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(features)
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        # diagonal covariances: a full one per component is D x D, unstable for D >> n
        model = GaussianMixture(n_components=k, covariance_type="diag", n_init=n_init,
                                reg_covar=1e-4, random_state=seed)
        return model.fit_predict(features)
    from sklearn.cluster import SpectralClustering

    neighbours = max(2, min(10, features.shape[0] - 1))
    model = SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=neighbours,
                               n_init=n_init, random_state=seed, assign_labels="kmeans")
    return model.fit_predict(features)


def _centroids(features: np.ndarray, assignment: np.ndarray, k: int) -> np.ndarray:
    centroids = np.zeros((k, features.shape[1]))
    for cluster in range(k):
        members = features[assignment == cluster]
        # an empty cluster (possible with spectral or GMM) never wins a nearest-centroid vote
        centroids[cluster] = members.mean(axis=0) if members.size else np.inf
    return centroids


def _nearest(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    finite = np.isfinite(centroids).all(axis=1)
    safe = np.where(finite[:, None], centroids, 0.0)
    # ||x - c||^2 = ||c||^2 - 2 x.c + const(x): no N x k x D array
    distances = (safe ** 2).sum(axis=1)[None, :] - 2.0 * features @ safe.T
    distances[:, ~finite] = np.inf
    return distances.argmin(axis=1)


def _match(assignment: np.ndarray, fine: np.ndarray, k: int, fine_classes: np.ndarray) -> np.ndarray:
    """Fine label of each cluster 0..k-1 under the optimal matching (-1: unmatched)."""
    table = np.zeros((k, fine_classes.shape[0]), dtype=np.int64)
    np.add.at(table, (assignment, np.searchsorted(fine_classes, fine)), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = np.full(k, -1, dtype=np.int64)
    mapping[rows] = fine_classes[cols]
    return mapping


@dataclass(frozen=True)
class FineStructure:
    """What :func:`fine_structure` found.

    Attributes
    ----------
    method : str
    per_coarse_class : bool
    train_accuracy : float
        Matched accuracy on the training points (clusters fitted on them).
    test_accuracy : float
        Test points assigned to the nearest centroid inside their *true* coarse class (the
        nearest of all centroids for a global clustering), scored with the training
        matching; NaN without test data.
    test_accuracy_predicted : float
        The same inside the coarse class given as ``test_predicted_coarse`` (a network's
        prediction): a wrong coarse prediction is a wrong fine label. NaN when not given
        and for a global clustering (which ignores coarse classes).
    ari, test_ari : float
        Adjusted Rand index between clusters and fine labels inside each coarse class,
        averaged with weights n_k / N (so the coarse partition, which clustering per coarse
        class gets for free, does not inflate it).
    purity, test_purity : float
        Fraction of points carrying their cluster's majority fine label (clusters inside
        each coarse class, or the global clusters).
    per_class : DataFrame
        One row per coarse class: ``coarse``, ``fine_classes``, ``k``, ``n_train``,
        ``train_accuracy``, ``ari``, ``n_test``, ``test_accuracy``.
    train_clusters : ndarray (N,)
        Cluster of each training point, numbered 0..k-1 inside its coarse class
        (0..K-1 overall for a global clustering).
    train_predicted : ndarray (N,)
        The fine label each training point receives (its cluster's matched label; -1 when
        its cluster matched none).
    test_predicted : ndarray or None
        The same for test points (true coarse classes).
    """

    method: str
    per_coarse_class: bool
    train_accuracy: float
    test_accuracy: float
    test_accuracy_predicted: float
    ari: float
    test_ari: float
    purity: float
    test_purity: float
    per_class: pd.DataFrame = field(repr=False)
    train_clusters: np.ndarray = field(repr=False)
    train_predicted: np.ndarray = field(repr=False)
    test_predicted: np.ndarray | None = field(default=None, repr=False)
    _coarse: np.ndarray | None = field(default=None, repr=False)
    _test_clusters: np.ndarray | None = field(default=None, repr=False)
    _test_coarse: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict[str, float]:
        """The scalar scores as a dict (for a table row)."""
        return {"train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy,
                "test_accuracy_predicted": self.test_accuracy_predicted, "ari": self.ari,
                "test_ari": self.test_ari, "purity": self.purity, "test_purity": self.test_purity}


def _weighted_ari(clusters: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> float:
    total = 0.0
    for value in np.unique(coarse):
        inside = coarse == value
        total += inside.sum() * _ari(clusters[inside], fine[inside])
    return total / coarse.shape[0]


def _purity_within(clusters: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> float:
    # clusters are numbered inside each coarse class: make them unique first
    return purity(coarse * (clusters.max() + 1) + clusters, fine)


def fine_structure(
    features: Any,
    coarse_labels: Any,
    fine_labels: Any,
    *,
    test_features: Any = None,
    test_coarse_labels: Any = None,
    test_fine_labels: Any = None,
    test_predicted_coarse: Any = None,
    method: str = "kmeans",
    per_coarse_class: bool = True,
    n_init: int = 10,
    seed: int = 0,
) -> FineStructure:
    """Recover fine labels from features by clustering inside each coarse class.

    Inside each coarse class c with k_c fine classes the training features are clustered into
    k_c clusters; clusters are matched one-to-one to the fine classes of c by the matching
    that maximises agreement (Hungarian algorithm on the contingency table); a point's
    recovered fine label is its cluster's match. Test points go to the nearest cluster
    centroid (mean of the cluster's training points) inside their coarse class. With
    ``per_coarse_class=False`` all training points are clustered once into as many clusters
    as there are fine classes and matched globally; test points go to the nearest of all
    centroids.

    Parameters
    ----------
    features : array-like (N, D) or (N, C, H, W)
        Training features (numpy or torch; maps are flattened).
    coarse_labels, fine_labels : array-like of int (N,)
        Any integer values; every fine class must lie inside one coarse class.
    test_features, test_coarse_labels, test_fine_labels : optional
        Test data, all three or none; its fine classes must be training fine classes, with
        the same coarse class.
    test_predicted_coarse : array-like of int, optional
        A coarse class per test point (e.g. the network's prediction) for
        ``test_accuracy_predicted``; values outside the training coarse classes count wrong.
    method : {"kmeans", "gmm", "spectral"}
        scikit-learn ``KMeans`` (``n_init`` restarts, k-means++), ``GaussianMixture``
        (diagonal covariances) or ``SpectralClustering`` (k-nearest-neighbour graph).
    per_coarse_class : bool, default True
    n_init : int, default 10
        Restarts of the clustering; the best (lowest inertia / highest likelihood) is kept.
    seed : int, default 0
        ``random_state`` of the clustering.

    Returns
    -------
    FineStructure

    Raises
    ------
    ValueError
        Shapes that do not agree, non-finite features, non-integer labels, a fine class in two
        coarse classes, test (fine, coarse) pairs not seen in training, an unknown method,
        ``n_init < 1``.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> fine = np.repeat([3, 8, 5], 40)                 # coarse class 1 holds 3 and 8
    >>> coarse = np.where(fine == 5, 0, 1)
    >>> x = 5.0 * np.eye(3)[np.searchsorted([3, 5, 8], fine)] + rng.standard_normal((120, 3))
    >>> result = fine_structure(x, coarse, fine, test_features=x, test_coarse_labels=coarse,
    ...                         test_fine_labels=fine)
    >>> result.train_accuracy, result.test_accuracy, result.per_class["k"].tolist()
    (1.0, 1.0, [1, 2])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init must be an integer >= 1, got {n_init!r}")
    x = _as_features(features, "features")
    coarse = _as_labels(coarse_labels, "coarse_labels", x.shape[0])
    fine = _as_labels(fine_labels, "fine_labels", x.shape[0])
    tree = _hierarchy(coarse, fine, "fine_structure")
    test_given = [value is not None for value in (test_features, test_coarse_labels, test_fine_labels)]
    if any(test_given) and not all(test_given):
        raise ValueError("give test_features, test_coarse_labels and test_fine_labels together")
    has_test = all(test_given)
    if test_predicted_coarse is not None and not has_test:
        raise ValueError("test_predicted_coarse needs the test data")
    if has_test:
        tx = _as_features(test_features, "test_features")
        if tx.shape[1] != x.shape[1]:
            raise ValueError(f"test_features have dimension {tx.shape[1]}, features {x.shape[1]}")
        tcoarse = _as_labels(test_coarse_labels, "test_coarse_labels", tx.shape[0])
        tfine = _as_labels(test_fine_labels, "test_fine_labels", tx.shape[0])
        owner = {int(f): c for c, fs in tree.items() for f in fs}
        strays = sorted({(int(f), int(c)) for f, c in zip(tfine, tcoarse) if owner.get(int(f)) != c})
        if strays:
            raise ValueError(f"test (fine, coarse) pairs not seen in training: {strays[:5]}")
        tpred = (None if test_predicted_coarse is None
                 else _as_labels(test_predicted_coarse, "test_predicted_coarse", tx.shape[0]))

    if per_coarse_class:
        clusters = np.zeros(x.shape[0], dtype=np.int64)
        predicted = np.zeros(x.shape[0], dtype=np.int64)
        centroids, mappings = {}, {}
        for c, fine_classes in tree.items():
            inside = coarse == c
            k = len(fine_classes)
            assignment = _cluster(x[inside], k, method, seed, n_init)
            clusters[inside] = assignment
            centroids[c] = _centroids(x[inside], assignment, k)
            mappings[c] = _match(assignment, fine[inside], k, fine_classes)
            predicted[inside] = mappings[c][assignment]

        def assign(points: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            labels = np.full(points.shape[0], -1, dtype=np.int64)
            near = np.zeros(points.shape[0], dtype=np.int64)
            for c in np.unique(classes):
                if c not in centroids:
                    continue  # a predicted coarse class that does not exist: wrong
                inside = classes == c
                near[inside] = _nearest(points[inside], centroids[c])
                labels[inside] = mappings[c][near[inside]]
            return labels, near
    else:
        all_fine = np.unique(fine)
        k = len(all_fine)
        clusters = _cluster(x, k, method, seed, n_init)
        centre = _centroids(x, clusters, k)
        mapping = _match(clusters, fine, k, all_fine)
        predicted = mapping[clusters]

        def assign(points: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            near = _nearest(points, centre)
            return mapping[near], near

    rows = []
    test_predicted = test_clusters = None
    test_accuracy = test_accuracy_predicted = test_ari = test_purity = float("nan")
    if has_test:
        test_predicted, test_clusters = assign(tx, tcoarse)
        test_accuracy = float((test_predicted == tfine).mean())
        test_ari = _weighted_ari(test_clusters, tfine, tcoarse)
        test_purity = (_purity_within(test_clusters, tfine, tcoarse) if per_coarse_class
                       else purity(test_clusters, tfine))
        if tpred is not None and per_coarse_class:
            test_accuracy_predicted = float((assign(tx, tpred)[0] == tfine).mean())
    for c, fine_classes in tree.items():
        inside = coarse == c
        row = {"coarse": c, "fine_classes": [int(f) for f in fine_classes], "k": len(fine_classes),
               "n_train": int(inside.sum()),
               "train_accuracy": float((predicted[inside] == fine[inside]).mean()),
               "ari": _ari(clusters[inside], fine[inside])}
        if has_test:
            tin = tcoarse == c
            row["n_test"] = int(tin.sum())
            row["test_accuracy"] = (float((test_predicted[tin] == tfine[tin]).mean())
                                    if tin.any() else float("nan"))
        rows.append(row)
    return FineStructure(
        method=method, per_coarse_class=per_coarse_class,
        train_accuracy=float((predicted == fine).mean()), test_accuracy=test_accuracy,
        test_accuracy_predicted=test_accuracy_predicted,
        ari=_weighted_ari(clusters, fine, coarse), test_ari=test_ari,
        purity=(_purity_within(clusters, fine, coarse) if per_coarse_class
                else purity(clusters, fine)), test_purity=test_purity,
        per_class=pd.DataFrame(rows), train_clusters=clusters, train_predicted=predicted,
        test_predicted=test_predicted, _coarse=coarse, _test_clusters=test_clusters,
        _test_coarse=tcoarse if has_test else None,
    )


# ----------------------------------------------------------------------------- the null
def random_fine_labels(coarse_labels: Any, fine_labels: Any, *, seed: int = 0) -> np.ndarray:
    """Fine labels permuted at random inside each coarse class (the null of Yang's claims).

    The permutation keeps every fine class's size and coarse class, and destroys any link
    between a point's features and its fine label given its coarse label.

    Parameters
    ----------
    coarse_labels, fine_labels : array-like of int (N,)
    seed : int

    Returns
    -------
    ndarray of int64 (N,)

    Example
    -------
    >>> shuffled = random_fine_labels([0, 0, 0, 1, 1], [4, 4, 6, 5, 7], seed=0)
    >>> sorted(shuffled[:3].tolist()), sorted(shuffled[3:].tolist())
    ([4, 4, 6], [5, 7])
    """
    coarse = _as_labels(coarse_labels, "coarse_labels", len(np.asarray(coarse_labels)))
    fine = _as_labels(fine_labels, "fine_labels", coarse.shape[0])
    _hierarchy(coarse, fine, "random_fine_labels")
    rng = np.random.default_rng(seed)
    shuffled = fine.copy()
    for c in np.unique(coarse):
        where = np.flatnonzero(coarse == c)
        shuffled[where] = fine[where][rng.permutation(where.shape[0])]
    return shuffled


@dataclass(frozen=True)
class ChanceLevel:
    """The matched accuracy of random fine labels (:func:`chance_level`).

    Attributes
    ----------
    train_mean, train_upper : float
        Mean and ``quantile`` of the training matched accuracy over the permutations.
    test_mean, test_upper : float
        The same for the test accuracy (NaN without test data).
    quantile : float
    permutations : int
    naive : float
        ``sum_c (n_c / N) / k_c``: the chance level one would guess without the matching.
    """

    train_mean: float
    train_upper: float
    test_mean: float
    test_upper: float
    quantile: float
    permutations: int
    naive: float


def _scores_under(result: FineStructure, train_fine: np.ndarray,
                  test_fine: np.ndarray | None) -> tuple[float, float]:
    coarse, clusters = result._coarse, result.train_clusters
    groups = np.unique(coarse) if result.per_coarse_class else [None]
    train_hits = test_hits = 0
    for c in groups:
        inside = np.ones_like(coarse, dtype=bool) if c is None else coarse == c
        fine_classes = np.unique(train_fine[inside])
        k = int(clusters[inside].max()) + 1
        mapping = _match(clusters[inside], train_fine[inside], k, fine_classes)
        train_hits += int((mapping[clusters[inside]] == train_fine[inside]).sum())
        if test_fine is not None:
            tin = (np.ones_like(result._test_coarse, dtype=bool) if c is None
                   else result._test_coarse == c)
            near = result._test_clusters[tin]
            usable = near < k
            test_hits += int((mapping[near[usable]] == test_fine[tin][usable]).sum())
    train = train_hits / coarse.shape[0]
    test = float("nan") if test_fine is None else test_hits / test_fine.shape[0]
    return train, test


def chance_level(result: FineStructure, fine_labels: Any, test_fine_labels: Any = None, *,
                 permutations: int = 200, quantile: float = 0.99, seed: int = 0) -> ChanceLevel:
    """Matched accuracy when the fine labels are random inside each coarse class.

    The clusters of ``result`` are kept (clustering never sees the fine labels, so it is the
    same under the null); the fine labels are permuted inside each coarse class (train and
    test independently), the optimal matching is recomputed on the permuted training labels,
    and the train and test accuracies are scored. The mean over permutations is the chance
    level; its upper ``quantile`` is the tolerance a null result is judged against. Optimal
    matching lifts both above the naive ``1/k``, the more so the smaller the classes.

    Parameters
    ----------
    result : FineStructure
        From :func:`fine_structure`.
    fine_labels : array-like of int (N,)
        The training fine labels ``result`` was fitted with.
    test_fine_labels : array-like of int, optional
        The test fine labels, when ``result`` has test data.
    permutations : int, default 200
    quantile : float, default 0.99
    seed : int

    Returns
    -------
    ChanceLevel

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fine = np.repeat(np.arange(4), 10)
    >>> fit = fine_structure(rng.standard_normal((40, 3)), fine % 2, fine)
    >>> chance = chance_level(fit, fine, permutations=100)
    >>> 0.5 < chance.train_mean < chance.train_upper < 0.9, chance.naive
    (True, 0.5)
    """
    if not isinstance(result, FineStructure):
        raise ValueError(f"result must be a FineStructure, got {type(result).__name__}")
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 1:
        raise ValueError(f"permutations must be an integer >= 1, got {permutations!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
    coarse = result._coarse
    fine = _as_labels(fine_labels, "fine_labels", coarse.shape[0])
    test_fine = None
    if test_fine_labels is not None:
        if result._test_coarse is None:
            raise ValueError("test_fine_labels given but result has no test data")
        test_fine = _as_labels(test_fine_labels, "test_fine_labels", result._test_coarse.shape[0])
    rng = np.random.default_rng(seed)
    groups = {c: np.flatnonzero(coarse == c) for c in np.unique(coarse)}
    test_groups = ({} if test_fine is None else
                   {c: np.flatnonzero(result._test_coarse == c) for c in np.unique(result._test_coarse)})
    train_scores, test_scores = [], []
    for _ in range(int(permutations)):
        shuffled = fine.copy()
        for where in groups.values():
            shuffled[where] = fine[where][rng.permutation(where.shape[0])]
        shuffled_test = None
        if test_fine is not None:
            shuffled_test = test_fine.copy()
            for where in test_groups.values():
                shuffled_test[where] = test_fine[where][rng.permutation(where.shape[0])]
        train, test = _scores_under(result, shuffled, shuffled_test)
        train_scores.append(train)
        test_scores.append(test)
    naive = sum(where.shape[0] / np.unique(fine[where]).shape[0] for where in groups.values())
    test_array = np.asarray(test_scores)
    return ChanceLevel(
        train_mean=float(np.mean(train_scores)),
        train_upper=float(np.quantile(train_scores, quantile)),
        test_mean=float("nan") if test_fine is None else float(test_array.mean()),
        test_upper=float("nan") if test_fine is None else float(np.quantile(test_array, quantile)),
        quantile=float(quantile), permutations=int(permutations), naive=naive / coarse.shape[0],
    )


# ----------------------------------------------------------------------------- the statistic
def fine_class_stats(features: Any, coarse_labels: Any, fine_labels: Any) -> dict[int, ClassStats]:
    """Per coarse class, the :class:`ncutils.stats.ClassStats` of its points on the fine labels.

    The statistics :func:`fine_structure_statistic_from_stats` reads (counts, fine-class means
    and within-class sums of squares, float64): what a results store keeps so that the
    statistic can be recomputed without the features.

    Parameters
    ----------
    features : array-like (N, D) or (N, C, H, W)
    coarse_labels, fine_labels : array-like of int (N,)

    Returns
    -------
    dict
        Coarse label -> ``ClassStats`` of that class's features with the fine labels as
        classes, in increasing coarse label.

    Example
    -------
    >>> import numpy as np
    >>> fine = np.repeat(np.arange(4), 2)
    >>> stats = fine_class_stats(np.eye(8), fine // 2, fine)
    >>> sorted(stats), stats[1].classes.tolist(), stats[1].n
    ([0, 1], [2, 3], 4)
    """
    x = _as_features(features, "features")
    coarse = _as_labels(coarse_labels, "coarse_labels", x.shape[0])
    fine = _as_labels(fine_labels, "fine_labels", x.shape[0])
    tree = _hierarchy(coarse, fine, "fine_class_stats")
    return {c: ClassStats.from_features(torch.from_numpy(x[coarse == c]), torch.from_numpy(fine[coarse == c]))
            for c in tree}


def fine_structure_statistic_from_stats(stats: Mapping[int, ClassStats]) -> pd.DataFrame:
    """:func:`fine_structure_statistic` from the statistics of :func:`fine_class_stats`.

    Parameters
    ----------
    stats : mapping
        Coarse label -> ``ClassStats`` of its points on the fine labels.

    Returns
    -------
    DataFrame
        As :func:`fine_structure_statistic`, one row per coarse class in increasing label.

    Example
    -------
    >>> import numpy as np
    >>> fine = np.repeat(np.arange(4), 2)
    >>> x = np.stack([fine // 2 * 10.0 + fine % 2 * 2.0, [0.5, -0.5] * 4], axis=1)
    >>> fine_structure_statistic_from_stats(fine_class_stats(x, fine // 2, fine))["ratio"].tolist()
    [4.0, 4.0]
    """
    if not isinstance(stats, Mapping) or not stats:
        raise ValueError("stats must be a non-empty mapping coarse label -> ClassStats")
    rows = []
    for c in sorted(stats):
        class_stats = stats[c]
        if not isinstance(class_stats, ClassStats) or class_stats.n == 0:
            raise ValueError(f"stats[{c!r}] must be non-empty ClassStats")
        k = class_stats.num_classes
        row = {"coarse": int(c), "k": k, "n": int(class_stats.n),
               "trace_within": float(class_stats.within_ss.sum()) / class_stats.n,
               "trace_between": float(class_stats.centered_means().pow(2).sum()) / k}
        if k < 2:
            row["ratio"] = float("nan")
        else:
            quotient = trace_ratio_from_stats(class_stats)  # tr W / tr B
            row["ratio"] = (float("inf") if quotient == 0 else
                            float("nan") if np.isnan(quotient) else 1.0 / quotient)
        rows.append(row)
    return pd.DataFrame(rows)


def fine_structure_statistic(features: Any, coarse_labels: Any, fine_labels: Any) -> pd.DataFrame:
    """Per coarse class, how separated its fine classes are: ``tr Sigma_B / tr Sigma_W``.

    Inside coarse class c, with the fine labels as classes, ``tr Sigma_W`` is the mean
    squared distance of a point to its fine-class mean and ``tr Sigma_B`` the mean squared
    distance of the fine-class means to their unweighted mean: the conventions of
    :func:`ncutils.metrics.trace_ratio_from_stats`, whose inverse this is (computed from
    :class:`ncutils.stats.ClassStats`, float64: :func:`fine_class_stats`, then
    :func:`fine_structure_statistic_from_stats`). It does not change when the features of c
    are scaled or translated, so it can stay large while the coarse class itself collapses
    (coarse NC1 -> 0); it goes to 0 when the fine classes merge.

    Parameters
    ----------
    features : array-like (N, D) or (N, C, H, W)
    coarse_labels, fine_labels : array-like of int (N,)

    Returns
    -------
    DataFrame
        One row per coarse class: ``coarse``, ``k`` (fine classes in it), ``n``,
        ``trace_within``, ``trace_between``, ``ratio`` (``tr Sigma_B / tr Sigma_W``; NaN for a
        class with one fine class, ``inf`` when the within trace is 0 and the between is not).

    Example
    -------
    >>> import numpy as np
    >>> fine = np.repeat(np.arange(4), 2)
    >>> x = np.stack([fine // 2 * 10.0 + fine % 2 * 2.0, [0.5, -0.5] * 4], axis=1)
    >>> fine_structure_statistic(x, fine // 2, fine)["ratio"].tolist()
    [4.0, 4.0]
    """
    return fine_structure_statistic_from_stats(fine_class_stats(features, coarse_labels, fine_labels))
