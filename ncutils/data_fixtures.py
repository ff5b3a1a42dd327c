"""Stand-in files of the torchvision datasets, in their real on-disk formats, for offline runs.

:mod:`ncutils.data` reads the torchvision datasets from their files: MNIST, FashionMNIST and
KMNIST as idx ubyte files (``<root>/MNIST/raw/train-images-idx3-ubyte``, ...), CIFAR-10 and
CIFAR-100 as python pickle batches (``<root>/cifar-10-batches-py/data_batch_1``, ...), SVHN
as MATLAB ``.mat`` files (``<root>/train_32x32.mat``). This module writes small files in
exactly those formats, so that code which reads those datasets runs end to end where they
cannot be downloaded: the tests of the loaders, and the book's ``--tiny`` runs of the gpu and
paper profiles (:mod:`ncutils.book.tiny`).

The images are not the datasets' images. :func:`write_fake_dataset` gives every class a fixed
random template and adds independent pixel noise, so that a network separates the classes in a
few steps and a chapter's code runs as it would on real data; no number measured on them says
anything about the real dataset.

Room: data (writes files; computes no metric, trains nothing).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from ncutils.data import dataset_files

__all__ = [
    "CIFAR10_CLASSES",
    "FAKE_DATASETS",
    "fake_images",
    "write_cifar_batch",
    "write_cifar_meta",
    "write_fake_dataset",
    "write_fake_datasets",
    "write_idx",
    "write_mnist_split",
    "write_svhn_split",
]

#: CIFAR-10's class names, in label order (as its ``batches.meta`` lists them).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: Dataset name -> (folder under the data root, image shape (C, H, W), classes, pixel noise). The
#: noise (standard deviation in grey levels around the class templates) grows in the order of the
#: real datasets' difficulty, so that chapters comparing datasets see distinct difficulties.
FAKE_DATASETS: dict[str, tuple[str, tuple[int, int, int], int, float]] = {
    "mnist": ("MNIST/raw", (1, 28, 28), 10, 40.0),
    "kmnist": ("KMNIST/raw", (1, 28, 28), 10, 60.0),
    "fashionmnist": ("FashionMNIST/raw", (1, 28, 28), 10, 80.0),
    "svhn": (".", (3, 32, 32), 10, 100.0),
    "cifar10": ("cifar-10-batches-py", (3, 32, 32), 10, 120.0),
    "cifar100": ("cifar-100-python", (3, 32, 32), 100, 120.0),
}


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an unsigned-byte idx file (magic ``0x0000 08 <ndim>``, big-endian dimensions, bytes).

    Parameters
    ----------
    path : path-like
        The file; its folder is created.
    array : numpy.ndarray
        Any shape; written as ``uint8``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + np.asarray(array).astype(np.uint8).tobytes())
    return path


def write_mnist_split(root: str | os.PathLike, folder: str, split: str, images: np.ndarray,
                      labels: np.ndarray) -> None:
    """Write one split of an MNIST-family dataset as torchvision stores it.

    Parameters
    ----------
    root : path-like
        The data root (``data_dir``).
    folder : str
        ``"MNIST"``, ``"FashionMNIST"`` or ``"KMNIST"``.
    split : {"train", "test"}
    images : numpy.ndarray
        ``(N, 28, 28)`` bytes.
    labels : numpy.ndarray
        ``(N,)`` integers in 0..9.
    """
    prefix = "train" if split == "train" else "t10k"
    raw = Path(root) / folder / "raw"
    write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
    write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.asarray(labels))


def write_cifar_batch(path: str | os.PathLike, data: np.ndarray, labels: np.ndarray, *,
                      hundred: bool = False) -> None:
    """Write one CIFAR pickle batch: ``{"data": (N, 3072) bytes, "labels" | "fine_labels": [...]}``.

    ``data`` rows hold the red, green and blue planes one after another, each row-major.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label_key = "fine_labels" if hundred else "labels"
    with path.open("wb") as handle:
        pickle.dump({"data": np.asarray(data, dtype=np.uint8), label_key: [int(v) for v in labels],
                     "batch_label": path.name}, handle)


def write_cifar_meta(folder: str | os.PathLike, classes: list[str], *, hundred: bool = False) -> None:
    """Write the class names of a CIFAR folder (``batches.meta`` or, for CIFAR-100, ``meta``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta_file, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with (folder / meta_file).open("wb") as handle:
        pickle.dump({meta_key: list(classes)}, handle)


def write_svhn_split(root: str | os.PathLike, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``<root>/<split>_32x32.mat`` as SVHN stores it: ``X`` (32, 32, 3, N), ``y`` (N, 1), digit 0 as 10.

    Parameters
    ----------
    images : numpy.ndarray
        ``(32, 32, 3, N)`` bytes (SVHN's own axis order).
    labels : numpy.ndarray
        ``(N,)`` or ``(N, 1)`` labels as stored (1..10).
    """
    from scipy.io import savemat

    Path(root).mkdir(parents=True, exist_ok=True)
    path = Path(root) / f"{split}_32x32.mat"
    savemat(str(path), {"X": np.asarray(images, dtype=np.uint8), "y": np.asarray(labels).reshape(-1, 1)})
    # The MAT 5 header opens with 116 bytes of free text, where scipy writes the time of day: a
    # fixed text makes the same data the same bytes, whatever the second it was written in.
    with open(path, "r+b") as handle:
        handle.write(_MAT_HEADER_TEXT)


#: The descriptive text of a MAT 5 file's header (116 bytes, space-padded), as the stand-ins write it.
_MAT_HEADER_TEXT = b"MATLAB 5.0 MAT-file, Platform: posix, written by ncutils.data_fixtures".ljust(116, b" ")


def fake_images(count: int, shape: tuple[int, ...], classes: int, *, seed: int = 0,
                noise: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Class-structured byte images: a fixed random template per class plus pixel noise.

    Parameters
    ----------
    count : int
        Images; labels cycle through the classes (``count // classes`` or one more each), in
        a shuffled order.
    shape : tuple of int
        Shape of one image, e.g. ``(1, 28, 28)``.
    classes : int
    seed : int
        The templates depend on ``seed`` only, so the train and test splits written with one
        seed share them (use another ``noise`` draw through a different ``count`` or order).
    noise : float
        Standard deviation of the pixel noise, in grey levels.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(count, *shape)`` uint8 images and ``(count,)`` int64 labels.
    """
    templates = np.random.default_rng([seed, 0]).integers(30, 226, size=(classes, *shape)).astype(np.float64)
    rng = np.random.default_rng([seed, count])
    labels = rng.permutation(np.arange(count) % classes).astype(np.int64)
    images = templates[labels] + rng.normal(0.0, noise, size=(count, *shape))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels


def write_fake_dataset(name: str, root: str | os.PathLike, *, train: int = 200, test: int = 100,
                       seed: int = 0) -> list[Path]:
    """Write stand-in files of one torchvision dataset under ``root`` (see the module docstring).

    Parameters
    ----------
    name : str
        A key of :data:`FAKE_DATASETS`.
    root : path-like
        The data root, as ``data_dir`` of :func:`ncutils.data.load_dataset`.
    train, test : int
        Images per split (CIFAR's training images are spread over its five batch files).
    seed : int
        Fixes the class templates (each dataset its own) and the noise: the same arguments write
        the same bytes. The noise level is the dataset's in :data:`FAKE_DATASETS`.

    Returns
    -------
    list of pathlib.Path
        The files of the dataset (:func:`ncutils.data.dataset_files`).

    Raises
    ------
    KeyError
        Unknown dataset name.
    ValueError
        Fewer images than classes in a split.

    Examples
    --------
    >>> import tempfile
    >>> from ncutils.data import load_dataset
    >>> root = tempfile.mkdtemp()
    >>> _ = write_fake_dataset("svhn", root, train=30, test=20)
    >>> load_dataset("svhn", "test", data_dir=root).inputs.shape
    torch.Size([20, 3, 32, 32])
    """
    if name not in FAKE_DATASETS:
        raise KeyError(f"no stand-in files for dataset {name!r}; known: {sorted(FAKE_DATASETS)}")
    _, shape, classes, noise = FAKE_DATASETS[name]
    if min(train, test) < classes:
        raise ValueError(f"{name}: at least {classes} images per split, got train={train}, test={test}")
    root = Path(root)
    seed = seed * 1000 + sorted(FAKE_DATASETS).index(name)  # each dataset its own templates
    splits = {"train": fake_images(train, shape, classes, seed=seed, noise=noise),
              "test": fake_images(test + 1, shape, classes, seed=seed, noise=noise)}  # +1: another noise draw
    splits["test"] = (splits["test"][0][:test], splits["test"][1][:test])
    if name in ("mnist", "fashionmnist", "kmnist"):
        folder = FAKE_DATASETS[name][0].split("/")[0]
        for split, (images, labels) in splits.items():
            write_mnist_split(root, folder, split, images[:, 0], labels)
    elif name in ("cifar10", "cifar100"):
        hundred = name == "cifar100"
        folder = root / FAKE_DATASETS[name][0]
        images, labels = splits["train"]
        flat = images.reshape(len(images), -1)
        if hundred:
            write_cifar_batch(folder / "train", flat, labels, hundred=True)
        else:
            for index, part in enumerate(np.array_split(np.arange(len(images)), 5), 1):
                write_cifar_batch(folder / f"data_batch_{index}", flat[part], labels[part])
        test_images, test_labels = splits["test"]
        write_cifar_batch(folder / ("test" if hundred else "test_batch"),
                          test_images.reshape(len(test_images), -1), test_labels, hundred=hundred)
        write_cifar_meta(folder, [f"class{c}" for c in range(classes)] if hundred else list(CIFAR10_CLASSES),
                         hundred=hundred)
    else:  # svhn: (N, C, H, W) -> (H, W, C, N); the digit 0 is stored as 10
        for split, (images, labels) in splits.items():
            write_svhn_split(root, split, np.transpose(images, (2, 3, 1, 0)), np.where(labels == 0, 10, labels))
    return dataset_files(name, root)


def write_fake_datasets(names: list[str] | tuple[str, ...], root: str | os.PathLike, *, train: int = 200,
                        test: int = 100, seed: int = 0) -> Path:
    """Write stand-in files of several datasets under ``root`` (offline datasets are skipped).

    A dataset whose files are there already, written by the same arguments (a stamp
    ``.stand-in-<name>.json`` beside them says which), is left as it is: the same arguments write
    the same bytes, so a second call changes nothing and keys no run anew.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    root = Path(root)
    for name in dict.fromkeys(names):
        if name not in FAKE_DATASETS:
            continue
        stamp = root / f".stand-in-{name}.json"
        expected = json.dumps({"train": train, "test": test, "seed": seed, "format": FAKE_DATASETS[name]})
        if stamp.is_file() and stamp.read_text() == expected and all(path.is_file() for path in dataset_files(name, root)):
            continue
        write_fake_dataset(name, root, train=train, test=test, seed=seed)
        stamp.write_text(expected)
    return root
