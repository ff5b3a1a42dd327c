"""Record machine-checked verdicts: the record, the findings file, the values glued into the page.

What a page shows of a record (the card, the verdict box, the amendment card) is
:mod:`ncutils.book.cards`; the scoreboard's rendering is :mod:`ncutils.book.scoreboard`.

A chapter notebook tests a finding of one of the five papers with a criterion
that its prose states *before* the result is computed, then calls
:func:`record`. The record is glued into the page with myst-nb (keys
``<ID>_value``, ``<ID>_verdict``, ``<ID>_reason`` and ``<ID>_tested``), shown
as a verdict card, and written to a findings JSON file with its provenance
(see :mod:`ncutils.book.provenance`).

A verdict is one of the states of :mod:`ncutils.verdicts`: ``reproduced``,
``not reproduced`` or ``inconclusive`` (with its reason) when a chapter
records it, and ``no chapter yet`` on the scoreboard for a finding that no
chapter tests (:attr:`Finding.chapter` is ``None``). A criterion changed after
it was pre-registered is announced with :func:`amendment`, which shows the
original criterion beside the new one and keeps the change, dated, in the
findings file.

Checks of the library itself (e.g. "NC1 of an exact simplex ETF is 0") use
:func:`check`: they are recorded the same way but kept apart from the paper
findings, so they never count on the paper scoreboard.

The findings file
-----------------
``$NC_FINDINGS_FILE`` (default ``<repository>/_build/findings.json``)::

    {"schema": 1,
     "profiles": {"cpu": {"findings":   {"P1": {...record...}},
                          "checks":     {"measuring_collapse.etf": {...}},
                          "amendments": {"P1": [{...amendment...}]}}}}

``"amendments"`` is absent from files written before amendments existed;
readers treat it as empty.

The book build gives each notebook its own file and merges them into
``_build/findings.json``; :func:`ncutils.book.scoreboard.scoreboard_markdown` renders the merged file.
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from ncutils import verdicts
from ncutils._io import write_json_atomic
from ncutils.book import chapters, provenance
from ncutils.book.cards import AmendmentCard, Card, VerdictBox, readable_dicts
from ncutils.chapter import Finding

__all__ = [
    "FINDINGS",
    "NOT_RUN",
    "PAPERS",
    "Finding",
    "Verdict",
    "amendment",
    "check",
    "findings_file",
    "load",
    "merge",
    "record",
]

# New keys (verdict states, reason, tested, runs, amendments) are optional, so files of schema 1
# written before them still read; a reader that finds none treats them as absent.
SCHEMA = 1

#: What the scoreboard shows for a finding that has a chapter but no record at a profile.
NOT_RUN = "not yet run"

_SECTIONS = ("findings", "checks", "amendments")

#: Bibliography keys (``references.bib``) and short names of the papers.
PAPERS: dict[str, str] = {
    "parker2023": "Parker et al. 2023",
    "rangamani2023": "Rangamani et al. 2023",
    "yang2023": "Yang et al. 2023",
    "kothapalli2023": "Kothapalli 2023",
    "garrod2024": "Garrod & Keating 2024",
}


#: Every finding the book tests, by id, in scoreboard order: read from the chapters' declarations
#: (:mod:`ncutils.book.chapters`), each :class:`~ncutils.chapter.Finding` naming its chapter.
FINDINGS: Mapping[str, Finding] = chapters.findings()

_CHECK_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


class Verdict:
    """A verdict as glued into the page: plain text, bold in Markdown.

    ``repr`` is the plain verdict so that ``{glue:text}`` pastes ``reproduced``
    rather than a quoted Python string.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return f"**{self.text}**"


def findings_file() -> Path:
    """Return the findings JSON path: ``$NC_FINDINGS_FILE`` or ``_build/findings.json``."""
    configured = os.environ.get("NC_FINDINGS_FILE")
    if configured:
        return Path(configured)
    return provenance.project_root() / "_build" / "findings.json"


def _empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "profiles": {}}


def load(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read a findings file; a missing file reads as empty.

    Parameters
    ----------
    path : path-like, optional
        Defaults to :func:`findings_file`.

    Returns
    -------
    dict
        ``{"schema": 1, "profiles": {profile: {"findings": {...}, "checks": {...},
        "amendments": {...}}}}``.

    Raises
    ------
    ValueError
        If the file exists but is not a findings file.
    """
    path = findings_file() if path is None else Path(path)
    if not path.exists():
        return _empty()
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(content, dict) or content.get("schema") != SCHEMA or not isinstance(
        content.get("profiles"), dict
    ):
        raise ValueError(f"{path} is not a findings file (schema {SCHEMA} expected)")
    return content


def merge(contents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge findings contents; later records of the same id and profile win.

    Parameters
    ----------
    contents : iterable of dict
        Contents as returned by :func:`load`.

    Returns
    -------
    dict
        One findings content holding every record and amendment.
    """
    merged = _empty()
    for content in contents:
        for profile, sections in content["profiles"].items():
            target = _sections(merged, profile)
            for section in _SECTIONS:
                target[section].update(sections.get(section, {}))
    return merged


def _sections(content: dict[str, Any], profile: str) -> dict[str, Any]:
    """The sections of one profile, every one present (files before amendments lack one)."""
    sections = content["profiles"].setdefault(profile, {})
    for section in _SECTIONS:
        sections.setdefault(section, {})
    return sections


def _jsonable(value: Any, what: str) -> Any:
    """Convert numpy/torch scalars and arrays to plain JSON values."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, what) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, what) for item in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(value.tolist(), what)
    raise ValueError(f"{what} must be made of numbers, strings, lists and dicts; got {type(value).__name__}")


def _as_bool(passed: Any) -> bool:
    if isinstance(passed, bool):
        return passed
    if hasattr(passed, "item"):
        passed = passed.item()
    if isinstance(passed, bool):
        return passed
    raise ValueError(f"passed must be a bool (the verdict of the criterion), got {passed!r}")





def _require_text(text: Any, name: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return text.strip()


def _optional_text(text: Any, name: str) -> str | None:
    return None if text is None else _require_text(text, name)


def _outcome(passed: Any, verdict: Any, outcome: Any, reason: Any) -> verdicts.Outcome:
    """The one outcome that ``passed``, ``verdict`` or ``outcome`` of :func:`record` gives."""
    given = [name for name, argument in (("passed", passed), ("verdict", verdict), ("outcome", outcome))
             if argument is not None]
    if len(given) != 1:
        raise ValueError(
            "give exactly one of passed (bool), verdict (a state of ncutils.verdicts) or outcome "
            f"(a verdicts.Outcome); got {', '.join(given) or 'none'}"
        )
    reason = _optional_text(reason, "reason")
    if outcome is not None:
        if not isinstance(outcome, verdicts.Outcome):
            raise ValueError(f"outcome must be a verdicts.Outcome, got {type(outcome).__name__}")
        if reason is not None:
            raise ValueError("an outcome carries its own reason; do not pass reason with it")
        return outcome
    if verdict is not None:
        return verdicts.Outcome(verdict, reason)  # checks the state and that inconclusive has a reason
    return verdicts.Outcome(verdicts.passed_state(_as_bool(passed)), reason)


def _runs(outcome: verdicts.Outcome) -> dict[str, Any] | None:
    if outcome.eligible_runs is None:
        return None
    return {
        "passed": outcome.passed_runs,
        "eligible": outcome.eligible_runs,
        "threshold": outcome.threshold,
        "margin": outcome.margin,
    }


def _scale(finding: Finding, parameters: Mapping[str, Any] | None) -> dict[str, str]:
    """The record's ``scale`` (what the chapter ran, from its declaration and parameters) and
    ``paper_setting`` (what the paper ran); empty where the chapter or its parameters are unknown."""
    if finding.chapter is None:
        return {}
    declared = chapters.chapter(finding.chapter)
    parameters = provenance.current_parameters() if parameters is None else parameters
    found: dict[str, str] = {"paper_setting": declared.paper_setting} if declared.paper_setting else {}
    if parameters and all(name in parameters for name in declared.defaults):
        found["scale"] = declared.scale_text(parameters)
    return found


def _store(kind: str, fields: dict[str, Any], parameters: dict[str, Any] | None) -> dict[str, Any]:
    entry = {
        "kind": kind,
        **fields,
        "value": _jsonable(fields["value"], "value"),
        "details": _jsonable(dict(fields["details"] or {}), "details"),
        "provenance": provenance.collect(parameters),
    }
    path = findings_file()
    content = load(path)
    sections = _sections(content, entry["provenance"]["profile"])
    sections["checks" if kind == "check" else "findings"][entry["id"]] = entry
    write_json_atomic(path, content)
    amended = [item["date"] for item in sections["amendments"].get(entry["id"], [])] if kind == "finding" else []
    _display(Card(entry, amended))
    return entry


class _PlainText:
    """Glue value that ``{glue:text}`` pastes as it is (a str would paste with quotes)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _glue(identifier: str, value: Any, verdict: str, extra: Mapping[str, str] | None = None) -> None:
    from myst_nb import glue

    glue(f"{identifier}_value", value, display=False)
    glue(f"{identifier}_verdict", Verdict(verdict), display=False)
    for suffix, text in (extra or {}).items():
        glue(f"{identifier}_{suffix}", _PlainText(text), display=False)


def _glue_box(entry: Mapping[str, Any]) -> None:
    try:
        from myst_nb import glue
    except ImportError:  # outside the book: the card below says it all
        return
    amendments = load(findings_file())["profiles"].get(entry["provenance"]["profile"], {}) \
        .get("amendments", {}).get(entry["id"], [])
    glue(f"{entry['id']}_box", VerdictBox(entry, amendments, FINDINGS[entry["id"]].claim), display=False)


def _display(card: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python without IPython: print the text form
        print(repr(card))
        return
    display(card)


def record(
    finding_id: str,
    claim: str,
    value: Any,
    criterion: str,
    passed: bool | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    verdict: str | None = None,
    reason: str | None = None,
    tested: str | None = None,
    outcome: verdicts.Outcome | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record the verdict on one paper finding.

    Glues ``<finding_id>_value`` (the measured value), ``<finding_id>_verdict``
    (the state: ``reproduced``, ``not reproduced`` or ``inconclusive``),
    ``<finding_id>_reason`` and ``<finding_id>_tested`` (``—`` when not given)
    for ``{glue:text}`` in the chapter's prose, shows a verdict card, and
    writes the record with its provenance to the findings file
    (:func:`findings_file`), replacing an earlier record of the same finding
    and profile.

    The verdict comes from exactly one of ``passed`` (a criterion judged once:
    ``True`` is reproduced, ``False`` not reproduced), ``verdict`` (a state of
    :mod:`ncutils.verdicts`) or ``outcome`` (the result of
    :func:`ncutils.verdicts.combine_runs` or :func:`ncutils.verdicts.inconclusive`,
    which carries its reason and run counts).

    Parameters
    ----------
    finding_id : str
        A key of :data:`FINDINGS`, e.g. ``"P1"``.
    claim : str
        The chapter's statement of the finding, as its criterion tests it.
    value : float, int, str, list or None
        The measured number the verdict rests on (``None`` or ``nan`` when an
        inconclusive test measured nothing).
    criterion : str
        The pre-registered criterion, as stated in the chapter before the result.
    passed : bool, optional
        Whether ``value`` meets ``criterion``.
    details : dict, optional
        Further JSON-able numbers (per-architecture values, thresholds, ...).
    verdict : str, optional
        One of :data:`ncutils.verdicts.RECORDABLE`, instead of ``passed``.
    reason : str, optional
        Why the verdict is what it is; required with ``verdict="inconclusive"``
        (what could not be tested, and why), optional otherwise.
    tested : str, optional
        What the verdict actually rests on: the eligible runs (architectures,
        datasets, seeds), not every configuration in the parameters, e.g.
        ``"MLP on digits and mnist1d, seeds 0-2 (6 runs)"``. The scoreboard
        shows it beside the paper's claim.
    outcome : verdicts.Outcome, optional
        Instead of ``passed`` or ``verdict``; stored with its counts, threshold
        and margin (``runs`` in the record).
    parameters : dict, optional
        The chapter's parameters; defaults to those injected by the book build.

    Returns
    -------
    dict
        The stored record: ``id``, ``kind``, ``claim``, ``tested``, ``value``,
        ``criterion``, ``verdict`` (the state), ``passed`` (``True``,
        ``False``, or ``None`` when inconclusive), ``reason``, ``runs``
        (``{"passed", "eligible", "threshold", "margin"}`` or ``None``),
        ``details``, ``provenance``.

    Raises
    ------
    KeyError
        If ``finding_id`` is not a known finding.
    ValueError
        If ``claim`` or ``criterion`` is empty; if not exactly one of
        ``passed``, ``verdict``, ``outcome`` is given; if ``passed`` is not a
        bool or ``verdict`` not a recordable state; if an inconclusive verdict
        has no reason; or if ``value``/``details`` cannot be stored as JSON.

    References
    ----------
    The findings are those of the five papers listed in :data:`PAPERS`.

    Examples
    --------
    >>> record("P1", "Spearman(depth, log NC1) <= -0.7 for the MLP", -0.93,
    ...        "Spearman correlation at most -0.7", True)  # doctest: +SKIP
    >>> from ncutils import verdicts
    >>> record("P1", "NC1 falls with depth in every eligible run", -0.93, "Spearman <= -0.7 in each run",
    ...        outcome=verdicts.combine_runs([True, True, False]),
    ...        tested="MLP on digits, seeds 0-2 (3 runs)")  # doctest: +SKIP
    >>> record("P4", "depth needed grows with difficulty", None, "Spearman >= 0.8 per architecture",
    ...        verdict=verdicts.INCONCLUSIVE,
    ...        reason="no architecture reached 99% train accuracy on 3 datasets")  # doctest: +SKIP
    """
    if finding_id not in FINDINGS:
        raise KeyError(f"unknown finding {finding_id!r}; known findings: {', '.join(FINDINGS)}")
    statement = _require_text(claim, "claim")
    criterion = _require_text(criterion, "criterion")
    tested = _optional_text(tested, "tested")
    result = _outcome(passed, verdict, outcome, reason)
    fields = {
        "id": finding_id,
        "claim": statement,
        "tested": tested,
        "value": value,
        "criterion": criterion,
        "passed": result.passed,
        "verdict": result.state,
        "reason": result.reason,
        "runs": _runs(result),
        "details": details,
        **_scale(FINDINGS[finding_id], parameters),
    }
    entry = _store("finding", fields, parameters)
    _glue(finding_id, entry["value"], result.state,
          {"reason": readable_dicts(result.reason or "—"), "tested": readable_dicts(tested or "—")})
    _glue_box(entry)
    return entry


def check(
    check_id: str,
    description: str,
    value: Any,
    criterion: str,
    passed: bool,
    details: Mapping[str, Any] | None = None,
    *,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record a check of the library itself (not a paper finding).

    Same as :func:`record` but for checks with a known answer, such as
    "NC1 of an exact simplex ETF is 0": it passes or fails, never is
    inconclusive. Checks are listed apart from the paper findings on the
    scoreboard. Glue keys are ``<check_id>_value`` and ``<check_id>_verdict``
    (``passed`` / ``failed``).

    Parameters
    ----------
    check_id : str
        Letters, digits, ``.``, ``_`` or ``-``; e.g. ``"etf_nc1"``. The notebook
        stem is prefixed in the findings file to keep ids of chapters apart.
    description, value, criterion, passed, details, parameters
        As for :func:`record`.

    Returns
    -------
    dict
        The stored record.

    Example
    -------
    >>> check("etf_nc1", "NC1 of an exact ETF", 0.0, "below 1e-10", True)  # doctest: +SKIP
    """
    if not isinstance(check_id, str) or not _CHECK_ID.match(check_id):
        raise ValueError(f"check id must be letters, digits, '.', '_' or '-', got {check_id!r}")
    if check_id in FINDINGS:
        raise ValueError(f"{check_id!r} is a paper finding; use findings.record for it")
    statement = _require_text(description, "description")
    criterion = _require_text(criterion, "criterion")
    passed = _as_bool(passed)
    verdict = "passed" if passed else "failed"
    notebook = provenance.current_notebook()
    stored_id = f"{notebook}.{check_id}" if notebook else check_id
    fields = {"id": stored_id, "claim": statement, "value": value, "criterion": criterion,
              "passed": passed, "verdict": verdict, "details": details}
    entry = _store("check", fields, parameters)
    _glue(check_id, entry["value"], verdict)
    return entry


# --------------------------------------------------------------------------- amendments

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(date: Any) -> str:
    # fromisoformat alone would also take "20261201"; the book writes dates one way.
    if isinstance(date, _dt.date):
        date = date.isoformat()
    if not isinstance(date, str) or not _ISO_DATE.match(date.strip()):
        raise ValueError(f"date must be an ISO date yyyy-mm-dd, got {date!r}")
    try:
        _dt.date.fromisoformat(date.strip())
    except ValueError:
        raise ValueError(f"date must be an ISO date yyyy-mm-dd, got {date!r} (no such day)") from None
    return date.strip()


def amendment(
    finding_id: str,
    date: str | _dt.date,
    original: str,
    replacement: str,
    reason: str,
    original_result: str | None = None,
    *,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Announce a change to a finding's pre-registered criterion, dated and with its reason.

    Shows an "Amendment" card in the chapter (the original criterion stays on
    the page, with its result when one was computed, beside the replacement)
    and keeps the amendment in the findings file under ``"amendments"``, so the
    scoreboard marks the finding's verdicts "amended <date>". Call it where
    the chapter states its criterion, before :func:`record`; recording the
    same amendment again (same date and original) replaces it rather than
    listing it twice.

    Parameters
    ----------
    finding_id : str
        A key of :data:`FINDINGS`.
    date : str or datetime.date
        The day the criterion was changed, ``yyyy-mm-dd``.
    original : str
        The criterion as pre-registered.
    replacement : str
        The criterion as amended (what :func:`record` is now given).
    reason : str
        Why it changed. "The result came out wrong" is not a reason: a
        criterion is never tuned to a result.
    original_result : str, optional
        What the original criterion gave, when it was computed (e.g.
        ``"not reproduced: Spearman -0.62"``).
    parameters : dict, optional
        The chapter's parameters; defaults to those injected by the book build.

    Returns
    -------
    dict
        The stored amendment: ``id``, ``date``, ``original``, ``replacement``,
        ``reason``, ``original_result``, ``provenance``.

    Raises
    ------
    KeyError
        If ``finding_id`` is not a known finding.
    ValueError
        If ``date`` is not an ISO date or a text is empty.

    Example
    -------
    >>> amendment("P1", "2026-12-01", "Spearman <= -0.7 over all layers",
    ...           "Spearman <= -0.7 over the hidden layers",
    ...           "the input layer is not a hidden layer (the paper's definition)",
    ...           original_result="not reproduced: -0.62")  # doctest: +SKIP
    """
    if finding_id not in FINDINGS:
        raise KeyError(f"unknown finding {finding_id!r}; known findings: {', '.join(FINDINGS)}")
    entry = {
        "id": finding_id,
        "date": _iso_date(date),
        "original": _require_text(original, "original"),
        "replacement": _require_text(replacement, "replacement"),
        "reason": _require_text(reason, "reason"),
        "original_result": _optional_text(original_result, "original_result"),
        "provenance": provenance.collect(parameters),
    }
    path = findings_file()
    content = load(path)
    listed = _sections(content, entry["provenance"]["profile"])["amendments"].setdefault(finding_id, [])
    listed[:] = [item for item in listed if (item["date"], item["original"]) != (entry["date"], entry["original"])]
    listed.append(entry)
    listed.sort(key=lambda item: item["date"])
    write_json_atomic(path, content)
    _display(AmendmentCard(entry))
    return entry
