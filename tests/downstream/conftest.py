"""Fixtures for the downstream tests: tiny phantom datasets (BraTS, LiTS and nnU-Net layouts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiossl.data.phantoms import synthesize


@pytest.fixture(scope="session")
def brats_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six BraTS-2018-layout phantom cases of 32 x 32 x 24 voxels."""
    return synthesize("brats", tmp_path_factory.mktemp("brats"), cases=6, shape=(32, 32, 24), seed=0).out


@pytest.fixture(scope="session")
def lits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five LiTS-layout phantom CT cases (train/ and val/ folders), 40 x 40 x 16 voxels."""
    return synthesize("lits", tmp_path_factory.mktemp("lits"), cases=5, shape=(40, 40, 16), seed=0).out


@pytest.fixture(scope="session")
def nnunet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An nnU-Net raw dataset folder (Dataset901_Phantom) with 6 training cases of 24 x 24 x 16 voxels."""
    from radiossl.data.phantoms.nnunet import DATASET_NAME

    out = synthesize("nnunet", tmp_path_factory.mktemp("nnunet"), cases=6, shape=(24, 24, 16), seed=0).out
    return out / DATASET_NAME
