"""The book's scoreboard: every finding under every profile, from the findings files.

:func:`scoreboard_markdown` renders merged findings content (:func:`ncutils.book.findings.load`,
:func:`~ncutils.book.findings.merge`) as the scoreboard page: a finding x profile matrix of
badges (the word on its colour, styled by ``book/_static/companion.css``), each finding's claims
and criteria below it, every recorded verdict with its provenance, and the library checks.
:func:`findings_markdown` is the list of findings on the introduction.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ncutils import verdicts
from ncutils.book.findings import FINDINGS, NOT_RUN, PAPERS, Finding, _format_value

__all__ = ["BADGE_CLASSES", "findings_markdown", "placeholder", "scoreboard_markdown"]


def _cell(text: Any) -> str:
    """Make text safe for one cell of a Markdown pipe table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def placeholder(finding_id: str) -> str:
    """What the scoreboard shows for a finding with no record at a profile.

    Returns
    -------
    str
        ``"no chapter yet"`` (:data:`ncutils.verdicts.NO_CHAPTER`) when no
        chapter tests the finding, else ``"not yet run"`` (:data:`NOT_RUN`).
        Neither ever counts as reproduced.

    Example
    -------
    >>> placeholder("P1")  # every finding has a chapter by now
    'not yet run'
    """
    return verdicts.NO_CHAPTER if FINDINGS[finding_id].chapter is None else NOT_RUN


#: CSS class of the scoreboard badge of each state (``book/_static/companion.css``). The badge
#: shows the state as a word on a colour, so it reads without colour and without an emoji font.
BADGE_CLASSES: dict[str, str] = {
    verdicts.REPRODUCED: "nc-pass",
    verdicts.NOT_REPRODUCED: "nc-fail",
    verdicts.INCONCLUSIVE: "nc-inconclusive",
    NOT_RUN: "nc-not-run",
    verdicts.NO_CHAPTER: "nc-no-chapter",
}


def _verdict_text(entry: Mapping[str, Any], outdated: bool) -> str:
    """A verdict with what it rests on: ``reproduced (-0.93), 2 of 3 runs`` or the inconclusive reason."""
    state = entry["verdict"]
    if state == verdicts.INCONCLUSIVE:
        # the reason says what the counts are, when there are any ("mixed: 1 of 2")
        text = f"{state}: {entry.get('reason') or 'no reason recorded'}"
    else:
        text = f"{state} ({_format_value(entry['value'])})"
        if entry.get("runs"):
            text += f", {entry['runs']['passed']} of {entry['runs']['eligible']} runs"
    if outdated:
        text += " — outdated"
    return text


def _badge(state: str, *, title: str | None = None, note: str | None = None) -> str:
    escape = html.escape
    attributes = f' title="{escape(title)}"' if title else ""
    badge = f'<span class="nc-badge {BADGE_CLASSES.get(state, "nc-inconclusive")}"{attributes}>{escape(state)}</span>'
    if note:
        badge += f'<span class="nc-badge-note">{escape(note)}</span>'
    return badge


def _anchor(finding_id: str) -> str:
    return f"scoreboard-{finding_id.lower()}"


def _matrix_html(recorded: Mapping[str, Any], profiles: Sequence[str],
                 is_outdated: Callable[[str, Mapping[str, Any]], bool]) -> str:
    """The finding x profile matrix: one badge per cell, papers as row groups."""
    escape = html.escape
    head = "".join(f'<th scope="col">{escape(profile)}</th>' for profile in profiles)
    rows = []
    paper = None
    for finding in FINDINGS.values():
        if finding.paper != paper:
            paper = finding.paper
            rows.append(f'<tr class="nc-paper"><th colspan="{len(profiles) + 2}" scope="rowgroup">'
                        f'{escape(PAPERS.get(paper, paper))}</th></tr>')
        cells = []
        for profile in profiles:
            entry = recorded.get(profile, {}).get("findings", {}).get(finding.id)
            if entry is None:
                badge = _badge(placeholder(finding.id))
            else:
                outdated = is_outdated(profile, entry)
                badge = _badge(entry["verdict"], title=_verdict_text(entry, outdated),
                               note="outdated" if outdated else None)
            cells.append(f'<td data-profile="{escape(profile)}">{badge}</td>')
        rows.append(f'<tr data-id="{escape(finding.id)}"><th scope="row" title="{escape(finding.claim)}">'
                    f'<a href="#{_anchor(finding.id)}">{escape(finding.id)}</a></th>'
                    f'<td class="nc-claim">{escape(finding.claim)}</td>{"".join(cells)}</tr>')
    legend = " ".join(_badge(state) for state in BADGE_CLASSES)
    return (
        '<div class="nc-scoreboard">\n'
        f'<p class="nc-legend">{legend}</p>\n'
        '<div class="nc-matrix-scroll"><table class="nc-matrix">'
        f'<thead><tr><th scope="col">Finding</th><th scope="col" class="nc-claim">Paper\'s claim</th>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>\n'
        "</div>\n"
    )


def _chapter_link(entry: Mapping[str, Any]) -> str:
    notebook = entry["provenance"].get("notebook")
    return f"{{doc}}`{notebook} </book/generated/{notebook}>`" if notebook else "—"


def _registry_chapter_link(finding: Finding) -> str:
    return f"{{doc}}`{finding.chapter} </book/generated/{finding.chapter}>`" if finding.chapter else "no chapter yet"


def _by_profile(values: Mapping[str, str]) -> str:
    """One text when every profile agrees, else ``profile: text`` for each."""
    if not values:
        return "—"
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return "; ".join(f"{profile}: {text}" for profile, text in values.items())


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
    """Render the scoreboard (MyST Markdown with one raw HTML block) from a findings content.

    Parameters
    ----------
    content : dict
        Merged findings content (:func:`load`, :func:`merge`).
    profiles : iterable of str
        Profiles to show, in column order. Every finding gets a cell for every
        profile: the badge of its verdict (the word on a colour, :data:`BADGE_CLASSES`;
        the value in the badge's tooltip), or of :func:`placeholder`
        (``no chapter yet`` / ``not yet run``).
    outdated : mapping, optional
        Profile -> notebook stems whose stored results predate a change of the
        notebook, its parameters or ``ncutils``; their badges say so.

    Returns
    -------
    str
        The compact finding x profile matrix (HTML: a badge per cell, one row group per
        paper), then per finding its paper's claim, tested claim, criterion and the verdict
        of each profile with the number it rests on, then every record with its provenance
        and amendments, and the library checks.
    """
    profiles = list(profiles)
    outdated = {profile: set(stems) for profile, stems in (outdated or {}).items()}
    recorded = content.get("profiles", {})

    def is_outdated(profile: str, entry: Mapping[str, Any]) -> bool:
        return entry["provenance"].get("notebook") in outdated.get(profile, set())

    lines = [_matrix_html(recorded, profiles, is_outdated), "## Criteria and tested claims", ""]
    for finding in FINDINGS.values():
        entries = {profile: recorded.get(profile, {}).get("findings", {}).get(finding.id) for profile in profiles}
        present = {profile: entry for profile, entry in entries.items() if entry is not None}
        verdict_items = [
            f"{profile}: **{placeholder(finding.id)}**" if entry is None
            else f"{profile}: **{entry['verdict']}**" + _verdict_text(entry, is_outdated(profile, entry))[len(entry["verdict"]):]
            for profile, entry in entries.items()
        ]
        # A record always shows, even for a finding the registry gives no chapter: the data win.
        lines += [
            f"({_anchor(finding.id)})=",
            f"### {finding.id} · {PAPERS.get(finding.paper, finding.paper)}",
            "",
            f"- *Paper's claim* ({{cite:t}}`{finding.paper}`): {finding.claim}",
            f"- *Tested claim*: {_by_profile({p: e['tested'] for p, e in present.items() if e.get('tested')})}",
            f"- *Criterion*: {_by_profile({p: e['criterion'] for p, e in present.items()})}",
            f"- *Chapter*: {_registry_chapter_link(finding)}",
            "- *Verdicts*: " + "; ".join(verdict_items),
            "",
        ]

    detail_rows = []
    check_rows = []
    for profile in profiles:
        sections = recorded.get(profile, {})
        amendments = sections.get("amendments", {})
        for section, rows in (("findings", detail_rows), ("checks", check_rows)):
            for identifier, entry in sorted(sections.get(section, {}).items()):
                origin = entry["provenance"]
                commit = (origin.get("git_commit") or "no git")[:7] + ("+dirty" if origin.get("git_dirty") else "")
                verdict = _cell(entry["verdict"])
                if entry.get("reason"):
                    verdict += f": {_cell(entry['reason'])}"
                if is_outdated(profile, entry):
                    verdict += " (outdated)"
                dates = [item["date"] for item in amendments.get(identifier, [])] if section == "findings" else []
                if dates:
                    verdict += f"; amended {', '.join(dates)}"
                rows.append(
                    "| "
                    + " | ".join(
                        [
                            _cell(identifier),
                            profile,
                            _cell(entry["claim"]),
                            _cell(entry.get("tested") or "—"),
                            _cell(_format_value(entry["value"])),
                            verdict,
                            _chapter_link(entry),
                            _cell(f"seed {origin.get('seed')}, {origin.get('device')}, {commit}"),
                        ]
                    )
                    + " |"
                )
    header = [
        "| Id | Profile | Chapter's claim | Tested | Value | Verdict | Chapter | Provenance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += ["## Every recorded verdict", ""]
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
