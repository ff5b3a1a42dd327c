"""The layer sweep's hot path never waits for the device (the layer-sweep performance target).

On a GPU every host read of a device value (``.item()``, ``bool(tensor)``, ``.cpu()``,
``torch.unique``, ...) stalls the launch queue until the device catches up; one per
batch and probe point made the sweep host-bound. On CPU tensors those reads are free,
so they are counted instead: with the classes fixed up front, the number of host reads
of a sweep must not grow with the number of batches. On a GPU (skipped without one)
the batch loops run under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from ncutils import layer_stats
from ncutils.models import ProbePoint, build_model
from ncutils.sweep import layer_sweep
from ncutils.stats import ClassStats, ProjectedScatter

# every way the code under test could read a device value on the host
COUNTED = [
    (torch.Tensor, "item"), (torch.Tensor, "__bool__"), (torch.Tensor, "__float__"),
    (torch.Tensor, "__int__"), (torch.Tensor, "__index__"), (torch.Tensor, "cpu"),
    (torch.Tensor, "tolist"), (torch.Tensor, "numpy"), (torch.Tensor, "unique"),
    (torch.Tensor, "nonzero"), (torch, "unique"), (torch, "nonzero"), (torch, "bincount"),
]
CLASSES = torch.tensor([2, 5, 9])  # non-contiguous on purpose


@contextmanager
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    """Count the calls of every entry of :data:`COUNTED` inside the block."""
    counts: Counter = Counter()
    with monkeypatch.context() as patch:
        for owner, name in COUNTED:
            original = getattr(owner, name)

            def counting(*args, _original=original, _name=name, **kwargs):
                counts[_name] += 1
                return _original(*args, **kwargs)

            patch.setattr(owner, name, counting)
        yield counts


class TinyCNN(nn.Module):
    """2 x 6 x 6 -> conv -> ReLU -> conv -> ReLU -> Linear, conv consumers included."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(2, 4, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(4, 3, 3), nn.ReLU()
        self.fc = nn.Linear(3 * 4 * 4, 10)
        self.probe_points = [ProbePoint("input", None, "conv1"), ProbePoint("relu1", "relu1", "conv2"),
                             ProbePoint("relu2", "relu2", "fc")]
        self.classifier_name = "fc"

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(inputs)))).flatten(1))


def make_case(kind: str, n: int, device: str = "cpu") -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "mlp":
        model, shape = build_model("mlp", input_shape=(8,), num_classes=10, depth=4, width=16), (8,)
    else:
        model, shape = TinyCNN(), (2, 6, 6)
    labels = CLASSES[torch.arange(n) % 3]
    inputs = torch.randn(10, *shape)[labels] + 0.5 * torch.randn(n, *shape)
    return model.to(device), inputs.to(device), labels.to(device)


def sweep_reads(monkeypatch, kind: str, n_batches: int, memory_budget: float, **options) -> Counter:
    n = 96
    model, inputs, labels = make_case(kind, n)
    with host_reads(monkeypatch) as counts:
        layer_sweep(model, inputs, labels, test_inputs=inputs[:48], test_labels=labels[:48],
                    batch_size=n // n_batches, memory_budget=memory_budget, **options)
    return counts


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("memory_budget", [0, float("inf")], ids=["recompute", "keep"])
@pytest.mark.parametrize("options", [dict(classes=CLASSES), dict(num_classes=10), {}],
                         ids=["classes", "num_classes", "discovered-once"])
def test_host_reads_do_not_grow_with_the_number_of_batches(monkeypatch, kind, memory_budget, options):
    few = sweep_reads(monkeypatch, kind, 4, memory_budget, **options)
    many = sweep_reads(monkeypatch, kind, 16, memory_budget, **options)
    assert sum(few.values()) > 0  # the counters work: results are read once at the end
    assert many == few, f"host reads grow with the batches: {dict(few)} for 4, {dict(many)} for 16"


def test_fixed_class_updates_never_read_the_device(monkeypatch):
    features, labels = torch.randn(200, 6), CLASSES[torch.arange(200) % 3]
    stats = ClassStats(classes=CLASSES)
    with host_reads(monkeypatch) as counts:
        for start in range(0, 200, 20):
            stats.update(features[start:start + 20], labels[start:start + 20])
    assert sum(counts.values()) == 0, dict(counts)
    scatter = ProjectedScatter(stats)
    with host_reads(monkeypatch) as counts:
        for start in range(0, 200, 20):
            scatter.update(features[start:start + 20], labels[start:start + 20])
    assert sum(counts.values()) == 0, dict(counts)
    with host_reads(monkeypatch) as counts:  # the results are read once, not once per update
        stats.finalize()
        assert scatter.scatter.shape == (3, 3)
    assert sum(counts.values()) <= 4, dict(counts)


# ----------------------------------------------------------------------------- on a GPU
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@contextmanager
def sync_debug(mode: str) -> Iterator[None]:
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@cuda
def test_cuda_fixed_class_updates_under_sync_debug_error():
    features = torch.randn(512, 64, device="cuda")
    labels = CLASSES.cuda()[torch.arange(512, device="cuda") % 3]
    stats = ClassStats(classes=CLASSES.cuda())
    with sync_debug("error"):
        for start in range(0, 512, 64):
            stats.update(features[start:start + 64], labels[start:start + 64])
    scatter = ProjectedScatter(stats)
    with sync_debug("error"):
        for start in range(0, 512, 64):
            scatter.update(features[start:start + 64], labels[start:start + 64])
    reference = ClassStats().update(features.cpu(), labels.cpu())
    torch.testing.assert_close(stats.means.cpu(), reference.means, rtol=1e-10, atol=1e-12)


@cuda
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_cuda_sweep_batch_loops_under_sync_debug_error(monkeypatch, kind):
    """Every batch of every pass (forward and statistics) runs with synchronisation forbidden."""
    original = layer_stats._forward_batches

    def strict(*args, **kwargs):
        inner = original(*args, **kwargs)
        with sync_debug("error"):
            yield from inner

    model, inputs, labels = make_case(kind, 256, device="cuda")
    reference = layer_sweep(model, inputs, labels, batch_size=32, classes=CLASSES.cuda())
    monkeypatch.setattr(layer_stats, "_forward_batches", strict)
    table = layer_sweep(model, inputs, labels, test_inputs=inputs[:64], test_labels=labels[:64],
                        batch_size=32, classes=CLASSES.cuda())
    columns = ["nc1", "cdnv", "ncc_train_acc", "alignment"]
    assert table[columns].fillna(-1).to_numpy().ravel().tolist() == pytest.approx(
        reference[columns].fillna(-1).to_numpy().ravel().tolist(), rel=1e-9)


@cuda
def test_cuda_sweep_synchronisations_do_not_grow_with_batches():
    def warnings_for(n_batches: int) -> int:
        model, inputs, labels = make_case("cnn", 256, device="cuda")
        with warnings.catch_warnings(record=True) as caught, sync_debug("warn"):
            warnings.simplefilter("always")
            layer_sweep(model, inputs, labels, batch_size=256 // n_batches, num_classes=10)
        return sum("synchronizing" in str(warning.message) for warning in caught)

    assert warnings_for(16) == warnings_for(4)
