"""Any profile at tiny size: its own architectures, datasets, schedules and code paths, in minutes.

The gpu and paper profiles take hours on a GPU; a crash in their code paths (a dataset read
only there, an architecture or option only they use, a device mismatch) should meet nobody an
hour in. ``python -m ncutils.book build --profile gpu --tiny`` runs every chapter of a profile
end to end at tiny size (``--chapter STEM``, repeatable: only those), and
``run <chapter> --profile paper --tiny`` runs one:

* each chapter's values in the profile are overlaid with its entry of :data:`TINY_FILE`
  (``notebooks/tiny.yaml``), which cuts sizes only: samples (``limit_train``, ``limit_test``),
  widths, epochs (trained and measured), steps, trials and seeds. Mappings merge key by key *into the keys the
  profile's value already has* (:func:`overlay`), so one entry serves every profile: the
  architecture names, datasets, optimisers and schedule shapes stay the profile's, and an entry
  may name the datasets or architectures of several profiles. A key of an entry that is a
  profile's name holds values for that profile only (merged after the others);
* the chapter's declaration checks the result as it checks any profile
  (:meth:`ncutils.chapter.Chapter.resolve`);
* ``data_dir`` points at stand-in files of the torchvision datasets, in their real on-disk
  formats (:mod:`ncutils.data_fixtures`), under ``_build/tiny/data/`` (``download`` is off);
* the executed notebooks, their findings and ``state.json`` go to ``_build/tiny/<profile>/``
  and the results to a store of their own, ``<store>/tiny/`` (``<store>`` is
  ``$NCUTILS_RUNS_DIR`` or ``runs/``), so tiny results are keyed apart and never loaded by a
  real build;
* every record carries the profile ``"<profile> (tiny)"`` (:func:`label`); the build collects
  them in ``_build/tiny/<profile>/findings.json``, never in ``_build/findings.json``, so a tiny
  verdict is never a verdict of the profile (and no scoreboard or website is written).

The verdicts of a tiny run say nothing about the papers: the data are not the datasets and the
networks are barely trained. What it shows is that every cell of every chapter runs, on the
profile's code paths, to a recorded verdict.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ncutils import data_fixtures, runs
from ncutils._io import write_json_atomic
from ncutils.book import findings, preflight, provenance, yaml_files
from ncutils.book.execute import (custom_label, custom_stem, default_workers, ensure_kernel, execute, print_findings,
                                  run_jobs)
from ncutils.book.profiles import PROFILES, BookLayout, Job, Notebook, _digest, parse_value, _notebook_digest, _ncutils_digest, \
    chapters, load_profile, plan, resolve_chapter

__all__ = [
    "TINY_FILE",
    "TinyLayout",
    "build_tiny",
    "label",
    "load_tiny",
    "overlay",
    "plan_tiny",
    "run_tiny",
    "same_as",
    "tiny_store",
    "tiny_values",
]

#: The tiny overrides, one entry per chapter (relative to the repository root).
TINY_FILE = "notebooks/tiny.yaml"

#: Images per split in the stand-in files of every torchvision dataset (10 classes: 20 / 10 a class).
FAKE_TRAIN, FAKE_TEST = 200, 100


class TinyLayout(BookLayout):
    """The book's layout with the executed notebooks under ``_build/tiny/`` (one folder a profile)."""

    @property
    def cache(self) -> Path:
        return self.build / "tiny"

    @property
    def custom(self) -> Path:
        return self.cache / "custom"

    @property
    def data(self) -> Path:
        """The stand-in dataset files (:mod:`ncutils.data_fixtures`)."""
        return self.cache / "data" / f"fake-{FAKE_TRAIN}-{FAKE_TEST}"


def label(profile: str) -> str:
    """The profile a tiny run records: ``"gpu (tiny)"``.

    Example
    -------
    >>> label("paper")
    'paper (tiny)'
    """
    return f"{profile} (tiny)"


def tiny_store() -> Path:
    """The results store of tiny runs: ``<store>/tiny`` (``<store>``: ``$NCUTILS_RUNS_DIR`` or ``runs/``)."""
    return runs.default_runs_dir() / "tiny"


def load_tiny(root: Path) -> dict[str, dict[str, Any]]:
    """Read :data:`TINY_FILE`: chapter stem -> overrides (with per-profile sub-entries).

    Raises
    ------
    ValueError
        A missing file, or one that is not a mapping of mappings (naming the file).
    """
    path = Path(root) / TINY_FILE
    if not path.exists():
        raise ValueError(f"{path} does not exist: the tiny overrides of every chapter")
    content = yaml_files.load(path) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of chapter -> overrides")
    entries = {}
    for stem, values in content.items():
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ValueError(f"{path}: entry {stem!r} must be a mapping of parameter -> value")
        for name in PROFILES:
            if name in values and not isinstance(values[name], dict):
                raise ValueError(f"{path}: {stem}.{name} (the values for profile {name}) must be a mapping")
        entries[str(stem)] = values
    return entries


def overlay(value: Any, tiny: Any) -> Any:
    """``tiny`` over ``value``: mappings key by key into the keys ``value`` has, anything else replaced.

    A key of a tiny mapping that the profile's mapping lacks is skipped: an entry may name the
    architectures or datasets of several profiles, and never adds one. A mapping over a
    non-mapping (``epochs: 30`` under ``{mnist: 2}``) is skipped too, and a non-mapping over a
    mapping replaces it (``epochs: 2`` for every dataset). Over ``None`` (a setting left unset,
    such as K1's ``network_kwargs``) the tiny value is taken whole.

    Examples
    --------
    >>> overlay({"mlp": {"depth": 7, "width": 1024}, "vgg": {"width": 0.5}},
    ...         {"mlp": {"width": 32}, "resnet18": {"width": 4}})
    {'mlp': {'depth': 7, 'width': 32}, 'vgg': {'width': 0.5}}
    >>> overlay({"mnist": 30, "svhn": 30}, 2), overlay(100, 3), overlay(30, {"mnist": 2})
    (2, 3, 30)
    >>> overlay(None, {"vgg11": {"width": 0.0625}})
    {'vgg11': {'width': 0.0625}}
    """
    if isinstance(tiny, Mapping):
        if value is None:
            return dict(tiny)
        if not isinstance(value, Mapping):
            return value
        return {key: overlay(item, tiny[key]) if key in tiny else item for key, item in value.items()}
    return tiny


def tiny_values(chapter: Notebook, profile: str, profile_values: Mapping[str, Any], entry: Mapping[str, Any],
                data_dir: Path, origin: str = TINY_FILE) -> dict[str, Any]:
    """A chapter's values for a tiny run of ``profile``: the profile's, overlaid with its tiny entry.

    Parameters
    ----------
    chapter : Notebook
        The chapter (its declaration gives the defaults the profile's values go over).
    profile : str
        The profile; the entry's sub-entry of that name is applied after the rest.
    profile_values : mapping
        The chapter's values in the profile.
    entry : mapping
        Its entry of :data:`TINY_FILE`.
    data_dir : pathlib.Path
        The stand-in datasets; set as ``data_dir`` (and ``download`` off) where the chapter
        has those parameters.

    Returns
    -------
    dict
        What the kernel gets as ``overrides``.

    Raises
    ------
    ValueError
        An entry naming a parameter the chapter does not have.
    """
    declaration = chapter.declaration
    resolved = {**declaration.defaults, **profile_values}
    values = dict(profile_values)
    layers = [{key: item for key, item in entry.items() if key not in PROFILES}, entry.get(profile, {})]
    for layer in layers:
        unknown = sorted(set(layer) - set(declaration.defaults))
        if unknown:
            raise ValueError(f"{origin}: {chapter.stem}: unknown parameters {unknown} (its parameters: "
                             f"{', '.join(sorted(declaration.defaults))})")
        for name, tiny in layer.items():
            values[name] = resolved[name] = overlay(resolved[name], tiny)
    if "data_dir" in declaration.defaults:
        values["data_dir"] = str(data_dir)
    if "download" in declaration.defaults:
        values["download"] = False
    return values


def plan_tiny(root: Path, profile: str) -> list[Job]:
    """The jobs of a tiny build of ``profile`` (in ``_toc.yml`` order), checked by each declaration.

    Raises
    ------
    ValueError
        The profile or :data:`TINY_FILE` is invalid, a chapter has no tiny entry (add
        ``<stem>: {}`` to keep its profile values), or a declaration refuses the tiny values.
    """
    root = Path(root).resolve()
    layout = TinyLayout(root)
    index = chapters(root)
    jobs = plan(root, profile, index)  # the profile itself must be valid first
    entries = load_tiny(root)
    problems = [f"{TINY_FILE}: chapter {stem!r} has no entry (add `{stem}: {{}}` to run it at its profile's size)"
                for stem in index if stem not in entries]
    problems += [f"{TINY_FILE}: unknown chapter {stem!r}" for stem in entries if stem not in index]
    if problems:
        raise ValueError("invalid tiny overrides:\n  " + "\n  ".join(problems))
    code = _ncutils_digest(root)
    tiny_jobs, problems = [], []
    for job in jobs:
        try:
            values = tiny_values(job.chapter, profile, job.injected["overrides"], entries[job.stem], layout.data)
        except ValueError as error:
            problems.append(str(error))
            continue
        found = job.chapter.declaration.problems(values, f"{TINY_FILE} (on profile {profile})")
        if found:
            problems += found
            continue
        parameters = dict(job.chapter.declaration.resolve(values, profile=label(profile)))
        key = _digest(_notebook_digest(job.chapter.path), parameters, code, label(profile))
        tiny_jobs.append(Job(job.chapter, profile, {"profile": label(profile), "overrides": values}, parameters, key))
    if problems:
        raise ValueError("invalid tiny overrides:\n  " + "\n  ".join(problems))
    return tiny_jobs


def write_data(layout: TinyLayout, jobs: Sequence[Job]) -> Path:
    """Write the stand-in files of every torchvision dataset the jobs read; return their folder."""
    names = [name for job in jobs if job.chapter.declaration.datasets is not None
             for name in job.chapter.declaration.datasets(job.parameters)]
    return data_fixtures.write_fake_datasets(names, layout.data, train=FAKE_TRAIN, test=FAKE_TEST)


@contextlib.contextmanager
def _tiny_store() -> Iterator[Path]:
    store = tiny_store()
    saved = os.environ.get("NCUTILS_RUNS_DIR")
    os.environ["NCUTILS_RUNS_DIR"] = str(store)
    try:
        yield store
    finally:
        if saved is None:
            os.environ.pop("NCUTILS_RUNS_DIR", None)
        else:
            os.environ["NCUTILS_RUNS_DIR"] = saved


def _preflight(jobs: Sequence[Job], store: Path, what: str) -> None:
    found = preflight.problems([(job.chapter.declaration, job.parameters) for job in jobs], store)
    if found:
        raise ValueError(f"{what} cannot run here:\n  " + "\n  ".join(found))


def collect(layout: TinyLayout, jobs: Sequence[Job]) -> dict[str, Any]:
    """The findings of the jobs' last runs, under their tiny label, as one findings content."""
    contents = []
    for job in jobs:
        path = layout.profile_cache(job.profile) / f"{job.stem}.findings.json"
        if path.exists():
            content = findings.load(path)
            name = label(job.profile)
            contents.append({"schema": content["schema"], "profiles": {name: content["profiles"].get(name, {})}})
    return findings.merge(contents)


def same_as(root: Path, profile: str, other: str) -> list[str]:
    """The chapters whose tiny run of ``profile`` is line for line that of ``other``: the same
    notebook with the same parameters but for the profile's label (at tiny size the two
    profiles differ there in sizes only, and the sizes are cut to the same values). Running
    them for ``other`` runs every cell ``profile`` would, on the same values.

    Raises
    ------
    ValueError
        As :func:`plan_tiny`, for either profile.
    """
    theirs = {job.stem: job for job in plan_tiny(root, other)}

    def unlabelled(job: Job) -> tuple[Path, dict[str, Any]]:
        return job.chapter.path, {name: value for name, value in job.parameters.items() if name != "profile"}

    return [job.stem for job in plan_tiny(root, profile)
            if job.stem in theirs and unlabelled(job) == unlabelled(theirs[job.stem])]


def build_tiny(profile: str, *, root: Path | None = None, force: bool = False,
               workers: int | None = None, chapters: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every chapter of ``profile`` at tiny size (see the module docstring), or only
    ``chapters`` (stems) when given.

    Writes ``_build/tiny/<profile>/``: the executed notebooks, ``state.json`` (a chapter whose
    key is unchanged is reused), ``findings.json`` (every record, labelled :func:`label`) and
    ``summary.json`` (each chapter's seconds and verdicts).

    Returns
    -------
    dict
        The summary: ``profile`` (the label), ``seconds`` (this call), ``chapters`` (stem ->
        ``{"seconds", "status", "verdicts": {finding: state}}``).

    Raises
    ------
    ValueError
        Invalid profile or tiny overrides, or data or store missing, before anything runs.
    BuildError
        A chapter failed (naming the cell and the error).
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = TinyLayout(root)
    jobs = plan_tiny(root, profile)
    if chapters is not None:
        unknown = sorted(set(chapters) - {job.stem for job in jobs})
        if unknown or not chapters:
            raise ValueError(f"unknown chapters {unknown}; choose among {', '.join(job.stem for job in jobs)}")
        jobs = [job for job in jobs if job.stem in chapters]
    workers = default_workers() if workers is None else workers
    started = time.perf_counter()
    write_data(layout, jobs)
    with _tiny_store() as store:
        _preflight(jobs, store, f"the {profile} profile at tiny size")
        git = provenance.git_state(root)
        ensure_kernel()
        print(f"tiny build of profile {profile}: _build/tiny/{profile}/, store {store}", flush=True)
        records = run_jobs(layout, jobs, force=force, git=git, workers=workers)
    merged = collect(layout, jobs)
    write_json_atomic(layout.profile_cache(profile) / "findings.json", merged, default=str)
    recorded = merged["profiles"].get(label(profile), {})
    summary: dict[str, Any] = {"profile": label(profile), "built_at": provenance.utc_now(), "chapters": {}}
    for record in records:
        stem = record["notebook"]
        declared = [finding.id for finding in next(job for job in jobs if job.stem == stem).chapter.declaration.findings]
        states = {}
        for identifier in declared:
            entry = recorded.get("findings", {}).get(identifier)
            states[identifier] = None if entry is None else entry["verdict"]
        for identifier, entry in recorded.get("checks", {}).items():  # a chapter of library checks
            if entry.get("provenance", {}).get("notebook") == stem:
                states[identifier] = entry["verdict"]
        summary["chapters"][stem] = {"seconds": record["seconds"], "cpu_seconds": record.get("cpu_seconds"),
                                     "status": record["status"], "verdicts": states}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    write_json_atomic(layout.profile_cache(profile) / "summary.json", summary, default=str)
    for stem, row in summary["chapters"].items():
        verdicts = ", ".join(f"{identifier} {state}" for identifier, state in row["verdicts"].items()) or "no findings"
        print(f"  {stem:<28} {row['seconds']:6.1f} s  {verdicts}", flush=True)
    print(f"profile {label(profile)}: {len(records)} chapters in {summary['seconds']:.1f} s; findings in "
          f"{layout.profile_cache(profile) / 'findings.json'} (not the profile's verdicts)", flush=True)
    return summary


def run_tiny(notebook: str, overrides: Sequence[tuple[str, str]] = (), *, profile: str = "cpu",
             root: Path | None = None, output: Path | None = None, dry_run: bool = False) -> Path | dict[str, Any]:
    """Run one chapter of ``profile`` at tiny size, with ``-p`` values over the tiny ones.

    The notebook goes to ``_build/tiny/custom/<chapter>.<profile>.<overrides>.ipynb`` (or
    ``output``), its findings beside it, labelled ``"<profile> (tiny)"`` (or, with ``-p``
    values, ``"custom: ... (from <profile> (tiny))"``); the results to :func:`tiny_store`.
    ``dry_run`` only checks the values and returns them.
    """
    root = provenance.project_root() if root is None else Path(root).resolve()
    layout = TinyLayout(root)
    chapter = resolve_chapter(chapters(root), notebook)
    profile_values = load_profile(root, profile).get(chapter.stem, {})
    problems = chapter.declaration.problems(profile_values, f"notebooks/profiles/{profile}.yaml")
    if problems:
        raise ValueError("invalid parameters:\n  " + "\n  ".join(problems))
    entries = load_tiny(root)
    if chapter.stem not in entries:
        raise ValueError(f"{TINY_FILE}: chapter {chapter.stem!r} has no entry")
    values = tiny_values(chapter, profile, profile_values, entries[chapter.stem], layout.data)
    parsed = {}
    for name, text in overrides:
        try:
            parsed[name] = parse_value(text)
        except ValueError as error:
            raise ValueError(f"-p {name} {text!r}: {error}") from None
    problems = chapter.declaration.problems(values, f"{TINY_FILE} (on profile {profile})")
    if not problems:
        problems = chapter.declaration.problems({**values, **parsed}, f"-p (on profile {profile}, tiny)")
    if problems:
        raise ValueError("invalid parameters:\n  " + "\n  ".join(problems))
    name = custom_label(label(profile), parsed)
    injected = {"profile": name, "overrides": {**values, **parsed}}
    parameters = dict(chapter.declaration.resolve(injected["overrides"], profile=name))
    if dry_run:
        return injected["overrides"]
    job = Job(chapter, profile, injected, parameters)
    write_data(layout, [job])
    output = (layout.custom / f"{custom_stem(chapter.stem, profile, parsed)}.ipynb" if output is None
              else Path(output).resolve())
    findings_path = output.with_name(f"{output.stem}.findings.json")
    with _tiny_store() as store:
        _preflight([job], store, f"{chapter.stem} at tiny size")
        print(f"running {chapter.stem} ({name}), store {store}", flush=True)
        seconds = execute(root, chapter, injected, parameters, output, findings_path, git=provenance.git_state(root))
    print(f"done in {seconds:.1f} s: {output}", flush=True)
    print_findings(findings_path)
    return output
