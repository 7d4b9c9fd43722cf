"""Fixtures of the engine tests: a data folder and a factory of quiet CPU configs for the tiny task."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # engine_task.py, also imported by the torchrun script

from engine_task import tiny_config

from radiossl.config import ExampleRunConfig


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "phantoms"
    root.mkdir()
    return root


@pytest.fixture
def make_config(data_root: Path, tmp_path: Path) -> Callable[..., ExampleRunConfig]:
    def factory(*overrides: str, out: str = "runs") -> ExampleRunConfig:
        return tiny_config(data_root, tmp_path / out, *overrides)

    return factory
