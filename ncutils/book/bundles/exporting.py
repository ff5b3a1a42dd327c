"""Writing a bundle of a built profile: findings, manifest, executed notebooks, figures and checksums."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ncutils._provenance import cpu_model
from ncutils.book import provenance
from ncutils.book.execute import _read_state, cached_damage, merge_findings
from ncutils.book.manifest import build_manifest
from ncutils.book.profiles import PROFILES, BookLayout, read_notebook, validate
from ncutils.book.bundles.layout import BundleError, CHECKSUMS, RESULTS, SCHEMA
from ncutils.book.bundles.digests import chapter_digest

__all__ = ["export"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

_FIGURE_IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

def _png(data: Any) -> bytes | None:
    """PNG bytes from base64 text, or None when it is not a PNG."""
    if isinstance(data, list):
        data = "".join(data)
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError:
        return None
    return raw if raw.startswith(_PNG_SIGNATURE) else None

def _figures(notebook: Any) -> list[bytes]:
    """The PNG figures of an executed notebook (image outputs and the book's HTML figures)."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            png = _png(data.get("image/png"))
            if png is not None:
                found.append(png)
            elif isinstance(data.get("text/html"), (str, list)):
                text = "".join(data["text/html"])
                found += [png for png in map(_png, _FIGURE_IMAGE.findall(text)) if png is not None]
    return found

def _machine() -> str:
    import platform

    return f"{platform.system()} {platform.machine()}, {cpu_model()}"

def _devices(manifest: Mapping[str, Any]) -> list[str]:
    return sorted({str(info.get("name")) for info in manifest.get("hardware", {}).values() if isinstance(info, dict)})

def export(profile: str, *, root: Path | None = None, output: Path | None = None,
           machine: str | None = None) -> Path:
    """Write the bundle of a built profile (see the module docstring).

    Parameters
    ----------
    profile : str
        One of :data:`~ncutils.book.profiles.PROFILES`; every chapter must have run at that
        profile with today's notebooks, parameters and code (``build --profile`` first).
    root : pathlib.Path, optional
        Repository root.
    output : pathlib.Path, optional
        The bundle's folder, replaced as a whole; default ``results/<profile>/``.
    machine : str, optional
        How the bundle names the machine; default the system and CPU model (never the host name).

    Returns
    -------
    pathlib.Path
        The bundle's folder.

    Raises
    ------
    BundleError
        A chapter that has not run, whose results predate today's code or parameters, or
        whose stored results are damaged.
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = BookLayout(root)
    if profile not in PROFILES:
        raise BundleError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    jobs = validate(root)[profile]
    state = _read_state(layout, profile)
    again = f"build it first: python -m ncutils.book build --profile {profile} (unchanged chapters are reused)"
    for job in jobs:
        entry = state.get(job.stem)
        if entry is None:
            raise BundleError(f"{job.stem} has not run at profile {profile}; {again}")
        if entry["key"] != job.key:
            raise BundleError(f"the results of {job.stem} ({profile}) predate a change of its notebook, parameters "
                              f"or ncutils; {again}")
        damage = cached_damage(layout, profile, job.stem, entry)
        if damage is not None:
            raise BundleError(f"{job.stem} ({profile}): {damage}; {again}")
    merged, _ = merge_findings(layout, {profile: jobs})
    content = {"schema": merged["schema"], "profiles": {profile: merged["profiles"].get(profile, {})}}

    manifest_path = layout.build / "manifest.json"
    build = None
    if manifest_path.exists():
        try:
            build = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            build = None
    if not isinstance(build, dict) or build.get("profile") != profile:
        # the last build was of another profile: describe this one from its state
        records = [{**state[job.stem], "notebook": job.stem, "status": "cached"} for job in jobs]
        build = build_manifest(root, profile, records, provenance.git_state(root))
    chapters_entry = {}
    for job in jobs:
        digest, modules = chapter_digest(root, job.stem)
        entry = state[job.stem]
        chapters_entry[job.stem] = {
            "digest": digest, "modules": modules, "parameters": job.parameters,
            "notebook": f"notebooks/{job.stem}.ipynb", "finished_at": entry.get("finished_at"),
            "git_commit": entry.get("git_commit"), "seconds": entry.get("seconds"),
        }
    git = build.get("git", {})
    manifest = {
        "schema": SCHEMA,
        "profile": profile,
        "exported_at": provenance.utc_now(),
        "built_at": build.get("built_at"),
        "machine": machine or _machine(),
        "devices": _devices(build),
        "git": {"commit": git.get("commit"), "dirty": bool(git.get("dirty")), "branch": git.get("branch")},
        "environment": build.get("environment", provenance.environment()),
        "hardware": build.get("hardware", {}),
        "digest_rule": "sha256 of the notebook's cells and of the code (syntax tree without docstrings) of the "
                       "ncutils modules it imports, transitively",
        "chapters": chapters_entry,
    }

    target = (layout.root / RESULTS / profile) if output is None else Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "notebooks").mkdir()
        for job in jobs:
            source = layout.profile_cache(profile) / f"{job.stem}.ipynb"
            shutil.copyfile(source, staging / "notebooks" / f"{job.stem}.ipynb")
            for number, png in enumerate(_figures(read_notebook(source)), 1):
                figure = staging / "figures" / job.stem / f"figure-{number}.png"
                figure.parent.mkdir(parents=True, exist_ok=True)
                figure.write_bytes(png)
        (staging / "findings.json").write_text(json.dumps(content, indent=1, sort_keys=True, default=str) + "\n")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
        files = sorted(path for path in staging.rglob("*") if path.is_file())
        (staging / CHECKSUMS).write_text("".join(f"{_sha256(path)}  {path.relative_to(staging).as_posix()}\n"
                                                 for path in files))
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
