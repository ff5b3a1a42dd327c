"""Streaming, mergeable per-class statistics of features.

Why one module of this size: it is one concept, the two accumulators of the two data passes
and the float64 merges they share (Chan's update); each part needs the others' invariants.

Two accumulators, one per data pass (book/conventions.md):

* :class:`ClassStats` (pass 1): per-class counts, means and within-class sums of
  squares ``sum_{i in c} ||h_i - mu_c||^2``, in float64 on the features' device.
  Batches are folded in with the pairwise update of Chan, Golub and LeVeque
  (1979), so no ``E||h||^2 - ||mu||^2`` cancellation happens, and two
  accumulators merge exactly: ``stats(A).merge(stats(B)) == stats(A u B)`` up to
  float64 rounding.
* :class:`ProjectedScatter` (pass 2): with the centred class means
  ``M = [mu_c - mu_G]`` (D x C) of pass 1 fixed, accumulates the C x C matrix
  ``S = M^T Sigma_W M = (1/N) sum_i z_i z_i^T``, ``z_i = M^T (h_i - mu_{y_i})``.
  Together with ``M^T M`` this gives the exact NC1 ``tr(Sigma_W Sigma_B^+)/C``
  with O(D C) memory (see :func:`ncutils.metrics.nc1_from_stats`).

Labels may be any integers, non-contiguous ones included (``{3, 7, 9}``);
results carry ``classes``, the sorted label values they cover. Classes absent
from the data simply do not appear. This module knows nothing about models.

Two ways to meet the classes:

* discovered (the default): each batch's classes are found with ``torch.unique``
  and bad values are rejected at once, before the accumulator changes. Every
  batch asks the device questions, which on a GPU means a host synchronisation
  per batch;
* fixed up front (``ClassStats(classes=...)`` or ``ClassStats(num_classes=C)``):
  accumulators have the fixed shape (C, D), no batch is ever read on the host,
  and unknown labels or non-finite values are recorded as flags on the device.
  The flags are read once, when results are first asked for (``means``,
  ``counts``, ``finalize()``, ...), and raise ``ValueError`` naming the problem and
  the first offending update (its sample range). A fixed class that never occurs
  is left out of the results, exactly as the discovered route leaves it out, so
  both routes give the same numbers on the same data.

References
----------
Chan, Golub, LeVeque (1979), "Updating formulae and a pairwise algorithm for
computing sample variances", Stanford CS report STAN-CS-79-773.
Papyan, Han, Donoho (2020), "Prevalence of neural collapse during the terminal
phase of deep learning training", PNAS 117(40).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ncutils._checks import block_budget, check_features_labels, check_finite, check_labels, row_chunks

#: Relative cutoff on the eigenvalues of the C x C Gram ``M^T M`` in
#: :func:`ncutils.metrics.nc1_from_stats`.
#: Eigenvalues ``<= DEFAULT_RCOND * max eigenvalue`` are treated as zero. Because the
#: eigenvalues of ``Sigma_B`` are those of ``M^T M / C``, this is the same as
#: ``numpy.linalg.pinv(Sigma_B, rcond=DEFAULT_RCOND)`` on the dense D x D matrix. ``M``
#: always has rank <= C - 1 (its columns sum to zero), so one eigenvalue is always dropped;
#: 1e-10 sits far above float64 round-off in ``M^T M`` (about 1e-16 relative) and far below
#: any between-class direction that matters.
DEFAULT_RCOND = 1e-10

__all__ = ["DEFAULT_RCOND", "ClassStats", "ProjectedScatter", "nearest_centre_labels"]


class _Moments(NamedTuple):
    """Per-class moments: sorted classes, counts, means (C, D), within sums of squares (C,)."""

    classes: torch.Tensor
    counts: torch.Tensor
    means: torch.Tensor
    within_ss: torch.Tensor


def _raise_if_not_finite(result: torch.Tensor, features: torch.Tensor) -> None:
    """Reject a batch whose float64 results are not finite, naming the cause.

    Checking the (small) results instead of scanning every input value saves a
    full pass over the features; non-finite results arise only from NaN/inf
    inputs or from float64 overflow, and the input scan runs only then.
    """
    if not bool(torch.isfinite(result).all()):
        check_finite(features, "features")
        raise ValueError("features overflow float64 (values too large to square and sum)")


def _as_float64_blocks(features: torch.Tensor, device: torch.device):
    """Yield ``(start, stop, block)`` with ``block`` a float64 copy of rows on ``device``.

    Converting block by block keeps the float64 working copy bounded (a few MB on a
    CPU, see ``row_chunks``; a few hundred MB on a GPU, where each block costs kernel
    launches whatever its size) even for wide conv features (D = 65,536 at ResNet stage 1).
    """
    n_rows, dim = features.shape
    blocks = row_chunks(n_rows, row_bytes=8 * dim, budget_bytes=block_budget(device))
    for start in blocks:
        stop = min(start + blocks.step, n_rows)
        yield start, stop, features[start:stop].to(device=device, dtype=torch.float64)


def _block_moments(block: torch.Tensor, position: torch.Tensor) -> _Moments:
    """Two-pass moments of one float64 block, grouped by the class positions ``position``.

    The ``classes`` field holds the positions present. Sums by ``index_add_`` (no
    one-hot), then squared residuals about the block's own class means.
    """
    present, inverse, counts = torch.unique(position, return_inverse=True, return_counts=True)
    sums = torch.zeros(present.numel(), block.shape[1], dtype=torch.float64, device=block.device)
    sums.index_add_(0, inverse, block)
    means = sums / counts.unsqueeze(1).to(torch.float64)
    residual_sq = (block - means[inverse]).pow_(2).sum(dim=1)
    within_ss = torch.zeros(present.numel(), dtype=torch.float64, device=block.device)
    within_ss.index_add_(0, inverse, residual_sq)
    return _Moments(present, counts, means, within_ss)


def _chan_fold_(
    counts: torch.Tensor, means: torch.Tensor, within_ss: torch.Tensor, part: _Moments
) -> None:
    """Fold ``part`` (its ``classes`` are row positions) into float64 accumulators, in place.

    Chan et al.'s pairwise update per class, with ``delta = mu_b - mu_a`` and
    ``n = n_a + n_b``: ``mu += delta * n_b / n`` and
    ``ss += ss_b + ||delta||^2 * n_a * n_b / n``. A class new to the accumulators
    (``n_a = 0``) gets ``mu_b`` and ``ss_b`` exactly.
    """
    rows = part.classes
    count_a = counts[rows]
    count_b = part.counts.to(torch.float64)
    total = count_a + count_b
    delta = part.means - means[rows]
    means.index_add_(0, rows, delta * (count_b / total).unsqueeze(1))
    within_ss.index_add_(0, rows, part.within_ss + delta.pow(2).sum(dim=1) * (count_a * count_b / total))
    counts.index_add_(0, rows, count_b)


def _fold_all(classes: torch.Tensor, dim: int, parts) -> _Moments:
    """Moments over ``classes`` from parts (moments whose ``classes`` are row positions)."""
    device = classes.device
    counts = torch.zeros(classes.numel(), dtype=torch.float64, device=device)
    means = torch.zeros(classes.numel(), dim, dtype=torch.float64, device=device)
    within_ss = torch.zeros(classes.numel(), dtype=torch.float64, device=device)
    exact_counts = torch.zeros(classes.numel(), dtype=torch.long, device=device)
    for part in parts:
        _chan_fold_(counts, means, within_ss, part)
        exact_counts.index_add_(0, part.classes, part.counts)  # counts stay exact integers
    return _Moments(classes, exact_counts, means, within_ss)


def _batch_moments(features: torch.Tensor, labels: torch.Tensor, device: torch.device) -> _Moments:
    """Moments of a whole batch: float64 row blocks folded one after another."""
    classes = torch.unique(labels)
    position = torch.searchsorted(classes, labels)
    parts = (
        _block_moments(block, position[start:stop])
        for start, stop, block in _as_float64_blocks(features, device)
    )
    return _fold_all(classes, features.shape[1], parts)


def _merge_moments(first: _Moments, second: _Moments) -> _Moments:
    """Chan et al. pairwise merge of two sets of per-class moments over the union of classes."""
    classes = torch.unique(torch.cat([first.classes, second.classes]))
    parts = (
        moments._replace(classes=torch.searchsorted(classes, moments.classes))
        for moments in (first, second)
    )
    return _fold_all(classes, first.means.shape[1], parts)


def _fixed_block_moments(block: torch.Tensor, position: torch.Tensor, n_classes: int) -> _Moments:
    """Moments of one float64 block over all ``n_classes`` rows (fixed shapes, no ``unique``).

    Counts are float64 (exact below 2**53). A class absent from the block gets count 0,
    mean 0 and sum of squares 0, which the fold below treats as "nothing to add".
    """
    counts = block.new_zeros(n_classes).index_add_(0, position, block.new_ones(block.shape[0]))
    sums = block.new_zeros(n_classes, block.shape[1]).index_add_(0, position, block)
    means = sums / counts.clamp(min=1.0).unsqueeze(1)
    residual_sq = (block - means.index_select(0, position)).pow_(2).sum(dim=1)
    within_ss = block.new_zeros(n_classes).index_add_(0, position, residual_sq)
    return _Moments(position, counts, means, within_ss)


def _fold_fixed(state: _Moments, part: _Moments) -> _Moments:
    """Chan et al.'s pairwise update of two full-shape (C, D) moment sets, out of place.

    Same formulas as :func:`_chan_fold_` (``n_a = 0`` gives ``mu_b`` and ``ss_b`` exactly),
    applied to every class at once; a class with ``n_b = 0`` is left unchanged.
    Out of place so that tensors handed out as results never change under the caller.
    """
    total = state.counts + part.counts
    ratio_b = part.counts / total.clamp(min=1.0)
    delta = part.means - state.means
    means = state.means + delta * ratio_b.unsqueeze(1)
    # where(), not a product with 0: a huge delta would give inf * 0 = nan for an absent class
    between = torch.where(part.counts > 0, delta.pow(2).sum(dim=1) * state.counts * ratio_b, 0.0)
    return _Moments(state.classes, total, means, state.within_ss + part.within_ss + between)


class _DeferredChecks:
    """Problems found on the device, kept as device flags and read on the host once.

    Per update it records (on the device, without a host read) the index of the first
    update with non-finite results, the first with a label outside the classes and that
    label's value; the sample range of each update is kept on the host, so the error
    can say where the problem is.
    """

    def __init__(self, device: torch.device) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.rows = 0
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.first_unknown = torch.full((), -1, dtype=torch.long, device=device)
        self.unknown_value = torch.zeros((), dtype=torch.long, device=device)
        self.read_through = 0  # updates already read and found clean

    def new_update(self, n_rows: int) -> int:
        self.ranges.append((self.rows, self.rows + n_rows))
        self.rows += n_rows
        return len(self.ranges) - 1

    def flag_nonfinite(self, values: torch.Tensor, update: int) -> None:
        fresh = torch.isfinite(values).all().logical_not_() & (self.first_bad < 0)
        self.first_bad.masked_fill_(fresh, update)

    def flag_unknown(self, unknown: torch.Tensor, labels: torch.Tensor, update: int) -> None:
        fresh = unknown.any() & (self.first_unknown < 0)
        # gather, not labels[index]: indexing with a 0-dim tensor would read it on the host
        first = labels.gather(0, unknown.to(torch.uint8).argmax().reshape(1)).squeeze(0)
        self.unknown_value = torch.where(fresh, first, self.unknown_value)
        self.first_unknown.masked_fill_(fresh, update)

    @property
    def pending(self) -> bool:
        return self.read_through < len(self.ranges)

    def codes(self) -> torch.Tensor:
        """The flags as one float64 tensor (3,), to be read with the results in one transfer."""
        return torch.stack([self.first_bad, self.first_unknown, self.unknown_value]).to(torch.float64)

    def raise_if_flagged(self, codes: list[float], classes: torch.Tensor, what: str) -> None:
        """Raise the error the flags describe (``codes`` as read from :meth:`codes`)."""
        first_bad, first_unknown, value = (int(code) for code in codes[:3])
        problems = []
        if first_unknown >= 0:
            start, stop = self.ranges[first_unknown]
            problems.append(
                f"label {value} (first seen in update {first_unknown}, samples {start}:{stop} of "
                f"those passed to this {what}) is not among the classes {classes.tolist()}"
            )
        if first_bad >= 0:
            start, stop = self.ranges[first_bad]
            problems.append(
                f"features contain NaN or infinite values, or values too large to square and sum "
                f"in float64 (first in update {first_bad}, samples {start}:{stop} of those passed "
                f"to this {what})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        self.read_through = len(self.ranges)


def _check_fixed_classes(classes: Any, num_classes: Any, device: torch.device | None) -> tuple[torch.Tensor | None, int | None]:
    """Validate ``classes`` / ``num_classes`` once, at construction; returns (sorted classes, C)."""
    if classes is not None and num_classes is not None:
        raise ValueError("give classes or num_classes, not both")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        # created lazily on the statistics' device (a host-to-GPU copy would synchronise)
        return None, num_classes
    if classes is None:
        return None, None
    classes = torch.sort(check_labels(classes, "classes")).values
    if classes.numel() > 1 and bool((classes[1:] == classes[:-1]).any()):
        raise ValueError(f"classes repeat: {classes.tolist()}")
    if device is not None:
        classes = classes.to(device)
    return classes, classes.numel()


class ClassStats:
    """Pass 1: streaming per-class counts, means and within-class sums of squares.

    Accumulates in float64 on ``device`` (by default the device of the first
    batch) whatever the dtype of the features. ``update`` folds batches in with
    the pairwise (Chan/Welford) update, so results do not depend on batching or
    order beyond float64 rounding, and ``merge`` combines two accumulators.

    Parameters
    ----------
    device : torch.device or str, optional
        Where the statistics live. ``None`` adopts the device of the first batch;
        later batches are moved to it.
    classes : tensor or sequence of ints, optional
        The label values, fixed up front (any order; sorted here). ``update`` then never
        synchronises with the host: accumulators have the fixed shape (C, D), and labels
        outside ``classes`` or non-finite values are flagged on the device and raise
        ``ValueError`` (naming the first offending update and its samples) when results
        are first read. A class that never occurs is left out of the results (as without
        ``classes``: every metric here covers the classes present).
    num_classes : int, optional
        Shorthand for ``classes=range(num_classes)``. Give ``classes`` or
        ``num_classes``, not both; without either, classes are discovered per batch.

    Attributes
    ----------
    classes : LongTensor (C,)
        Sorted label values seen so far (labels may be non-contiguous).
    counts : LongTensor (C,)
        Samples per class.
    means : float64 tensor (C, D)
        Class means ``mu_c``.
    within_ss : float64 tensor (C,)
        ``sum_{i: y_i = c} ||h_i - mu_c||^2``. A class with one sample has 0.
    n : int
        Total number of samples.
    dim : int or None
        Feature dimension D (``None`` before the first update).

    Notes
    -----
    Features of shape ``(N, C, H, W)`` are flattened channel-major to
    ``(N, C*H*W)``. Numpy arrays are accepted. Empty batches, non-integer labels or
    mismatched lengths raise ``ValueError`` before the accumulator changes; so do
    NaN/inf features when classes are discovered. With fixed classes, NaN/inf
    features and unknown labels are only detected on the device: the accumulator is
    then poisoned and every read of its results raises.

    References
    ----------
    Chan, Golub, LeVeque (1979), pairwise variance updates.
    Papyan, Han, Donoho (2020), PNAS: class means and global mean conventions.

    Examples
    --------
    >>> import torch
    >>> stats = ClassStats().update(torch.randn(6, 4), torch.tensor([3, 3, 7, 7, 9, 9]))
    >>> stats.classes.tolist(), stats.counts.tolist()
    ([3, 7, 9], [2, 2, 2])
    >>> fixed = ClassStats(num_classes=4).update(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 3, 3]))
    >>> fixed.classes.tolist(), fixed.counts.tolist()  # class 2 never occurred
    ([0, 1, 3], [2, 2, 2])
    """

    def __init__(
        self,
        device: torch.device | str | None = None,
        *,
        classes: Any = None,
        num_classes: int | None = None,
    ) -> None:
        self._device = torch.device(device) if device is not None else None
        self._moments: _Moments | None = None  # the results (fixed classes: read from _state)
        self._fixed, self._num_fixed = _check_fixed_classes(classes, num_classes, self._device)
        self._state: _Moments | None = None  # fixed classes: full-shape (C, D) float64 moments
        self._checks: _DeferredChecks | None = None

    # construction -------------------------------------------------------
    @classmethod
    def from_features(
        cls,
        features: Any,
        labels: Any,
        *,
        device: torch.device | str | None = None,
        classes: Any = None,
        num_classes: int | None = None,
    ) -> "ClassStats":
        """Statistics of one ``(features, labels)`` set (a convenience for ``ClassStats().update``)."""
        return cls(device=device, classes=classes, num_classes=num_classes).update(features, labels)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: torch.device | str | None = None) -> "ClassStats":
        """Finished statistics rebuilt from :meth:`state` (e.g. read back from the results store).

        The result covers the classes of ``state`` (discovered-classes route: later
        updates may add classes) and gives the same numbers as the statistics it came from.

        Examples
        --------
        >>> import torch
        >>> stats = ClassStats().update(torch.randn(6, 4), torch.tensor([3, 3, 7, 7, 9, 9]))
        >>> torch.equal(ClassStats.from_state(stats.state()).means, stats.means)
        True
        """
        names = ("classes", "counts", "means", "within_ss")
        missing = [name for name in names if name not in state]
        if missing:
            raise ValueError(f"a ClassStats state needs {list(names)}; missing {missing}")
        target = torch.device(device) if device is not None else state["means"].device
        rebuilt = cls(device=target)
        rebuilt._moments = _Moments(state["classes"].to(target, torch.long), state["counts"].to(target, torch.long),
                                    state["means"].to(target, torch.float64),
                                    state["within_ss"].to(target, torch.float64))
        return rebuilt

    def state(self) -> dict[str, torch.Tensor]:
        """The finished results as plain tensors on the CPU: ``classes``, ``counts``, ``means``, ``within_ss``.

        What the results store keeps of a probe point (the results store's statistics level);
        :meth:`from_state` rebuilds the statistics. Reading it finalises (raises on bad batches).
        """
        moments = self._require_data()
        return {"classes": moments.classes.cpu(), "counts": moments.counts.cpu(),
                "means": moments.means.cpu(), "within_ss": moments.within_ss.cpu()}

    @property
    def fixed_classes(self) -> torch.Tensor | None:
        """The classes given up front (sorted), or ``None`` when classes are discovered."""
        if self._num_fixed is None:
            return None
        if self._fixed is None:
            self._fixed = torch.arange(self._num_fixed, device=self._device or torch.device("cpu"))
        return self._fixed

    def update(self, features: Any, labels: Any) -> "ClassStats":
        """Fold a batch into the statistics, in place.

        Parameters
        ----------
        features : tensor or ndarray, shape (N, D) or (N, C, H, W)
            Any real dtype; accumulated in float64.
        labels : tensor or ndarray of ints, shape (N,)

        Returns
        -------
        self : ClassStats
        """
        features, labels = check_features_labels(features, labels, check_values=False)
        self._check_dim(features.shape[1])
        if self._device is None:
            self._device = features.device
        labels = labels.to(self._device)
        if self._num_fixed is not None:
            classes = self._fixed_on_device()
            position = torch.searchsorted(classes, labels).clamp_(max=self._num_fixed - 1)
            update = self._start_update(features.shape[0])
            self._checks.flag_unknown(classes[position] != labels, labels, update)
            self._fold_fixed(features, position, update)
            return self
        moments = _batch_moments(features, labels, self._device)
        if self._moments is not None:
            moments = _merge_moments(self._moments, moments)
        _raise_if_not_finite(torch.cat([moments.means.reshape(-1), moments.within_ss]), features)
        self._moments = moments
        return self

    def _update_positions(self, features: torch.Tensor, position: torch.Tensor) -> "ClassStats":
        """Fixed classes only: fold a 2-D batch whose labels are already row positions.

        For callers that validated all labels once (the layer sweep): no label checks,
        no host read.
        """
        self._check_dim(features.shape[1])
        if self._device is None:
            self._device = features.device
        self._fixed_on_device()
        self._fold_fixed(features, position.to(self._device), self._start_update(features.shape[0]))
        return self

    def _check_dim(self, dim: int) -> None:
        if self.dim is not None and dim != self.dim:
            raise ValueError(
                f"features have dimension {dim} but these statistics have dimension {self.dim}"
            )

    def _fixed_on_device(self) -> torch.Tensor:
        classes = self.fixed_classes
        if classes.device != self._device:
            self._fixed = classes = classes.to(self._device)
        return classes

    def _start_update(self, n_rows: int) -> int:
        if self._checks is None:
            self._checks = _DeferredChecks(self._device)
        return self._checks.new_update(n_rows)

    def _fold_fixed(self, features: torch.Tensor, position: torch.Tensor, update: int) -> None:
        n_classes = self._num_fixed
        state = self._state
        if state is None:
            zeros = torch.zeros(n_classes, dtype=torch.float64, device=self._device)
            state = _Moments(self._fixed, zeros, zeros.new_zeros(n_classes, features.shape[1]), zeros)
        for start, stop, block in _as_float64_blocks(features, self._device):
            part = _fixed_block_moments(block, position[start:stop], n_classes)
            self._checks.flag_nonfinite(part.within_ss, update)
            state = _fold_fixed(state, part)
        self._state, self._moments = state, None

    def finalize(self) -> "ClassStats":
        """Read the device flags (fixed classes) and raise if a batch was bad; returns self.

        Reading any result does this too; it costs one host read per call after new updates.
        """
        self._require_data()
        return self

    def merge(self, other: "ClassStats") -> "ClassStats":
        """Return new statistics equal to those of the union of both data sets.

        Neither operand changes. The result lives on ``self``'s device. Two operands with
        the same fixed classes give fixed-class statistics; otherwise the result covers the
        union of the classes present.
        """
        if not isinstance(other, ClassStats):
            raise ValueError(f"can only merge ClassStats, got {type(other).__name__}")
        if self.dim is not None and other.dim is not None and self.dim != other.dim:
            raise ValueError(f"cannot merge statistics of dimension {self.dim} and {other.dim}")
        device = self._device if self._device is not None else other._device
        operands = [stats for stats in (self, other) if stats._has_data()]
        for stats in operands:
            stats.finalize()  # a poisoned operand raises here
        mine, theirs = self.fixed_classes, other.fixed_classes
        if mine is not None and theirs is not None and torch.equal(mine, theirs.to(mine.device)):
            merged = ClassStats(device=device, classes=mine)
            states = [_Moments(*(t.to(device) for t in stats._state)) for stats in operands]
            if states:
                state = states[0]
                for part in states[1:]:
                    state = _fold_fixed(state, part)
                merged._state = state._replace(classes=merged._fixed)
                merged._checks = _DeferredChecks(device)
            return merged
        merged = ClassStats(device=device)
        parts = [_Moments(*(t.to(device) for t in stats._require_data())) for stats in operands]
        if len(parts) == 2:
            merged._moments = _merge_moments(parts[0], parts[1])
        elif parts:
            merged._moments = _Moments(*(t.clone() for t in parts[0]))
        return merged

    # results ------------------------------------------------------------
    def _has_data(self) -> bool:
        return self._moments is not None or self._state is not None

    def _require_data(self) -> _Moments:
        if self._moments is not None:
            return self._moments
        if self._state is None:
            raise ValueError("these ClassStats are empty: call update(features, labels) first")
        # fixed classes: the one host read, flags and counts together
        state = self._state
        finite = torch.isfinite(state.within_ss).all() & torch.isfinite(state.means).all()
        codes = torch.cat([self._checks.codes(), finite.to(torch.float64).reshape(1), state.counts])
        values = codes.tolist()
        self._checks.raise_if_flagged(values, self._fixed, "ClassStats")
        if values[3] != 1.0:
            raise ValueError("the statistics overflow float64 (values too large to square and sum)")
        present = [row for row, count in enumerate(values[4:]) if count > 0]
        counts = state.counts.to(torch.long)
        if len(present) == self._num_fixed:
            self._moments = _Moments(state.classes, counts, state.means, state.within_ss)
        else:
            rows = torch.tensor(present, dtype=torch.long, device=self._device)
            self._moments = _Moments(*(t.index_select(0, rows) for t in (state.classes, counts, state.means,
                                                                          state.within_ss)))
        return self._moments

    @property
    def device(self) -> torch.device | None:
        """Device of the statistics (``None`` until fixed by the first batch)."""
        return self._device

    @property
    def classes(self) -> torch.Tensor:
        """Sorted label values present, LongTensor (C,)."""
        return self._require_data().classes

    @property
    def counts(self) -> torch.Tensor:
        """Samples per class, LongTensor (C,)."""
        return self._require_data().counts

    @property
    def means(self) -> torch.Tensor:
        """Class means, float64 (C, D)."""
        return self._require_data().means

    @property
    def within_ss(self) -> torch.Tensor:
        """Within-class sums of squares ``sum_{i in c} ||h_i - mu_c||^2``, float64 (C,)."""
        return self._require_data().within_ss

    @property
    def class_variances(self) -> torch.Tensor:
        """``sigma_c^2 = within_ss_c / n_c`` (mean squared distance to the class mean), float64 (C,).

        A class with one sample has variance 0 (its mean is the sample itself).
        """
        moments = self._require_data()
        return moments.within_ss / moments.counts.to(torch.float64)

    @property
    def n(self) -> int:
        """Total number of samples (0 when empty)."""
        return int(self._require_data().counts.sum()) if self._has_data() else 0

    @property
    def dim(self) -> int | None:
        """Feature dimension D (``None`` when empty); known without reading the device."""
        moments = self._moments if self._moments is not None else self._state
        return None if moments is None else int(moments.means.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of classes present (0 when empty)."""
        return int(self._require_data().classes.numel()) if self._has_data() else 0

    def global_mean(self, weighted: bool = False) -> torch.Tensor:
        """Global mean, float64 (D,).

        Parameters
        ----------
        weighted : bool, default False
            ``False``: unweighted mean of the class means (Papyan et al. 2020),
            the convention of every metric here. ``True``: the sample mean
            ``sum_c n_c mu_c / N``.
        """
        moments = self._require_data()
        if weighted:
            weights = moments.counts.to(torch.float64) / float(moments.counts.sum())
            return weights @ moments.means
        return moments.means.mean(dim=0)

    def centered_means(self, weighted: bool = False) -> torch.Tensor:
        """``M = [mu_1 - mu_G, ..., mu_C - mu_G]``, float64 (D, C), columns in ``classes`` order."""
        return (self.means - self.global_mean(weighted=weighted)).T

    def __repr__(self) -> str:
        if not self._has_data():
            return "ClassStats(empty)"
        return (
            f"ClassStats(n={self.n}, dim={self.dim}, classes={self.classes.tolist()}, "
            f"device={self._device})"
        )


class ProjectedScatter:
    """Pass 2: the C x C projected within-class scatter ``S = M^T Sigma_W M``.

    With the class means ``mu_c`` and ``M = [mu_c - mu_G]`` (D x C, unweighted
    ``mu_G``) fixed by a finished :class:`ClassStats`, accumulates

    ``S = (1/N) sum_i z_i z_i^T``,  ``z_i = M^T (h_i - mu_{y_i})``,

    in float64. Memory is O(D C) (the means and ``M``) plus a bounded block of
    features; no D x D matrix is formed at any D. ``N`` here is the number of
    samples passed to this accumulator (normally the same data as pass 1).

    Each ``z_i`` is computed as ``M^T h_i - M^T mu_{y_i}`` (one float64 matrix
    product per block, no per-sample subtraction in D dimensions). Its absolute
    round-off is about ``eps ||M|| ||h_i||``, i.e. a relative error of
    ``eps ||h_i|| / ||h_i - mu_{y_i}||``: below 1e-10 unless the within-class spread
    is a millionth of the features' norm.

    Parameters
    ----------
    class_stats : ClassStats
        Finished pass-1 statistics; its means and ``M`` are copied, so later
        updates to ``class_stats`` do not affect this accumulator. When they were
        built with fixed classes, this accumulator defers its checks the same way:
        ``update`` never reads the device, and labels outside ``classes`` or
        non-finite values raise ``ValueError`` (naming the first offending update
        and its samples) when ``scatter`` is read. Otherwise both raise in ``update``,
        before the accumulator changes.

    Attributes
    ----------
    classes : LongTensor (C,)
    n : int
        Samples accumulated.
    scatter : float64 tensor (C, C)
        ``S``; rows and columns follow ``classes``.

    References
    ----------
    Papyan, Han, Donoho (2020), PNAS: ``Sigma_W``, ``Sigma_B``, NC1.
    the book's conventions page (book/conventions.md): the C x C reduction.

    Examples
    --------
    >>> import torch
    >>> features, labels = torch.randn(20, 8), torch.arange(20) % 4
    >>> stats = ClassStats().update(features, labels)
    >>> ProjectedScatter(stats).update(features, labels).scatter.shape
    torch.Size([4, 4])
    """

    def __init__(self, class_stats: ClassStats) -> None:
        if not isinstance(class_stats, ClassStats):
            raise ValueError(f"ProjectedScatter needs ClassStats, got {type(class_stats).__name__}")
        if class_stats.n == 0:
            raise ValueError("ProjectedScatter needs non-empty ClassStats (run pass 1 first)")
        self._classes = class_stats.classes.clone()
        self._means = class_stats.means.clone()
        self._centered = class_stats.centered_means(weighted=False).contiguous()
        self._projected_means = self._means @ self._centered  # (C, C): M^T mu_c per row
        self._device = self._means.device
        self._sum = torch.zeros(
            self._classes.numel(), self._classes.numel(), dtype=torch.float64, device=self._device
        )
        self._n = 0
        self._checks = _DeferredChecks(self._device) if class_stats.fixed_classes is not None else None

    @classmethod
    def from_state(cls, class_stats: ClassStats, state: dict[str, Any]) -> "ProjectedScatter":
        """A finished scatter rebuilt from :meth:`state` and the pass-1 statistics it was built on.

        Raises
        ------
        ValueError
            ``state`` belongs to other classes, or lacks ``sum`` or ``n``.

        Examples
        --------
        >>> import torch
        >>> features, labels = torch.randn(20, 8), torch.arange(20) % 4
        >>> stats = ClassStats().update(features, labels)
        >>> scatter = ProjectedScatter(stats).update(features, labels)
        >>> torch.equal(ProjectedScatter.from_state(stats, scatter.state()).scatter, scatter.scatter)
        True
        """
        if "sum" not in state or "n" not in state:
            raise ValueError(f"a ProjectedScatter state needs 'sum' and 'n'; got {sorted(state)}")
        rebuilt = cls(class_stats)
        total = state["sum"].to(rebuilt._device, torch.float64)
        if total.shape != rebuilt._sum.shape:
            raise ValueError(f"scatter state of shape {tuple(total.shape)} does not fit "
                             f"{rebuilt._classes.numel()} classes")
        rebuilt._sum, rebuilt._n = total, int(state["n"])
        rebuilt._checks = None
        return rebuilt

    def state(self) -> dict[str, Any]:
        """``{"sum": (C, C) float64 on the CPU, "n": int}``: with the pass-1 statistics, all
        :meth:`from_state` needs. Reading it raises on bad batches, as ``scatter`` does."""
        self._raise_if_flagged()
        return {"sum": self._sum.cpu(), "n": self._n}

    def update(self, features: Any, labels: Any) -> "ProjectedScatter":
        """Add ``sum_i z_i z_i^T`` of a batch, in place.

        Parameters
        ----------
        features : tensor or ndarray, shape (N, D) or (N, C, H, W)
        labels : tensor or ndarray of ints, shape (N,); every value must be in ``classes``.

        Returns
        -------
        self : ProjectedScatter
        """
        features, labels = check_features_labels(features, labels, check_values=False)
        self._check_dim(features.shape[1])
        labels = labels.to(self._device)
        position = torch.searchsorted(self._classes, labels).clamp_(max=self._classes.numel() - 1)
        unknown = self._classes[position] != labels
        if self._checks is not None:
            update = self._checks.new_update(features.shape[0])
            self._checks.flag_unknown(unknown, labels, update)
            self._accumulate(features, position, update)
            return self
        if bool(unknown.any()):
            missing = torch.unique(labels[unknown]).tolist()
            raise ValueError(
                f"labels {missing} are not among the classes of the pass-1 statistics "
                f"{self._classes.tolist()}"
            )
        return self._accumulate(features, position, None)

    def _update_positions(self, features: torch.Tensor, position: torch.Tensor) -> "ProjectedScatter":
        """Deferred checks only: add a 2-D batch whose labels are already row positions."""
        self._check_dim(features.shape[1])
        return self._accumulate(features, position.to(self._device), self._checks.new_update(features.shape[0]))

    def _check_dim(self, dim: int) -> None:
        if dim != self._means.shape[1]:
            raise ValueError(
                f"features have dimension {dim} but the class statistics have "
                f"dimension {self._means.shape[1]}"
            )

    def _accumulate(self, features: torch.Tensor, position: torch.Tensor, update: int | None) -> "ProjectedScatter":
        batch_sum = None
        for start, stop, block in _as_float64_blocks(features, self._device):
            projected = block @ self._centered - self._projected_means.index_select(0, position[start:stop])
            product = projected.T @ projected
            batch_sum = product if batch_sum is None else batch_sum.add_(product)
        if update is None:
            _raise_if_not_finite(batch_sum, features)
        else:
            self._checks.flag_nonfinite(batch_sum, update)
        self._sum = self._sum + batch_sum  # out of place: a scatter read earlier stays as it was
        self._n += features.shape[0]
        return self

    def _raise_if_flagged(self) -> None:
        if self._checks is not None and self._checks.pending:
            self._checks.raise_if_flagged(self._checks.codes().tolist(), self._classes, "ProjectedScatter")

    def merge(self, other: "ProjectedScatter") -> "ProjectedScatter":
        """Return a new accumulator over both data sets (both must share pass-1 means)."""
        if not isinstance(other, ProjectedScatter):
            raise ValueError(f"can only merge ProjectedScatter, got {type(other).__name__}")
        other_means = other._means.to(self._device)
        if not (
            torch.equal(self._classes, other._classes.to(self._device))
            and torch.equal(self._means, other_means)
        ):
            raise ValueError("cannot merge ProjectedScatter built from different pass-1 statistics")
        self._raise_if_flagged()
        other._raise_if_flagged()
        merged = ProjectedScatter.__new__(ProjectedScatter)
        merged._classes = self._classes.clone()
        merged._means = self._means.clone()
        merged._centered = self._centered.clone()
        merged._projected_means = self._projected_means.clone()
        merged._device = self._device
        merged._sum = self._sum + other._sum.to(self._device)
        merged._n = self._n + other._n
        merged._checks = _DeferredChecks(self._device) if self._checks is not None else None
        return merged

    def matches(self, class_stats: ClassStats) -> bool:
        """Whether this scatter was built on exactly these pass-1 classes and means."""
        return (
            class_stats.n > 0
            and torch.equal(self._classes, class_stats.classes.to(self._device))
            and torch.equal(self._means, class_stats.means.to(self._device))
        )

    @property
    def classes(self) -> torch.Tensor:
        """Sorted label values (those of the pass-1 statistics), LongTensor (C,)."""
        return self._classes

    @property
    def n(self) -> int:
        """Samples accumulated in this pass."""
        return self._n

    @property
    def scatter(self) -> torch.Tensor:
        """``S = (1/N) sum_i z_i z_i^T``, float64 (C, C)."""
        if self._n == 0:
            raise ValueError("this ProjectedScatter is empty: call update(features, labels) first")
        self._raise_if_flagged()
        return self._sum / self._n

    def __repr__(self) -> str:
        return f"ProjectedScatter(n={self._n}, classes={self._classes.tolist()})"


def nearest_centre_labels(features: torch.Tensor, means: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Nearest-class-centre labels of 2-D features (already validated), in float64 by row blocks.

    ``classes[argmin_c ||h_i - mu_c||^2]``, computed as ``argmin_c (||mu_c||^2 - 2 h_i . mu_c)``
    on the features' device; ties go to the first class in ``classes`` order. The layer
    sweep counts these labels against the true labels and the network's predictions (NCC
    accuracy, NC4), and :func:`ncutils.metrics.ncc_predict` is its checked public face.

    Examples
    --------
    >>> import torch
    >>> nearest_centre_labels(torch.tensor([[0.2], [4.0]]), torch.tensor([[0.0], [5.0]]),
    ...                       torch.tensor([3, 7])).tolist()
    [3, 7]
    """
    device = features.device
    means = means.to(device=device, dtype=torch.float64)
    classes = classes.to(device)
    squared_norms = means.pow(2).sum(dim=1)
    predicted = torch.empty(features.shape[0], dtype=torch.long, device=device)
    blocks = row_chunks(features.shape[0], row_bytes=8 * (features.shape[1] + means.shape[0]),
                        budget_bytes=block_budget(device))
    for start in blocks:
        stop = min(start + blocks.step, features.shape[0])
        block = features[start:stop].to(torch.float64)
        scores = squared_norms - 2.0 * (block @ means.T)
        predicted[start:stop] = classes[scores.argmin(dim=1)]
    return predicted
