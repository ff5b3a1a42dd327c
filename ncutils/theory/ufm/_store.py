"""UFM results in the results store: their keys and their look-ups (:func:`ncutils.store.computed`).

A stored UFM result is a ``computed`` entry of :mod:`ncutils.store`, keyed by its settings and
by the code that computes it (:data:`RUN`, :data:`ANALYSIS`: the UFM module that computes and
every package module it imports), with the versions of torch and numpy. How a result is run (worker processes, a checkpoint folder, a progress bar)
is no part of a key: it changes no number.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Mapping

from ncutils.store import Computation, computed, computed_payload, default_runs_dir, load_computed
from ncutils.theory.ufm.model import UFMState

#: ``metrics`` is left out of every UFM key: only :func:`~ncutils.theory.ufm.layer_metrics`
#: uses it, on a state, and no stored result holds its table.
_NOT_STORED = {"ncutils.metrics": "only layer_metrics uses it, which no stored result calls"}
#: The code of a training run (:func:`ncutils.theory.ufm.train`): its loop and what it imports
#: (the model, the spectrum snapshots, the class statistics).
RUN = Computation("ufm-run", ("ncutils.theory.ufm.training",), covered=_NOT_STORED)
#: The code of a layer analysis (:func:`ncutils.theory.ufm.analyse_layer`).
ANALYSIS = Computation("ufm-layer-analysis", ("ncutils.theory.ufm.spectra",), covered=_NOT_STORED)


def state_digest(state: UFMState) -> str:
    """sha256 of the parameters ``[H_1, W_1, ..., W_L]``: their dtypes, shapes and bytes.

    Examples
    --------
    >>> from ncutils.theory.ufm.model import UFMConfig, init_state
    >>> state = init_state(UFMConfig(width=4, per_class=2, depth=3))
    >>> state_digest(state) == state_digest(state.detach()), len(state_digest(state))
    (True, 64)
    """
    digest = hashlib.sha256()
    for tensor in state.tensors():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def payload(what: str, settings: Mapping[str, Any], computation: Computation) -> dict[str, Any]:
    """The store key's payload (:func:`ncutils.store.computed_payload`) of one UFM result."""
    return computed_payload(what, settings, computation=computation)


def runs_root(runs_dir: str | os.PathLike | None) -> str:
    """The store's folder: ``runs_dir``, else :func:`ncutils.store.default_runs_dir`."""
    return os.fspath(default_runs_dir() if runs_dir is None else runs_dir)


def stored(key_payload: Mapping[str, Any], compute: Callable[[], Any], *,
           runs_dir: str | os.PathLike | None, force: bool) -> Any:
    """``compute()``, or its result loaded from the store (the store logs which)."""
    return computed(key_payload, compute, runs_dir=runs_dir, force=force)[0]


def load(key_payload: Mapping[str, Any], *, runs_dir: str | os.PathLike | None) -> Any | None:
    """The stored result of ``key_payload`` (its load logged), or ``None`` when it is not stored.

    A damaged entry counts as not stored (the store warns and drops its manifest).
    """
    return load_computed(key_payload, runs_dir)[1]
