"""Fixtures: a ViT-S/16 saved with the official DINO key names (random weights), built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiossl.features.vit import VisionTransformer


@pytest.fixture(scope="session")
def vits16() -> VisionTransformer:
    """A randomly initialised ViT-S/16 (the DINO ViT-S/16 architecture)."""
    torch.manual_seed(0)
    return VisionTransformer(patch_size=16, embed_dim=384, depth=12, num_heads=6).eval()


@pytest.fixture(scope="session")
def vits16_file(vits16: VisionTransformer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Its state_dict saved like ``dino_deitsmall16_pretrain.pth`` (a plain dict of tensors)."""
    path = tmp_path_factory.mktemp("dino") / "dino_deitsmall16_pretrain.pth"
    torch.save(vits16.state_dict(), path)
    return path
