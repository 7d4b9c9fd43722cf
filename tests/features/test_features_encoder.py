"""The ``encoder`` extractor on every backbone: levels, channels, per-axis strides, resizing, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from radiossl.config import ModelConfig
from radiossl.errors import ConfigError
from radiossl.features import build_pipeline
from radiossl.features.extractors.encoder import EncoderExtractor
from radiossl.models import UNet3D
from radiossl.models.backbone import NetworkRequest
from radiossl.models.factory import model_spec
from radiossl.models.loading import model_from_checkpoint
from tests.features.encoder_checkpoints import pretrain_checkpoint, save_pretrain_checkpoint


def _needs_dna() -> None:
    pytest.importorskip("dynamic_network_architectures")


def _old_unet3d_features(weights: Path, images: torch.Tensor, level: int) -> torch.Tensor:
    """What the extractor gave before it followed the backbone interface: sizes up to multiples of 8,
    then ``encode(x)[level]`` of the network rebuilt from the checkpoint."""
    model, _ = model_from_checkpoint(weights)
    network: Any = model.eval()
    size = tuple(-(-s // 8) * 8 for s in images.shape[2:])
    if size != tuple(images.shape[2:]):
        images = F.interpolate(images.float(), size=size, mode="trilinear", align_corners=False)
    with torch.no_grad():
        features: torch.Tensor = network.encode(images.float())[level]
    return features


@pytest.fixture
def unet3d_file(tmp_path: Path) -> Path:
    """A width-0.125 UNet3D saved as a plain ``{"model", "model_spec", "epoch"}`` dict."""
    torch.manual_seed(0)
    net = UNet3D(width=0.125, norm="batch").eval()
    path = tmp_path / "checkpoint_final.pt"
    torch.save({"model": net.state_dict(), "model_spec": model_spec(net), "epoch": 1}, path)
    return path


@pytest.mark.parametrize("method", ["pixel-cluster", "patch-cluster"])
def test_unet3d_levels_and_results_are_unchanged(tmp_path: Path, method: str) -> None:
    weights = pretrain_checkpoint(tmp_path / "u.pt", method, "unet3d")
    torch.manual_seed(1)
    crops = {"multiple": torch.rand(2, 1, 32, 32, 16), "other": torch.rand(1, 1, 30, 33, 12)}
    for level, (channels, stride) in enumerate(zip((8, 16, 32, 64), (1, 2, 4, 8), strict=True)):
        for given in (level, level - 4):
            extractor = EncoderExtractor({"weights": weights, "level": given})
            assert extractor.level == level and extractor.feature_dim(1) == channels
            assert extractor.stride == (stride,) * 3 and extractor.divisor == (8, 8, 8)
            for images in crops.values():
                with torch.no_grad():
                    out = extractor.extract(images)
                assert tuple(out.shape[2:]) == extractor.feature_grid(images.shape[2:])
                assert torch.equal(out, _old_unet3d_features(weights, images, level))
    assert EncoderExtractor({"weights": weights}).feature_grid((30, 33, 12)) == (4, 5, 2)  # 32, 40, 16 / 8


def test_unet3d_plain_checkpoint_and_pipeline(unet3d_file: Path) -> None:
    extractor = EncoderExtractor({"weights": unet3d_file, "level": 2})
    assert extractor.feature_dim(1) == 32 and extractor.stride == (4, 4, 4)
    assert extractor.extract(torch.rand(2, 1, 32, 32, 16)).shape == (2, 32, 8, 8, 4)
    assert EncoderExtractor({"weights": unet3d_file}).level == 3
    pipeline = build_pipeline("encoder", "bilinear", weights=unet3d_file)
    out = pipeline(torch.rand(1, 1, 32, 32, 16))
    assert out.shape == (1, 64, 32, 32, 16) and torch.isfinite(out).all()
    assert extractor.extract(torch.rand(1, 1, 30, 33, 12)).shape == (1, 32, 8, 10, 4)  # resized to 8s
    assert pipeline(torch.rand(1, 1, 20, 18, 10)).shape == (1, 64, 20, 18, 10)
    with pytest.raises(ConfigError, match="1 input channel"):
        extractor.feature_dim(4)
    with pytest.raises(ConfigError, match="--weights"):
        EncoderExtractor()


def test_resenc_l_has_six_levels_down_to_stride_32(tmp_path: Path) -> None:
    _needs_dna()
    weights = pretrain_checkpoint(tmp_path / "r.pt", "patch-cluster", "resenc-l")
    extractor = EncoderExtractor({"weights": weights})
    assert extractor.channels == (4, 8, 16, 32, 40, 40) and extractor.level == 5
    assert extractor.strides == tuple((s, s, s) for s in (1, 2, 4, 8, 16, 32)) and extractor.divisor == (32, 32, 32)
    crop = torch.rand(2, 1, 64, 64, 32)
    expected = {0: (4, 64, 64, 32), 2: (16, 16, 16, 8), -2: (40, 4, 4, 2), -1: (40, 2, 2, 1)}
    for level, shape in expected.items():
        extractor = EncoderExtractor({"weights": weights, "level": level})
        with torch.no_grad():
            out = extractor.extract(crop)
        assert out.shape == (2, *shape) and extractor.feature_dim(1) == shape[0]
        assert extractor.feature_grid((64, 64, 32)) == shape[1:]
    # 40 x 36 x 20 is not a multiple of 32: resized up to 64 x 64 x 32 first
    level2 = EncoderExtractor({"weights": weights, "level": 2})
    with torch.no_grad():
        assert level2.extract(torch.rand(1, 1, 40, 36, 20)).shape == (1, 16, 16, 16, 8)
    pipeline = build_pipeline("encoder", "jbu", extractor_options={"level": -2}, weights=weights)
    out = pipeline(torch.rand(1, 1, 40, 36, 20))
    assert out.shape == (1, 40, 40, 36, 20) and torch.isfinite(out).all()


def test_plainconv_unet_with_stage_heads_and_two_channels(tmp_path: Path) -> None:
    _needs_dna()
    weights = pretrain_checkpoint(tmp_path / "p.pt", "pcrlv2", "plainconv-unet", in_channels=2)
    extractor = EncoderExtractor({"weights": weights, "level": 3})
    assert extractor.feature_dim(2) == 32 and extractor.stride == (8, 8, 8) and len(extractor.channels) == 6
    with torch.no_grad():
        assert extractor.extract(torch.rand(1, 2, 64, 32, 32)).shape == (1, 32, 8, 4, 4)
    with pytest.raises(ConfigError, match=r"takes 2 input channel\(s\), the crops have 1"):
        extractor.feature_dim(1)


def test_per_axis_strides_of_an_anisotropic_plan(tmp_path: Path) -> None:
    _needs_dna()
    from radiossl.models.backbones import NnUNetBackbone, UNetTopology

    topology = UNetTopology(
        features_per_stage=(4, 8, 16),
        blocks_per_stage=(1, 1, 1),
        strides=((1, 1, 1), (2, 2, 1), (2, 2, 2)),
        kernel_sizes=((3, 3, 3),) * 3,
        decoder_convs_per_stage=(1, 1),
    )
    backbone = NnUNetBackbone("aniso-test", "", topology, "ResidualEncoderUNet")
    torch.manual_seed(0)
    network = backbone.build(ModelConfig(width=1.0), NetworkRequest(in_channels=1, out_channels=2))
    weights = save_pretrain_checkpoint(tmp_path / "a.pt", network, "pixel-cluster")
    extractor = EncoderExtractor({"weights": weights, "level": 1})
    assert extractor.strides == ((1, 1, 1), (2, 2, 1), (4, 4, 2)) and extractor.divisor == (4, 4, 2)
    assert extractor.stride == (2, 2, 1)
    with torch.no_grad():
        assert extractor.extract(torch.rand(1, 1, 16, 16, 8)).shape == (1, 8, 8, 8, 8)
        # 10 x 10 x 5 -> 12 x 12 x 6: every axis up to its own multiple, then each axis its own stride
        assert extractor.extract(torch.rand(1, 1, 10, 10, 5)).shape == (1, 8, 6, 6, 6)
        bottleneck = EncoderExtractor({"weights": weights, "level": -1})
        assert bottleneck.extract(torch.rand(1, 1, 10, 10, 5)).shape == (1, 16, 3, 3, 3)
    out = build_pipeline("encoder", "bilinear", extractor_options={"level": 1}, weights=weights)(
        torch.rand(1, 1, 10, 10, 5)
    )
    assert out.shape == (1, 8, 10, 10, 5)


@pytest.mark.parametrize(
    ("backbone", "bad", "valid"), [("unet3d", 4, "0..3 or -4..-1"), ("resenc-l", -7, "0..5 or -6..-1")]
)
def test_a_level_out_of_range_is_one_line_naming_the_file(tmp_path: Path, backbone: str, bad: int, valid: str) -> None:
    if backbone != "unet3d":
        _needs_dna()
    weights = pretrain_checkpoint(tmp_path / "c.pt", "patch-cluster", backbone)
    with pytest.raises(ConfigError) as caught:
        EncoderExtractor({"weights": weights, "level": bad})
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(weights))
    assert f"level {bad} is out of range" in message and valid in message


def test_a_one_voxel_instance_norm_bottleneck_is_a_config_error(tmp_path: Path) -> None:
    _needs_dna()
    weights = pretrain_checkpoint(tmp_path / "i.pt", "pixel-cluster", "resenc-l", norm="instance")
    extractor = EncoderExtractor({"weights": weights, "level": 1})
    with pytest.raises(ConfigError, match=r"crops of \[16, 16, 16\] \(resized to \[32, 32, 32\].*one-voxel bottleneck"):
        extractor.extract(torch.rand(1, 1, 16, 16, 16))
    with torch.no_grad():
        assert extractor.extract(torch.rand(1, 1, 64, 32, 32)).shape == (1, 8, 32, 16, 16)
