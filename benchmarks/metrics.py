"""Benchmark: exact NC1 in ncutils (C x C route) against the dense D x D pinv route.

Run from the repository root::

    python benchmarks/metrics.py            # D = 1,024 and 4,096 side by side, then D = 65,536
    python benchmarks/metrics.py --quick    # D = 1,024 only, and a smaller N at D = 65,536

What is timed, on the same float32 features (N samples, C Gaussian classes):

* ``ncutils``: ``ncutils.metrics.nc1(features, labels)``, i.e. pass 1 (``ClassStats``)
  + pass 2 (``ProjectedScatter``) + the C x C eigendecomposition; best of 3 runs.
* ``dense float64``: the route of public NC code (e.g. ``validate_NC.py`` of Papyan/Han's
  follow-ups), the package's reference :func:`ncutils.synthetic.dense_nc1`: float64 class
  means, ``Sigma_W`` (D x D) from the residuals, ``Sigma_B`` (D x D),
  ``trace(Sigma_W @ pinv(Sigma_B, rcond)) / C`` with ``torch.linalg.pinv``; one run.
  (Up to 2026-12 this route ran in numpy, ``np.linalg.pinv``: the "dense np" columns of
  ``RESULTS.md``; both are LAPACK SVDs in float64.)
* ``dense float32``: the same in float32 with ``torch.linalg.pinv``'s default tolerance; one run.

Both routes run with the same torch/BLAS thread count (``--threads``, default: torch's).

The D = 65,536 case runs in a fresh child process so that its peak memory is its own:
features are generated and streamed in batches twice (one batch per pass at a time, as a
layer sweep does). Its time counts only the ncutils calls (not the data generation); its
memory is the peak resident set size of the whole child process (``VmHWM`` in
``/proc/self/status``: Python, torch, the batches and all buffers included; ``ru_maxrss``
would be wrong here because Linux carries it over from the forking parent). The dense route
is not run there: its two D x D float64 matrices alone would need 68.7 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncutils import metrics  # noqa: E402
from ncutils.stats import ClassStats, ProjectedScatter  # noqa: E402
from ncutils.synthetic import dense_nc1  # noqa: E402
from ncutils.timing import best_time  # noqa: E402


def make_features(n_samples: int, dim: int, num_classes: int, seed: int = 0):
    """float32 features around random class centres, and balanced labels."""
    generator = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(num_classes, dim, generator=generator)
    labels = torch.arange(n_samples) % num_classes
    features = centres[labels] + torch.randn(n_samples, dim, generator=generator)
    return features, labels


def compare(dims, n_samples: int, num_classes: int, with_float32: bool) -> list[dict]:
    rows = []
    header = f"{'D':>6} {'ncutils s':>10} {'dense f64 s':>12} {'ratio':>8}"
    if with_float32:
        header += f" {'dense f32 s':>12} {'ratio':>8}"
    header += f" {'rel. diff (f64)':>16}"
    print(header)
    for dim in dims:
        features, labels = make_features(n_samples, dim, num_classes)
        ours_s, ours = best_time(lambda: metrics.nc1(features, labels), repeats=3)
        dense_s, dense = best_time(lambda: dense_nc1(features, labels, metrics.DEFAULT_RCOND), repeats=1)
        row = {
            "dim": dim,
            "ncutils_s": ours_s,
            "dense_float64_s": dense_s,
            "ratio_float64": dense_s / ours_s,
            "nc1": ours,
            "rel_diff_float64": abs(ours - dense) / abs(dense),
        }
        line = f"{dim:>6} {ours_s:>10.3f} {dense_s:>12.2f} {dense_s / ours_s:>7.0f}x"
        if with_float32:
            float32_s, _ = best_time(lambda: dense_nc1(features, labels, None, dtype=torch.float32), repeats=1)
            row.update(dense_float32_s=float32_s, ratio_float32=float32_s / ours_s)
            line += f" {float32_s:>12.2f} {float32_s / ours_s:>7.0f}x"
        line += f" {row['rel_diff_float64']:>16.1e}"
        print(line, flush=True)
        rows.append(row)
        del features
    return rows


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_child(dim: int, n_samples: int, num_classes: int, batch_size: int) -> None:
    """Run in a fresh process: streamed two-pass NC1 at large D, print JSON with peak RSS."""
    rss_after_imports_mb = peak_rss_mb()
    generator = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(num_classes, dim, generator=generator)

    def batches():
        batch_generator = torch.Generator().manual_seed(1)  # identical batches in both passes
        for start in range(0, n_samples, batch_size):
            labels = torch.arange(start, min(start + batch_size, n_samples)) % num_classes
            noise = torch.randn(len(labels), dim, generator=batch_generator)
            yield centres[labels] + noise, labels

    seconds = 0.0  # ncutils work only; generating the batches is not counted
    class_stats = ClassStats()
    for features, labels in batches():
        start = time.perf_counter()
        class_stats.update(features, labels)
        seconds += time.perf_counter() - start
    start = time.perf_counter()
    scatter = ProjectedScatter(class_stats)
    seconds += time.perf_counter() - start
    for features, labels in batches():
        start = time.perf_counter()
        scatter.update(features, labels)
        seconds += time.perf_counter() - start
    start = time.perf_counter()
    value = metrics.nc1_from_stats(class_stats, scatter)
    seconds += time.perf_counter() - start
    print(json.dumps({
        "dim": dim, "n": n_samples, "classes": num_classes, "batch_size": batch_size,
        "seconds": seconds, "nc1": value, "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": rss_after_imports_mb, "threads": torch.get_num_threads(),
    }))


def run_big(dim: int, n_samples: int, num_classes: int, batch_size: int, threads: int) -> dict:
    command = [
        sys.executable, __file__, "--threads", str(threads), "--_big-child", str(dim),
        str(n_samples), str(num_classes), str(batch_size),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def limit_threads(threads: int) -> None:
    """Same thread count for torch and for numpy's BLAS (via threadpoolctl, when installed)."""
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl not installed: numpy's BLAS threads are not limited")
        return
    global _THREAD_LIMITS  # keep the limits alive for the whole run
    _THREAD_LIMITS = threadpool_limits(limits=threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="D = 1,024 only; N = 2,000 at the big D")
    parser.add_argument("--n", type=int, default=10_000, help="samples (default 10,000)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="default 1024 4096")
    parser.add_argument("--big-dim", type=int, default=65_536)
    parser.add_argument("--big-batch", type=int, default=500)
    parser.add_argument("--no-float32", "--no-torch", dest="no_float32", action="store_true",
                        help="skip the dense float32 route")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both routes (default: torch's choice)")
    parser.add_argument("--_big-child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        limit_threads(args.threads)
    if args._big_child:
        big_child(*args._big_child)
        return

    dims = args.dims or ([1024] if args.quick else [1024, 4096])
    big_n = 2_000 if args.quick else args.n
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"load average {load} | torch {torch.__version__}, {torch.get_num_threads()} threads | "
          f"numpy {np.__version__}")
    print(f"exact NC1, N = {args.n:,}, C = {args.classes}, float32 features\n")
    compare(dims, args.n, args.classes, with_float32=not args.no_float32)

    print(f"\nD = {args.big_dim:,}, N = {big_n:,}, streamed in batches of {args.big_batch} "
          f"(fresh process):")
    big = run_big(args.big_dim, big_n, args.classes, args.big_batch, torch.get_num_threads())
    dense_gb = 2 * args.big_dim**2 * 8 / 1e9
    print(f"  ncutils: {big['seconds']:.1f} s of ncutils work (data generation excluded), "
          f"NC1 = {big['nc1']:.4g}")
    print(f"  peak resident memory of the whole process (VmHWM): {big['peak_rss_mb']:.0f} MB, "
          f"of which {big['rss_after_imports_mb']:.0f} MB already after imports, before any data")
    print(f"  dense route not run: Sigma_W and Sigma_B in float64 would need {dense_gb:.1f} GB")


if __name__ == "__main__":
    main()
