"""Record machine-checked verdicts and turn them into the book's scoreboard.

A chapter notebook tests a finding of one of the five papers with a criterion
that its prose states *before* the result is computed, then calls
:func:`record`. The record is glued into the page with myst-nb (keys
``<ID>_value`` and ``<ID>_verdict``), shown as a verdict card, and written to
a findings JSON file with its provenance (see :mod:`ncutils.book.provenance`).

Checks of the library itself (e.g. "NC1 of an exact simplex ETF is 0") use
:func:`check`: they are recorded the same way but kept apart from the paper
findings, so they never count on the paper scoreboard.

The findings file
-----------------
``$NC_FINDINGS_FILE`` (default ``<repository>/_build/findings.json``)::

    {"schema": 1,
     "profiles": {"cpu": {"findings": {"P1": {...record...}},
                          "checks":   {"measuring_collapse.etf": {...}}}}}

The book build gives each notebook its own file and merges them into
``_build/findings.json``; :func:`scoreboard_markdown` renders the merged file.
"""

from __future__ import annotations

import html
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ncutils.book import provenance

__all__ = [
    "FINDINGS",
    "PAPERS",
    "Finding",
    "Verdict",
    "check",
    "findings_file",
    "findings_markdown",
    "load",
    "merge",
    "record",
    "scoreboard_markdown",
]

SCHEMA = 1

#: Bibliography keys (``references.bib``) and short names of the papers.
PAPERS: dict[str, str] = {
    "parker2023": "Parker et al. 2023",
    "rangamani2023": "Rangamani et al. 2023",
    "yang2023": "Yang et al. 2023",
    "kothapalli2023": "Kothapalli 2023",
    "garrod2024": "Garrod & Keating 2024",
}


@dataclass(frozen=True)
class Finding:
    """A finding of one paper that the book tests.

    Attributes
    ----------
    id : str
        Short identifier, e.g. ``"P1"``.
    paper : str
        Bibliography key of the paper (a key of :data:`PAPERS`).
    claim : str
        The paper's claim, in one sentence.
    """

    id: str
    paper: str
    claim: str


_REGISTRY = (
    Finding("P1", "parker2023", "NC emerges in most hidden layers and its degree grows with depth."),
    Finding("P2", "parker2023", "Almost all of the reduction of within-class variance happens in the shallow layers."),
    Finding("P3", "parker2023", "The angular separation between class means increases with depth."),
    Finding("P4", "parker2023", "Simple datasets need only the shallow layers; hard ones use the whole network."),
    Finding("R1", "rangamani2023", "Within-class covariance shrinks relative to between-class covariance with depth and over training."),
    Finding("R2", "rangamani2023", "In the top layers the span of the class means aligns with the top singular vectors of the layer's weight matrix."),
    Finding("Y1", "yang2023", "A network trained on coarse labels still encodes the fine labels: clustering its features recovers them (93% CIFAR-10 test accuracy)."),
    Finding("Y2", "yang2023", "Fine labels are recoverable from coarse-label features in a simplified synthetic setting."),
    Finding("K1", "kothapalli2023", "NC1-NC4 emerge in the terminal phase of training and the classifier becomes the nearest-class-center rule."),
    Finding("K2", "kothapalli2023", "In the locally elastic SDE model features separate and collapse if and only if the same-class effect beats the cross-class effect (alpha > beta)."),
    Finding("G1", "garrod2024", "At the deep-NC optimum of the deep linear UFM the layer Hessian has K^2 equal outlier eigenvalues, eigenvectors mu_c(l+1) x mu_c'(l), over a bulk."),
    Finding("G2", "garrod2024", "The gradient aligns with the Hessian's outlier eigenspace (coefficients 1/K on the diagonal, 0 off it)."),
    Finding("G3", "garrod2024", "In the ReLU UFM the Hessian keeps its outliers but they are no longer equal."),
)

#: Every finding the book tests, by id, in scoreboard order.
FINDINGS: dict[str, Finding] = {finding.id: finding for finding in _REGISTRY}

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
        ``{"schema": 1, "profiles": {profile: {"findings": {...}, "checks": {...}}}}``.

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
        One findings content holding every record.
    """
    merged = _empty()
    for content in contents:
        for profile, sections in content["profiles"].items():
            target = merged["profiles"].setdefault(profile, {"findings": {}, "checks": {}})
            for section in ("findings", "checks"):
                target[section].update(sections.get(section, {}))
    return merged


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content, indent=1, sort_keys=True))
    os.replace(temporary, path)


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


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    return str(value)


def _require_text(text: Any, name: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return text.strip()


def _store(kind: str, identifier: str, statement: str, value: Any, criterion: str, passed: bool,
           details: Mapping[str, Any] | None, parameters: dict[str, Any] | None,
           verdict_text: str) -> dict[str, Any]:
    entry = {
        "id": identifier,
        "kind": kind,
        "claim": statement,
        "value": _jsonable(value, "value"),
        "criterion": criterion,
        "passed": passed,
        "verdict": verdict_text,
        "details": _jsonable(dict(details or {}), "details"),
        "provenance": provenance.collect(parameters),
    }
    path = findings_file()
    content = load(path)
    sections = content["profiles"].setdefault(entry["provenance"]["profile"], {"findings": {}, "checks": {}})
    sections["checks" if kind == "check" else "findings"][identifier] = entry
    _write_atomically(path, content)
    _show(entry)
    return entry


def _glue(identifier: str, value: Any, verdict: str) -> None:
    from myst_nb import glue

    glue(f"{identifier}_value", value, display=False)
    glue(f"{identifier}_verdict", Verdict(verdict), display=False)


class _Card:
    """Display object for a verdict: HTML in the book, text elsewhere."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    def _repr_html_(self) -> str:
        entry = self.entry
        status = "pass" if entry["passed"] else "fail"
        escape = html.escape
        return (
            f'<div class="nc-verdict nc-{status}" data-id="{escape(entry["id"])}">'
            f'<p class="nc-verdict-title"><strong>{escape(entry["id"])}: {escape(entry["verdict"])}</strong></p>'
            f"<p>{escape(entry['claim'])}</p>"
            f"<p><em>Criterion:</em> {escape(entry['criterion'])}<br>"
            f"<em>Measured:</em> {escape(_format_value(entry['value']))}</p>"
            f'<p class="nc-provenance">{escape(provenance.describe(entry["provenance"]))}</p>'
            "</div>"
        )

    def __repr__(self) -> str:
        entry = self.entry
        return (
            f"{entry['id']}: {entry['verdict']} (measured {_format_value(entry['value'])}; "
            f"criterion: {entry['criterion']})"
        )


def _show(entry: dict[str, Any]) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python without IPython: print the text form
        print(repr(_Card(entry)))
        return
    display(_Card(entry))


def record(
    finding_id: str,
    claim: str,
    value: Any,
    criterion: str,
    passed: bool,
    details: Mapping[str, Any] | None = None,
    *,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record the verdict on one paper finding.

    Glues ``<finding_id>_value`` (the measured value) and
    ``<finding_id>_verdict`` (``reproduced`` / ``not reproduced``) for
    ``{glue:text}`` in the chapter's prose, shows a verdict card, and writes the
    record with its provenance to the findings file (:func:`findings_file`),
    replacing an earlier record of the same finding and profile.

    Parameters
    ----------
    finding_id : str
        A key of :data:`FINDINGS`, e.g. ``"P1"``.
    claim : str
        What exactly this chapter tested, in one sentence.
    value : float, int, str or list
        The measured number the verdict rests on.
    criterion : str
        The pre-registered criterion, as stated in the chapter before the result.
    passed : bool
        Whether ``value`` meets ``criterion``.
    details : dict, optional
        Further JSON-able numbers (per-architecture values, thresholds, ...).
    parameters : dict, optional
        The chapter's parameters; defaults to those injected by the book build.

    Returns
    -------
    dict
        The stored record (``id``, ``kind``, ``claim``, ``value``,
        ``criterion``, ``passed``, ``verdict``, ``details``, ``provenance``).

    Raises
    ------
    KeyError
        If ``finding_id`` is not a known finding.
    ValueError
        If ``claim`` or ``criterion`` is empty, ``passed`` is not a bool, or
        ``value``/``details`` cannot be stored as JSON.

    References
    ----------
    The findings are those of the five papers listed in :data:`PAPERS`.

    Example
    -------
    >>> record("P1", "Spearman(depth, log NC1) <= -0.7 for the MLP", -0.93,
    ...        "Spearman correlation at most -0.7", True)  # doctest: +SKIP
    """
    if finding_id not in FINDINGS:
        raise KeyError(f"unknown finding {finding_id!r}; known findings: {', '.join(FINDINGS)}")
    statement = _require_text(claim, "claim")
    criterion = _require_text(criterion, "criterion")
    passed = _as_bool(passed)
    verdict = "reproduced" if passed else "not reproduced"
    entry = _store("finding", finding_id, statement, value, criterion, passed, details, parameters, verdict)
    _glue(finding_id, entry["value"], verdict)
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
    "NC1 of an exact simplex ETF is 0". Checks are listed apart from the paper
    findings on the scoreboard. Glue keys are ``<check_id>_value`` and
    ``<check_id>_verdict`` (``passed`` / ``failed``).

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
    entry = _store("check", stored_id, statement, value, criterion, passed, details, parameters, verdict)
    _glue(check_id, entry["value"], verdict)
    return entry


# --------------------------------------------------------------------------- scoreboard

def _cell(text: Any) -> str:
    """Make text safe for one cell of a Markdown pipe table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _verdict_cell(entry: Mapping[str, Any] | None, outdated: bool) -> str:
    if entry is None:
        return "not yet run"
    mark = "✅" if entry["passed"] else "❌"
    cell = f"{mark} {entry['verdict']} ({_format_value(entry['value'])})"
    if outdated:
        cell += " — outdated"
    return cell


def _chapter_link(entry: Mapping[str, Any]) -> str:
    notebook = entry["provenance"].get("notebook")
    return f"{{doc}}`{notebook} </book/generated/{notebook}>`" if notebook else "—"


def findings_markdown() -> str:
    """Render the registry of findings as a MyST table (id, paper, claim).

    Returns
    -------
    str
        One row per finding of :data:`FINDINGS`, papers cited with ``{cite:t}``.
    """
    lines = ["| Finding | Paper | Claim |", "|---|---|---|"]
    lines += [f"| {f.id} | {{cite:t}}`{f.paper}` | {_cell(f.claim)} |" for f in FINDINGS.values()]
    return "\n".join(lines) + "\n"


def scoreboard_markdown(
    content: Mapping[str, Any],
    profiles: Iterable[str],
    *,
    outdated: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """Render the scoreboard tables (MyST Markdown) from a findings content.

    Parameters
    ----------
    content : dict
        Merged findings content (:func:`load`, :func:`merge`).
    profiles : iterable of str
        Profiles to show, in column order. Every finding gets a cell for every
        profile: its verdict and value, or ``not yet run``.
    outdated : mapping, optional
        Profile -> notebook stems whose stored results predate a change of the
        notebook, its parameters or ``ncutils``; their cells say so.

    Returns
    -------
    str
        Markdown with three tables: findings x profiles, every record with its
        provenance, and the library checks.
    """
    profiles = list(profiles)
    outdated = {profile: set(stems) for profile, stems in (outdated or {}).items()}
    recorded = content.get("profiles", {})

    def is_outdated(profile: str, entry: Mapping[str, Any]) -> bool:
        return entry["provenance"].get("notebook") in outdated.get(profile, set())

    lines = [
        "| Finding | Paper | Paper's claim | Criterion | " + " | ".join(profiles) + " |",
        "|---|---|---|---|" + "---|" * len(profiles),
    ]
    for finding in FINDINGS.values():
        entries = {profile: recorded.get(profile, {}).get("findings", {}).get(finding.id) for profile in profiles}
        criteria = sorted({entry["criterion"] for entry in entries.values() if entry is not None})
        cells = [
            finding.id,
            f"{{cite:t}}`{finding.paper}`",
            _cell(finding.claim),
            _cell("; ".join(criteria)) if criteria else "—",
        ]
        cells += [
            _verdict_cell(entries[profile], entries[profile] is not None and is_outdated(profile, entries[profile]))
            for profile in profiles
        ]
        lines.append("| " + " | ".join(cells) + " |")

    detail_rows = []
    check_rows = []
    for profile in profiles:
        sections = recorded.get(profile, {})
        for section, rows in (("findings", detail_rows), ("checks", check_rows)):
            for identifier, entry in sorted(sections.get(section, {}).items()):
                origin = entry["provenance"]
                commit = (origin.get("git_commit") or "no git")[:7] + ("+dirty" if origin.get("git_dirty") else "")
                rows.append(
                    "| "
                    + " | ".join(
                        [
                            _cell(identifier),
                            profile,
                            _cell(entry["claim"]),
                            _cell(_format_value(entry["value"])),
                            _cell(entry["verdict"]) + (" (outdated)" if is_outdated(profile, entry) else ""),
                            _chapter_link(entry),
                            _cell(f"seed {origin.get('seed')}, {origin.get('device')}, {commit}"),
                        ]
                    )
                    + " |"
                )
    header = [
        "| Id | Profile | What was tested | Value | Verdict | Chapter | Provenance |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["", "## Every recorded verdict", ""]
    lines += header + detail_rows if detail_rows else ["No finding has been recorded yet."]
    lines += [
        "",
        "## Checks of the library",
        "",
        "Known-answer checks of `ncutils` itself. They are not findings of the papers and do not count above.",
        "",
    ]
    lines += header + check_rows if check_rows else ["No check has been recorded yet."]
    return "\n".join(lines) + "\n"
