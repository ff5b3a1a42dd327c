"""The results store's command line (``python -m ncutils.runs``) and what a profile trains.

``python -m ncutils.runs list`` prints what is stored and ``prune --unused-since ISO_TIME``
(or ``--older-than DAYS``) removes what was not loaded or written since
(:mod:`ncutils.store.listing`); ``key --profile cpu`` prints the key of everything a profile
trains (:func:`profile_key`: CI caches the store under it); ``train`` trains a profile's
missing runs. :func:`profile_configs` is the one place that lists the
:class:`~ncutils.train.TrainConfig` runs a profile's chapters train. This module reads the
book's chapters and the papers' grids: it belongs to the book floor (CONTRIBUTING.md).

Example
-------
>>> pairs = profile_configs("smoke", only=["kothapalli_terminal_phase"])
>>> sorted({config.arch for _, config in pairs})
['mlp', 'vgg']
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncutils import store
from ncutils.data import DatasetNotFoundError
from ncutils.book import chapters, profiles, provenance
from ncutils.store.listing import entries, entries_text, prune
from ncutils.train import _ensure_data_files

if TYPE_CHECKING:
    from ncutils.train import TrainConfig

__all__ = ["chapter_parameters", "entries", "main",
           "other_trainings", "profile_configs", "profile_key", "prune"]


# ---------------------------------------------------------------------------
# What a profile trains: one enumeration, shared by `key` (and `train`).


def chapter_parameters(profile: str, *, root: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Every chapter's parameters under ``profile``, as its notebook resolves them.

    Each chapter's declaration (:mod:`ncutils.book.chapters`) resolves the profile's values
    (:func:`~ncutils.book.profiles.load_profile`) over its defaults, checking them.

    Raises
    ------
    ValueError
        Unknown profile, an unreadable profile, or values a chapter refuses.
    """
    root = provenance.project_root() if root is None else Path(root)
    values = profiles.load_profile(root, profile)
    return {chapter.stem: dict(chapter.resolve(values.get(chapter.stem, {}), profile=profile))
            for chapter in chapters.CHAPTERS}


def _selected(parameters: Mapping[str, dict[str, Any]], only: Sequence[str] | None) -> list[str]:
    if only is None:
        return list(parameters)
    unknown = [stem for stem in only if stem not in parameters]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}: expected some of {', '.join(parameters)}")
    return [stem for stem in parameters if stem in only]


def profile_configs(profile: str, *, root: str | os.PathLike | None = None,
                    only: Sequence[str] | None = None) -> list[tuple[str, TrainConfig]]:
    """Every trained run a profile's chapters need, as ``(chapter, TrainConfig)`` pairs.

    Each chapter's parameters (:func:`chapter_parameters`) go to its declaration's
    :attr:`~ncutils.chapter.Chapter.trains`; chapters are in registry order, each chapter's
    runs in the order its notebook trains them, a run listed once per chapter (P1's ReLU run
    of the activation grid is its architecture grid's) but once in every chapter that trains
    it (P1-P4 share runs). Building a grid may read one sample of each dataset (to tell images
    from vectors), downloading it where the chapter's ``download`` says so.

    Parameters
    ----------
    profile : str
    root : path, optional
        Repository root (default: this checkout).
    only : sequence of str, optional
        Only these chapters.

    Raises
    ------
    ValueError
        Unknown profile or chapter, or parameters a chapter refuses (as the notebook would).

    Examples
    --------
    >>> pairs = profile_configs("smoke", only=["kothapalli_terminal_phase"])
    >>> sorted({(stem, config.arch, config.epochs) for stem, config in pairs})
    [('kothapalli_terminal_phase', 'mlp', 20), ('kothapalli_terminal_phase', 'mlp', 30), ('kothapalli_terminal_phase', 'vgg', 20)]
    """
    parameters = chapter_parameters(profile, root=root)
    pairs: list[tuple[str, TrainConfig]] = []
    for stem in _selected(parameters, only):
        trains = chapters.chapter(stem).trains
        if trains is None:
            continue
        seen: set[str] = set()
        for config in trains(parameters[stem]):
            if repr(config) not in seen:
                seen.add(repr(config))
                pairs.append((stem, config))
    return pairs


def other_trainings(profile: str, *, root: str | os.PathLike | None = None) -> dict[str, str]:
    """Fingerprints of what a profile computes without a TrainConfig, by chapter (sha256 hex).

    Each chapter whose declaration has a :attr:`~ncutils.chapter.Chapter.fingerprint` (K2's
    trials, the Garrod chapter's UFM runs and dense Hessians) gives what keys its stored
    results: its settings, the code it runs and the package versions.
    """
    parameters = chapter_parameters(profile, root=root)
    found = {}
    for chapter in chapters.CHAPTERS:
        if chapter.fingerprint is not None:
            content = chapter.fingerprint(parameters[chapter.stem])
            if content is not None:
                found[chapter.stem] = hashlib.sha256(json.dumps(content, sort_keys=True, default=list).encode()).hexdigest()
    return found


def profile_key(profile: str, *, root: str | os.PathLike | None = None) -> str:
    """A key (sha256 hex) that changes exactly when a trained run the profile needs changes.

    It hashes the sorted :func:`~ncutils.store.trained_key` of every run of
    :func:`profile_configs` (so what such a key covers: the training settings, ``train.py``,
    ``data.py``, ``_checks.py``, the architecture versions, the package versions, the dataset
    files; not ``metrics.py``: the runs that measure while training store statistics, whose
    key covers the statistics code) and :func:`other_trainings`. CI caches the results store
    under it: after an edit that changes no trained run, the cache is hit and nothing is
    retrained. Missing torchvision files are downloaded first where the chapter downloads
    (the key hashes them), as :func:`ncutils.train.train` does.

    Raises
    ------
    ValueError
        As :func:`profile_configs`.
    ncutils.data.DatasetNotFoundError
        Dataset files missing and the chapter does not download.
    """
    keys = set()
    for _, config in profile_configs(profile, root=root):
        _ensure_data_files(config)
        keys.add(store.trained_key(config))
    other = other_trainings(profile, root=root)
    payload = {"kind": "profile", "store_format": store.STORE_FORMAT, "trained": sorted(keys), "other": other}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _key_command(arguments: argparse.Namespace) -> int:
    """``python -m ncutils.runs key --profile P``: the key on stdout, what it covers on stderr."""
    try:
        key = profile_key(arguments.profile)
        if arguments.verbose:
            for stem, config in profile_configs(arguments.profile):
                print(f"{store.trained_key(config)}  {stem}  {config.dataset}  {config.arch}  seed {config.seed}",
                      file=sys.stderr)
            for stem, fingerprint in other_trainings(arguments.profile).items():
                print(f"{fingerprint[:16]}  {stem}  (not a TrainConfig)", file=sys.stderr)
    except (ValueError, KeyError, DatasetNotFoundError) as error:
        # a missing torchvision dataset is one line, as in the book build: no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(key)
    return 0


def _add_train_parser(commands: Any) -> None:
    """The ``train`` subcommand: a profile's missing runs through a job engine."""
    training = commands.add_parser(
        "train", help="train every missing run of a profile through a job engine (submitit: local or slurm)")
    training.add_argument("--profile", default="cpu", help="the profile (default cpu)")
    training.add_argument("--executor", choices=("local", "slurm"), default="local",
                          help="submitit's local executor (this machine) or Slurm (default local)")
    training.add_argument("--workers", type=int, default=None,
                          help="jobs at once (default: the CPU count for local, all for slurm)")
    training.add_argument("--dry-run", action="store_true", help="only list the runs that would be trained")
    training.add_argument("--no-wait", action="store_true", help="slurm: submit and return")
    training.add_argument("--slurm-partition", default=None)
    training.add_argument("--gpus-per-node", type=int, default=None)
    training.add_argument("--cpus-per-task", type=int, default=None)
    training.add_argument("--timeout-min", type=int, default=None, help="per job (default 24 h)")


def _train_command(arguments: argparse.Namespace) -> int:
    """``python -m ncutils.runs train``: see :mod:`ncutils.book.training`."""
    # local: ncutils.book.training reads this module (profile_configs) at import
    from ncutils.book import training

    root = provenance.project_root()
    runs_dir, origin = store.resolve_runs_dir(arguments.runs_dir)
    print(f"results store: {runs_dir} (from {origin})", file=sys.stderr)
    slurm = {"slurm_partition": arguments.slurm_partition, "gpus_per_node": arguments.gpus_per_node,
             "cpus_per_task": arguments.cpus_per_task, "timeout_min": arguments.timeout_min}
    try:
        summary = training.train_profile(root, arguments.profile, executor=arguments.executor,
                                         runs_dir=runs_dir, workers=arguments.workers,
                                         dry_run=arguments.dry_run, wait=not arguments.no_wait, slurm=slurm)
    except (ValueError, KeyError, DatasetNotFoundError) as error:
        # a missing torchvision dataset is one line, as in the book build: no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{summary['runs']} runs: {summary['stored']} were stored, {summary['trained']} trained now, "
          f"{summary['loaded']} loaded (another process had trained them meanwhile), {len(summary['failed'])} failed")
    return 1 if summary["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ncutils.runs list|prune|key``: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m ncutils.runs",
                                     description="List or prune the results store; print a profile's key.")
    parser.add_argument("--runs-dir", default=None,
                        help="the store (default $NCUTILS_RUNS_DIR or the project's runs/)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the stored entries")
    pruning = commands.add_parser("prune", help="remove entries not used since a time")
    cutoff = pruning.add_mutually_exclusive_group(required=True)
    cutoff.add_argument("--unused-since", metavar="ISO_TIME",
                        help="remove entries last loaded or written before this time "
                             "(e.g. the start of the last full build)")
    cutoff.add_argument("--older-than", metavar="DAYS", type=float,
                        help="remove entries last used more than DAYS days ago")
    pruning.add_argument("--dry-run", action="store_true", help="only list what would go")
    keying = commands.add_parser("key", help="print the key of every run a profile trains (a cache key)")
    keying.add_argument("--profile", default="cpu", help="the profile (default cpu)")
    keying.add_argument("--verbose", action="store_true", help="list each run's key on stderr")
    _add_train_parser(commands)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "key":
            return _key_command(arguments)
        if arguments.command == "train":
            return _train_command(arguments)
        root, origin = store.resolve_runs_dir(arguments.runs_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"results store: {root} (from {origin})", file=sys.stderr)
    if not root.is_dir():
        print(f"error: the results store {root} does not exist", file=sys.stderr)
        return 2
    if arguments.command == "list":
        table = entries(root)
        print(f"{root}: empty" if table.empty else entries_text(table))
        return 0
    try:
        result = prune(root, unused_since=arguments.unused_since,
                       older_than_days=arguments.older_than, dry_run=arguments.dry_run)
    except ValueError as error:
        parser.error(str(error))
    verb = "would remove" if arguments.dry_run else "removed"
    for path in result:
        print(f"{verb} {path}")
    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}")
    for path, reason in result.failed:
        print(f"could not remove {path}: {reason}", file=sys.stderr)
    print(f"{verb} {len(result)} entries or files from {root}; skipped {len(result.skipped)}; "
          f"failed {len(result.failed)}")
    return 1 if result.failed else 0
