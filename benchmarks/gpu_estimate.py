"""An *estimate* of each chapter's time on one H100 for a profile (default gpu), from its FLOPs.

Run from the repository root (reads no dataset, trains nothing; a few seconds)::

    python benchmarks/gpu_estimate.py                   # the gpu profile
    python benchmarks/gpu_estimate.py --profile paper
    python benchmarks/gpu_estimate.py --cpu-gflops 30   # also the same work on a CPU at 30 GFLOP/s

Nothing here is measured on a GPU (no GPU has been lent to this project's sessions). For every
:class:`~ncutils.train.TrainConfig` a chapter declares (``Chapter.trains``) the script counts the
forward multiply-adds of its network on one input (hooks on every ``Linear`` and ``Conv2d``),
and takes

* training: ``3 x 2 x MACs`` FLOPs per image per epoch (forward and backward), over the
  training images (``limit_train`` or the dataset's size), and at least ``--step-ms`` per
  optimiser step (kernel launches bound small networks at batch 128, not FLOPs);
* measurement: two forward passes over the training and test images for every swept epoch
  (the layer sweep's two passes), ``2 x MACs`` FLOPs per image each;
* time = FLOPs / ``--tflops`` (the sustained rate assumed for fp32/TF32 training of these small
  networks at batch 128; far below the H100's peak), or the step floor when it is longer.

Chapters that train no TrainConfig are estimated from what they run instead: K2 (per-sample SGD
of all trials as one vmapped float64 model, latency-bound) at ``--k2-step-ms`` per iteration and
``--k2-log-ms`` per logged forward pass of one trial; the UFM chapter runs on
the CPU in every profile, from its steps at the cpu profile's measured rate; measuring_collapse
at a fixed minute. Shared runs (the four Parker chapters train one grid) are counted once, for
the first chapter that declares them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncutils import data_fixtures  # noqa: E402
from ncutils.book import profiles  # noqa: E402
from ncutils.models import build_model  # noqa: E402

#: (input shape, training images, test images) of the full datasets.
DATASETS = {
    "mnist": ((1, 28, 28), 60_000, 10_000), "fashionmnist": ((1, 28, 28), 60_000, 10_000),
    "kmnist": ((1, 28, 28), 60_000, 10_000), "cifar10": ((3, 32, 32), 50_000, 10_000),
    "cifar100": ((3, 32, 32), 50_000, 10_000), "svhn": ((3, 32, 32), 73_257, 26_032),
    "digits": ((1, 8, 8), 1_438, 359), "mnist5k": ((1, 28, 28), 4_000, 1_000), "mnist1d": ((1, 40), 4_000, 1_000),
}

#: The cpu profile's UFM chapter: about 90 s for 4 ReLU seeds x 20,000 steps in 2 processes (README).
UFM_SECONDS_PER_STEP = 90.0 * 2 / (4 * 20_000)


def dataset_shape(config) -> tuple[tuple[int, ...], int, int]:
    """(input shape, training images, test images) of ``config``'s dataset (generated ones are built)."""
    if config.dataset in DATASETS:
        return DATASETS[config.dataset]
    from ncutils.data import load_dataset

    train = load_dataset(config.dataset, "train", seed=config.data_seed, **dict(config.dataset_kwargs))
    test = load_dataset(config.dataset, "test", seed=config.data_seed, **dict(config.dataset_kwargs))
    return tuple(train.input_shape), len(train), len(test)


def forward_macs(config) -> int:
    """Multiply-adds of one forward pass of ``config``'s network on one input."""
    shape, _, _ = dataset_shape(config)
    num_classes = 10 if config.label_map is None else len(set(dict(config.label_map).values()))
    model = build_model(config.arch, input_shape=shape, num_classes=num_classes, **dict(config.arch_kwargs))
    total = [0]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features
        elif isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total[0] += kernel * output[0].numel()

    handles = [module.register_forward_hook(hook) for module in model.modules()
               if isinstance(module, (nn.Linear, nn.Conv2d))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return total[0]


def config_seconds(config, *, tflops: float, step_ms: float) -> tuple[float, float]:
    """(estimated seconds, FLOPs) of training and measuring one run."""
    _, n_train, n_test = dataset_shape(config)
    n_train = min(n_train, config.limit_train or n_train)
    n_test = min(n_test, config.limit_test or n_test)
    macs = forward_macs(config)
    train_flops = 6.0 * macs * n_train * config.epochs
    sweeps = len(set(config.sweep_epochs)) + len(set(config.save_at_train_acc))
    measure_flops = 2.0 * 2.0 * macs * (n_train + n_test) * max(sweeps, 1)
    steps = math.ceil(n_train / config.batch_size) * config.epochs
    seconds = max(train_flops / (tflops * 1e12), steps * step_ms / 1e3) + measure_flops / (tflops * 1e12)
    return seconds, train_flops + measure_flops


def estimate(profile: str, *, tflops: float, step_ms: float, k2_step_ms: float, k2_log_ms: float) -> list[tuple[str, float, float, str]]:
    """Rows (chapter, seconds, FLOPs, what) for every chapter of ``profile``."""
    root = Path(__file__).resolve().parents[1]
    rows, seen = [], set()
    stand_in = Path(tempfile.mkdtemp(prefix="gpu-estimate-"))  # some grids look at one image of each dataset
    for job in profiles.plan(root, profile):
        declaration, parameters = job.chapter.declaration, dict(job.parameters)
        if "data_dir" in parameters and declaration.datasets is not None:
            data_fixtures.write_fake_datasets(declaration.datasets(parameters), stand_in, train=20, test=10)
            parameters.update(data_dir=str(stand_in), download=False)
        if declaration.trains is not None:
            configs = declaration.trains(parameters)
            fresh = [config for config in configs if config not in seen]
            seen.update(configs)
            seconds = flops = 0.0
            for config in fresh:
                s, f = config_seconds(config, tflops=tflops, step_ms=step_ms)
                seconds, flops = seconds + s, flops + f
            what = f"{len(fresh)} runs" + (f" ({len(configs) - len(fresh)} shared)" if len(fresh) < len(configs) else "")
        elif job.stem == "kothapalli_lesde":
            # the trials are one vmapped model: one step per iteration; each log is a forward pass per trial
            levels = len(parameters["label_noise"]) * len(parameters["networks"])
            steps = parameters["iterations"] * levels
            logs = parameters["iterations"] // parameters["log_every"] * parameters["trials"] * levels
            seconds = (steps * k2_step_ms + logs * k2_log_ms) / 1e3
            flops, what = math.nan, f"{steps:,} vmapped SGD steps, {logs:,} logged forward passes"
        elif job.stem == "garrod_ufm":
            steps = (len(parameters["relu_seeds"]) * (parameters["relu_steps"] + parameters["relu_polish"])
                     / max(1, min(parameters["relu_workers"], len(parameters["relu_seeds"]))))
            seconds = steps * UFM_SECONDS_PER_STEP + parameters["linear_steps"] * UFM_SECONDS_PER_STEP
            flops, what = math.nan, "CPU (UFM), from the cpu profile's rate"
        else:
            seconds, flops, what = 60.0, math.nan, "no training; assumed one minute"
        rows.append((job.stem, seconds, flops, what))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--tflops", type=float, default=25.0,
                        help="sustained training rate assumed on one H100, TFLOP/s (default 25)")
    parser.add_argument("--step-ms", type=float, default=3.0, help="least time an optimiser step takes (default 3 ms)")
    parser.add_argument("--k2-step-ms", type=float, default=1.5,
                        help="one K2 iteration: a vmapped per-sample SGD step of every trial (default 1.5 ms)")
    parser.add_argument("--k2-log-ms", type=float, default=0.2,
                        help="one K2 logged forward pass of one trial over probe and validation (default 0.2 ms)")
    parser.add_argument("--cpu-gflops", type=float, default=None, help="also the FLOP time on a CPU at this rate")
    arguments = parser.parse_args(argv)
    rows = estimate(arguments.profile, tflops=arguments.tflops, step_ms=arguments.step_ms,
                    k2_step_ms=arguments.k2_step_ms, k2_log_ms=arguments.k2_log_ms)
    print(f"ESTIMATE (not measured) for profile {arguments.profile} on one H100: {arguments.tflops:g} TFLOP/s "
          f"sustained, >= {arguments.step_ms:g} ms a step, K2 {arguments.k2_step_ms:g} ms a step and "
          f"{arguments.k2_log_ms:g} ms a logged pass")
    print("| chapter | estimated minutes | TFLOP | what |" + (" CPU hours at the given rate |" if arguments.cpu_gflops else ""))
    print("|---|---|---|---|" + ("---|" if arguments.cpu_gflops else ""))
    for stem, seconds, flops, what in rows:
        cpu = ""
        if arguments.cpu_gflops:
            cpu = " - |" if math.isnan(flops) else f" {flops / (arguments.cpu_gflops * 1e9) / 3600:.0f} |"
        tera = "-" if math.isnan(flops) else f"{flops / 1e12:,.0f}"
        print(f"| {stem} | {seconds / 60:.0f} | {tera} | {what} |" + cpu)
    total = sum(row[1] for row in rows)
    print(f"| total | {total / 60:.0f} | | |" + (" |" if arguments.cpu_gflops else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
