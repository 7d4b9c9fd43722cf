"""Fixtures for the downstream tests: tiny phantom datasets and tiny finetune/evaluate configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BRATS_SHAPE = (32, 32, 24)
CROP = [16, 16, 16]
ROI = [32, 32, 24]


@pytest.fixture(scope="session")
def brats_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six BraTS-2018-layout phantom cases of 32 x 32 x 24 voxels."""
    from radiossl.data.phantoms.brats import write_case

    root = tmp_path_factory.mktemp("brats")
    for index in range(6):
        write_case(root, index, seed=0, shape=BRATS_SHAPE)
    return root


@pytest.fixture(scope="session")
def lits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five LiTS-layout phantom CT cases (train/ and val/ folders)."""
    from radiossl.data.phantoms.lits import write_case

    root = tmp_path_factory.mktemp("lits")
    for index in range(5):
        write_case(root, index, seed=0, cases=5, shape=(40, 40, 16))
    return root


def _tiny_flags(root: Path, out: Path, **top: Any) -> dict[str, Any]:
    return {
        "data": {"root": str(root), "crop_size": CROP, "ratio": 1.0, "workers": 0},
        "model": {"width": 0.125},
        "optim": {"epochs": 2, "batch_size": 2},
        "runtime": {"device": "cpu", "workers": 1},
        "logging": {"progress": False},
        "sliding_window": {"roi": ROI},
        "out": str(out),
        **top,
    }


@pytest.fixture
def tiny_flags() -> Callable[..., dict[str, Any]]:
    """``tiny_flags(root, out, **top)``: flags for a CPU finetune run that takes a few seconds."""
    return _tiny_flags
