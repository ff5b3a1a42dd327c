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

from ncutils.book import chapters, provenance

__all__ = ["allocation_report", "build_manifest", "manifest_markdown"]

#: The cpu book is allocated 15 minutes on 2 cores: each chapter group its declared budget
#: (:attr:`ncutils.chapter.Chapter.budget`), rendering the website this (seconds).
CPU_RENDER_ALLOCATION = 30.0

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
                "cpu_seconds": record.get("cpu_seconds"),
                "finished_at": record["finished_at"],
                "git_commit": record.get("git_commit"),
                "parameters": record["parameters"],
            }
            for record in records
        ],
        "notebook_seconds_this_build": round(sum(r["seconds"] for r in records if r["status"] == "ran"), 2),
        "notebook_seconds_total": round(sum(r["seconds"] for r in records), 2),
    }


def allocation_report(records: Sequence[dict[str, Any]], *, workers: int, cores: int = 2) -> list[dict[str, Any]]:
    """Each chapter group's time in this build beside its cpu budget (the chapters' declarations).

    ``seconds`` sums the group's notebooks' wall times; with ``workers > 1`` notebooks ran side
    by side and shared the cores, so wall times overlap and each is longer than alone.
    ``cpu_seconds / cores`` is then the fairer measure: the wall time the group's work would
    take alone on ``cores`` fully used cores (a lower bound where a chapter uses one core).
    Only notebooks that ran in this build count; a group with none is left out.

    Examples
    --------
    >>> rows = allocation_report([{"notebook": "garrod_ufm", "status": "ran", "seconds": 80.0,
    ...                            "cpu_seconds": 150.0}], workers=1)
    >>> rows[0]["group"], rows[0]["seconds"], rows[0]["cpu_seconds_per_core"], rows[0]["allocation"]
    ('Garrod G1-G3', 80.0, 75.0, 90.0)
    """
    ran = {record["notebook"]: record for record in records if record["status"] == "ran"}
    rows = []
    for budget, stems in chapters.budgets():
        group, allocation = budget.group, budget.seconds
        present = [ran[stem] for stem in stems if stem in ran]
        if not present:
            continue
        cpu = [record.get("cpu_seconds") for record in present]
        cpu_total = sum(cpu) if all(value is not None for value in cpu) else float("nan")
        rows.append({"group": group, "seconds": round(sum(r["seconds"] for r in present), 1),
                     "cpu_seconds_per_core": round(cpu_total / cores, 1), "allocation": allocation,
                     "workers": workers})
    return rows


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
        ["notebook", "status", "time (s)", "CPU time (s)", "executed at (UTC)", "commit"],
        [
            [n["notebook"], n["status"], f"{n['seconds']:.1f}",
             "—" if n.get("cpu_seconds") is None else f"{n['cpu_seconds']:.0f}", n["finished_at"],
             (n.get("git_commit") or "—")[:7]]
            for n in manifest["notebooks"]
        ],
    )
    if manifest.get("allocations"):
        lines += ["## Time against the cpu allocations", ""]
        lines += _md_table(
            ["chapters", "wall time (s)", "CPU time / 2 cores (s)", "allocation (s)"],
            [[row["group"], row["seconds"], row["cpu_seconds_per_core"], row["allocation"]]
             for row in manifest["allocations"]],
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
