"""Fixtures for the sweep tests: a tiny BraTS phantom and two tiny "pretrained" checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiossl.data.phantoms import synthesize


@pytest.fixture(scope="session")
def brats_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve BraTS-layout phantom cases of 24 x 24 x 16 voxels (8 train, 2 validation, 2 test)."""
    return synthesize("brats", tmp_path_factory.mktemp("brats"), cases=12, shape=(24, 24, 16), seed=0).out


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two pretraining checkpoints of a width-0.125 U-Net (methods "alpha" and "beta")."""
    import torch

    from radiossl.models import UNet3D
    from radiossl.models.factory import model_spec

    folder = tmp_path_factory.mktemp("pretrained")
    paths = []
    for index, name in enumerate(("alpha", "beta")):
        torch.manual_seed(index)
        model = UNet3D(in_channels=1, out_channels=1, width=0.125, norm="batch", skip_connections=False)
        payload = {"format_version": 1, "kind": "pretrain", "name": name, "model": model.state_dict()}
        payload["model_spec"] = model_spec(model)
        path = folder / name / "checkpoint_final.pt"
        path.parent.mkdir()
        torch.save(payload, path)
        paths.append(path)
    return paths
