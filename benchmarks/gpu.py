"""Benchmark of issue 11: statistics bound by the device, not by the host (GPU or CPU).

Run from the repository root::

    python benchmarks/gpu.py                  # the issue's sizes, on cuda when there is one
    python benchmarks/gpu.py --small          # CPU-sized: smaller N, D and ResNet width
    python benchmarks/gpu.py --device cpu --small --threads 1

Three tables, every ratio from measurements taken side by side in this one run (the
functions compared run interleaved, one call of each per round, after a warm-up round;
each time is the best of ``--repeats`` rounds, with the device synchronised around it):

1. **Exact NC1** on the same device and the same float32 features (N samples, C Gaussian
   classes): ``ncutils.metrics.nc1`` (classes discovered, two passes, C x C route),
   ``ncutils`` with the classes fixed up front (``ClassStats(num_classes=C)``, no host read
   per batch) and the dense float64 route of public code (``Sigma_W``, ``Sigma_B`` as D x D
   matrices, ``torch.linalg.pinv``: the reference :func:`ncutils.synthetic.dense_nc1`), with
   the relative difference of the values.
   Target (the project's performance goal): at D = 4,096, N = 10,000 at least 50x.
2. **Layer sweep / one forward pass**: ``ncutils.sweep.layer_sweep(..., num_classes=C)`` with
   the device's default memory budget (keep on a CPU, recompute on a GPU), against one plain
   eval-mode forward pass over the same N inputs at the same batch size. The consumer layers'
   alignment SVDs (``sweep.batched_alignments``, a per-layer cost independent of N) are timed
   inside the same calls and reported beside the ratio, not inside it (they do not grow with N).
   Target: at most 3x on a GPU, for ResNet-18 (N = 10,000, 32 px) and MLP 7 x 1,024
   (N = 20,000, 28 px).
3. **Training epoch fp32 vs bf16** (ResNet-18 at batch 512), only when
   ``ncutils.train.TrainConfig`` has a ``precision`` field and ``run_epoch`` takes it;
   otherwise the table says "not available".

The machine's load changes these times: the script prints the load average at the start.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncutils import metrics, sweep, train  # noqa: E402
from ncutils.models import build_model  # noqa: E402
from ncutils.stats import ClassStats, ProjectedScatter  # noqa: E402
from ncutils.synthetic import dense_nc1  # noqa: E402

NUM_CLASSES = 10
FULL = dict(nc1_n=10_000, nc1_dims=(1024, 4096), resnet_n=10_000, resnet_width=64, mlp_n=20_000,
            mlp_width=1024, epoch_n=50_000)
SMALL = dict(nc1_n=4_000, nc1_dims=(256, 1024), resnet_n=512, resnet_width=16, mlp_n=2_000,
             mlp_width=1024, epoch_n=2_048)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(functions: dict[str, Callable[[], object]], repeats: int,
                device: torch.device) -> dict[str, float]:
    """Best wall time of each function, the functions run one after another in each round."""
    for function in functions.values():
        function()
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            synchronize(device)
            started = time.perf_counter()
            function()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def print_table(columns: list[str], rows: list[list[object]]) -> None:
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print()


# ----------------------------------------------------------------------------- exact NC1
def make_features(n: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(dim)
    labels = torch.arange(n) % NUM_CLASSES
    features = 2.0 * torch.randn(NUM_CLASSES, dim, generator=generator)[labels]
    features += torch.randn(n, dim, generator=generator)
    return features.to(device), labels.to(device)


def fixed_nc1(features: torch.Tensor, labels: torch.Tensor, batch: int = 4096) -> float:
    """ncutils with the classes fixed up front, streamed in batches as a sweep feeds it."""
    stats = ClassStats(num_classes=NUM_CLASSES)
    for start in range(0, features.shape[0], batch):
        stats.update(features[start:start + batch], labels[start:start + batch])
    scatter = ProjectedScatter(stats)
    for start in range(0, features.shape[0], batch):
        scatter.update(features[start:start + batch], labels[start:start + batch])
    return metrics.nc1_from_stats(stats, scatter)


def bench_nc1(sizes: dict, device: torch.device, repeats: int) -> None:
    n = sizes["nc1_n"]
    print(f"### Exact NC1: N = {n:,}, C = {NUM_CLASSES}, float32 features on {device}\n")
    rows = []
    for dim in sizes["nc1_dims"]:
        features, labels = make_features(n, dim, device)
        values = {"nc1": metrics.nc1(features, labels), "fixed": fixed_nc1(features, labels),
                  "dense": dense_nc1(features, labels)}
        times = interleaved({"nc1": lambda: metrics.nc1(features, labels),
                             "fixed": lambda: fixed_nc1(features, labels),
                             "dense": lambda: dense_nc1(features, labels)}, repeats, device)
        difference = max(abs(values[key] - values["dense"]) for key in ("nc1", "fixed")) / abs(values["dense"])
        rows.append([f"{dim:,}", f"{times['nc1'] * 1e3:.1f} ms", f"{times['fixed'] * 1e3:.1f} ms",
                     f"{times['dense'] * 1e3:.1f} ms", f"{times['dense'] / times['nc1']:.0f}x",
                     f"{times['dense'] / times['fixed']:.0f}x", f"{difference:.1e}"])
        del features
    print_table(["D", "ncutils nc1", "ncutils fixed classes", "dense float64 pinv", "ratio (nc1)",
                 "ratio (fixed)", "rel. diff"], rows)


# ----------------------------------------------------------------------------- layer sweep
class AlignmentTimer:
    """Times ``sweep.batched_alignments`` (the consumer layers' SVDs) inside a sweep."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self._original = device, 0.0, sweep.batched_alignments

    def __enter__(self) -> "AlignmentTimer":
        def timed(*args, **kwargs):
            synchronize(self.device)
            started = time.perf_counter()
            try:
                return self._original(*args, **kwargs)
            finally:
                synchronize(self.device)
                self.seconds += time.perf_counter() - started

        sweep.batched_alignments = timed
        return self

    def __exit__(self, *exc_info) -> None:
        sweep.batched_alignments = self._original


def plain_forward(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    model.eval()
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            model(inputs[start:start + batch_size])


def bench_sweep(sizes: dict, device: torch.device, repeats: int, batch_size: int) -> None:
    cases = [
        (f"ResNet-18 width {sizes['resnet_width']}, 32 px", "resnet18", {"width": sizes["resnet_width"]},
         (3, 32, 32), sizes["resnet_n"]),
        (f"MLP 7 x {sizes['mlp_width']:,}, 28 px", "mlp", {"depth": 7, "width": sizes["mlp_width"]},
         (1, 28, 28), sizes["mlp_n"]),
    ]
    print(f"### Layer sweep / one forward pass on {device} (batch {batch_size}, flatten, no test data)\n")
    rows = []
    for label, arch, kwargs, shape, n in cases:
        torch.manual_seed(0)
        model = build_model(arch, input_shape=shape, num_classes=NUM_CLASSES, **kwargs).to(device)
        generator = torch.Generator().manual_seed(0)
        labels = torch.arange(n) % NUM_CLASSES
        inputs = (torch.randn(NUM_CLASSES, *shape, generator=generator)[labels]
                  + torch.randn(n, *shape, generator=generator)).to(device)
        labels = labels.to(device)
        forward_calls = [0]
        model.register_forward_hook(lambda *_: forward_calls.__setitem__(0, forward_calls[0] + 1))
        alignment_seconds: list[float] = []

        def run_sweep() -> None:
            with AlignmentTimer(device) as timer:
                sweep.layer_sweep(model, inputs, labels, batch_size=batch_size, num_classes=NUM_CLASSES)
            alignment_seconds.append(timer.seconds)

        times = interleaved({"forward": lambda: plain_forward(model, inputs, batch_size), "sweep": run_sweep},
                            repeats, device)
        forward_calls[0] = 0
        run_sweep()
        passes = forward_calls[0] / -(-n // batch_size)
        alignment = min(alignment_seconds)
        statistics = times["sweep"] - alignment
        rows.append([label, f"{n:,}", f"{times['forward']:.3f} s", f"{times['sweep']:.3f} s", f"{passes:.0f}",
                     f"{alignment:.3f} s", f"{statistics / times['forward']:.2f}x",
                     f"{times['sweep'] / times['forward']:.2f}x"])
    print_table(["model", "N", "one forward pass", "sweep", "forward passes in sweep", "alignment SVDs",
                 "ratio w/o SVDs", "ratio with SVDs"], rows)


# ----------------------------------------------------------------------------- training epoch
def bench_epoch(sizes: dict, device: torch.device, repeats: int) -> None:
    print(f"### Training epoch fp32 vs bf16 on {device} (ResNet-18 width {sizes['resnet_width']}, batch 512)\n")
    fields = {field.name for field in dataclasses.fields(train.TrainConfig)}
    if "precision" not in fields or "precision" not in inspect.signature(train.run_epoch).parameters:
        why = ("`TrainConfig` has no `precision` field" if "precision" not in fields
               else "`run_epoch` takes no `precision` argument")
        print_table(["fp32 s/epoch", "bf16 s/epoch", "ratio"], [["not available", "not available", why]])
        return
    n = sizes["epoch_n"]
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(n, 3, 32, 32, generator=generator).to(device)
    labels = (torch.arange(n) % NUM_CLASSES).to(device)
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model("resnet18", input_shape=(3, 32, 32), num_classes=NUM_CLASSES,
                            width=sizes["resnet_width"]).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = train.make_loss("ce", NUM_CLASSES)
        epoch_generator = torch.Generator(device=device).manual_seed(0)
        runs[precision] = (lambda model=model, optimizer=optimizer, loss_fn=loss_fn, precision=precision,
                           epoch_generator=epoch_generator: train.run_epoch(
                               model, inputs, labels, loss_fn=loss_fn, optimizer=optimizer, batch_size=512,
                               generator=epoch_generator, precision=precision))
    times = interleaved(runs, repeats, device)
    print_table(["fp32 s/epoch", "bf16 s/epoch", "ratio"],
                [[f"{times['fp32']:.3f}", f"{times['bf16']:.3f}", f"{times['fp32'] / times['bf16']:.2f}x"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="CPU-sized problems (see SMALL)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip", nargs="*", default=(), choices=("nc1", "sweep", "epoch"))
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    sizes = SMALL if arguments.small else FULL
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}); {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.1f} at start; torch {torch.__version__}; "
          f"python {platform.python_version()}; sizes {'small' if arguments.small else 'full'}; "
          f"best of {arguments.repeats}, interleaved\n")
    if "nc1" not in arguments.skip:
        bench_nc1(sizes, device, arguments.repeats)
    if "sweep" not in arguments.skip:
        bench_sweep(sizes, device, arguments.repeats, arguments.batch_size)
    if "epoch" not in arguments.skip:
        bench_epoch(sizes, device, arguments.repeats)


if __name__ == "__main__":
    main()
