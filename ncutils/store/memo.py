"""The memo cache: results that are no TrainConfig run, stored under a key of their settings and code.

What a chapter computes that is no trained run or sweep (K2's per-sample SGD trials, Yang's
clusterings, Garrod's UFM runs and spectra) is kept as a ``computed`` entry: :func:`computed`
returns it from the store when its key (:func:`ncutils.store.keys.computed_payload`: the
settings, the code of the computation declared beside it, the versions) is there, else
computes and stores it. The result is a pickle this package wrote (``torch.save``).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ncutils.store.code import Computation
from ncutils.store.files import (MANIFEST, damaged, default_runs_dir, entry_dir, log_event, provenance,
                                 read_manifest, read_verified, touch, utc_now, write_immutable, write_manifest)
from ncutils.store.keys import STORE_FORMAT, computed_payload, digest

__all__ = ["computed", "load_computed"]


def computed(payload: Mapping[str, Any], compute: Callable[[], Any], *,
             runs_dir: str | os.PathLike | None = None, force: bool = False) -> tuple[Any, bool]:
    """The result of ``compute()`` for ``payload``, loaded from the store when it is there.

    Parameters
    ----------
    payload : mapping
        From :func:`computed_payload`; its digest is the key.
    compute : callable
        Returns any picklable object (a dataclass of arrays); called only when the entry is
        missing or damaged (a warning says so) or ``force`` is set.
    runs_dir : path, optional
    force : bool

    Returns
    -------
    (object, bool)
        The result, and whether it was loaded (True) or computed now (False).

    Example
    -------
    >>> import tempfile
    >>> payload = computed_payload("demo", {"n": 3}, computation=Computation("demo", ("ncutils.stats",)))
    >>> root = tempfile.mkdtemp()
    >>> computed(payload, lambda: [1, 2, 3], runs_dir=root)
    ([1, 2, 3], False)
    >>> computed(payload, lambda: None, runs_dir=root)
    ([1, 2, 3], True)
    """
    key = digest(payload)
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    folder = entry_dir("computed", key, runs_root)
    if not force:
        found, result = load_computed(payload, runs_root)
        if found:
            return result, True
    started = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    torch.save(result, buffer)
    manifest = {"kind": "computed", "key": key, "store_format": STORE_FORMAT, "payload": dict(payload),
                "files": {"result": write_immutable(folder, "result", ".pt", buffer.getvalue())},
                "seconds": seconds, "created": utc_now(), "provenance": provenance()}
    write_manifest(folder, manifest)
    log_event(runs_root, f"computed {key} ({payload.get('what')}) in {seconds:.1f} s")
    return result, False


def load_computed(payload: Mapping[str, Any], runs_dir: str | os.PathLike | None = None) -> tuple[bool, Any]:
    """``(True, result)`` when :func:`computed` stored ``payload``'s result, else ``(False, None)``.

    A damaged entry warns and reads as absent; a load is logged and touches ``last-used``.
    """
    key = digest(payload)
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    folder = entry_dir("computed", key, runs_root)
    if not (folder / MANIFEST).exists():
        return False, None
    try:
        manifest = read_manifest(folder, "computed", key)
        # our own pickle, written by computed(): hence weights_only=False
        result = torch.load(io.BytesIO(read_verified(folder, manifest["files"]["result"])), weights_only=False)
    except Exception as error:
        damaged(folder, error, "computed entry")
        return False, None
    touch(folder)
    log_event(runs_root, f"loaded computed {key} ({payload.get('what')})")
    return True, result
