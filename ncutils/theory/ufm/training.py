"""Training a deep UFM: full-batch GD with momentum, then L-BFGS, with spectrum snapshots.

Each run fixes its seed (``UFMConfig.seed``) and its torch thread count, and runs with
torch's deterministic algorithms (a number that differs between machines beyond round-off is a bug). The gradient-descent phase uses a hand-written
forward and backward pass (:func:`loss_and_gradient`, checked against autograd in the tests):
it does what autograd does, without building a graph at every step. A long run (the paper's
``10^6`` steps) can write a checkpoint every so many steps and resume from it after a kill,
to the same result bit for bit.

References
----------
C. Garrod and J. P. Keating, arXiv:2404.06106 (2024), Section 5 (numerical experiments).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import multiprocessing
import os
import queue as queue_module
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ncutils.theory.ufm import _store
from ncutils.theory.ufm.model import (
    UFMConfig,
    UFMState,
    _check_layer,
    init_state,
    regularisation_condition,
    targets,
    ufm_loss,
)
from ncutils.theory.ufm.spectra import LayerAnalysis, analyse_layer

__all__ = ["UFMRun", "train", "run_payload", "snapshot_schedule", "loss_and_gradient", "checkpoint_path",
           "train_many"]

# --------------------------------------------------------------------------- training
#: Bump when the checkpoint's contents or the training loop change meaning.
CHECKPOINT_VERSION = 1


@contextlib.contextmanager
def _torch_threads(count: int | None):
    """Temporarily set torch's intra-op threads (``None``: leave as is)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _deterministic():
    """Temporarily make torch use deterministic algorithms only."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def loss_and_gradient(
    params: Sequence[torch.Tensor], config: UFMConfig, y: torch.Tensor, *, with_loss: bool = True,
) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """The loss of :func:`~ncutils.theory.ufm.ufm_loss` and its gradient, by a hand-written backward pass.

    With ``h^(l+1) = W_l h^(l)`` (ReLU'd for ``l < L`` in the ReLU model), ``R = h^(L+1) - Y``
    and ``g^(L+1) = R / N``: ``dW_l = g^(l+1) h^(l)T + lambda_W W_l``,
    ``g^(l) = (W_l^T g^(l+1)) * 1[W_{l-1} h^(l-1) > 0]`` and ``dH_1 = g^(1) + lambda_H H_1``.
    The ReLU's derivative at 0 is taken as 0, torch's convention, so this is the gradient
    autograd computes (the tests check it), without building a graph.

    Parameters
    ----------
    params : sequence of Tensor
        ``[H_1, W_1, ..., W_L]`` (float64).
    config : UFMConfig
        Decays and activation.
    y : Tensor
        The targets (:func:`~ncutils.theory.ufm.targets`).
    with_loss : bool
        Also compute the loss (a few reductions more).

    Returns
    -------
    (Tensor or None, list of Tensor)
        The loss (0-d, or ``None``) and the gradients, in the order of ``params``.

    Examples
    --------
    >>> config = UFMConfig(width=4, per_class=2, depth=3, activation="relu")
    >>> from ncutils.theory.ufm.model import init_state
    >>> loss, grads = loss_and_gradient(init_state(config).tensors(), config, targets(3, 2)[0])
    >>> [tuple(g.shape) for g in grads]
    [(4, 6), (4, 4), (4, 4), (3, 4)]
    """
    features, weights = params[0], params[1:]
    depth = len(weights)
    relu = config.activation == "relu"
    layers, masks = [features], []
    for index, weight in enumerate(weights, start=1):
        out = weight @ layers[-1]
        if relu and index < depth:
            out = torch.relu(out)
            masks.append(out > 0)
        layers.append(out)
    residual = layers[-1] - y
    upstream = residual / y.shape[1]
    grads: list[torch.Tensor] = [features] * (depth + 1)
    for index in range(depth, 0, -1):
        weight = weights[index - 1]
        grads[index] = torch.addmm(weight, upstream, layers[index - 1].T, beta=config.lambda_w)
        upstream = weight.T @ upstream
        if relu and index > 1:
            upstream.mul_(masks[index - 2])
    grads[0] = upstream.add_(features, alpha=config.lambda_h)
    loss = None
    if with_loss:
        decay = sum((w * w).sum() for w in weights)
        loss = ((residual * residual).sum() / (2 * y.shape[1]) + 0.5 * config.lambda_w * decay
                + 0.5 * config.lambda_h * (features * features).sum())
    return loss, grads


def _norm(grads: Sequence[torch.Tensor]) -> float:
    return math.sqrt(sum(float((g * g).sum()) for g in grads))


@dataclass
class UFMRun:
    """Result of :func:`train`.

    ``history`` has one row per logged step (``step``, ``phase``, ``loss``,
    ``grad_norm``); ``snapshots`` one row per snapshot (``step`` plus
    :meth:`LayerAnalysis.summary`); ``spectra`` maps a snapshot step to its
    descending eigenvalues; ``final`` is the analysis at the end. ``seconds`` is the
    wall time of the gradient-descent phase (summed over resumed pieces),
    ``resumed_from`` the step a checkpoint resumed it at (``None``: from the start),
    ``threads`` and ``cpu_capability`` where it ran (torch's SIMD level: float64 round-off
    can differ between levels).
    """

    config: UFMConfig
    layer: int
    state: UFMState
    history: pd.DataFrame
    snapshots: pd.DataFrame
    spectra: dict[int, np.ndarray]
    final: LayerAnalysis
    final_loss: float
    final_grad_norm: float
    steps_run: int
    polish_iterations: int = 0
    condition: dict = field(default_factory=dict)
    seconds: float = float("nan")
    resumed_from: int | None = None
    threads: int | None = None
    cpu_capability: str = ""
    checkpoint: str | None = None

    def converged(self, max_grad_norm: float) -> bool:
        """Whether the final gradient norm is finite and at most ``max_grad_norm``.

        Examples
        --------
        >>> run = train(UFMConfig(width=6, per_class=2, depth=3), layer=2, steps=20, lr=0.1,
        ...             progress=False)
        >>> run.converged(1e3), run.converged(0.0)
        (True, False)
        """
        if not (isinstance(max_grad_norm, (int, float)) and max_grad_norm >= 0):
            raise ValueError(f"max_grad_norm must be a non-negative number, got {max_grad_norm!r}")
        return bool(math.isfinite(self.final_grad_norm) and self.final_grad_norm <= max_grad_norm)


def _run_key(config: UFMConfig, layer: int, steps: int, lr: float, momentum: float,
             wanted: Sequence[int], log_every: int, num_eigenvalues: int | None) -> dict[str, Any]:
    return {"version": CHECKPOINT_VERSION, "config": asdict(config), "layer": int(layer), "steps": int(steps),
            "lr": float(lr), "momentum": float(momentum), "snapshot_steps": [int(s) for s in wanted],
            "log_every": int(log_every), "num_eigenvalues": num_eigenvalues}


def checkpoint_path(directory: str | os.PathLike, key: dict[str, Any]) -> Path:
    """Where :func:`train` keeps the checkpoint of the run described by ``key``.

    The name carries the activation, the seed and a digest of everything that determines
    the trajectory (configuration, layer, steps, learning rate, momentum, snapshot steps,
    logging interval, checkpoint version), so two different runs never share a file.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    config = key["config"]
    return Path(directory) / f"ufm-{config['activation']}-seed{config['seed']}-{digest}.pt"


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically: a kill during the write leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def _load_checkpoint(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    payload = torch.load(path, weights_only=True)
    if payload.get("key") != key:
        raise ValueError(f"checkpoint {path} belongs to another run (its key differs); remove it to start afresh")
    return payload


def train(
    config: UFMConfig,
    *,
    layer: int,
    steps: int,
    lr: float,
    momentum: float = 0.9,
    polish_iterations: int = 0,
    snapshot_steps: Sequence[int] = (),
    dense_final: bool = False,
    num_eigenvalues: int | None = None,
    log_every: int | None = None,
    threads: int | None = 1,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10_000,
    store: bool = False,
    runs_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> UFMRun:
    """Train a deep UFM full batch in float64, recording the layer spectrum along the way.

    Phase 1: ``steps`` steps of gradient descent with heavy-ball ``momentum``
    (``v <- momentum v + g``, ``theta <- theta - lr v``; ``momentum = 0`` is plain GD, torch's
    SGD update) at learning rate ``lr``, analysing ``W_layer`` (:func:`analyse_layer`) at every
    step in ``snapshot_steps`` (step 0 = the initialisation). Phase 2: up to
    ``polish_iterations`` L-BFGS iterations (strong-Wolfe line search) to drive the gradient
    to round-off; the final analysis (with the dense autograd Hessian when ``dense_final``)
    is taken after it and also stored as a snapshot at step ``steps + polish_iterations``.

    Everything runs with ``threads`` torch threads (default 1: the matrices are tiny, and on
    a busy machine extra threads made each step several times slower in our measurements;
    ``None`` keeps torch's setting) and with torch's deterministic algorithms.

    With ``checkpoint_dir``, phase 1 writes its state (parameters, momentum buffers, history,
    snapshots) every ``checkpoint_every`` steps and at its end to a file named by
    :func:`checkpoint_path`, and a later call with the same arguments resumes from it: a
    killed run resumes to the same result, bit for bit, and a finished one is not retrained.

    With ``store`` (or a ``runs_dir``) the finished run is kept in the results store
    (:func:`ncutils.store.computed`, under ``runs_dir``, default
    :func:`ncutils.store.default_runs_dir`) and a later call with the same settings loads it
    instead of training (the store's ``events.log`` says which; ``force`` trains again and
    replaces it). Its key (:func:`run_payload`) covers the configuration and every option that
    changes a number (``layer``, ``steps``, ``lr``, ``momentum``, ``polish_iterations``, the
    snapshot steps, ``dense_final``, ``num_eigenvalues``, ``log_every``, ``threads``), the code
    of :data:`~ncutils.theory.ufm._store.RUN` (the training module and everything it
    imports) and the torch and numpy versions; not ``progress`` or the checkpoint
    options (a resumed run is the same bit for bit).

    Returns
    -------
    UFMRun
        A loaded run is the stored one: its ``seconds``, ``resumed_from`` and ``checkpoint``
        are those of the call that trained it.

    Raises
    ------
    ValueError
        On a bad argument, or a checkpoint whose stored key differs from this run's.
    FloatingPointError
        If the loss diverges.

    Examples
    --------
    >>> run = train(UFMConfig(width=6, per_class=2, depth=3), layer=2, steps=50, lr=0.1,
    ...             progress=False)
    >>> run.final_grad_norm < 1.0
    True
    """
    plan = _plan(config, layer=layer, steps=steps, lr=lr, momentum=momentum,
                 polish_iterations=polish_iterations, snapshot_steps=snapshot_steps, dense_final=dense_final,
                 num_eigenvalues=num_eigenvalues, log_every=log_every, threads=threads, progress=progress,
                 checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every)
    if not (store or runs_dir is not None):
        return plan.run()
    return _store.stored(plan.payload(), plan.run, runs_dir=runs_dir, force=force)


@dataclass
class _Plan:
    """One checked call of :func:`train`: what it trains (its key) and how (progress, checkpoint)."""

    config: UFMConfig
    layer: int
    steps: int
    lr: float
    momentum: float
    polish_iterations: int
    wanted: list[int]
    dense_final: bool
    num_eigenvalues: int | None
    log_every: int
    threads: int | None
    progress: bool
    checkpoint_dir: str | os.PathLike | None
    checkpoint_every: int

    def settings(self) -> dict[str, Any]:
        """Everything that decides the run's numbers (``threads=None``: torch's count now)."""
        threads = torch.get_num_threads() if self.threads is None else int(self.threads)
        return {"config": asdict(self.config), "layer": int(self.layer), "steps": int(self.steps),
                "lr": float(self.lr), "momentum": float(self.momentum),
                "polish_iterations": int(self.polish_iterations), "snapshot_steps": list(self.wanted),
                "dense_final": bool(self.dense_final),
                "num_eigenvalues": None if self.num_eigenvalues is None else int(self.num_eigenvalues),
                "log_every": int(self.log_every), "threads": threads}

    def payload(self) -> dict[str, Any]:
        return _store.payload("ufm-run", self.settings(), _store.RUN)

    def run(self) -> UFMRun:
        key = _run_key(self.config, self.layer, self.steps, self.lr, self.momentum, self.wanted,
                       self.log_every, self.num_eigenvalues)
        path = None if self.checkpoint_dir is None else checkpoint_path(self.checkpoint_dir, key)
        condition = regularisation_condition(self.config.num_classes, self.config.per_class, self.config.depth,
                                             self.config.lambda_w, self.config.lambda_h)
        with _torch_threads(self.threads), _deterministic():
            run = _train_loop(self.config, self.layer, self.steps, self.lr, self.momentum, self.polish_iterations,
                              self.wanted, self.dense_final, self.num_eigenvalues, self.log_every, self.progress,
                              condition, key, path, self.checkpoint_every)
        run.threads = torch.get_num_threads() if self.threads is None else int(self.threads)
        return run


def _plan(
    config: UFMConfig, *, layer: int, steps: int, lr: float, momentum: float = 0.9, polish_iterations: int = 0,
    snapshot_steps: Sequence[int] = (), dense_final: bool = False, num_eigenvalues: int | None = None,
    log_every: int | None = None, threads: int | None = 1, progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 10_000,
) -> _Plan:
    """Check the arguments of :func:`train` (same names, same defaults) before any work."""
    if not isinstance(config, UFMConfig):
        raise ValueError(f"config must be a UFMConfig, got {type(config).__name__}")
    _check_layer(config, layer)
    for name, value in (("steps", steps), ("polish_iterations", polish_iterations)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not isinstance(checkpoint_every, (int, np.integer)) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    bad = [s for s in snapshot_steps if not 0 <= int(s) <= steps]
    if bad:
        raise ValueError(f"snapshot_steps must lie in 0..steps ({steps}), got {bad}")
    return _Plan(config=config, layer=int(layer), steps=int(steps), lr=lr, momentum=momentum,
                 polish_iterations=int(polish_iterations), wanted=sorted({int(s) for s in snapshot_steps}),
                 dense_final=bool(dense_final), num_eigenvalues=num_eigenvalues,
                 log_every=int(log_every or max(1, steps // 200)), threads=threads, progress=bool(progress),
                 checkpoint_dir=checkpoint_dir, checkpoint_every=int(checkpoint_every))


def run_payload(config: UFMConfig, **options: Any) -> dict[str, Any]:
    """The store key's payload of ``train(config, **options)`` (see :func:`train`, ``store``).

    Examples
    --------
    >>> config = UFMConfig(width=6, per_class=2, depth=3)
    >>> a = run_payload(config, layer=2, steps=50, lr=0.1)
    >>> a == run_payload(config, layer=2, steps=50, lr=0.1, progress=False, checkpoint_dir="x")
    True
    >>> a == run_payload(config, layer=2, steps=50, lr=0.2)
    False
    """
    return _plan(config, **options).payload()


def _train_loop(config, layer, steps, lr, momentum, polish_iterations, wanted, dense_final,
                num_eigenvalues, log_every, progress, condition, key, path, checkpoint_every) -> UFMRun:
    """The body of :func:`train` (arguments already checked)."""
    y = targets(config.num_classes, config.per_class)[0]
    params = [t.detach().clone() for t in init_state(config).tensors()]
    buffers = [torch.zeros_like(t) for t in params]
    history: list[dict] = []
    snapshot_rows: list[dict] = []
    spectra: dict[int, np.ndarray] = {}
    first, seconds, resumed_from = 0, 0.0, None
    saved = None if path is None else _load_checkpoint(path, key)
    if saved is not None:
        for target, source in zip(params + buffers, saved["params"] + saved["buffers"]):
            target.copy_(source)
        history, snapshot_rows = list(saved["history"]), list(saved["snapshots"])
        spectra = {int(step): values.numpy() for step, values in saved["spectra"].items()}
        first, seconds, resumed_from = int(saved["step"]), float(saved["seconds"]), int(saved["step"])

    def current_state() -> UFMState:
        return UFMState(params[0], params[1:])

    def snapshot(step: int, *, dense: bool = False) -> LayerAnalysis:
        analysis = analyse_layer(current_state().detach(), config, layer, dense=dense,
                                 num_eigenvalues=num_eigenvalues)
        snapshot_rows.append({"step": step, **analysis.summary()})
        spectra[step] = analysis.eigenvalues
        return analysis

    def save(step: int, elapsed: float) -> None:
        _save_checkpoint(path, {
            "key": key, "step": step, "seconds": elapsed, "params": params, "buffers": buffers,
            "history": history, "snapshots": snapshot_rows,
            "spectra": {step_: torch.as_tensor(values) for step_, values in spectra.items()},
        })

    wanted_set = set(wanted)
    bar = tqdm(total=steps + 1, initial=first, desc=f"{config.activation} UFM seed {config.seed}",
               disable=not progress or _PROGRESS_QUEUE is not None, leave=False, mininterval=1.0)
    # in a worker of train_many: the steps go to the parent's one bar, not to a bar of our own
    report = _Reporter(_PROGRESS_QUEUE, steps + 1, first) if progress and _PROGRESS_QUEUE is not None else None
    started = time.perf_counter()
    for step in range(first, steps + 1):
        if step in wanted_set:
            snapshot(step)
        logged = step % log_every == 0 or step == steps
        loss, grads = loss_and_gradient(params, config, y, with_loss=logged)
        if logged:
            # reading numbers back: only on logged steps
            value, norm = float(loss), _norm(grads)
            history.append({"step": step, "phase": "gd", "loss": value, "grad_norm": norm})
            bar.set_postfix(loss=f"{value:.6g}", grad=f"{norm:.1e}", refresh=False)
            if not math.isfinite(value):
                raise FloatingPointError(f"loss diverged at step {step}: lower lr (now {lr})")
        if step < steps:
            if momentum:
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, grads)
                torch._foreach_add_(params, buffers, alpha=-lr)
            else:
                torch._foreach_add_(params, grads, alpha=-lr)
            done = step + 1
            if path is not None and (done % checkpoint_every == 0 or done == steps):
                save(done, seconds + time.perf_counter() - started)
        bar.update(1)
        if report is not None:
            report.step()
    bar.close()
    if report is not None:
        report.flush()
    seconds += time.perf_counter() - started

    tensors = [t.requires_grad_(True) for t in params]
    state = UFMState(tensors[0], tensors[1:])

    def loss_and_grad() -> tuple[float, float]:
        value, grads_ = loss_and_gradient([t.detach() for t in tensors], config, y)
        return float(value), _norm(grads_)

    iterations_done = 0
    if polish_iterations:
        lbfgs = torch.optim.LBFGS(tensors, lr=1.0, max_iter=polish_iterations, history_size=50,
                                  tolerance_grad=1e-15, tolerance_change=1e-20,
                                  line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            lbfgs.zero_grad()
            loss_ = ufm_loss(state, config, y)
            loss_.backward()
            return loss_

        lbfgs.step(closure)
        iterations_done = int(lbfgs.state[tensors[0]].get("n_iter", 0))
        value, norm = loss_and_grad()
        history.append({"step": steps + iterations_done, "phase": "lbfgs", "loss": value, "grad_norm": norm})
    final_loss, final_norm = loss_and_grad()
    final_step = steps + iterations_done
    # the final analysis replaces a phase-1 snapshot of the same step (no polish done)
    snapshot_rows[:] = [row for row in snapshot_rows if row["step"] != final_step]
    final = snapshot(final_step, dense=dense_final)
    return UFMRun(
        config=config,
        layer=layer,
        state=state.detach(),
        history=pd.DataFrame(history),
        snapshots=pd.DataFrame(snapshot_rows),
        spectra=spectra,
        final=final,
        final_loss=final_loss,
        final_grad_norm=final_norm,
        steps_run=steps,
        polish_iterations=iterations_done,
        condition=condition,
        seconds=seconds,
        resumed_from=resumed_from,
        cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
        checkpoint=None if path is None else str(path),
    )


#: Set in the worker processes of :func:`train_many` when it shows progress: the queue on which
#: their runs count their steps for the parent's one bar (several processes' bars, written to
#: one log, would interleave).
_PROGRESS_QUEUE: Any = None


def _count_steps_on(queue: Any) -> None:
    """Initializer of :func:`train_many`'s worker processes."""
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = queue


class _Reporter:
    """Counts a run's steps onto a queue, about a hundred times a run."""

    def __init__(self, queue: Any, total: int, done: int = 0) -> None:
        self.queue, self.every, self.count = queue, max(1, total // 100), int(done)
        self.flush()

    def step(self) -> None:
        self.count += 1
        if self.count >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.count:
            self.queue.put(self.count)
            self.count = 0


def _train_one(options: dict[str, Any], config: UFMConfig) -> UFMRun:
    return train(config, **options)


def train_many(configs: Sequence[UFMConfig], *, workers: int = 1, store: bool = False,
               runs_dir: str | os.PathLike | None = None, force: bool = False, **options: Any) -> list[UFMRun]:
    """:func:`train` every configuration (e.g. one per seed), in ``workers`` processes side by side.

    Each run keeps its own fixed thread count (``threads``, default 1) and deterministic
    algorithms, so the result does not depend on ``workers``; the processes are spawned
    (not forked: torch's thread pools do not survive a fork). ``workers`` is capped by the
    number of configurations to train; ``1`` trains them one after the other in this process.

    With ``store`` (or a ``runs_dir``) every run is kept in the results store as :func:`train`
    keeps it (the same key: ``workers`` is no part of it): the stored runs are loaded here, and
    only the others are trained (then stored by the process that trained them); ``force``
    trains them all again.

    With ``progress`` (the default) runs trained in this process show their own bar, one after
    the other; runs in worker processes show none, and this process shows one bar over the
    steps of all of them (one bar, readable in a log that is no terminal).

    Returns
    -------
    list of UFMRun
        In the order of ``configs``.

    Examples
    --------
    >>> runs = train_many([UFMConfig(width=6, per_class=2, depth=3, seed=s) for s in (0, 1)],
    ...                   layer=2, steps=20, lr=0.1, progress=False)
    >>> [run.config.seed for run in runs]
    [0, 1]
    """
    configs = list(configs)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    plans = [_plan(config, **options) for config in configs]  # every argument checked before any work
    runs: list[UFMRun | None] = [None] * len(configs)
    if store or runs_dir is not None:
        runs_dir = _store.runs_root(runs_dir)
        options = {**options, "store": True, "runs_dir": runs_dir, "force": force}
        if not force:
            runs = [_store.load(plan.payload(), runs_dir=runs_dir) for plan in plans]
    missing = [index for index, run in enumerate(runs) if run is None]
    workers = min(int(workers), len(missing))
    if workers <= 1:
        for index in missing:
            runs[index] = train(configs[index], **options)
    else:
        trained = _train_in_processes([configs[index] for index in missing], workers, options,
                                      [plans[index].steps + 1 for index in missing])
        for index, run in zip(missing, trained):
            runs[index] = run
    return runs


def _train_in_processes(configs: list[UFMConfig], workers: int, options: dict[str, Any],
                        totals: list[int]) -> list[UFMRun]:
    """:func:`train` each configuration in one of ``workers`` spawned processes, one bar here."""
    context = multiprocessing.get_context("spawn")
    if not options.get("progress", True):
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return list(pool.map(functools.partial(_train_one, options), configs))
    queue = context.Queue()

    def counted() -> int:
        total = 0
        with contextlib.suppress(queue_module.Empty):
            while True:
                total += queue.get_nowait()
        return total

    bar = tqdm(total=sum(totals), desc=f"{len(configs)} UFM runs in {workers} processes", unit="step",
               mininterval=1.0, postfix={"finished": f"0/{len(configs)}"})
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_count_steps_on,
                                 initargs=(queue,)) as pool:
            futures = [pool.submit(_train_one, options, config) for config in configs]
            pending, finished = set(futures), 0
            while pending:
                done, pending = wait(pending, timeout=0.5)
                for future in done:
                    run = future.result()  # a worker's error (a diverged loss) is raised here
                    finished += 1
                    bar.set_postfix(finished=f"{finished}/{len(futures)}", refresh=False)
                    bar.write(f"trained {run.config.activation} UFM seed {run.config.seed} "
                              f"({finished} of {len(futures)}; gradient descent {run.seconds:.1f} s)",
                              file=sys.stderr)  # with the bar: not in a chapter's printed output
                bar.update(counted())  # redrawn at most once a second (mininterval)
            runs = [future.result() for future in futures]
        bar.update(counted())
    finally:
        bar.close()
        queue.close()
    return runs


def snapshot_schedule(steps: int, count: int) -> list[int]:
    """Step 0 and about ``count`` log-spaced steps in ``1 .. steps`` (unique, sorted).

    Examples
    --------
    >>> snapshot_schedule(1000, 4)
    [0, 1, 10, 100, 1000]
    """
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if steps == 0:
        return [0]
    spaced = np.unique(np.round(np.geomspace(1, steps, count)).astype(int))
    return [0, *(int(step) for step in spaced)]
