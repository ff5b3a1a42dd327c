"""Benchmark: epoch time of the device-resident training loop against a DataLoader baseline.

Run from the repository root::

    python benchmarks/training.py                  # MLPs and a narrow VGG11 on mnist5k, CPU
    python benchmarks/training.py --threads 1      # one torch thread (a shared, busy machine)
    python benchmarks/training.py --device cuda    # on a GPU

Both loops train the same model (same initial weights, same optimizer: SGD with
momentum 0.9, cross-entropy) on the 4,000 mnist5k training images with the same batch
size and the same number of steps per epoch; each accumulates its loss on the device
and reads it once per epoch. They differ only in how a batch reaches the model:

* ``resident``: :func:`ncutils.train.run_epoch`, the loop :func:`ncutils.train.train`
  uses: the data sit on the device as two tensors, each step indexes them with a batch
  of indices (:func:`ncutils.data.iterate_minibatches`);
* ``DataLoader``: ``torch.utils.data.DataLoader(TensorDataset(inputs, labels),
  batch_size, shuffle=True)`` with the data on the CPU (the usual set-up; ``num_workers=0``,
  as worker processes only compete for the cores on a 2-core machine), each batch moved
  to the device; ``__getitem__`` per sample and the default collate stack the batch.

Each time is the best of ``--repeats`` epochs after one warm-up epoch; the two loops'
epochs alternate, so a change of load during the run affects both alike. ``ratio`` is
DataLoader time / resident time: how many times faster the resident loop runs an epoch.
The model's own cost is the same in both, so the ratio is largest for small models.
The machine's load changes the times (other processes on the same cores): the script
prints the load average; compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncutils.data import load_dataset  # noqa: E402
from ncutils.models import build_model  # noqa: E402
from ncutils.train import make_loss, run_epoch  # noqa: E402

# name -> (architecture, keyword arguments of build_model)
MODELS: dict[str, tuple[str, dict]] = {
    "MLP3 (width 64)": ("mlp", {"depth": 3, "width": 64}),
    "MLP6 (width 256)": ("mlp", {"depth": 6, "width": 256}),
    "VGG11 (width 1/16)": ("vgg", {"config": "vgg11", "width": 1 / 16, "fc_widths": (64,)}),
}


def dataloader_epoch(model: nn.Module, loader: DataLoader, loss_fn, optimizer: torch.optim.Optimizer,
                     device: torch.device) -> float:
    """The baseline: the same step as ``run_epoch``, batches from a DataLoader."""
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * labels.shape[0]
        count += labels.shape[0]
    return float(total) / count


def _timed(run_one_epoch, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run_one_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(arch: str, kwargs: dict, train_cpu, batch_size: int, repeats: int,
            device: torch.device) -> tuple[float, float]:
    """(resident, DataLoader) best seconds per epoch for one model.

    The two loops' epochs alternate (after one warm-up epoch each), so a change of the
    machine's load during the run hits both alike.
    """
    loss_fn = make_loss("ce", train_cpu.num_classes)
    torch.manual_seed(0)
    initial = build_model(arch, input_shape=train_cpu.input_shape,
                          num_classes=train_cpu.num_classes, **kwargs).state_dict()

    def fresh_model() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = build_model(arch, input_shape=train_cpu.input_shape,
                            num_classes=train_cpu.num_classes, **kwargs)
        model.load_state_dict(initial)
        model.to(device)
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    inputs, labels = train_cpu.inputs.to(device), train_cpu.labels.to(device)
    resident_model, resident_optimizer = fresh_model()
    generator = torch.Generator().manual_seed(0)

    def resident_epoch() -> float:
        return run_epoch(resident_model, inputs, labels, loss_fn=loss_fn,
                         optimizer=resident_optimizer, batch_size=batch_size, generator=generator)

    loader_model, loader_optimizer = fresh_model()
    loader = DataLoader(TensorDataset(train_cpu.inputs, train_cpu.labels), batch_size=batch_size,
                        shuffle=True, generator=torch.Generator().manual_seed(0),
                        pin_memory=device.type == "cuda")

    def loader_epoch() -> float:
        return dataloader_epoch(loader_model, loader, loss_fn, loader_optimizer, device)

    resident_epoch()  # warm-up: allocator, kernels, first touch of the data
    loader_epoch()
    resident_times, loader_times = [], []
    for _ in range(repeats):
        resident_times.append(_timed(resident_epoch, device))
        loader_times.append(_timed(loader_epoch, device))
    return min(resident_times), min(loader_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS),
                        metavar="MODEL", help=f"subset of {list(MODELS)}")
    arguments = parser.parse_args()
    if arguments.threads is not None:
        torch.set_num_threads(arguments.threads)
    device = torch.device(arguments.device)
    train_cpu = load_dataset("mnist5k", "train")
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} at "
          f"start{gpu}; torch {torch.__version__}; python {platform.python_version()}")
    print(f"mnist5k train: N = {len(train_cpu)}, inputs {train_cpu.input_shape}, "
          f"batch {arguments.batch_size}, device {device}, best of {arguments.repeats} epochs")
    print("| model | resident s/epoch | DataLoader s/epoch | ratio (DataLoader / resident) |")
    print("|---|---|---|---|")
    for name in arguments.models:
        arch, kwargs = MODELS[name]
        resident, baseline = compare(arch, kwargs, train_cpu, arguments.batch_size,
                                     arguments.repeats, device)
        print(f"| {name} | {resident:.3f} | {baseline:.3f} | {baseline / resident:.2f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
