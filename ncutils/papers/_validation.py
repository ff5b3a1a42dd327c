"""Helpers every paper module's ``validate_parameters`` shares: messages and common checks.

Each returns problem strings (never raises), so a chapter lists every problem at once
before anything is trained or loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["error_text", "grouped_failures", "seed_problems"]


def error_text(error: Exception) -> str:
    """The text of an error as the notebook would show it (a KeyError without its quotes).

    Examples
    --------
    >>> error_text(KeyError("unknown dataset 'x'")), error_text(ValueError("lr must be > 0"))
    ("unknown dataset 'x'", 'lr must be > 0')
    """
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def grouped_failures(failures: Sequence[tuple[str, str]]) -> list[str]:
    """``(run, message)`` pairs as one line per message: ``"message (mlp on digits, vgg on digits)"``.

    Examples
    --------
    >>> grouped_failures([("mlp on digits", "bad lr"), ("vgg on digits", "bad lr")])
    ['bad lr (mlp on digits, vgg on digits)']
    """
    runs: dict[str, list[str]] = {}
    for run, message in failures:
        runs.setdefault(message, []).append(run)
    return [f"{message} ({', '.join(names)})" for message, names in runs.items()]


def seed_problems(values: Any, name: str = "seeds") -> list[str]:
    """What is wrong with a list of seeds (non-empty, integers >= 0, no repeats).

    Examples
    --------
    >>> seed_problems([0, 1]), seed_problems([0, 0]), seed_problems([-1])
    ([], ['seeds repeat: [0, 0]'], ['seeds must list integers >= 0, got [-1]'])
    """
    seeds = values if isinstance(values, (list, tuple)) else None
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        return [f"{name} must list integers >= 0, got {values!r}"]
    if len(set(seeds)) != len(seeds):
        return [f"{name} repeat: {list(seeds)}"]
    return []
