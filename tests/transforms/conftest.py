"""Fixtures of the transform tests: seeded generators and the benchmark's per-cube reference loops."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from radiossl.transforms import generator_for


@pytest.fixture
def gen() -> Callable[[int], torch.Generator]:
    """``gen(seed)``: a fresh CPU generator."""
    return lambda seed=0: generator_for(seed)


@pytest.fixture(scope="session")
def reference_loops() -> ModuleType:
    """``benchmarks/transforms.py``: straightforward per-cube versions of the original algorithms."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "transforms.py"
    spec = importlib.util.spec_from_file_location("radiossl_benchmark_transforms", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
