"""The book's first chapter, ``measuring_collapse``: checks of the library where the answer is known.

It tests no paper's finding (its verdicts are checks, listed apart on the scoreboard), so it
lives beside the paper modules only as a chapter declaration: its parameters and their checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.chapter import Budget, Chapter

__all__ = ["CHAPTER", "validate_parameters"]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with the chapter's parameters, before anything is computed.

    Examples
    --------
    >>> validate_parameters({**CHAPTER.defaults, "timing_repeats": 0})
    ['timing_repeats must be an integer >= 1, got 0']
    """
    problems = []
    for name in ("num_classes", "dim", "samples_per_class", "dense_max_dim", "timing_samples", "timing_repeats"):
        if not _positive_int(parameters[name]):
            problems.append(f"{name} must be an integer >= 1, got {parameters[name]!r}")
    if problems:
        return problems
    if parameters["num_classes"] < 2 or parameters["dim"] < parameters["num_classes"]:
        problems.append(f"need 2 <= num_classes <= dim for a simplex ETF, got num_classes="
                        f"{parameters['num_classes']}, dim={parameters['dim']}")
    if parameters["samples_per_class"] < 2:
        problems.append(f"samples_per_class must be >= 2, got {parameters['samples_per_class']}")
    radius = parameters["radius"]
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
        problems.append(f"radius must be > 0, got {radius!r}")
    noise = parameters["noise_levels"]
    if not noise or not all(isinstance(level, (int, float)) and not isinstance(level, bool) and level > 0
                            for level in noise):
        problems.append(f"noise_levels must be a non-empty list of numbers > 0, got {noise!r}")
    dims = parameters["timing_dims"]
    if not dims or not all(_positive_int(size) for size in dims):
        problems.append(f"timing_dims must be a non-empty list of integers >= 1, got {dims!r}")
    elif not any(size <= parameters["dense_max_dim"] for size in dims):
        problems.append(f"need at least one timing dimension <= dense_max_dim ({parameters['dense_max_dim']}), "
                        f"got {dims}")
    if parameters["timing_samples"] < 2 * parameters["num_classes"]:
        problems.append(f"timing_samples must be >= 2 * num_classes ({2 * parameters['num_classes']}), "
                        f"got {parameters['timing_samples']}")
    return problems


def scale(parameters: Mapping[str, Any]) -> str:
    """What the chapter measures at these parameters, in one line."""
    return (f"synthetic features: C = {parameters['num_classes']} classes, D = {parameters['dim']}, "
            f"{parameters['samples_per_class']} samples per class; timings up to D = {max(parameters['timing_dims'])}")


CHAPTER = Chapter(
    stem="measuring_collapse",
    title="Measuring collapse",
    defaults={"seed": 0, "device": "cpu", "num_classes": 10, "dim": 64, "samples_per_class": 200, "radius": 1.0,
              "noise_levels": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0], "timing_dims": [64, 256, 1024, 4096, 16384],
              "dense_max_dim": 1024, "timing_samples": 2000, "timing_repeats": 3},
    findings=(),
    budget=Budget("measuring collapse", 15.0),
    validate=validate_parameters,
    trains_nothing="trains nothing (features with known answers)",
    scale=scale,
)
