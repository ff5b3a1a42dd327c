"""Every training run a profile's chapters will ask for, trained ahead of the book by a job engine.

``python -m ncutils.runs train --profile paper --executor {local,slurm}`` (see
:func:`train_profile`): the paper profile is a few hundred GPU-hours of independent
runs, more than one machine should do in one ``make book``. This module

1. validates the profile (as the book build does), then enumerates the
   :class:`~ncutils.train.TrainConfig` of every run the profile's chapters build
   (:func:`ncutils.runs_cli.profile_configs`: each chapter's grid, from the paper module
   that declares it, with the chapter's resolved parameters and seeds, exactly as the
   notebook calls it), deduplicated by trained key (the four Parker chapters share one
   grid);
2. leaves out every run whose manifest is in the results store (nothing is trained twice:
   a later call, or the book, loads it);
3. submits each missing run as one job through `submitit <https://github.com/facebookincubator/submitit>`_:
   ``slurm`` on a cluster, ``local`` (submitit's local executor: one subprocess per job) on
   this machine, at most ``workers`` at a time; each job calls :func:`ncutils.train.train`,
   which writes the trained run and its layer sweeps into the shared store with atomic,
   checksummed files (:mod:`ncutils.store`);
4. lists the jobs that failed with their log files; they are missing from the store, so
   the next call submits them again.

Chapters whose computation is not a TrainConfig grid have nothing to submit and say
so (each declaration's :attr:`~ncutils.chapter.Chapter.trains_nothing`): K2 trains its networks with
:func:`ncutils.theory.lesde.train_trials` (per-sample SGD of many trials at once, in the
chapter), G1-G3 optimise the unconstrained features model (:mod:`ncutils.theory.ufm`,
with its own checkpoints), and ``measuring_collapse`` trains nothing.

Without submitit installed, ``local`` falls back to :mod:`concurrent.futures` (spawned
processes, the same job function and the same report); ``slurm`` needs submitit
(``pip install 'nc-companion[cluster]'``).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ncutils import store
from ncutils._checks import resolve_device
from ncutils.book import chapters
from ncutils.book.profiles import plan
from ncutils.grid import THREADS_PER_RUN
from ncutils.measure import measure_run
from ncutils.runs_cli import profile_configs
from ncutils.train import train

__all__ = ["EXECUTORS", "TrainingRun", "missing_runs", "train_one",
           "train_profile", "training_runs"]

EXECUTORS = ("local", "slurm")


@dataclass
class TrainingRun:
    """One trained run a profile needs: its key, config and the chapters that ask for it."""

    key: str
    config: Any
    chapters: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        config = self.config
        return f"{config.arch} on {config.dataset}, {config.epochs} epochs, seed {config.seed}"


def training_runs(root: Path, profile: str) -> tuple[list[TrainingRun], dict[str, str]]:
    """Every run the profile's chapters train, one per trained key, in chapter order.

    The profile is validated first (:func:`ncutils.book.profiles.plan`: types and each
    paper module's checks), then :func:`ncutils.runs_cli.profile_configs` (the one list of
    each chapter's declared :attr:`~ncutils.chapter.Chapter.trains`) gives the configs.

    Returns
    -------
    runs : list of TrainingRun
    skipped : dict
        Chapter stem -> why it has nothing to submit (its declaration's
        :attr:`~ncutils.chapter.Chapter.trains_nothing`).
    """
    stems = [job.stem for job in plan(root, profile)]
    found: dict[str, TrainingRun] = {}
    for stem, config in profile_configs(profile, root=root):
        key = store.trained_key(config)
        run = found.setdefault(key, TrainingRun(key, config))
        if stem not in run.chapters:
            run.chapters.append(stem)
    skipped = {stem: chapters.chapter(stem).trains_nothing for stem in stems if chapters.chapter(stem).trains is None}
    return list(found.values()), skipped


def missing_runs(runs: Sequence[TrainingRun], runs_dir: Path) -> list[TrainingRun]:
    """The runs without a manifest in the store (a partial run, with only a checkpoint, is missing)."""
    return [run for run in runs if not (store.entry_dir("trained", run.key, runs_dir) / store.MANIFEST).exists()]


def train_one(config: Any, runs_dir: str) -> dict[str, Any]:
    """The job: train one run (or resume it from its checkpoint) into the store, and sweep it.

    One torch thread per CPU run, as :func:`ncutils.grid.run_grid` trains (the numbers do
    not depend on it).
    """
    if resolve_device(config.device).type == "cpu":
        torch.set_num_threads(THREADS_PER_RUN)
    started = time.perf_counter()
    result = train(config, runs_dir=runs_dir, progress=False)
    measure_run(result)  # the chapter then loads its sweeps too
    return {"key": result.key, "seconds": time.perf_counter() - started, "from_cache": result.from_cache}


class _FuturesJob:
    """A concurrent.futures future with the two things of a submitit job the report uses."""

    def __init__(self, future: Any, number: int) -> None:
        self.future, self.job_id = future, f"process-{number}"

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> Any:
        return self.future.result()

    def logs(self) -> str:
        return "(in this process's output)"


class _SubmititJob:
    def __init__(self, job: Any) -> None:
        self.job, self.job_id = job, str(job.job_id)

    def done(self) -> bool:
        return self.job.done()

    def result(self) -> Any:
        return self.job.result()

    def logs(self) -> str:
        return f"{self.job.paths.stdout} and {self.job.paths.stderr}"


def _submitter(executor: str, folder: Path, workers: int, slurm: Mapping[str, Any]) -> tuple[Callable, Callable, str]:
    """``submit(config, runs_dir) -> job``, ``close()`` and the engine's name."""
    try:
        import submitit
    except ImportError:
        if executor == "slurm":
            raise ValueError("--executor slurm needs submitit: pip install 'nc-companion[cluster]'") from None
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        counter = iter(range(1, 10**9))
        return (lambda config, runs_dir: _FuturesJob(pool.submit(train_one, config, runs_dir), next(counter)),
                pool.shutdown, "concurrent.futures (submitit is not installed)")
    if executor == "local":
        engine = submitit.LocalExecutor(folder=str(folder))
        engine.update_parameters(timeout_min=int(slurm.get("timeout_min") or 24 * 60))
        name = f"submitit {submitit.__version__} local executor"
    else:
        engine = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
        options = {key: value for key, value in slurm.items() if value is not None}
        engine.update_parameters(**options)
        name = f"submitit {submitit.__version__} slurm executor"
    return (lambda config, runs_dir: _SubmititJob(engine.submit(train_one, config, runs_dir)),
            lambda: None, name)


def train_profile(root: Path, profile: str, *, executor: str = "local", runs_dir: Path | None = None,
                  workers: int | None = None, dry_run: bool = False, wait: bool = True,
                  slurm: Mapping[str, Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train every missing run of a profile through a job engine (see the module docstring).

    Parameters
    ----------
    root : pathlib.Path
        Repository root (its notebooks and profiles).
    profile : str
        One of :data:`ncutils.book.profiles.PROFILES`.
    executor : {"local", "slurm"}
    runs_dir : pathlib.Path, optional
        The results store; default :func:`ncutils.store.resolve_runs_dir` (``$NCUTILS_RUNS_DIR``,
        else the project's ``runs/``), the store the book build uses.
    workers : int, optional
        Jobs running at once (default: the CPU count for ``local``, all for ``slurm``).
    dry_run : bool
        Only list what would be submitted.
    wait : bool
        Wait for the jobs (always for ``local``); with ``wait=False`` a Slurm submission
        returns at once and a later call reports what is still missing.
    slurm : mapping, optional
        submitit parameters for Slurm (``slurm_partition``, ``gpus_per_node``,
        ``timeout_min``, ``cpus_per_task``, ...).
    log : callable
        Where progress lines go.

    Returns
    -------
    dict
        ``runs`` (needed), ``stored`` (already in the store), ``submitted``, ``trained`` (by
        this call), ``loaded`` (submitted, but another process had trained them meanwhile),
        ``failed`` (list of ``{"run", "job", "logs", "error"}``), ``skipped`` (chapters
        without a grid and why), ``engine``.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    root = Path(root)
    runs_dir = Path(runs_dir) if runs_dir is not None else store.resolve_runs_dir()[0]
    needed, skipped = training_runs(root, profile)
    missing = missing_runs(needed, runs_dir)
    for stem, reason in skipped.items():
        log(f"{stem}: nothing to submit: {reason}")
    log(f"profile {profile}: {len(needed)} training runs, {len(needed) - len(missing)} already in {runs_dir}, "
        f"{len(missing)} to train")
    summary: dict[str, Any] = {"runs": len(needed), "stored": len(needed) - len(missing), "submitted": 0,
                               "trained": 0, "loaded": 0, "failed": [], "skipped": skipped, "engine": None}
    if dry_run or not missing:
        for run in missing:
            log(f"  would train {run.key}: {run.label} (for {', '.join(run.chapters)})")
        return summary
    if workers is None:
        workers = (os.cpu_count() or 1) if executor == "local" else len(missing)
    folder = runs_dir / "jobs" / profile
    submit, close, engine = _submitter(executor, folder, workers, dict(slurm or {}))
    summary["engine"] = engine
    log(f"submitting through {engine}, at most {workers} at a time; job logs in {folder}")
    queue = list(missing)
    running: list[tuple[TrainingRun, Any]] = []
    try:
        while queue or running:
            while queue and len(running) < workers:
                run = queue.pop(0)
                job = submit(run.config, str(runs_dir))
                running.append((run, job))
                summary["submitted"] += 1
                log(f"  submitted job {job.job_id}: {run.key} ({run.label})")
            if not wait and executor == "slurm" and not queue:
                log(f"{len(running)} jobs submitted; run the command again to see what is still missing")
                return summary
            finished = [(run, job) for run, job in running if job.done()]
            if not finished:
                time.sleep(0.5)
                continue
            for run, job in finished:
                running.remove((run, job))
                try:
                    outcome = job.result()
                except Exception as error:  # a job's error, whatever it is, is reported, not raised
                    text = "".join(traceback.format_exception_only(type(error), error)).strip()
                    summary["failed"].append({"run": run.label, "key": run.key, "job": job.job_id,
                                              "logs": job.logs(), "error": text[-2000:]})
                    log(f"  FAILED job {job.job_id}: {run.label}; logs: {job.logs()}")
                    continue
                if outcome["from_cache"]:  # another process trained it while this job waited on its lock
                    summary["loaded"] += 1
                    log(f"  loaded {run.key} ({run.label}): trained meanwhile by another process")
                    continue
                summary["trained"] += 1
                log(f"  trained {run.key} ({run.label}) in {outcome['seconds']:.1f} s "
                    f"[{summary['trained']} of {len(missing)}]")
    finally:
        close()
    if summary["failed"]:
        log(f"{len(summary['failed'])} jobs failed (listed above with their logs); they are not in the store, "
            "so the next call submits them again")
    return summary
