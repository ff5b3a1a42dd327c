"""The registry: every chapter of the book, one line each, in scoreboard order.

Each entry is the :class:`~ncutils.chapter.Chapter` its paper module declares. The profiles,
``python -m ncutils.runs train`` and ``key``, the build, the findings, the scoreboard and the
build log's budget table all read this list; nothing else names a chapter. To add a chapter:
write its notebook, declare it in its paper module, add it here, give it an entry in every
``notebooks/profiles/*.yaml`` and a line in ``_toc.yml`` (CONTRIBUTING.md shows an example).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ncutils.chapter import Budget, Chapter, Finding
from ncutils.papers import foundations, garrod, kothapalli, parker, rangamani, yang

__all__ = ["CHAPTERS", "UNTESTED", "FindingIndex", "budgets", "chapter", "findings"]

#: Every chapter, in the order the scoreboard lists their findings.
CHAPTERS: list[Chapter] = [
    foundations.CHAPTER,
    parker.P1,
    parker.P2,
    parker.P3,
    parker.P4,
    rangamani.CHAPTER,
    yang.CHAPTER,
    kothapalli.K1,
    kothapalli.K2,
    garrod.CHAPTER,
]

#: Findings of the papers that no chapter tests yet (the scoreboard shows "no chapter yet").
UNTESTED: list[Finding] = []


def chapter(stem: str) -> Chapter:
    """The chapter declared for a notebook stem.

    Raises
    ------
    KeyError
        Naming the known chapters.
    """
    for declared in CHAPTERS:
        if declared.stem == stem:
            return declared
    raise KeyError(f"no chapter {stem!r} in the registry (ncutils.book.chapters); known: "
                   f"{', '.join(declared.stem for declared in CHAPTERS)}")


class FindingIndex(Mapping[str, Finding]):
    """Every finding of the registry's chapters by id, read from the registry at each access."""

    def _all(self) -> dict[str, Finding]:
        tested = [finding for declared in CHAPTERS for finding in declared.findings]
        return {finding.id: finding for finding in [*tested, *UNTESTED]}

    def __getitem__(self, finding_id: str) -> Finding:
        return self._all()[finding_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def findings() -> FindingIndex:
    """Every finding the book tests, by id, in scoreboard order."""
    return FindingIndex()


def budgets() -> list[tuple[Budget, list[str]]]:
    """Each budget of the cpu book with the stems of the chapters that share it, in registry order."""
    groups: dict[Budget, list[str]] = {}
    for declared in CHAPTERS:
        groups.setdefault(declared.budget, []).append(declared.stem)
    return list(groups.items())
