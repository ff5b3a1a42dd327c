"""How the book shows a recorded verdict: the card, the verdict box, the amendment card, and the
math in their text.

:mod:`ncutils.book.findings` records verdicts (the record, the findings file, the glued values);
this module turns a record into what a page shows of it, in HTML for the book and as text
elsewhere. The same forms render the records of a result bundle (:mod:`ncutils.book.bundles`) and
the scoreboard's cells (:mod:`ncutils.book.scoreboard`), so a verdict reads the same everywhere.
Each card's colour is one CSS class per state (``nc-pass``, ``nc-fail``, ``nc-inconclusive``,
styled in ``book/_static/companion.css``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ncutils import verdicts
from ncutils.book import provenance

__all__ = ["AmendmentCard", "Card", "VerdictBox", "format_value", "readable_dicts", "status_class", "tex_html",
           "tex_text"]


# --------------------------------------------------------------------------- math in rendered text


_GREEK = ("alpha|beta|gamma|delta|epsilon|eta|theta|kappa|lambda|mu|nu|rho|sigma|tau|phi|omega|"
          "Gamma|Delta|Theta|Lambda|Sigma|Phi|Omega")
_BRACED = r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}"  # {...} with one level of nested braces
_ASCII_GREEK = re.compile(rf"(?<![\w\\$])({_GREEK})(?:_({_BRACED}|[A-Za-z0-9']+))?(?:\^({_BRACED}|[A-Za-z0-9]+))?(?![\w])")
_ASCII_POWER = re.compile(rf"(?<![\w\\$^])([A-Za-z])\^({_BRACED}|[0-9A-Za-z]+)(?![\w])")
_TEX_SEGMENT = re.compile(r"(\$[^$\n]+\$)")
_OPERATORS = {"<=": "≤", ">=": "≥", "!=": "≠"}


def _greek_tex(match: re.Match) -> str:
    name, subscript, superscript = match.groups()
    tex = "\\" + name
    if subscript == "hat":
        tex, subscript = f"\\hat{{{tex}}}", None
    if subscript:
        tex += "_" + (subscript if subscript.startswith("{") or len(subscript) == 1 else f"{{{subscript}}}")
    if superscript:
        tex += "^" + (superscript if superscript.startswith("{") or len(superscript) == 1 else f"{{{superscript}}}")
    return f"${tex}$"


def _power_tex(match: re.Match) -> str:
    base, power = match.groups()
    return f"${base}^{power if power.startswith('{') or len(power) == 1 else '{' + power + '}'}$"


_DICT_REPR = re.compile(r"\{\s*'[^'{}]+'\s*:[^{}]*\}")
_DICT_ITEM = re.compile(r"'([^']+)'\s*:\s*('[^']*'|[^,}]+)")


def readable_dicts(text: str) -> str:
    """Python dict reprs in a chapter's text as settings: ``{'depth': 3, 'width': 32}`` reads ``(depth=3, width=32)``.

    Example
    -------
    >>> readable_dicts("MLP {'depth': 3, 'width': 32} on digits")
    'MLP (depth=3, width=32) on digits'
    """
    def settings(match: re.Match) -> str:
        items = [f"{key}={value.strip().strip(chr(39))}" for key, value in _DICT_ITEM.findall(match.group(0))]
        return f"({', '.join(items)})" if items else match.group(0)
    return _DICT_REPR.sub(settings, text)


def tex_text(text: Any) -> str:
    r"""Write the ASCII math of a chapter's text as TeX between ``$``, for MathJax.

    Greek letters spelt out (``lambda_{K^2}``, ``Sigma_W``, ``alpha_hat``, ``alpha``), single-letter
    powers (``K^2``) and ``<=``, ``>=``, ``!=`` (as ``≤``, ``≥``, ``≠``); text already between ``$`` is
    kept as it is. A Python dict of settings reads as ``(depth=3, width=32)``.

    Example
    -------
    >>> tex_text("lambda_{K^2} >= 10 x lambda_{K^2+1} when alpha > beta; tr Sigma_W, K^2 outliers")
    '$\\lambda_{K^2}$ ≥ 10 x $\\lambda_{K^2+1}$ when $\\alpha$ > $\\beta$; tr $\\Sigma_W$, $K^2$ outliers'
    """
    def outside_math(text: str, change) -> str:
        parts = _TEX_SEGMENT.split(text)
        parts[::2] = [change(part) for part in parts[::2]]  # even parts are outside $...$
        return "".join(parts)

    def operators(part: str) -> str:
        for ascii_operator, symbol in _OPERATORS.items():
            part = part.replace(ascii_operator, symbol)
        return part

    text = outside_math(readable_dicts(str(text)), operators)
    text = outside_math(text, lambda part: _ASCII_GREEK.sub(_greek_tex, part))
    return outside_math(text, lambda part: _ASCII_POWER.sub(_power_tex, part))


def tex_html(text: Any) -> str:
    r"""Escape text for HTML with its math (:func:`tex_text`) as MathJax inline math.

    The math is written as Sphinx writes it (``<span class="math notranslate nohighlight">\(...\)</span>``),
    which the book's MathJax typesets inside raw HTML too.

    Example
    -------
    >>> tex_html("a < b and alpha")
    'a &lt; b and <span class="math notranslate nohighlight">\\(\\alpha\\)</span>'
    """
    parts = _TEX_SEGMENT.split(tex_text(text))
    return "".join(
        html.escape(part) if index % 2 == 0
        else f'<span class="math notranslate nohighlight">\\({html.escape(part[1:-1])}\\)</span>'
        for index, part in enumerate(parts)
    )


def format_value(value: Any) -> str:
    """A measured value as a verdict shows it: four significant digits, ``—`` for none.

    None is what an inconclusive test that measured nothing records; captions keep
    :func:`ncutils.book.provenance.format_value`'s default digits.

    Example
    -------
    >>> format_value(0.123456), format_value(None), format_value([1.0, 2.5])
    ('0.1235', '—', '[1, 2.5]')
    """
    return "—" if value is None else provenance.format_value(value, digits=4, separator=", ")


# The card's colour: one CSS class per state (companion.css).
_STATUS = {
    verdicts.REPRODUCED: "pass",
    verdicts.NOT_REPRODUCED: "fail",
    verdicts.INCONCLUSIVE: "inconclusive",
    "passed": "pass",
    "failed": "fail",
}


def status_class(verdict: str) -> str:
    """The CSS class suffix of a verdict's colour (``nc-<suffix>``): ``pass``, ``fail`` or ``inconclusive``."""
    return _STATUS.get(verdict, "inconclusive")


def _runs_text(runs: Mapping[str, Any]) -> str:
    text = f"{runs['passed']} of {runs['eligible']} eligible runs pass"
    extras = [part for part in (runs.get("threshold"),
                                None if runs.get("margin") is None else f"margin {runs['margin']:.2g}") if part]
    return text + (f" ({'; '.join(extras)})" if extras else "")


def _provenance_html(record: Mapping[str, Any]) -> str:
    """A card's provenance (profile, seed, device, commit, parameters), folded: one click away."""
    return (f'<details class="nc-provenance"><summary>Provenance</summary>'
            f"<p>{html.escape(provenance.describe(record))}</p></details>")


class Card:
    """Display object for a verdict: HTML in the book, text elsewhere."""

    def __init__(self, entry: dict[str, Any], amended: Iterable[str] = ()) -> None:
        self.entry = entry
        self.amended = list(amended)

    def _repr_html_(self) -> str:
        entry = self.entry
        status = status_class(entry["verdict"])
        escape = html.escape
        lines = [f"<p>{tex_html(entry['claim'])}</p>"]
        if entry.get("tested"):
            lines.append(f"<p><em>Tested:</em> {tex_html(entry['tested'])}</p>")
        measured = [f"<em>Criterion:</em> {tex_html(entry['criterion'])}",
                    f"<em>Measured:</em> {tex_html(format_value(entry['value']))}"]
        if entry.get("runs"):
            measured.append(f"<em>Runs:</em> {tex_html(_runs_text(entry['runs']))}")
        if entry.get("reason"):
            measured.append(f"<em>Reason:</em> {tex_html(entry['reason'])}")
        if self.amended:
            measured.append(f"<em>Criterion amended:</em> {escape(', '.join(self.amended))} (see the amendment)")
        lines.append("<p>" + "<br>".join(measured) + "</p>")
        return (
            f'<div class="nc-verdict nc-{status}" data-id="{escape(entry["id"])}">'
            f'<p class="nc-verdict-title"><strong>{escape(entry["id"])}: {escape(entry["verdict"])}</strong></p>'
            + "".join(lines)
            + _provenance_html(entry["provenance"])
            + "</div>"
        )

    def __repr__(self) -> str:
        entry = self.entry
        verdict = entry["verdict"] + (f" ({entry['reason']})" if entry.get("reason") else "")
        return (
            f"{entry['id']}: {verdict} (measured {format_value(entry['value'])}; "
            f"criterion: {entry['criterion']})"
        )


class VerdictBox:
    """The answer at the top of a chapter: claim, scale beside the paper's, number, verdict, reason.

    Glued as ``<ID>_box`` by :func:`ncutils.book.findings.record`; the chapter pastes it under its title with
    ```` ```{glue} <ID>_box``` ````. Where the criterion was amended, the earlier criterion
    and its result are shown beside the one that decides the verdict.
    """

    def __init__(self, entry: Mapping[str, Any], amendments: Sequence[Mapping[str, Any]], paper_claim: str) -> None:
        self.entry = entry
        self.amendments = list(amendments)
        self.paper_claim = paper_claim

    def _rows(self) -> list[tuple[str, str]]:
        entry = self.entry
        rows = [("The paper's claim", self.paper_claim)]
        if entry.get("scale"):
            rows.append(("Tested at", entry["scale"]))
        if entry.get("paper_setting"):
            rows.append(("The paper's setting", entry["paper_setting"]))
        rows.append(("Criterion", entry["criterion"]))
        rows.append(("Measured", format_value(entry["value"])))
        if entry.get("runs"):
            rows.append(("Runs", _runs_text(entry["runs"])))
        if entry.get("reason"):
            rows.append(("Why", entry["reason"]))
        for amendment in self.amendments:
            earlier = amendment["original"]
            if amendment.get("original_result"):
                earlier += f" (its result: {amendment['original_result']})"
            rows.append((f"Before the amendment of {amendment['date']}", earlier))
        return rows

    def _repr_html_(self) -> str:
        entry = self.entry
        status = status_class(entry["verdict"])
        escape = html.escape
        body = "".join(f"<dt>{escape(label)}</dt><dd>{tex_html(str(text))}</dd>" for label, text in self._rows())
        return (f'<div class="verdict-box nc-{status}" data-id="{escape(entry["id"])}">'
                f'<p class="verdict-box-title"><strong>{escape(entry["id"])}: {escape(entry["verdict"])}</strong></p>'
                f"<dl>{body}</dl></div>")

    def __repr__(self) -> str:
        return f"{self.entry['id']}: {self.entry['verdict']}\n" + "\n".join(
            f"  {label}: {text}" for label, text in self._rows())


class AmendmentCard:
    """Display object for an amendment: HTML in the book, text elsewhere."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    def _repr_html_(self) -> str:
        entry = self.entry
        escape = html.escape
        rows = [f"<em>Pre-registered criterion:</em> {tex_html(entry['original'])}"]
        if entry.get("original_result"):
            rows.append(f"<em>Its result:</em> {tex_html(entry['original_result'])}")
        rows += [f"<em>Amended criterion:</em> {tex_html(entry['replacement'])}",
                 f"<em>Reason:</em> {tex_html(entry['reason'])}"]
        return (
            f'<div class="nc-amendment" data-id="{escape(entry["id"])}">'
            f'<p class="nc-amendment-title"><strong>Amendment to {escape(entry["id"])}, '
            f'{escape(entry["date"])}</strong></p>'
            "<p>" + "<br>".join(rows) + "</p>"
            + _provenance_html(entry["provenance"])
            + "</div>"
        )

    def __repr__(self) -> str:
        entry = self.entry
        result = f" (its result: {entry['original_result']})" if entry.get("original_result") else ""
        return (
            f"Amendment to {entry['id']}, {entry['date']}: {entry['original']!r}{result} -> "
            f"{entry['replacement']!r}; reason: {entry['reason']}"
        )
