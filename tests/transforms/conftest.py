"""Fixtures of the transform tests: seeded generators and the benchmark's per-cube reference loops."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from radiossl.transforms import _compiled as compiled
from radiossl.transforms import generator_for

CPU_PATHS = ["compiled", "numpy"]
"""The CPU implementations: Numba kernels (when installed) and the NumPy paths."""


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


@pytest.fixture
def route(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``route(path)``: make the CPU transforms take ``path`` ("compiled": Numba kernels, or "numpy") in this test.

    Skips the test when "compiled" is asked for and Numba is not installed.
    """

    real = compiled.kernels

    def take(path: str) -> None:
        if path == "compiled":
            if real() is None:
                pytest.skip("Numba is not installed")
            monkeypatch.setattr(compiled, "kernels", real)
        elif path == "numpy":
            monkeypatch.setattr(compiled, "kernels", lambda: None)

    return take


@pytest.fixture(params=CPU_PATHS)
def cpu_path(request: pytest.FixtureRequest, route: Callable[[str], None]) -> str:
    """Run the test once per CPU implementation of local shuffling."""
    route(request.param)
    return str(request.param)
