"""Benchmark: the cost of a full layer sweep as a ratio to one plain forward pass.

Run from the repository root::

    python benchmarks/sweep.py                 # MLP6 and a small VGG11, N = 5,000, side by side
    python benchmarks/sweep.py --n 1000        # quicker
    python benchmarks/sweep.py --device cuda   # on a GPU (statistics on the GPU too)

What is timed, on the same N inputs (random MNIST-shaped 1 x 28 x 28 images around C = 10
class centres; the cost does not depend on the values) and the same batch size:

* ``forward``: one plain forward pass over the N inputs, batch by batch, in eval mode under
  ``torch.no_grad`` (the logits are discarded);
* ``sweep (keep)``: ``ncutils.sweep.layer_sweep`` with a budget large enough to keep every
  probe point's features from pass 1: one forward pass, pass 2 without one;
* ``sweep (recompute)``: the same with ``memory_budget=0``: two forward passes.

Each time is the best of ``--repeats`` rounds (after one warm-up round); the three
measurements run interleaved, one of each per round. The target of
The target is a ratio of at most 2 plus the O(N D C) statistics (class means,
within-class sums, the C x C projected scatter and the NCC predictions of every probe point,
summed over the probe points' dimensions D). The forward passes a sweep makes are counted
with a forward hook and printed, so the ratio can be split into forward passes and statistics.
``ratio w/o alignment`` leaves out the time spent in ``sweep.batched_alignments`` (the SVDs
of each consumer layer's weight: a cost per layer that does not grow with N), measured inside
the same runs.

The machine's load changes these times (other processes on the same cores): the script
prints the load average at the start; compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncutils import sweep  # noqa: E402
from ncutils.models import build_model  # noqa: E402
from ncutils.sweep import layer_sweep  # noqa: E402

INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10

# name -> (architecture, keyword arguments of build_model)
MODELS: dict[str, tuple[str, dict]] = {
    "MLP6 (width 512)": ("mlp", {"depth": 6, "width": 512}),
    "VGG11 (width 1/8)": ("vgg", {"config": "vgg11", "width": 0.125}),
}


def make_inputs(n_samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 images around random class centres, and balanced labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_samples) % NUM_CLASSES
    centres = torch.randn(NUM_CLASSES, *INPUT_SHAPE, generator=generator)
    inputs = centres[labels] + torch.randn(n_samples, *INPUT_SHAPE, generator=generator)
    return inputs, labels


class AlignmentTimer:
    """Times ``sweep.batched_alignments`` inside a sweep (SVDs of the consumer weights).

    Those SVDs cost O(in * out * min(in, out)) per consumer layer whatever N is, so they are
    reported apart from the per-sample work the target is about.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._original = sweep.batched_alignments

    def __enter__(self) -> "AlignmentTimer":
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return self._original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        sweep.batched_alignments = timed
        return self

    def __exit__(self, *exc_info) -> None:
        sweep.batched_alignments = self._original


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_times(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Best wall time of each function over ``repeats`` rounds, and the best time net of the
    alignment SVDs measured inside the same calls, in seconds.

    The functions run interleaved (one call of each per round, after one warm-up round), so a
    change in the machine's load hits them alike instead of biasing one of them.
    """
    for function in functions.values():
        function()
    best = {name: (float("inf"), float("inf")) for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            _synchronize()
            with AlignmentTimer() as alignment:
                started = time.perf_counter()
                function()
                _synchronize()
                elapsed = time.perf_counter() - started
            total, net = best[name]
            best[name] = (min(total, elapsed), min(net, elapsed - alignment.seconds))
    return best


def plain_forward(model: nn.Module, inputs: torch.Tensor, batch_size: int, device: torch.device) -> None:
    model.eval()
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            model(inputs[start:start + batch_size].to(device))


def count_forward_passes(model: nn.Module, run: Callable[[], object]) -> int:
    calls = [0]
    handle = model.register_forward_hook(lambda module, args, output: calls.__setitem__(0, calls[0] + 1))
    try:
        run()
    finally:
        handle.remove()
    return calls[0]


def benchmark_model(
    label: str, arch: str, arch_kwargs: dict, inputs: torch.Tensor, labels: torch.Tensor,
    *, batch_size: int, repeats: int, device: torch.device,
) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES, **arch_kwargs).to(device)
    inputs, labels = inputs.to(device), labels.to(device)
    n_batches = -(-inputs.shape[0] // batch_size)

    def sweep(budget: float) -> object:
        return layer_sweep(model, inputs, labels, batch_size=batch_size, memory_budget=budget)

    budgets = {"keep": float("inf"), "recompute": 0}
    times = best_times(
        {"forward": lambda: plain_forward(model, inputs, batch_size, device)}
        | {path: (lambda budget=budget: sweep(budget)) for path, budget in budgets.items()},
        repeats,
    )
    forward_s = times["forward"][0]
    row = {"model": label, "probe points": len(model.probe_points), "forward s": forward_s}
    for path, budget in budgets.items():
        total, net = times[path]
        row[f"{path} s"] = total
        row[f"{path} passes"] = count_forward_passes(model, lambda: sweep(budget)) / n_batches
        row[f"{path} ratio"] = total / forward_s
        row[f"{path} ratio w/o alignment"] = net / forward_s
    table = sweep(float("inf"))
    row["sum D"] = int(table["dim"].sum())
    row["max D"] = int(table["dim"].max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="samples (default 5000)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)

    inputs, labels = make_inputs(arguments.n)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.1f} at start, "
          f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f"; torch {torch.__version__}; python {platform.python_version()}")
    print(f"N = {arguments.n}, C = {NUM_CLASSES}, inputs {INPUT_SHAPE}, batch {arguments.batch_size}, "
          f"best of {arguments.repeats}\n")
    rows = [
        benchmark_model(label, arch, kwargs, inputs, labels, batch_size=arguments.batch_size,
                        repeats=arguments.repeats, device=device)
        for label, (arch, kwargs) in MODELS.items()
    ]
    columns = ["model", "probe points", "sum D", "max D", "forward s",
               "keep passes", "keep s", "keep ratio", "keep ratio w/o alignment",
               "recompute passes", "recompute s", "recompute ratio", "recompute ratio w/o alignment"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                cells.append(f"{value:.0f}" if column.endswith("passes") else
                             f"{value:.2f}x" if "ratio" in column else f"{value:.3f}")
            else:
                cells.append(str(value))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
