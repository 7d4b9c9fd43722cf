"""The extractor + upsampler pipeline, plugin lookup, and the pretrained-encoder extractor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from radiossl import registry
from radiossl.errors import ConfigError, PluginError
from radiossl.features import FeatureExtractor, build_pipeline
from radiossl.features.base import EXTRACTOR_GROUP, UPSAMPLER_GROUP
from radiossl.features.extractors.encoder import EncoderExtractor
from radiossl.models import UNet3D
from radiossl.models.factory import model_spec


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


@pytest.fixture
def encoder_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = UNet3D(width=0.125, norm="batch").eval()
    path = tmp_path / "checkpoint_final.pt"
    torch.save({"model": net.state_dict(), "model_spec": model_spec(net), "epoch": 1}, path)
    return path


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


def test_encoder_features(encoder_file: Path) -> None:
    extractor = EncoderExtractor({"weights": encoder_file, "level": 2})
    assert extractor.feature_dim(1) == 32 and extractor.stride == 4
    assert extractor.extract(torch.rand(2, 1, 32, 32, 16)).shape == (2, 32, 8, 8, 4)
    assert EncoderExtractor({"weights": encoder_file}).level == 3
    pipeline = build_pipeline("encoder", "bilinear", weights=encoder_file)
    out = pipeline(torch.rand(1, 1, 32, 32, 16))
    assert out.shape == (1, 64, 32, 32, 16) and torch.isfinite(out).all()
    assert extractor.extract(torch.rand(1, 1, 30, 33, 12)).shape == (1, 32, 8, 10, 4)  # resized to 8s
    assert pipeline(torch.rand(1, 1, 20, 18, 10)).shape == (1, 64, 20, 18, 10)
    with pytest.raises(ConfigError, match="1 input channel"):
        extractor.feature_dim(4)
    with pytest.raises(ConfigError, match="--weights"):
        EncoderExtractor()
