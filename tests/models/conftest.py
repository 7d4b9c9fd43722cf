"""Shared fixtures of the model tests: tiny widths and volumes so everything runs on a CPU in seconds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

TINY = 0.125  # channels 8/16/32/64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def volume() -> torch.Tensor:
    """A batch of two 1-channel 16^3 volumes."""
    return torch.rand(2, 1, 16, 16, 16)


def _randomise(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every parameter and norm statistic a random value, so that 'loaded' differs from 'initial'."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.2)
    return model


@pytest.fixture
def randomise() -> Callable[..., nn.Module]:
    """``randomise(model, seed=1)`` fills a model's state in place and returns it."""
    return _randomise
