"""Shared test helpers: tiny training configs and a one-thread torch fixture."""

from __future__ import annotations

import pytest
import torch

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
