"""Shared fixtures of the model tests: tiny widths and volumes so everything runs on a CPU in seconds."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

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


def training_options(argv: list[str] | None = None) -> argparse.Namespace:
    """The ``opt`` Namespace that thesis and PCRLv2 runs store: their ``main.py`` parser (spec §1.1) on ``argv``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/home/igogou/data/LUNA16")
    parser.add_argument("--data_raw", default=None)
    parser.add_argument("--model", default="pcrlv2")
    parser.add_argument("--phase", default="pretask")
    parser.add_argument("--pretrained", default="encoder")
    parser.add_argument("--finetune", default="all")
    parser.add_argument("--b", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--output", type=str, default="None")
    parser.add_argument("--n", default="luna")
    parser.add_argument("--d", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--gpus", type=str, default="0,1,2,3")
    parser.add_argument("--cluster_loss", default="ce")
    parser.add_argument("--ratio", type=float, default=1)
    parser.add_argument("--momentum", default=0.9)
    parser.add_argument("--weight", type=str, default=None)
    parser.add_argument("--weight_decay", default=1e-4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--skip_conn", action="store_true")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--upsampler", default="featup")
    parser.add_argument("--tensorboard", action="store_true")
    parser.add_argument("--vis", action="store_true")
    parser.add_argument("--cpu", action="store_true")
    return parser.parse_args(argv or [])


class RunsCommand:
    """Pickles as a call of ``os.system(command)``: what a malicious checkpoint hides in a file."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (self.command,)


@pytest.fixture
def options() -> Callable[..., argparse.Namespace]:
    """``options(argv=None)``: see :func:`training_options`."""
    return training_options


@pytest.fixture
def code_running_object(tmp_path: Path) -> tuple[RunsCommand, Path]:
    """An object whose unpickling would create a marker file, and that marker's path (must stay absent)."""
    marker = tmp_path / "pickle-code-ran"
    return RunsCommand(f"touch {marker}"), marker
