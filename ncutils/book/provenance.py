"""Where a number came from: profile, parameters, seed, device, code version.

Every figure and verdict in the book carries its provenance. The book build
(:mod:`ncutils.book.execute`) runs each chapter notebook with a few environment
variables set, so that code inside the notebook can find out which profile
and parameters it runs under without the notebook passing them around:

``NC_PARAMETERS``
    JSON object: the notebook's resolved parameters (defaults, profile values
    and the injected ``profile``).
``NC_NOTEBOOK``
    The chapter's notebook stem, e.g. ``"measuring_collapse"``.
``NC_GIT_COMMIT``, ``NC_GIT_DIRTY``
    The commit of the build and whether the working tree had changes, so that
    every record of one build names the same commit.

Outside a build (a notebook opened by hand) the functions fall back to the
parameters passed to them and ask git directly.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from ncutils import __version__
# the commit and CPU readers are the results store's too: they live in the core floor
from ncutils._provenance import cpu_model, git_state, project_root  # noqa: F401 - re-exported

__all__ = [
    "PACKAGES",
    "caption",
    "collect",
    "current_notebook",
    "current_parameters",
    "describe",
    "device_info",
    "environment",
    "format_value",
    "git_state",
    "project_root",
    "resolve_device",
    "utc_now",
]

#: Distributions whose versions the manifest reports, in display order.
PACKAGES = (
    "nc-companion",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "seaborn",
    "mlxtend",
    "mnist1d",
    "papermill",
    "jupyter-book",
    "myst-nb",
    "sphinx",
    "sphinxcontrib-bibtex",
)

# Parameters that get their own field in a provenance record and so are left
# out of the caption's parameter list.
_HEADLINE_PARAMETERS = ("profile", "seed", "device")


def current_parameters() -> dict[str, Any]:
    """Return the parameters the book build injected, or ``{}`` outside a build.

    Returns
    -------
    dict
        The JSON object in ``$NC_PARAMETERS``; empty when it is unset.

    Raises
    ------
    ValueError
        If ``$NC_PARAMETERS`` is set but is not a JSON object.
    """
    raw = os.environ.get("NC_PARAMETERS")
    if not raw:
        return {}
    try:
        parameters = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"NC_PARAMETERS is not valid JSON: {error}") from None
    if not isinstance(parameters, dict):
        raise ValueError("NC_PARAMETERS must hold a JSON object of parameters")
    return parameters


def current_notebook() -> str | None:
    """Return the stem of the chapter notebook being built (``$NC_NOTEBOOK``), if any."""
    return os.environ.get("NC_NOTEBOOK") or None


def resolve_device(requested: str | None = "cpu") -> str:
    """Turn a device request into the device that is actually used.

    Parameters
    ----------
    requested : str or None
        ``"auto"`` (CUDA when available, else CPU), ``None`` (CPU) or an
        explicit torch device string such as ``"cpu"`` or ``"cuda:0"``.

    Returns
    -------
    str
        The torch device string.

    Example
    -------
    >>> resolve_device("cpu")
    'cpu'
    """
    if requested is None:
        return "cpu"
    if not isinstance(requested, str):
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {requested!r}")
    # local: ncutils._checks imports torch (seconds), which the book's command line, reading
    # provenance, does not otherwise need
    from ncutils._checks import resolve_device as resolve_torch_device

    return str(resolve_torch_device(requested))


def device_info(requested: str | None = "cpu") -> dict[str, Any]:
    """Describe the hardware a computation ran on.

    Parameters
    ----------
    requested : str or None
        The device parameter of a chapter (see :func:`resolve_device`).

    Returns
    -------
    dict
        ``device`` (resolved torch device), ``name`` (GPU or CPU model),
        ``cpu_count``, ``torch_threads``, ``cuda_available``.
    """
    import torch

    device = resolve_device(requested)
    cuda_available = bool(torch.cuda.is_available())
    if device.startswith("cuda") and cuda_available:
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = cpu_model()
    return {
        "device": device,
        "name": name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": cuda_available,
    }


def environment() -> dict[str, Any]:
    """Return the software environment: Python, platform and package versions.

    Returns
    -------
    dict
        ``python``, ``platform``, ``packages`` (name -> version, ``None`` when a
        distribution is not installed).
    """
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }


def collect(parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect the provenance of a result.

    Parameters
    ----------
    parameters : dict, optional
        The chapter's parameters. Defaults to the ones the book build injected
        (``$NC_PARAMETERS``), or ``{}`` outside a build.

    Returns
    -------
    dict
        ``profile`` (``"interactive"`` when neither the parameters nor the
        build name one), ``parameters``, ``seed``, ``device`` (resolved),
        ``device_name``, ``notebook``, ``git_commit``, ``git_dirty``,
        ``ncutils_version`` and ``recorded_at`` (UTC, ISO 8601).

    Example
    -------
    >>> collect({"profile": "smoke", "seed": 3, "device": "cpu"})["seed"]
    3
    """
    if parameters is None:
        parameters = current_parameters()
    if not isinstance(parameters, dict):
        raise ValueError(f"parameters must be a dict, got {type(parameters).__name__}")
    hardware = device_info(parameters.get("device", "cpu"))
    git = git_state()
    return {
        "profile": parameters.get("profile", "interactive"),
        "parameters": dict(parameters),
        "seed": parameters.get("seed"),
        "device": hardware["device"],
        "device_name": hardware["name"],
        "notebook": current_notebook(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "ncutils_version": __version__,
        "recorded_at": utc_now(),
    }


def utc_now() -> str:
    """The current UTC time to the second, ISO 8601 (``2026-12-01T09:30:00+00:00``).

    The one timestamp format of every record, state file and manifest.
    """
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def format_value(value: Any, *, digits: int = 6, separator: str = ",") -> str:
    """Format a parameter or measured value compactly for captions, cards and tables.

    Parameters
    ----------
    value : object
        A number, string, or (nested) list or tuple of them.
    digits : int, default 6
        Significant digits of a float (``g`` format); ``nan`` stays ``nan``.
    separator : str, default ","
        Between list items. Captions use ``","`` because they separate their
        parameters by ``", "``; verdicts use ``", "``.

    Returns
    -------
    str
        The text.

    Example
    -------
    >>> format_value([0.1234567, 2, "relu"]), format_value([0.1234567, float("nan")], digits=4, separator=", ")
    ('[0.123457,2,relu]', '[0.1235, nan]')
    """
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + separator.join(format_value(item, digits=digits, separator=separator) for item in value) + "]"
    return str(value)


def caption(parameters: dict[str, Any] | None = None) -> str:
    """Return a one-line provenance caption for a figure.

    Parameters
    ----------
    parameters : dict, optional
        As for :func:`collect`.

    Returns
    -------
    str
        e.g. ``"profile cpu · seed 0 · cpu · commit 1a2b3c4 · epochs=30, width=64"``.

    Example
    -------
    >>> caption({"profile": "smoke", "seed": 1, "device": "cpu"}).startswith("profile smoke")
    True
    """
    return describe(collect(parameters))


def describe(record: dict[str, Any]) -> str:
    """Return the one-line caption of a provenance record from :func:`collect`.

    Parameters
    ----------
    record : dict
        A provenance record.

    Returns
    -------
    str
        See :func:`caption`.
    """
    commit = (record.get("git_commit") or "no git")[:7]
    if record.get("git_dirty"):
        commit += "+dirty"
    others = ", ".join(
        f"{name}={format_value(value)}"
        for name, value in sorted(record.get("parameters", {}).items())
        if name not in _HEADLINE_PARAMETERS
    )
    profile = str(record.get("profile"))
    # a custom run (python -m ncutils.book run ... -p) records "custom: <overrides> (from cpu)"
    parts = [profile if profile.startswith("custom:") else f"profile {profile}"]
    if record.get("seed") is not None:
        parts.append(f"seed {record['seed']}")
    parts += [str(record.get("device")), f"commit {commit}"]
    if others:
        parts.append(others)
    return " · ".join(parts)
