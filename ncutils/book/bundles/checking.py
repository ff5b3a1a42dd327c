"""Checking a bundle before anything of it is used: files against their checksums, manifest and findings against the schema."""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from ncutils.book import findings
from ncutils.book.profiles import PROFILES
from ncutils.book.bundles.layout import BundleError, CHECKSUMS, SCHEMA, _COMMIT, _HEX64, _STATES, _STEM
from ncutils.book.bundles.exporting import _sha256

__all__ = ["verify"]


def _checked_files(folder: Path) -> dict[str, Path]:
    """Every file of a bundle against ``SHA256SUMS``: relative path -> file."""
    if folder.is_symlink() or not folder.is_dir():
        raise BundleError("not a folder")
    present: dict[str, Path] = {}
    for directory, folders, names in os.walk(folder):
        for name in folders + names:
            path = Path(directory) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise BundleError(f"{relative} is a symbolic link")
            if name in names:
                if not path.is_file():
                    raise BundleError(f"{relative} is not a plain file")
                present[relative] = path
    if CHECKSUMS not in present:
        raise BundleError(f"no {CHECKSUMS}")
    del present[CHECKSUMS]
    listed: dict[str, str] = {}
    try:
        lines = (folder / CHECKSUMS).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BundleError(f"{CHECKSUMS} is not text") from None
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64})  (\S.*)", line)
        if not match:
            raise BundleError(f"{CHECKSUMS} line {number} is not '<sha256>  <path>'")
        digest, relative = match.groups()
        if relative in listed or relative.startswith("/") or "\\" in relative \
                or posixpath.normpath(relative) != relative or relative.startswith(".."):
            raise BundleError(f"{CHECKSUMS} line {number}: bad or repeated path {relative!r}")
        listed[relative] = digest
    for relative in sorted(listed):
        if relative not in present:
            raise BundleError(f"{relative} is listed in {CHECKSUMS} but missing")
    for relative in sorted(present):
        if relative not in listed:
            raise BundleError(f"{relative} is not listed in {CHECKSUMS}")
        if _sha256(present[relative]) != listed[relative]:
            raise BundleError(f"{relative} does not match its checksum in {CHECKSUMS}")
    return present

def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BundleError(message)

def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)

def _check_manifest(manifest: Any, profile: str | None) -> None:
    _require(isinstance(manifest, dict), "manifest.json is not a mapping")
    _require(manifest.get("schema") == SCHEMA, f"manifest.json: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    _require(manifest.get("profile") in PROFILES, f"manifest.json: unknown profile {manifest.get('profile')!r}")
    _require(profile is None or manifest["profile"] == profile,
             f"manifest.json: profile {manifest['profile']!r} in the folder of profile {profile!r}")
    for key in ("exported_at", "machine"):
        _require(isinstance(manifest.get(key), str), f"manifest.json: {key} must be a text")
    _require(_optional_text(manifest.get("built_at")), "manifest.json: built_at must be a text")
    _require(isinstance(manifest.get("devices"), list) and all(isinstance(d, str) for d in manifest["devices"]),
             "manifest.json: devices must be a list of texts")
    git = manifest.get("git")
    _require(isinstance(git, dict) and isinstance(git.get("dirty"), bool) and _optional_text(git.get("branch"))
             and (git.get("commit") is None or (isinstance(git["commit"], str) and _COMMIT.match(git["commit"]))),
             "manifest.json: git must hold commit (hex or null), dirty (true/false) and branch")
    for key in ("environment", "hardware"):
        _require(isinstance(manifest.get(key), dict), f"manifest.json: {key} must be a mapping")
    chapters = manifest.get("chapters")
    _require(isinstance(chapters, dict) and chapters, "manifest.json: chapters must be a non-empty mapping")
    for stem, entry in chapters.items():
        _require(bool(_STEM.match(stem)), f"manifest.json: bad chapter name {stem!r}")
        _require(isinstance(entry, dict), f"manifest.json: chapter {stem} is not a mapping")
        _require(isinstance(entry.get("digest"), str) and bool(_HEX64.match(entry["digest"])),
                 f"manifest.json: chapter {stem} has no sha256 digest")
        _require(isinstance(entry.get("parameters"), dict), f"manifest.json: chapter {stem} has no parameters")
        _require(entry.get("notebook") == f"notebooks/{stem}.ipynb",
                 f"manifest.json: chapter {stem}'s notebook must be notebooks/{stem}.ipynb")
        _require(entry.get("git_commit") is None or (isinstance(entry["git_commit"], str)
                                                      and bool(_COMMIT.match(entry["git_commit"]))),
                 f"manifest.json: chapter {stem}'s git_commit must be hex or null")
        _require(_optional_text(entry.get("finished_at")), f"manifest.json: chapter {stem}'s finished_at must be a text")

def _check_entry(identifier: str, entry: Any, section: str, stems: set[str]) -> None:
    where = f"findings.json: {section} {identifier!r}"
    _require(isinstance(entry, dict), f"{where} is not a mapping")
    _require(entry.get("id") == identifier, f"{where} has another id")
    _require(entry.get("verdict") in _STATES, f"{where}: unknown verdict {entry.get('verdict')!r}")
    for key in ("claim", "criterion"):
        _require(isinstance(entry.get(key), str), f"{where}: {key} must be a text")
    for key in ("reason", "tested", "scale", "paper_setting"):
        _require(key not in entry or _optional_text(entry[key]) or key == "scale", f"{where}: {key} must be a text")
    runs = entry.get("runs")
    _require(runs is None or (isinstance(runs, dict) and isinstance(runs.get("passed"), int)
                              and isinstance(runs.get("eligible"), int)), f"{where}: runs must hold passed and eligible")
    origin = entry.get("provenance")
    _require(isinstance(origin, dict) and origin.get("notebook") in stems,
             f"{where}: its provenance names no chapter of the bundle")

def _check_findings(content: Any, profile: str, stems: set[str]) -> dict[str, Any]:
    _require(isinstance(content, dict) and content.get("schema") == findings.SCHEMA
             and isinstance(content.get("profiles"), dict), "findings.json is not a findings file")
    _require(set(content["profiles"]) <= {profile}, f"findings.json holds profiles other than {profile}")
    sections = content["profiles"].get(profile, {})
    _require(isinstance(sections, dict), "findings.json: the profile's section is not a mapping")
    for section in ("findings", "checks"):
        entries = sections.get(section, {})
        _require(isinstance(entries, dict), f"findings.json: {section} is not a mapping")
        for identifier, entry in entries.items():
            _check_entry(identifier, entry, section, stems)
    amendments = sections.get("amendments", {})
    _require(isinstance(amendments, dict) and all(
        isinstance(items, list) and all(isinstance(item, dict) and all(isinstance(item.get(key), str) for key in
                                                                       ("date", "original", "replacement", "reason"))
                                        for item in items) for items in amendments.values()),
             "findings.json: amendments are malformed")
    return {section: dict(sections.get(section, {})) for section in ("findings", "checks", "amendments")}

def verify(folder: Path, profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check a bundle: its checksums, then its schema; nothing in it is executed.

    Parameters
    ----------
    folder : pathlib.Path
        The bundle's folder.
    profile : str, optional
        The profile the bundle must be of (the folder name under ``results/``).

    Returns
    -------
    (dict, dict, dict)
        The manifest, the profile's findings sections, and the notebooks by chapter stem.

    Raises
    ------
    BundleError
        With a one-line reason: a file missing, added or changed against ``SHA256SUMS``, a
        symbolic link, a manifest or findings file that breaks the schema, a notebook that
        does not read.
    """
    import nbformat

    folder = Path(folder)
    files = _checked_files(folder)
    documents = {}
    for name in ("manifest.json", "findings.json"):
        _require(name in files, f"no {name}")
        try:
            documents[name] = json.loads(files[name].read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise BundleError(f"{name} is not JSON ({type(error).__name__})") from None
    manifest = documents["manifest.json"]
    _check_manifest(manifest, profile)
    stems = set(manifest["chapters"])
    sections = _check_findings(documents["findings.json"], manifest["profile"], stems)
    notebooks = {}
    for stem, entry in manifest["chapters"].items():
        _require(entry["notebook"] in files, f"{entry['notebook']} is missing")
        try:
            notebook = nbformat.reads(files[entry["notebook"]].read_text(encoding="utf-8"), as_version=4)
            nbformat.validate(notebook)
        except Exception as error:  # nbformat raises JSON, Unicode and validation errors
            raise BundleError(f"{entry['notebook']} is not a valid notebook ({type(error).__name__})") from None
        notebooks[stem] = notebook
    return manifest, sections, notebooks
