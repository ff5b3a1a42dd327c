"""Training a deep UFM: full-batch GD with momentum, then L-BFGS, with spectrum snapshots.

Each run fixes its seed (``UFMConfig.seed``) and its torch thread count (DESIGN 8.7).

References
----------
C. Garrod and J. P. Keating, arXiv:2404.06106 (2024), Section 5 (numerical experiments).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Sequence

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

__all__ = ["UFMRun", "train", "snapshot_schedule"]

# --------------------------------------------------------------------------- training
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


@dataclass
class UFMRun:
    """Result of :func:`train`.

    ``history`` has one row per logged step (``step``, ``phase``, ``loss``,
    ``grad_norm``); ``snapshots`` one row per snapshot (``step`` plus
    :meth:`LayerAnalysis.summary`); ``spectra`` maps a snapshot step to its
    descending eigenvalues; ``final`` is the analysis at the end.
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
) -> UFMRun:
    """Train a deep UFM full batch in float64, recording the layer spectrum along the way.

    Phase 1: ``steps`` steps of gradient descent with heavy-ball ``momentum``
    (``momentum = 0`` is plain GD) at learning rate ``lr``, analysing ``W_layer``
    (:func:`analyse_layer`) at every step in ``snapshot_steps`` (step 0 = the
    initialisation). Phase 2: up to ``polish_iterations`` L-BFGS iterations
    (strong-Wolfe line search) to drive the gradient to round-off; the final
    analysis (with the dense autograd Hessian when ``dense_final``) is taken
    after it and also stored as a snapshot at step ``steps + polish_iterations``.

    Everything runs with ``threads`` torch threads (default 1: the matrices
    are tiny, and on a busy machine extra threads made each step, and even the
    dense eigendecomposition, several times slower in our measurements);
    ``None`` keeps torch's setting.

    Returns
    -------
    UFMRun

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
    with _torch_threads(threads):
        return _train_loop(config, layer, steps, lr, momentum, polish_iterations, wanted,
                           dense_final, num_eigenvalues, log_every, progress, condition)


def _train_loop(config, layer, steps, lr, momentum, polish_iterations, wanted, dense_final,
                num_eigenvalues, log_every, progress, condition) -> UFMRun:
    """The body of :func:`train` (arguments already checked)."""
    y = targets(config.num_classes, config.per_class)[0]
    start = init_state(config)
    tensors = [t.requires_grad_(True) for t in start.tensors()]
    state = UFMState(tensors[0], tensors[1:])
    optimiser = torch.optim.SGD(tensors, lr=lr, momentum=momentum)
    history, snapshot_rows, spectra = [], [], {}

    def snapshot(step: int, *, dense: bool = False) -> LayerAnalysis:
        analysis = analyse_layer(state.detach(), config, layer, dense=dense,
                                 num_eigenvalues=num_eigenvalues)
        snapshot_rows.append({"step": step, **analysis.summary()})
        spectra[step] = analysis.eigenvalues
        return analysis

    def backward() -> torch.Tensor:
        optimiser.zero_grad()
        loss = ufm_loss(state, config, y)
        loss.backward()
        return loss

    def loss_and_grad() -> tuple[float, float]:
        loss = backward()
        norm = math.sqrt(sum(float((t.grad**2).sum()) for t in tensors))
        return float(loss.detach()), norm

    bar = tqdm(range(steps + 1), desc=f"{config.activation} UFM", disable=not progress, leave=False)
    for step in bar:
        if step in wanted:
            snapshot(step)
        if step % log_every == 0 or step == steps:
            # reading numbers back costs a sync: only on logged steps
            loss, norm = loss_and_grad()
            history.append({"step": step, "phase": "gd", "loss": loss, "grad_norm": norm})
            bar.set_postfix(loss=f"{loss:.6g}", grad=f"{norm:.1e}", refresh=False)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss diverged at step {step}: lower lr (now {lr})")
        else:
            backward()
        if step < steps:
            optimiser.step()
    bar.close()

    iterations_done = 0
    if polish_iterations:
        lbfgs = torch.optim.LBFGS(tensors, lr=1.0, max_iter=polish_iterations, history_size=50,
                                  tolerance_grad=1e-15, tolerance_change=1e-20,
                                  line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            lbfgs.zero_grad()
            loss = ufm_loss(state, config, y)
            loss.backward()
            return loss

        lbfgs.step(closure)
        iterations_done = int(lbfgs.state[tensors[0]].get("n_iter", 0))
        loss, norm = loss_and_grad()
        history.append({"step": steps + iterations_done, "phase": "lbfgs", "loss": loss, "grad_norm": norm})
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
    )


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
