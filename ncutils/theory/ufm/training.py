"""Training a deep UFM: full-batch GD with momentum, then L-BFGS, with spectrum snapshots.

Each run fixes its seed (``UFMConfig.seed``) and its torch thread count, and runs with
torch's deterministic algorithms (DESIGN 8.7). The gradient-descent phase uses a hand-written
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
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

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

__all__ = ["UFMRun", "train", "snapshot_schedule", "loss_and_gradient", "checkpoint_path", "train_many"]

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
    """Temporarily make torch use deterministic algorithms only (DESIGN 8.7)."""
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
    can differ between levels, DESIGN 8.7).
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

    Returns
    -------
    UFMRun

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

    condition = regularisation_condition(config.num_classes, config.per_class, config.depth,
                                         config.lambda_w, config.lambda_h)
    log_every = log_every or max(1, steps // 200)
    wanted = sorted({int(s) for s in snapshot_steps})
    key = _run_key(config, layer, steps, lr, momentum, wanted, log_every, num_eigenvalues)
    path = None if checkpoint_dir is None else checkpoint_path(checkpoint_dir, key)
    with _torch_threads(threads), _deterministic():
        run = _train_loop(config, layer, steps, lr, momentum, polish_iterations, wanted, dense_final,
                          num_eigenvalues, log_every, progress, condition, key, path, int(checkpoint_every))
    run.threads = torch.get_num_threads() if threads is None else int(threads)
    return run


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
               disable=not progress, leave=False, mininterval=1.0)
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
    bar.close()
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


def _train_one(options: dict[str, Any], config: UFMConfig) -> UFMRun:
    return train(config, **options)


def train_many(configs: Sequence[UFMConfig], *, workers: int = 1, **options: Any) -> list[UFMRun]:
    """:func:`train` every configuration (e.g. one per seed), in ``workers`` processes side by side.

    Each run keeps its own fixed thread count (``threads``, default 1) and deterministic
    algorithms, so the result does not depend on ``workers``; the processes are spawned
    (not forked: torch's thread pools do not survive a fork). ``workers`` is capped by the
    number of configurations; ``1`` trains them one after the other in this process.

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
    workers = min(int(workers), len(configs))
    if workers <= 1:
        return [train(config, **options) for config in configs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(functools.partial(_train_one, options), configs))


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
