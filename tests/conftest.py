"""Shared test helpers: tiny training configs, a one-thread torch fixture, edits of the code keys
see, the smoke build of the book."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ncutils.store import code as store_code
from ncutils.train import TrainConfig

#: A four-class Gaussian mixture small enough to train in well under a second.
GAUSSIAN = {"num_classes": 4, "dim": 8, "n_per_class": 20, "n_test_per_class": 10}


def tiny_config(**overrides) -> TrainConfig:
    """A config that trains in well under a second on CPU."""
    settings = dict(dataset="gaussian", dataset_kwargs=GAUSSIAN, arch="mlp",
                    arch_kwargs={"depth": 3, "width": 16}, epochs=3, batch_size=16, lr=0.05,
                    device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture
def one_thread():
    # tiny matrices: a single thread is faster and immune to a busy machine
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def edit_code(monkeypatch, module: str, suffix: bytes = b'\n"""An edited docstring."""\n') -> None:
    """Make the store's keys see package module ``module`` (``"metrics"``, ``"theory/lesde"`` or
    ``"ncutils.metrics"``) with different code: its key digest gets ``suffix``."""
    name = module if module.startswith("ncutils") else "ncutils." + module.replace("/", ".")
    real = store_code.module_code
    monkeypatch.setattr(store_code, "module_code",
                        lambda other: real(other) + (suffix if other == name else b""))


def train_and_measure(config: TrainConfig, **options):
    """:func:`ncutils.train.train`, then :func:`ncutils.measure.measure_run` (its sweeps)."""
    from ncutils.measure import measure_run
    from ncutils.train import train

    force = options.get("force", False)
    return measure_run(train(config, **options), force=force)


# --------------------------------------------------------------------------- the whole book

REPO = Path(__file__).resolve().parent.parent
IGNORED = {".git", ".venv", "_build", "runs", "__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = {name for name in names if name in IGNORED or name.endswith(".egg-info")}
    if Path(directory).resolve() == (REPO / "book").resolve():
        skipped.add("generated")
    return skipped


def _build(root: Path, *options: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(root)}
    environment.pop("NC_FINDINGS_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "ncutils.book", "build", "--profile", "smoke", *options],
        cwd=root, env=environment, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """The whole book built twice on the smoke profile in a copy of the working tree: (root, first, second).

    The second build reuses every notebook; it skips the website, which the first one rendered.
    """
    root = tmp_path_factory.mktemp("book") / "repo"
    shutil.copytree(REPO, root, ignore=_ignore)
    first = _build(root)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    second = _build(root, "--no-html")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    return root, first, second
