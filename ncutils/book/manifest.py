"""The build manifest: what ran, where, with which code, and how long it took.

:func:`build_manifest` collects it after the notebooks of a profile have run;
the build writes it to ``_build/manifest.json`` and, through
:func:`manifest_markdown`, to the tables of the book's reproducibility page.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any, Sequence

from ncutils.book import provenance

__all__ = ["build_manifest", "manifest_markdown"]

def _git_branch(root: Path) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        completed = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root, capture_output=True, text=True, timeout=20
        )
        if completed.returncode == 0:
            return completed.stdout.strip()
    return None


def build_manifest(root: Path, profile: str, records: Sequence[dict[str, Any]], git: dict[str, Any]) -> dict[str, Any]:
    """Collect what the reproducibility page shows about this build."""
    devices = sorted({str(record["parameters"].get("device", "cpu")) for record in records}) or ["cpu"]
    return {
        "profile": profile,
        "built_at": provenance.utc_now(),
        "git": {**git, "branch": _git_branch(root)},
        "environment": provenance.environment(),
        "hardware": {device: provenance.device_info(device) for device in devices},
        "notebooks": [
            {
                "notebook": record["notebook"],
                "status": record["status"],
                "seconds": record["seconds"],
                "finished_at": record["finished_at"],
                "git_commit": record.get("git_commit"),
                "parameters": record["parameters"],
            }
            for record in records
        ],
        "notebook_seconds_this_build": round(sum(r["seconds"] for r in records if r["status"] == "ran"), 2),
        "notebook_seconds_total": round(sum(r["seconds"] for r in records), 2),
    }


def _md_cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def manifest_markdown(manifest: dict[str, Any]) -> str:
    """Render a manifest as the Markdown tables of the reproducibility page."""
    git = manifest["git"]
    commit = git["commit"] or "not a git checkout"
    if git["dirty"]:
        commit += " (working tree had uncommitted changes)"
    lines = ["## This build", ""]
    lines += _md_table(
        ["", ""],
        [
            ["profile", manifest["profile"]],
            ["built at (UTC)", manifest["built_at"]],
            ["git commit", commit],
            ["branch", git.get("branch") or "—"],
            ["notebook time in this build (s)", manifest["notebook_seconds_this_build"]],
            ["notebook time if all ran (s)", manifest["notebook_seconds_total"]],
        ],
    )
    lines += ["## Timings per notebook", ""]
    lines += _md_table(
        ["notebook", "status", "time (s)", "executed at (UTC)", "commit"],
        [
            [n["notebook"], n["status"], f"{n['seconds']:.1f}", n["finished_at"], (n.get("git_commit") or "—")[:7]]
            for n in manifest["notebooks"]
        ],
    )
    lines += ["## Hardware", ""]
    lines += _md_table(
        ["device parameter", "device used", "model", "CPU cores", "torch threads", "CUDA available"],
        [
            [requested, info["device"], info["name"], info["cpu_count"], info["torch_threads"], info["cuda_available"]]
            for requested, info in manifest["hardware"].items()
        ],
    )
    environment = manifest["environment"]
    lines += ["## Software", ""]
    lines += _md_table(
        ["package", "version"],
        [["python", environment["python"]], ["platform", environment["platform"]]]
        + [[name, version or "not installed"] for name, version in environment["packages"].items()],
    )
    lines += ["## Parameters per notebook", ""]
    for notebook in manifest["notebooks"]:
        lines += [f"### {notebook['notebook']}", ""]
        lines += _md_table(["parameter", "value"], sorted(notebook["parameters"].items()))
    return "\n".join(lines)
