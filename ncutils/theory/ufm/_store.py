"""UFM results in the results store: their keys and their look-ups (:func:`ncutils.runs.computed`).

A stored UFM result is a ``computed`` entry of :mod:`ncutils.runs`, keyed by its settings and
by the code of the package modules that decide its numbers (:data:`RUN_MODULES`,
:data:`ANALYSIS_MODULES`: the UFM modules and ``stats``, whose class statistics give the class
means, and ``_checks``; not ``metrics``, which no stored result uses), with the versions of
torch and numpy. How a result is run (worker processes, a checkpoint folder, a progress bar)
is no part of a key: it changes no number.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Mapping, Sequence

from ncutils.theory.ufm.model import UFMState

#: The modules whose code decides a training run (:func:`ncutils.theory.ufm.train`): its
#: loop, the model, the spectrum snapshots, and ``stats`` (class means of the snapshots).
RUN_MODULES = ("_checks", "stats", "theory/ufm/model", "theory/ufm/spectra", "theory/ufm/training")
#: The modules whose code decides a layer analysis (:func:`ncutils.theory.ufm.analyse_layer`).
ANALYSIS_MODULES = ("_checks", "stats", "theory/ufm/model", "theory/ufm/spectra")


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


def payload(what: str, settings: Mapping[str, Any], modules: Sequence[str]) -> dict[str, Any]:
    """The store key's payload (:func:`ncutils.runs.computed_payload`) of one UFM result."""
    from ncutils.runs import computed_payload

    return computed_payload(what, settings, modules=modules)


def runs_root(runs_dir: str | os.PathLike | None) -> str:
    """The store's folder: ``runs_dir``, else :func:`ncutils.runs.default_runs_dir`."""
    from ncutils.runs import default_runs_dir

    return os.fspath(default_runs_dir() if runs_dir is None else runs_dir)


def stored(key_payload: Mapping[str, Any], compute: Callable[[], Any], *,
           runs_dir: str | os.PathLike | None, force: bool) -> Any:
    """``compute()``, or its result loaded from the store (the store logs which)."""
    from ncutils.runs import computed

    return computed(key_payload, compute, runs_dir=runs_dir, force=force)[0]


def load(key_payload: Mapping[str, Any], *, runs_dir: str | os.PathLike | None) -> Any | None:
    """The stored result of ``key_payload`` (its load logged), or ``None`` when it is not stored.

    A damaged entry counts as not stored (the store warns and drops its manifest).
    """
    from ncutils.runs import load_computed

    return load_computed(key_payload, runs_dir)[1]
