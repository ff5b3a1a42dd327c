"""The book's scoreboard: every finding under every profile, from the findings files.

:func:`scoreboard_markdown` renders merged findings content (:func:`ncutils.book.findings.load`,
:func:`~ncutils.book.findings.merge`) as the scoreboard page: a finding x profile matrix of
badges (the word on its colour, styled by ``book/_static/companion.css``), each finding's claims
and criteria below it, every recorded verdict with its provenance, and the library checks.
:func:`findings_markdown` is the list of findings on the introduction.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ncutils import verdicts
from ncutils.book import chapters, provenance
from ncutils.book.cards import format_value, tex_html, tex_text
from ncutils.book.findings import FINDINGS, NOT_RUN, PAPERS, Finding, load

__all__ = ["BADGE_CLASSES", "HEADLINE_PROFILES", "finding_scale", "findings_markdown", "headline_profile", "placeholder",
           "scoreboard_markdown"]


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
        text = f"{state} ({format_value(entry['value'])})"
        if entry.get("runs"):
            text += f", {entry['runs']['passed']} of {entry['runs']['eligible']} runs"
    if outdated:
        text += " — outdated"
    return text


def _badge(state: str, *, note: str | None = None) -> str:
    escape = html.escape
    badge = f'<span class="nc-badge {BADGE_CLASSES.get(state, "nc-inconclusive")}">{escape(state)}</span>'
    if note:
        badge += f'<span class="nc-badge-note">{escape(note)}</span>'
    return badge


def _anchor(finding_id: str) -> str:
    return f"scoreboard-{finding_id.lower()}"


def _scale_text(scale: Any) -> str:
    """A scale as one line: a text as it is, a mapping as ``key value, ...``, a list joined."""
    if scale is None or scale == "" or scale == {} or scale == []:
        return ""
    if isinstance(scale, Mapping):
        return ", ".join(f"{key} {_scale_text(value)}" for key, value in scale.items())
    if isinstance(scale, (list, tuple)):
        return ", ".join(_scale_text(value) for value in scale)
    return str(scale)


def finding_scale(finding: Finding, entries: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The scale a finding was judged at: its records' ``scale`` (from its chapter's declaration), else ``""``.

    Records of several profiles with different scales give ``profile: scale; ...``.
    """
    recorded = {profile: _scale_text(entry.get("scale")) for profile, entry in entries.items()
                if entry is not None and _scale_text(entry.get("scale"))}
    if recorded:
        return _by_profile(recorded)
    return ""


def _scale_html(finding: Finding, entries: Mapping[str, Mapping[str, Any] | None], *, paper: bool = True) -> str:
    """The scale cell: what this book ran (:func:`finding_scale`), then (with ``paper``) what the paper
    ran, from the records' ``paper_setting``."""
    parts = []
    ours = finding_scale(finding, entries)
    if ours:
        parts.append(f'<span class="nc-our-scale">{tex_html(ours)}</span>')
    settings = [entry.get("paper_setting") for entry in entries.values() if entry and entry.get("paper_setting")]
    if paper and settings:
        parts.append(f'<span class="nc-paper-setting">paper: {tex_html(settings[0])}</span>')
    return "".join(parts)


def _state_of(text: str | None) -> str | None:
    """The verdict state a free text (an amendment's original result) starts with, if any."""
    for state in (verdicts.NOT_REPRODUCED, verdicts.REPRODUCED, verdicts.INCONCLUSIVE):
        if text and text.strip().lower().startswith(state):
            return state
    return None


def _one_line_reason(entry: Mapping[str, Any]) -> str:
    """Why the verdict is what it is, in one line: the recorded reason, else what the criterion did."""
    if entry.get("reason"):
        return str(entry["reason"])
    if entry.get("runs"):
        return f"{entry['runs']['passed']} of {entry['runs']['eligible']} eligible runs pass"
    if entry["verdict"] == verdicts.REPRODUCED:
        return "the criterion held"
    if entry["verdict"] == verdicts.NOT_REPRODUCED:
        return "the criterion failed"
    return ""


def _verdict_cell(entry: Mapping[str, Any] | None, finding_id: str, *, outdated: bool = False,
                  reason: bool = True) -> str:
    """A verdict as a badge, the measured number and the criterion it is held against (always visible,
    never only in a tooltip); with ``reason``, an inconclusive verdict's reason too."""
    if entry is None:
        return _badge(placeholder(finding_id))
    parts = [_badge(entry["verdict"], note="outdated" if outdated else None)]
    if entry.get("value") is not None:
        parts.append(f'<span class="nc-measured">{tex_html(format_value(entry["value"]))}</span>')
    if (reason and entry.get("reason") and entry["verdict"] == verdicts.INCONCLUSIVE
            and str(entry["reason"]) != format_value(entry.get("value"))):  # not the same words twice
        parts.append(f'<span class="nc-reason">{tex_html(entry["reason"])}</span>')
    if entry.get("criterion"):
        parts.append(f'<span class="nc-criterion">criterion: {tex_html(entry["criterion"])}</span>')
    return "".join(parts)


def _original_cell(amendments: Sequence[Mapping[str, Any]]) -> str:
    """The verdict of the pre-registered criterion, from the first amendment of a finding."""
    first = amendments[0]
    result = first.get("original_result")
    state = _state_of(result)
    parts = [_badge(state) if state else '<span class="nc-badge nc-not-run">not computed</span>']
    if result:
        detail = result.strip()[len(state):].lstrip(" :—-") if state else result
        if detail:
            parts.append(f'<span class="nc-measured">{tex_html(detail)}</span>')
    parts.append(f'<span class="nc-criterion">criterion: {tex_html(first["original"])}</span>')
    dates = ", ".join(item["date"] for item in amendments)
    parts.append(f'<span class="nc-amended-on">amended {html.escape(dates)}</span>')
    return "".join(parts)


def _run_profiles(recorded: Mapping[str, Any], profiles: Sequence[str]) -> tuple[list[str], list[str]]:
    """The profiles with at least one recorded finding, and those without any (folded into one line)."""
    run = [profile for profile in profiles if recorded.get(profile, {}).get("findings")]
    return run, [profile for profile in profiles if profile not in run]


def _not_run_line(not_run: Sequence[str], run: Sequence[str]) -> str:
    if not not_run:
        return ""
    names = ", ".join(f"<strong>{html.escape(profile)}</strong>" for profile in not_run)
    if run:
        text = (f"Not run in this build: {names}. No finding has a verdict at {'this profile' if len(not_run) == 1 else 'these profiles'} "
                "yet; that is never counted as reproduced.")
    else:
        text = f"No profile has recorded a verdict yet ({names}); nothing is counted as reproduced."
    return f'<p class="nc-not-run-line">{text}</p>\n'


def _bundle_cell(bundle: Any, entry: Mapping[str, Any] | None, finding_id: str) -> str:
    """A bundle's verdict: fresh as a live one, stale as "stale (built at <commit>)" with the verdict it
    had then; the provenance (commit, machine, device, date) and a link to the bundle's notebook below."""
    escape = html.escape
    status = None if entry is None else bundle.status(entry)
    if entry is None or status is None:
        return _badge(placeholder(finding_id))
    if status.stale:
        parts = [f'<span class="nc-badge nc-stale">{escape(status.label)}</span>',
                 f'<span class="nc-measured">its verdict then: {escape(entry["verdict"])}'
                 f'{"" if entry.get("value") is None else " (" + escape(format_value(entry["value"])) + ")"}</span>',
                 f'<span class="nc-reason">{escape(status.reason)}</span>']
    else:
        parts = [_verdict_cell(entry, finding_id)]
    stem = entry["provenance"]["notebook"]
    parts.append(f'<span class="nc-origin">{escape(bundle.origin())} · '
                 f'<a href="generated/bundles/{escape(bundle.profile)}/{escape(stem)}.html">notebook</a></span>')
    return "".join(parts)


def _matrix_html(recorded: Mapping[str, Any], profiles: Sequence[str],
                 is_outdated: Callable[[str, Mapping[str, Any]], bool], bundles: Sequence[Any] = ()) -> str:
    """The scoreboard table: a row per finding (papers as row groups), claim and scale, then per profile
    that was run its verdict with the number and criterion; the pre-registered verdict beside the amended
    one where a criterion was amended; a column per bundle (:mod:`~ncutils.book.bundles`) after its
    profile's. Profiles neither run nor merged from a bundle are one line above the table."""
    escape = html.escape
    run, not_run = _run_profiles(recorded, profiles)
    by_profile = {bundle.profile: bundle for bundle in bundles}
    not_run = [profile for profile in not_run if profile not in by_profile]
    amended = {profile: recorded.get(profile, {}).get("amendments", {}) for profile in run}
    columns: list[tuple[str, str, str]] = []  # (profile, kind, header)
    for profile in profiles:
        if profile in run and amended[profile]:
            columns += [(profile, "original", f"{profile}: as pre-registered"), (profile, "amended", f"{profile}: amended")]
        elif profile in run:
            columns.append((profile, "verdict", profile))
        if profile in by_profile:
            columns.append((profile, "bundle", f"{profile}: results/{profile}" if profile in run else profile))
    if not columns:
        columns.append(("", "placeholder", "verdict"))
    head = "".join(f'<th scope="col">{escape(header)}</th>' for _, _, header in columns)
    rows = []
    paper = None
    for finding in FINDINGS.values():
        if finding.paper != paper:
            paper = finding.paper
            rows.append(f'<tr class="nc-paper"><th colspan="{len(columns) + 3}" scope="rowgroup">'
                        f'{escape(PAPERS.get(paper, paper))}</th></tr>')
        entries = {profile: recorded.get(profile, {}).get("findings", {}).get(finding.id) for profile in run}
        cells = []
        for profile, kind, header in columns:
            entry = entries.get(profile)
            changes = amended.get(profile, {}).get(finding.id, [])
            if kind == "placeholder":
                content = _badge(placeholder(finding.id))
            elif kind == "bundle":
                bundle = by_profile[profile]
                content = _bundle_cell(bundle, bundle.sections["findings"].get(finding.id), finding.id)
            elif kind == "original" and changes:
                content = _original_cell(changes)
            elif kind == "amended" and not changes:
                content = '<span class="nc-not-amended">not amended</span>'
            else:
                content = _verdict_cell(entry, finding.id, outdated=entry is not None and is_outdated(profile, entry))
            cells.append(f'<td data-profile="{escape(profile)}" data-kind="{kind}" data-label="{escape(header)}">'
                         f"{content}</td>")
        rows.append(f'<tr data-id="{escape(finding.id)}"><th scope="row">'
                    f'<a href="#{_anchor(finding.id)}">{escape(finding.id)}</a></th>'
                    f'<td class="nc-claim" data-label="Paper\'s claim">{tex_html(finding.claim)}</td>'
                    f'<td class="nc-scale" data-label="Scale">{_scale_html(finding, entries)}</td>{"".join(cells)}</tr>')
    legend = " ".join(_badge(state) for state in BADGE_CLASSES)
    return (
        '<div class="nc-scoreboard">\n'
        f'<p class="nc-legend">{legend}</p>\n'
        + _not_run_line(not_run, run + [profile for profile in by_profile if profile not in run])
        + '<div class="nc-matrix-scroll"><table class="nc-matrix nc-stack">'
        f'<thead><tr><th scope="col">Finding</th><th scope="col" class="nc-claim">Paper\'s claim</th>'
        f'<th scope="col">Scale</th>{head}</tr></thead>'
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


def _chapter_title(stem: str) -> str:
    """A chapter's title, as its declaration gives it, else its stem in words."""
    try:
        return chapters.chapter(stem).title
    except KeyError:
        return stem.replace("_", " ")


#: The profile whose verdicts the introduction shows first, then the others in this order.
HEADLINE_PROFILES = ("cpu", "long", "gpu", "paper", "smoke")


def headline_profile(content: Mapping[str, Any]) -> str:
    """The profile the introduction shows: ``cpu`` when it has verdicts, else the first that has."""
    recorded = content.get("profiles", {})
    return next((profile for profile in HEADLINE_PROFILES if recorded.get(profile, {}).get("findings")), "cpu")


def findings_markdown(content: Mapping[str, Any] | None = None, profile: str | None = None) -> str:
    """Render the introduction's table of findings: claim, verdict with its number, scale, reason, chapter.

    Parameters
    ----------
    content : dict, optional
        Merged findings content (:func:`~ncutils.book.findings.load`); defaults to the last
        build's ``_build/findings.json`` (empty when there is none).
    profile : str, optional
        Whose verdicts to show; defaults to :func:`headline_profile` (``cpu`` when it has any).

    Returns
    -------
    str
        A sentence naming the profile, then an HTML table (one row per finding of
        :data:`FINDINGS`: id and paper, claim with its chapter's link, verdict with the
        measured number and the criterion, a one-line reason, the scale); stacked into one
        card per finding on narrow screens by ``companion.css``.
    """
    if content is None:
        content = load(provenance.project_root() / "_build" / "findings.json")
    profile = profile or headline_profile(content)
    sections = content.get("profiles", {}).get(profile, {})
    recorded = sections.get("findings", {})
    escape = html.escape
    rows = []
    for finding in FINDINGS.values():
        entry = recorded.get(finding.id)
        chapter = (f'<a href="generated/{escape(finding.chapter)}.html">{tex_html(_chapter_title(finding.chapter))}</a>'
                   if finding.chapter else "no chapter yet")
        reason = tex_html(_one_line_reason(entry)) if entry else ""
        dates = [item["date"] for item in sections.get("amendments", {}).get(finding.id, [])]
        if dates:
            reason += (" " if reason else "") + f'<span class="nc-amended-on">(criterion amended {escape(", ".join(dates))})</span>'
        rows.append(
            f'<tr data-id="{escape(finding.id)}">'
            f'<th scope="row"><a href="scoreboard.html#{_anchor(finding.id)}">{escape(finding.id)}</a>'
            f'<span class="nc-paper-name">{escape(PAPERS.get(finding.paper, finding.paper))}</span></th>'
            f'<td class="nc-claim" data-label="Claim">{tex_html(finding.claim)}'
            f'<span class="nc-chapter-link">Chapter: {chapter}</span></td>'
            f'<td data-label="Verdict ({escape(profile)})">{_verdict_cell(entry, finding.id, reason=False)}</td>'
            f'<td class="nc-why" data-label="Why">{reason}</td>'
            f'<td class="nc-scale" data-label="Scale">{_scale_html(finding, {profile: entry}, paper=False)}</td></tr>'
        )
    lead = (f"Verdicts of the **{profile}** profile, each with the number it rests on and the criterion it is "
            "held against; every profile's verdicts are on the {doc}`scoreboard`.")
    if not recorded:
        lead = (f"No verdict of the **{profile}** profile has been recorded in this build yet (build the book to "
                "fill this table); the {doc}`scoreboard` shows every profile.")
    table = (
        '<div class="nc-matrix-scroll"><table class="nc-matrix nc-landing nc-stack">'
        f'<thead><tr><th scope="col">Finding</th><th scope="col" class="nc-claim">Claim</th>'
        f'<th scope="col">Verdict ({escape(profile)})</th><th scope="col">Why</th><th scope="col">Scale</th>'
        f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )
    return f"{lead}\n\n{table}\n"


def scoreboard_markdown(
    content: Mapping[str, Any],
    profiles: Iterable[str],
    *,
    outdated: Mapping[str, Iterable[str]] | None = None,
    bundles: Sequence[Any] = (),
) -> str:
    """Render the scoreboard (MyST Markdown with one raw HTML block) from a findings content.

    Parameters
    ----------
    content : dict
        Merged findings content (:func:`load`, :func:`merge`).
    profiles : iterable of str
        Profiles to show, in column order. A profile that recorded no finding at all is
        named in one line above the table instead of a column of ``not yet run``. Every
        finding gets a cell for every other profile: the badge of its verdict (the word on a
        colour, :data:`BADGE_CLASSES`) with the measured number and the criterion beside it,
        or the badge of :func:`placeholder` (``no chapter yet`` / ``not yet run``); where a
        criterion was amended, the pre-registered verdict sits beside the amended one.
    outdated : mapping, optional
        Profile -> notebook stems whose stored results predate a change of the
        notebook, its parameters or ``ncutils``; their badges say so.
    bundles : sequence of :class:`~ncutils.book.bundles.Bundle`, optional
        Results of other builds (``results/<profile>/``): each gets a column after its
        profile's, its verdicts with their provenance (commit, machine, device, date) and a
        link to the bundle's notebook; a chapter whose digest or parameters differ from
        today's shows "stale (built at <commit>)" instead of a verdict.

    Returns
    -------
    str
        The finding x profile table (HTML: claim, scale and a verdict cell per profile, one row
        group per paper; one card per finding on a phone), then per finding its paper's claim, tested claim, criterion and the verdict
        of each profile with the number it rests on, then every record with its provenance
        and amendments, and the library checks.
    """
    profiles = list(profiles)
    outdated = {profile: set(stems) for profile, stems in (outdated or {}).items()}
    recorded = content.get("profiles", {})

    def is_outdated(profile: str, entry: Mapping[str, Any]) -> bool:
        return entry["provenance"].get("notebook") in outdated.get(profile, set())

    run, not_run = _run_profiles(recorded, profiles)
    lines = [_matrix_html(recorded, profiles, is_outdated, bundles), "## Criteria and tested claims", ""]
    for finding in FINDINGS.values():
        entries = {profile: recorded.get(profile, {}).get("findings", {}).get(finding.id) for profile in run}
        present = {profile: entry for profile, entry in entries.items() if entry is not None}
        verdict_items = [
            f"{profile}: **{placeholder(finding.id)}**" if entry is None
            else f"{profile}: **{entry['verdict']}**"
            + tex_text(_verdict_text(entry, is_outdated(profile, entry))[len(entry["verdict"]):])
            for profile, entry in entries.items()
        ]
        if not_run:
            verdict_items.append(f"not run: {', '.join(not_run)}")
        scale = finding_scale(finding, entries)
        # A record always shows, even for a finding the registry gives no chapter: the data win.
        lines += [
            f"({_anchor(finding.id)})=",
            f"### {finding.id} · {PAPERS.get(finding.paper, finding.paper)}",
            "",
            f"- *Paper's claim* ({{cite:t}}`{finding.paper}`): {tex_text(finding.claim)}",
            f"- *Tested claim*: {tex_text(_by_profile({p: e['tested'] for p, e in present.items() if e.get('tested')}))}",
            f"- *Criterion*: {tex_text(_by_profile({p: e['criterion'] for p, e in present.items()}))}",
            *([f"- *Scale*: {tex_text(scale)}"] if scale else []),
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
                    verdict += f": {_cell(tex_text(entry['reason']))}"
                if is_outdated(profile, entry):
                    verdict += " (outdated)"
                dates = [item["date"] for item in amendments.get(identifier, [])] if section == "findings" else []
                if dates:
                    verdict += f"; amended {', '.join(dates)}"
                cells = [_cell(identifier), profile]
                if section == "checks":  # a check's description is nowhere else on the page
                    cells.append(_cell(tex_text(entry["claim"])))
                cells += [
                    _cell(tex_text(format_value(entry["value"]))),
                    verdict,
                    _chapter_link(entry),
                    _cell(f"seed {origin.get('seed')}, {origin.get('device')}, {commit}"),
                ]
                rows.append("| " + " | ".join(cells) + " |")
    lines += [
        "## Every recorded verdict",
        "",
        "Each record with its provenance; the claims, tested claims and criteria are in the section above.",
        "",
    ]
    lines += ["| Id | Profile | Value | Verdict | Chapter | Provenance |", "|---|---|---|---|---|---|"] + detail_rows \
        if detail_rows else ["No finding has been recorded yet."]
    lines += [
        "",
        "## Checks of the library",
        "",
        "Known-answer checks of `ncutils` itself. They are not findings of the papers and do not count above.",
        "",
    ]
    lines += ["| Id | Profile | Check | Value | Verdict | Chapter | Provenance |", "|---|---|---|---|---|---|---|"] \
        + check_rows if check_rows else ["No check has been recorded yet."]
    return "\n".join(lines) + "\n"
