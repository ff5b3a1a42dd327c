"""Reading the bundles under ``results/`` into the build: each chapter fresh or stale against today's code and parameters."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ncutils.book.profiles import PROFILES, Job
from ncutils.book.bundles.layout import BundleError, PAGES, RESULTS
from ncutils.book.bundles.digests import chapter_digest
from ncutils.book.bundles.checking import _require, verify

__all__ = ["Bundle", "ChapterStatus", "load_bundles"]


@dataclass(frozen=True)
class ChapterStatus:
    """A bundle's chapter against today's code: fresh, or stale with the reason."""

    stem: str
    stale: bool
    reason: str = ""
    commit: str | None = None

    @property
    def label(self) -> str:
        """``fresh`` or ``stale (built at <commit>)``."""
        return f"stale (built at {(self.commit or 'an unknown commit')[:7]})" if self.stale else "fresh"

@dataclass
class Bundle:
    """A bundle that passed :func:`verify`, with each chapter's status against today's book."""

    profile: str
    path: Path
    manifest: dict[str, Any]
    sections: dict[str, Any]
    notebooks: dict[str, Any] = field(repr=False)
    chapters: dict[str, ChapterStatus] = field(default_factory=dict)

    @property
    def commit(self) -> str:
        git = self.manifest["git"]
        return (git.get("commit") or "no git")[:7] + ("+dirty" if git.get("dirty") else "")

    @property
    def device(self) -> str:
        return ", ".join(self.manifest["devices"]) or "unknown device"

    @property
    def date(self) -> str:
        return str(self.manifest.get("built_at") or self.manifest["exported_at"])[:10]

    def origin(self) -> str:
        """One line: ``results/gpu: commit abc1234, <machine>, <device>, 2026-12-01``."""
        return f"{RESULTS}/{self.profile}: commit {self.commit}, {self.manifest['machine']}, {self.device}, {self.date}"

    def status(self, entry: Mapping[str, Any]) -> ChapterStatus | None:
        """The status of the chapter a record comes from (None: not a chapter of today's book)."""
        return self.chapters.get(entry["provenance"].get("notebook"))

    def page(self, stem: str) -> str:
        """The bundle notebook's page, from the source root: ``book/generated/bundles/<profile>/<stem>``."""
        return f"book/generated/{PAGES}/{self.profile}/{stem}"

def _defanged(value: Any) -> Any:
    """A bundle's texts with every backslash shown as U+2216: no TeX command of theirs reaches MathJax."""
    if isinstance(value, str):
        return value.replace("\\", "\u2216")
    if isinstance(value, list):
        return [_defanged(item) for item in value]
    if isinstance(value, dict):
        return {key: _defanged(item) for key, item in value.items()}
    return value

def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

def load_bundles(root: Path, all_jobs: Mapping[str, Sequence[Job]], *, quiet: bool = False) -> list[Bundle]:
    """Every bundle under ``results/`` that passes :func:`verify`, in profile order.

    A bundle that does not is refused with one line on the console (``bundle results/gpu
    refused: ...``) and left out; the build goes on. Each chapter's status compares the
    bundle's digest and parameters with today's (:func:`chapter_digest`, the profile's jobs).
    """
    results = Path(root) / RESULTS
    if not results.is_dir():
        return []
    digests: dict[str, str] = {}
    found = []
    for folder in sorted(results.iterdir(), key=lambda path: (PROFILES.index(path.name) if path.name in PROFILES
                                                                else len(PROFILES), path.name)):
        if folder.name.startswith(".") or not (folder.is_dir() or folder.is_symlink()):
            continue
        try:
            _require(folder.name in PROFILES, f"the folder is not named after a profile ({', '.join(PROFILES)})")
            manifest, sections, notebooks = verify(folder, folder.name)
        except BundleError as error:
            if not quiet:
                print(f"warning: bundle {RESULTS}/{folder.name} refused: {error}", file=sys.stderr, flush=True)
            continue
        jobs = {job.stem: job for job in all_jobs.get(manifest["profile"], [])}
        bundle = Bundle(manifest["profile"], folder, _defanged(manifest), _defanged(sections), notebooks)
        for stem, entry in manifest["chapters"].items():
            if stem not in jobs:
                continue  # a chapter today's book no longer has: not shown
            if stem not in digests:
                digests[stem] = chapter_digest(root, stem)[0]
            commit = entry.get("git_commit") or manifest["git"].get("commit")
            if entry["digest"] != digests[stem]:
                reason = "the code it depends on changed since"
            elif _jsonable(entry["parameters"]) != _jsonable(jobs[stem].parameters):
                reason = f"its parameters at profile {manifest['profile']} changed since"
            else:
                reason = ""
            bundle.chapters[stem] = ChapterStatus(stem, bool(reason), reason, commit)
        found.append(bundle)
    return found
