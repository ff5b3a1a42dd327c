"""Benchmark: one full-batch GD step of the paper's ReLU UFM against a plain autograd step.

Run from the repository root::

    python benchmarks/ufm.py                 # K = 3, n = 40, L = 5, d = 65, one thread
    python benchmarks/ufm.py --steps 5000 --repeats 7

The target: a step of :func:`ncutils.theory.ufm.train` stays within 1.2x of a plain
autograd step of the same model. The two loops do the same work per step, in float64 with one
torch thread and deterministic algorithms:

* ``plain autograd``: ``loss = ufm_loss(...)``, ``torch.autograd.grad(loss, params)``, then the
  heavy-ball update ``v <- 0.9 v + g``, ``p <- p - 0.1 v`` under ``no_grad``;
* ``ufm.train``: the training loop itself (its hand-written backward pass, logging every
  ``steps // 200`` steps, no snapshots, no polish), timed by the run's own ``seconds``.

Each time is the best (and the median) of ``--repeats`` blocks of ``--steps`` steps after a
warm-up; the two loops alternate, so a change of load affects both alike. The machine's load
average is printed: on a shared machine compare the ratio, not the times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncutils.theory import ufm  # noqa: E402


def plain_autograd(config: ufm.UFMConfig, steps: int, lr: float = 0.1, momentum: float = 0.9) -> float:
    """Seconds per step of a bare autograd loop with the same update as ``ufm.train``."""
    y = ufm.targets(config.num_classes, config.per_class)[0]
    params = [t.clone().requires_grad_(True) for t in ufm.init_state(config).tensors()]
    buffers = [torch.zeros_like(t) for t in params]
    start = time.perf_counter()
    for _ in range(steps):
        loss = ufm.ufm_loss(ufm.UFMState(params[0], params[1:]), config, y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            torch._foreach_add_(params, buffers, alpha=-lr)
    return (time.perf_counter() - start) / steps


def library(config: ufm.UFMConfig, steps: int) -> float:
    """Seconds per step of :func:`ncutils.theory.ufm.train` (its GD phase)."""
    run = ufm.train(config, layer=config.depth - 1, steps=steps, lr=0.1, momentum=0.9, progress=False)
    return run.seconds / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=65)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    config = ufm.UFMConfig(num_classes=3, per_class=40, depth=5, width=args.width, activation="relu")
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.2f}")
    print(f"ReLU UFM K=3, n=40, L=5, d={args.width}, float64, 1 thread; {args.repeats} x {args.steps} steps")
    plain_autograd(config, 200)
    library(config, 200)
    times: dict[str, list[float]] = {"plain autograd": [], "ufm.train": []}
    for _ in range(args.repeats):
        times["plain autograd"].append(plain_autograd(config, args.steps))
        times["ufm.train"].append(library(config, args.steps))
    for name, values in times.items():
        print(f"{name:>15}: best {min(values) * 1e3:.3f} ms/step, median {statistics.median(values) * 1e3:.3f} ms/step")
    best = min(times["ufm.train"]) / min(times["plain autograd"])
    median = statistics.median(times["ufm.train"]) / statistics.median(times["plain autograd"])
    print(f"ratio ufm.train / plain autograd: best {best:.2f}x, median {median:.2f}x (target <= 1.2x)")
    print(f"10^6 steps at the best ufm.train time: {min(times['ufm.train']) * 1e6 / 60:.1f} min")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
