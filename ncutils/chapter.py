"""A chapter of the book, declared once: its parameters, what it trains, its findings, its budget.

Each paper module declares its chapters as :class:`Chapter` objects (``parker.P1``,
``rangamani.CHAPTER``, ...) and :mod:`ncutils.book.chapters` lists them in one registry. Everything
that needs to know about a chapter reads its declaration: the profiles and the ``-p`` overrides
(:meth:`Chapter.resolve`, which checks every value before any kernel starts), ``runs train`` and
the CI store key (:attr:`Chapter.trains`, :attr:`Chapter.fingerprint`), the findings and the
scoreboard (:attr:`Chapter.findings`, :meth:`Chapter.scale`), and the build log's budget table
(:attr:`Chapter.budget`). The notebook holds no defaults: its ``parameters`` cell is

.. code-block:: python

    profile = "cpu"
    overrides = {}

and its next cell calls ``parameters = <paper>.<CHAPTER>.resolve(overrides, profile=profile)``;
the book injects the profile's values (and a custom run's ``-p`` values) as ``overrides``.

This module knows no paper: it is the shape of a declaration and the rules every chapter's
parameters follow (a value must have its default's type; see :func:`type_problem`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "Budget",
    "Chapter",
    "ChapterParameters",
    "Criterion",
    "Finding",
    "ParameterError",
    "type_problem",
]


class ParameterError(ValueError):
    """Parameters a chapter refuses; ``problems`` lists one message per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid parameters:\n  " + "\n  ".join(self.problems))


class ChapterParameters(dict):
    """A chapter's resolved parameters: a read-only ``dict`` whose values read as attributes too.

    It is a ``dict`` so that it serialises (JSON, provenance) and passes wherever a mapping of
    parameters is expected; ``parameters.epochs`` is ``parameters["epochs"]``.

    Examples
    --------
    >>> parameters = ChapterParameters({"epochs": 3, "profile": "cpu"})
    >>> parameters.epochs, parameters["profile"]
    (3, 'cpu')
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r} (parameters: {', '.join(sorted(self))})") from None

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a chapter's parameters are read-only: resolve them again with other overrides")

    __setitem__ = __delitem__ = __setattr__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (spawned workers) as a plain copy
        return (ChapterParameters, (dict(self),))


@dataclass(frozen=True)
class Criterion:
    """A pre-registered criterion of one finding: thresholds typed once, its text rendered from them.

    Attributes
    ----------
    registered : str
        The day it was written, ``yyyy-mm-dd``.
    text : str
        The criterion in words, with ``{name}`` where a threshold goes (``"Spearman <= {max_spearman}"``).
    thresholds : mapping
        Threshold name -> value: what the chapter's code reads (``criterion["max_spearman"]``).
    reason : str
        For an amendment: why the earlier criterion did not test the paper's claim.
    seen : str
        For an amendment: which results had been seen when it was written ("none" before any).

    Examples
    --------
    >>> c = Criterion("2026-12-06", "Spearman at most {max_spearman} in every run", {"max_spearman": -0.7})
    >>> c.render(), c["max_spearman"]
    ('Spearman at most -0.7 in every run', -0.7)
    """

    registered: str
    text: str
    thresholds: Mapping[str, Any]
    reason: str = ""
    seen: str = ""

    def __post_init__(self) -> None:
        self.render()  # a placeholder without a threshold fails at import, not in a chapter

    def __getitem__(self, name: str) -> Any:
        return self.thresholds[name]

    def amending(self, earlier: "Criterion", original_result: str | None = None) -> dict[str, Any]:
        """The fields of :func:`ncutils.book.findings.amendment` for this criterion replacing ``earlier``.

        Examples
        --------
        >>> first = Criterion("2026-11-22", "Spearman at most {s}", {"s": -0.7})
        >>> later = Criterion("2026-12-06", "Spearman at most {s}, untrained failing", {"s": -0.7},
        ...                   reason="a null must fail", seen="none")
        >>> later.amending(first)["reason"]
        'a null must fail Seen when written: none'
        """
        return {"date": self.registered, "original": earlier.render(), "replacement": self.render(),
                "reason": f"{self.reason} Seen when written: {self.seen}", "original_result": original_result}

    def render(self) -> str:
        """The criterion's text with its thresholds written in."""
        try:
            return self.text.format(**self.thresholds)
        except (KeyError, IndexError) as error:
            raise ValueError(f"criterion text names a threshold it does not declare: {error}") from None


@dataclass(frozen=True)
class Finding:
    """A finding of one paper that a chapter tests.

    Attributes
    ----------
    id : str
        Short identifier, e.g. ``"P1"``.
    paper : str
        Bibliography key of the paper (``references.bib``).
    claim : str
        The paper's claim, in one sentence (TeX math between ``$`` signs).
    chapter : str or None
        Stem of the notebook that tests it; ``None`` while no chapter does (the scoreboard
        then shows "no chapter yet"). A :class:`Chapter` fills it in for its findings.
    criteria : tuple of Criterion
        Its criteria in the order they were registered: the last is the one that decides the
        verdict, the earlier ones stay visible beside it (empty where the chapter still
        states its criterion in its own cells).
    """

    id: str
    paper: str
    claim: str
    chapter: str | None = None
    criteria: tuple[Criterion, ...] = ()

    @property
    def criterion(self) -> Criterion:
        """The criterion that decides the verdict (the last registered)."""
        if not self.criteria:
            raise LookupError(f"{self.id} declares no criterion")
        return self.criteria[-1]


@dataclass(frozen=True)
class Budget:
    """A share of the cpu book's 15 minutes on 2 cores, in seconds, for a group of chapters.

    Chapters that share their work (the four Parker chapters train one grid) share one budget:
    declare the object once and give it to each of them.
    """

    group: str
    seconds: float


def type_problem(default: Any, value: Any, *, per_dataset: bool = False) -> bool:
    """Whether ``value`` does *not* have the type of ``default`` (``None`` fits anything).

    Integers fit a float default; lists and tuples fit each other. ``per_dataset``: the
    chapter takes one number for every dataset where the default is a mapping dataset ->
    number (``-p epochs 10``).

    Examples
    --------
    >>> type_problem(0.5, 1), type_problem(3, 0.5), type_problem({"digits": 40}, 10, per_dataset=True)
    (False, True, False)
    """
    if default is None or value is None:
        return False
    if per_dataset and isinstance(default, dict) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in default.values())
    if isinstance(default, bool) or isinstance(value, bool):
        return not (isinstance(default, bool) and isinstance(value, bool))
    if isinstance(default, float):
        return not isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return not isinstance(value, (list, tuple))
    return not isinstance(value, type(default))


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book: everything the build, the store and the scoreboard need to know.

    Attributes
    ----------
    stem : str
        The notebook ``notebooks/<stem>.ipynb`` (and its page ``book/generated/<stem>``).
    title : str
        The chapter's title as the scoreboard links it.
    defaults : mapping
        Parameter name -> default (the cpu profile's values). Every parameter the notebook
        reads is here; a profile or ``-p`` value must have its default's type.
    findings : tuple of Finding
        The paper findings the chapter records (empty for a chapter of library checks).
    budget : Budget
        Its share of the cpu book's time (shared with the chapters of its group).
    validate : callable, optional
        ``validate(parameters) -> list[str]``: the paper module's own checks of resolved
        parameters, the messages the notebook would otherwise raise late. Must not read data.
    per_dataset : frozenset of str
        Parameters whose default maps dataset -> number but which take one number for all.
    trains : callable, optional
        ``trains(parameters) -> list[TrainConfig]``: every :class:`~ncutils.train.TrainConfig`
        the notebook trains, as it builds them (seeds applied), for ``runs train`` and the CI
        store key. ``None`` when it trains none; then ``trains_nothing`` says why.
    trains_nothing : str
        Why the chapter has no TrainConfig to submit (with ``trains=None``).
    fingerprint : callable, optional
        ``fingerprint(parameters) -> dict | None``: what keys the results the chapter computes
        without a TrainConfig (its settings and code digests), for the CI store key.
    datasets : callable, optional
        ``datasets(parameters) -> list[str]``: the datasets the chapter reads (their files are
        looked for in the parameters' ``data_dir`` before any kernel starts, unless
        ``download`` is set). ``None`` for a chapter that reads no dataset.
    scale : callable, optional
        ``scale(parameters) -> str``: what the chapter trains at these parameters (data and
        size, architecture and width, epochs, seeds), in one line.
    paper_setting : str
        What the paper trains, in one line, shown beside :meth:`scale_text`.
    """

    stem: str
    title: str
    defaults: Mapping[str, Any]
    findings: tuple[Finding, ...]
    budget: Budget
    validate: Callable[[Mapping[str, Any]], list[str]] | None = None
    per_dataset: frozenset[str] = frozenset()
    trains: Callable[[Mapping[str, Any]], list[Any]] | None = None
    trains_nothing: str = ""
    fingerprint: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None = None
    datasets: Callable[[Mapping[str, Any]], list[str]] | None = None
    scale: Callable[[Mapping[str, Any]], str] | None = None
    paper_setting: str = ""

    def __post_init__(self) -> None:
        if "profile" in self.defaults:
            raise ValueError(f"{self.stem}: `profile` is given by the book, not a default")
        if (self.trains is None) == (not self.trains_nothing):
            raise ValueError(f"{self.stem}: give exactly one of `trains` and `trains_nothing` (why it trains none)")
        # the findings point back at their chapter, so a declaration never repeats its stem
        object.__setattr__(self, "findings", tuple(
            finding if finding.chapter == self.stem else replace(finding, chapter=self.stem)
            for finding in self.findings))

    def finding(self, finding_id: str) -> Finding:
        """One of the chapter's findings by id."""
        for finding in self.findings:
            if finding.id == finding_id:
                return finding
        raise KeyError(f"{self.stem} tests no finding {finding_id!r} (its findings: "
                       f"{', '.join(finding.id for finding in self.findings)})")

    @property
    def notebook(self) -> str:
        """The notebook's path inside the repository."""
        return f"notebooks/{self.stem}.ipynb"

    def problems(self, values: Mapping[str, Any], origin: str = "-p") -> list[str]:
        """What is wrong with parameter values given to this chapter (empty when nothing is).

        Unknown names (the message lists the chapter's parameters), values of the wrong type,
        an attempt to set ``profile``, then the paper module's own checks of the resolved
        parameters. Each message starts with ``origin`` and the stem.
        """
        prefix = f"{origin}: {self.stem}"
        problems = []
        for name, value in values.items():
            if name == "profile":
                problems.append(f"{prefix}: `profile` is given by the book; do not set it")
            elif name not in self.defaults:
                problems.append(f"{prefix}: unknown parameter {name!r} (its parameters: "
                                f"{', '.join(sorted(self.defaults))})")
            elif type_problem(self.defaults[name], value, per_dataset=name in self.per_dataset):
                problems.append(f"{prefix}: parameter {name!r} should be like {self.defaults[name]!r} "
                                f"({type(self.defaults[name]).__name__}), got {value!r}")
        if problems or self.validate is None:
            return problems
        resolved = {**self.defaults, **values, "profile": "check"}
        return [f"{prefix}: {message}" for message in self.validate(resolved)]

    def resolve(self, overrides: Mapping[str, Any] | None = None, *, profile: str = "cpu") -> ChapterParameters:
        """The chapter's parameters: its defaults, updated with ``overrides``, checked.

        Parameters
        ----------
        overrides : mapping, optional
            Parameter -> value (a profile's values and ``-p`` values, as the book injects them).
        profile : str
            The profile's name (or a custom run's label), kept as the parameter ``profile``.

        Raises
        ------
        ParameterError
            Listing every problem (:meth:`problems`), before anything runs.
        """
        overrides = dict(overrides or {})
        problems = self.problems(overrides, origin="parameters")
        if problems:
            raise ParameterError(problems)
        return ChapterParameters({**self.defaults, **overrides, "profile": profile})

    def scale_text(self, parameters: Mapping[str, Any]) -> str:
        """What the chapter runs at these parameters, in one line (empty when not declared)."""
        return self.scale(parameters) if self.scale is not None else ""
