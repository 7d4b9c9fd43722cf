"""Data-test fixtures: tiny phantom datasets (made once per session) and small preprocessing configs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from radiossl.data.preprocess import PreprocessConfig

SHAPES: dict[str, tuple[int, int, int]] = {
    "brats": (48, 48, 32),
    "lits": (48, 48, 32),
    "luna": (48, 48, 32),
    "nnunet": (40, 40, 32),
    "nnssl": (40, 40, 32),
}
DATASETS = {"brats": "brats18", "lits": "lits17", "luna": "luna16", "nnunet": "nnunet", "nnssl": "nnssl"}


@pytest.fixture(scope="session", autouse=True)
def nnssl_adapter_registered() -> None:
    """Make ``nnssl`` available when the installed entry points predate it (an editable install made
    before the adapter was added to pyproject.toml; tests/data/test_nnssl.py checks the declaration)."""
    from radiossl import registry
    from radiossl.data.datasets.nnssl import NnSSL

    if "nnssl" not in registry.names("radiossl.datasets"):
        registry.register("radiossl.datasets", "nnssl", NnSSL)


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``phantom_root(kind)``: a read-only phantom dataset of 3 cases (generated on first use)."""
    from radiossl.data.phantoms import synthesize

    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            out = tmp_path_factory.mktemp(f"phantom-{kind}") / kind
            synthesize(kind, out, cases=3, shape=SHAPES[kind], seed=0)
            made[kind] = out
        return made[kind]

    return get


@pytest.fixture
def phantom_copy(phantom_root: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """``phantom_copy(kind)``: a writable copy of a phantom dataset (for corrupting files)."""

    def copy(kind: str) -> Path:
        target = tmp_path / f"raw-{kind}"
        shutil.copytree(phantom_root(kind), target)
        return target

    return copy


def make_small_config(data: Path, out: Path, dataset: str = "brats18", **fields: Any) -> PreprocessConfig:
    """A fast configuration: 16x16x8 crops from 16-32 voxel boxes, 3 samples per volume, no progress bar."""
    values: dict[str, Any] = {
        "dataset": dataset,
        "data": data,
        "out": out,
        "crop_size": (16, 16, 8),
        "candidate_sizes": [(24, 24, 8), (32, 32, 8), (16, 16, 8)],
        "pairs": 3,
        "progress": False,
    }
    values.update(fields)
    return PreprocessConfig(**values)


@pytest.fixture(scope="session")
def small_config() -> Callable[..., PreprocessConfig]:
    """``small_config(data, out, dataset="brats18", **fields)``: see :func:`make_small_config`."""
    return make_small_config
