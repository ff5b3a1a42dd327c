"""The four verdict states and the rule that turns several runs into one verdict.

A chapter judges a paper's finding with a pre-registered criterion. Judged on
one run the criterion passes or fails; judged on several runs (configurations
x seeds) the runs are combined by :func:`combine_runs`, the book's rule (book/method.md)
section 8.3:

* **reproduced** when the criterion passes in at least 2/3 of the eligible
  runs, or in all of them when the paper says "every" or "consistently";
* **not reproduced** when it passes in at most 1/3 of them, or, for an
  "every" claim, when any run fails;
* **inconclusive** in between ("mixed: k of n"), or with fewer than two
  eligible runs, or whenever the test could not be made (the optimiser did not
  converge, too few points for the criterion): :func:`inconclusive` records the
  reason;
* **no chapter yet** is never recorded by a chapter: the scoreboard shows it
  for findings that no notebook tests.

This module is core: pure functions, no I/O, no book. Paper modules
(:mod:`ncutils.papers`) return an :class:`Outcome`; the book stores it with
:func:`ncutils.book.findings.record`.

Example
-------
>>> combine_runs([True, True, False])
Outcome(state='reproduced', reason='2 of 3 eligible runs pass', passed_runs=2, eligible_runs=3, threshold='reproduced if at least 2/3 of at least 2 eligible runs pass, not reproduced if at most 1/3 do', margin=0.0)
>>> inconclusive("no network reached 99% train accuracy").state
'inconclusive'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = [
    "INCONCLUSIVE",
    "NOT_REPRODUCED",
    "NO_CHAPTER",
    "RECORDABLE",
    "REPRODUCED",
    "STATES",
    "Outcome",
    "combine_runs",
    "inconclusive",
    "passed_of",
    "passed_state",
]

#: The criterion held (in enough of the eligible runs).
REPRODUCED = "reproduced"
#: The criterion failed (in enough of the eligible runs).
NOT_REPRODUCED = "not reproduced"
#: The test could not decide; an :class:`Outcome` in this state always has a reason.
INCONCLUSIVE = "inconclusive"
#: Shown by the scoreboard for a finding that no chapter tests; never recorded.
NO_CHAPTER = "no chapter yet"

#: Every state, in the order the scoreboard explains them.
STATES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NO_CHAPTER)
#: The states a chapter can record.
RECORDABLE = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)


@dataclass(frozen=True)
class Outcome:
    """A verdict with what it rests on.

    Attributes
    ----------
    state : str
        One of :data:`RECORDABLE`.
    reason : str or None
        Why the verdict is what it is (``"2 of 3 eligible runs pass"``,
        ``"mixed: 1 of 2"``, ``"the optimiser did not converge"``). Never
        empty for :data:`INCONCLUSIVE`.
    passed_runs, eligible_runs : int or None
        How many eligible runs pass the criterion, of how many; ``None`` when
        the outcome does not come from counting runs.
    threshold : str or None
        The rule the counts were judged by, in words.
    margin : float or None
        How far the fraction of passing runs clears the threshold of the
        state it reached (``0.0`` when exactly on it); ``None`` for an
        inconclusive outcome, which cleared no threshold.

    Raises
    ------
    ValueError
        On an unknown or unrecordable state, an inconclusive outcome without a
        reason, or counts that do not fit (negative, more passing than eligible).

    Example
    -------
    >>> Outcome(REPRODUCED).passed
    True
    >>> Outcome(INCONCLUSIVE)
    Traceback (most recent call last):
    ...
    ValueError: an inconclusive outcome needs a reason (what could not be tested, and why)
    """

    state: str
    reason: str | None = None
    passed_runs: int | None = None
    eligible_runs: int | None = None
    threshold: str | None = None
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.state not in RECORDABLE:
            raise ValueError(
                f"unknown verdict state {self.state!r}: expected one of {', '.join(map(repr, RECORDABLE))}"
                + (" (the scoreboard shows 'no chapter yet' by itself)" if self.state == NO_CHAPTER else "")
            )
        if self.reason is not None and (not isinstance(self.reason, str) or not self.reason.strip()):
            raise ValueError("reason must be a non-empty string when given")
        if self.state == INCONCLUSIVE and self.reason is None:
            raise ValueError("an inconclusive outcome needs a reason (what could not be tested, and why)")
        if (self.passed_runs is None) != (self.eligible_runs is None):
            raise ValueError("give both passed_runs and eligible_runs, or neither")
        if self.eligible_runs is not None and not 0 <= self.passed_runs <= self.eligible_runs:
            raise ValueError(
                f"passed_runs must be between 0 and eligible_runs, got {self.passed_runs} of {self.eligible_runs}"
            )

    @property
    def passed(self) -> bool | None:
        """``True`` if reproduced, ``False`` if not reproduced, ``None`` if inconclusive."""
        return passed_of(self.state)

    def describe(self) -> str:
        """One line for a verdict card or a log.

        Example
        -------
        >>> combine_runs([True, True, True]).describe()
        'reproduced: 3 of 3 eligible runs pass (reproduced if at least 2/3 of at least 2 eligible runs pass, not reproduced if at most 1/3 do; margin 0.33)'
        """
        text = self.state if self.reason is None else f"{self.state}: {self.reason}"
        extras = [part for part in (self.threshold, None if self.margin is None else f"margin {self.margin:.2g}")
                  if part]
        return text + (f" ({'; '.join(extras)})" if extras else "")


def passed_of(state: str) -> bool | None:
    """The ``passed`` flag a findings record stores for a state.

    Parameters
    ----------
    state : str
        One of :data:`RECORDABLE`.

    Returns
    -------
    bool or None
        ``True`` for reproduced, ``False`` for not reproduced, ``None`` for
        inconclusive (neither passed nor failed).

    Example
    -------
    >>> passed_of(NOT_REPRODUCED), passed_of(INCONCLUSIVE)
    (False, None)
    """
    if state not in RECORDABLE:
        raise ValueError(f"unknown verdict state {state!r}: expected one of {', '.join(map(repr, RECORDABLE))}")
    return {REPRODUCED: True, NOT_REPRODUCED: False, INCONCLUSIVE: None}[state]


def passed_state(passed: bool) -> str:
    """The state of a criterion judged once: reproduced if it passed, else not reproduced.

    Example
    -------
    >>> passed_state(True), passed_state(False)
    ('reproduced', 'not reproduced')
    """
    return REPRODUCED if passed else NOT_REPRODUCED


def inconclusive(reason: str, *, passed_runs: int | None = None, eligible_runs: int | None = None) -> Outcome:
    """An inconclusive outcome: the criterion could not be judged, and why.

    Parameters
    ----------
    reason : str
        What could not be tested and why, in words a reader of the scoreboard
        understands: ``"no network reached 99% train accuracy"``, ``"the
        optimiser did not converge (gradient norm 3e-2)"``, ``"2 layers: too
        few points for a rank correlation"``.
    passed_runs, eligible_runs : int, optional
        Counts to keep with the verdict, when runs were counted.

    Returns
    -------
    Outcome
        In state :data:`INCONCLUSIVE`, with no threshold or margin.

    Raises
    ------
    ValueError
        If ``reason`` is empty.

    Example
    -------
    >>> inconclusive("the optimiser did not converge").reason
    'the optimiser did not converge'
    >>> inconclusive(" ")
    Traceback (most recent call last):
    ...
    ValueError: reason must be a non-empty string when given
    """
    if not isinstance(reason, str):
        raise ValueError("reason must be a non-empty string when given")
    return Outcome(INCONCLUSIVE, reason.strip(), passed_runs, eligible_runs)


def combine_runs(passed: Sequence[bool], *, every: bool = False, min_runs: int = 2) -> Outcome:
    """Combine a criterion's verdicts on several eligible runs into one (the rule of book/method.md).

    With ``k`` of ``n`` eligible runs passing:

    * by default, reproduced when ``k >= 2n/3``, not reproduced when
      ``k <= n/3``, inconclusive in between (``"mixed: k of n"``);
    * with ``every=True``, reproduced when ``k == n`` and not reproduced
      otherwise: one counterexample refutes an "every" claim;

    and in either case the outcome is inconclusive when ``n < min_runs``: one
    run says nothing about how often a criterion holds. The comparisons are
    exact (integers), so 2 of 3 reproduces and 1 of 3 does not.

    Parameters
    ----------
    passed : sequence of bool
        The criterion's verdict on each eligible run (configurations x seeds).
        Runs that were not eligible (e.g. did not reach the required training
        accuracy) must be left out by the caller, not passed as failures.
    every : bool, default False
        The paper claims the finding for every run ("every", "consistently"):
        all runs must pass.
    min_runs : int, default 2
        Fewest eligible runs for a decided verdict.

    Returns
    -------
    Outcome
        ``state``, ``reason`` (``"k of n eligible runs pass"`` or ``"mixed: k
        of n"`` or why there were too few), the counts, the rule as
        ``threshold`` and the ``margin``: by how much the pass fraction ``k/n``
        clears the threshold of the state reached (``k/n - 2/3`` when
        reproduced, ``1/3 - k/n`` when not; ``0`` and ``1 - k/n`` for
        ``every=True``).

    Raises
    ------
    ValueError
        If an element of ``passed`` is not a bool (numpy bools are accepted)
        or ``min_runs`` is below 1.

    Examples
    --------
    >>> combine_runs([True, True, False]).state      # exactly 2/3
    'reproduced'
    >>> combine_runs([True, False, False]).state     # exactly 1/3
    'not reproduced'
    >>> combine_runs([True, False]).reason
    'mixed: 1 of 2'
    >>> combine_runs([True]).reason
    'only 1 eligible run (at least 2 needed)'
    >>> outcome = combine_runs([True] * 5 + [False], every=True)
    >>> outcome.state, outcome.reason, round(outcome.margin, 3)
    ('not reproduced', '5 of 6 eligible runs pass', 0.167)
    """
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise ValueError(f"min_runs must be an integer of at least 1, got {min_runs!r}")
    flags = [_as_bool(flag, index) for index, flag in enumerate(passed)]
    k, n = sum(flags), len(flags)
    if every:
        threshold = f"reproduced only if all of at least {min_runs} eligible runs pass"
    else:
        threshold = (
            f"reproduced if at least 2/3 of at least {min_runs} eligible runs pass, not reproduced if at most 1/3 do"
        )
    if n < min_runs:
        reason = "no eligible run" if n == 0 else f"only {n} eligible run{'s' if n != 1 else ''}"
        return Outcome(INCONCLUSIVE, f"{reason} (at least {min_runs} needed)", k, n, threshold)
    counted = f"{k} of {n} eligible runs pass"
    if every:
        if k == n:
            return Outcome(REPRODUCED, counted, k, n, threshold, 0.0)
        return Outcome(NOT_REPRODUCED, counted, k, n, threshold, 1 - k / n)
    # integer comparisons: k/n >= 2/3 and k/n <= 1/3 without rounding
    if 3 * k >= 2 * n:
        return Outcome(REPRODUCED, counted, k, n, threshold, k / n - 2 / 3)
    if 3 * k <= n:
        return Outcome(NOT_REPRODUCED, counted, k, n, threshold, 1 / 3 - k / n)
    return Outcome(INCONCLUSIVE, f"mixed: {k} of {n}", k, n, threshold)


def _as_bool(flag: object, index: int) -> bool:
    if hasattr(flag, "item") and not isinstance(flag, bool):  # numpy and torch scalars
        flag = flag.item()
    if not isinstance(flag, bool):
        raise ValueError(f"passed[{index}] must be a bool (the criterion's verdict on one run), got {flag!r}")
    return flag
