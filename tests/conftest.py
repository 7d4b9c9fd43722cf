"""Shared pytest configuration: keep torch to the machine's two cores and tests reproducible."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from radiossl.runtime.cpu import CpuInfo

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def builtin_views_registered() -> None:
    """Make the built-in views available when the installed entry points predate the ``radiossl.views``
    group (an editable install made before it was added to pyproject.toml); tests/test_registry.py checks
    the declaration itself."""
    import importlib
    import sys

    from radiossl import registry

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    if registry.names("radiossl.views"):
        return
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["entry-points"]["radiossl.views"]
    for name, target in declared.items():
        module, _, attribute = target.partition(":")
        registry.register("radiossl.views", name, getattr(importlib.import_module(module), attribute))


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Give every test the thread count it started with: code that sets torch's threads in-process (a
    benchmark's ``--threads``, a preprocessing worker initialiser) must not change the tests after it."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def fake_cpu(monkeypatch: pytest.MonkeyPatch) -> Callable[..., CpuInfo]:
    """Make radiossl see a CPU with (or without) native bf16/fp16, whatever this machine has."""
    from radiossl.runtime import cpu

    def fake(bf16: bool, fp16: bool = False) -> CpuInfo:
        info = cpu.CpuInfo(
            model="Fake CPU",
            logical_cores=2,
            capability="AVX512" if bf16 or fp16 else "AVX2",
            bf16_native=bf16,
            bf16_why="avx512_bf16" if bf16 else "no avx512_bf16 or amx_bf16 instructions",
            fp16_native=fp16,
            fp16_why="avx512_fp16" if fp16 else "no avx512_fp16 or amx_fp16 instructions",
        )
        monkeypatch.setattr(cpu, "cpu_info", lambda: info)
        return info

    return fake


PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")


def register_checkout_pretext_methods() -> list[str]:
    """Register the ``radiossl.pretext`` entry points of this checkout's pyproject.toml that the installed
    metadata lacks (a checkout newer than its ``pip install -e .``); return their names."""
    from importlib import import_module

    from radiossl import registry
    from radiossl.config import tomllib  # tomli on Python 3.10

    with open(PYPROJECT, encoding="utf-8") as file:
        declared = tomllib.loads(file.read())["project"]["entry-points"]["radiossl.pretext"]
    known = set(registry.names("radiossl.pretext"))
    added = []
    for name, target in declared.items():
        if name not in known:
            module, _, attribute = target.partition(":")
            registry.register("radiossl.pretext", name, getattr(import_module(module), attribute))
            added.append(name)
    return added


register_checkout_pretext_methods()
