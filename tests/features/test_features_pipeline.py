"""The extractor + upsampler pipeline and plugin lookup (the pretrained-encoder extractor: test_features_encoder.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from radiossl import registry
from radiossl.errors import ConfigError, PluginError
from radiossl.features import FeatureExtractor, build_pipeline
from radiossl.features.base import EXTRACTOR_GROUP, UPSAMPLER_GROUP


class SliceMeans(FeatureExtractor):
    """A toy 2-D extractor: 4x4 average pooling of each slice, plus the slice's mean."""

    name: ClassVar[str] = "test-slice-means"
    spatial_dims: ClassVar[int] = 2

    def feature_dim(self, in_channels: int) -> int:
        return in_channels + 1

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(images, 4)
        means = images.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, *pooled.shape[2:])
        return torch.cat([pooled, means], dim=1)


@pytest.fixture
def slice_means() -> Iterator[str]:
    registry.register(EXTRACTOR_GROUP, SliceMeans.name, SliceMeans)
    yield SliceMeans.name
    registry.unregister(EXTRACTOR_GROUP, SliceMeans.name)


def test_plugins_are_discovered() -> None:
    assert {"filterbank", "dino-vits16", "dino-vits8", "dino-vitb16", "encoder"} <= set(registry.names(EXTRACTOR_GROUP))
    assert {"bilinear", "jbu", "featup-jbu"} <= set(registry.names(UPSAMPLER_GROUP))


def test_2d_extractor_runs_slice_by_slice(slice_means: str) -> None:
    pipeline = build_pipeline(slice_means, "bilinear", in_channels=2, slice_batch=5)
    crops = torch.rand(2, 2, 16, 16, 6)
    crops[1, :, :, :, 4] = 0.25
    out = pipeline(crops)
    assert out.shape == (2, 3, 16, 16, 6) and pipeline.feature_dim(2) == 3
    assert torch.allclose(out[1, :, :, :, 4], torch.full((3, 16, 16), 0.25))
    assert torch.allclose(out[0, 2, :, :, 1], crops[0, :, :, :, 1].mean().expand(16, 16))
    guided = build_pipeline(slice_means, "jbu", in_channels=2)(crops)
    assert guided.shape == out.shape


def test_pipeline_errors(slice_means: str) -> None:
    with pytest.raises(ConfigError, match="does not support 3-D"):
        build_pipeline("filterbank", "featup-jbu")
    with pytest.raises(PluginError, match=r"available: .*filterbank"):
        build_pipeline("no-such-extractor", "bilinear")
    with pytest.raises(ConfigError, match="takes no weights"):
        build_pipeline("filterbank", "bilinear", weights="x.pth")
    with pytest.raises(ConfigError, match="unknown field"):
        build_pipeline("filterbank", "jbu", upsampler_options={"raduis": 2})
    with pytest.raises(ValueError, match=r"\[B, C, H, W, D\]"):
        build_pipeline(slice_means, "bilinear")(torch.rand(1, 16, 16, 4))
