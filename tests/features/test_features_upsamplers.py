"""Upsamplers: bilinear, weight-free JBU (edge preservation, equal code paths), FeatUp's JBU stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from radiossl.errors import CheckpointError, ConfigError
from radiossl.features import build_upsampler
from radiossl.features.upsamplers import jbu
from radiossl.features.upsamplers.bilinear import BilinearUpsampler
from radiossl.features.upsamplers.featup_jbu import FeatUpJBU, JBUStage
from radiossl.features.upsamplers.jbu import JointBilateralUpsampler, joint_bilateral_upsample


def _step_image(size: int = 32, edge: int = 14) -> torch.Tensor:
    image = torch.full((1, 1, size, size), 0.2)
    image[..., edge:] = 0.8
    return image


def test_bilinear_shapes_and_identity() -> None:
    up = BilinearUpsampler()
    assert up(torch.rand(2, 3, 4, 4), torch.rand(2, 1, 16, 12)).shape == (2, 3, 16, 12)
    assert up(torch.rand(1, 3, 2, 2, 2), torch.rand(1, 1, 8, 8, 4)).shape == (1, 3, 8, 8, 4)
    same = torch.rand(1, 3, 8, 8, 4)
    assert up(same, torch.rand(1, 1, 8, 8, 4)) is same


def test_jbu_keeps_a_step_edge_sharper_than_bilinear() -> None:
    image = _step_image()
    features = F.avg_pool2d(image, 4)  # the edge falls inside low-res column 3 (value 0.5)
    bilinear = BilinearUpsampler()(features, image)
    guided = JointBilateralUpsampler({"radius": 2, "sigma_spatial": 1.0, "sigma_range": 0.1})(features, image)
    bilinear_error = (bilinear - image).abs().mean()
    guided_error = (guided - image).abs().mean()
    assert guided_error < 0.25 * bilinear_error
    row_b, row_g = bilinear[0, 0, 16], guided[0, 0, 16]
    assert int(((row_g > 0.3) & (row_g < 0.7)).sum()) < int(((row_b > 0.3) & (row_b < 0.7)).sum())
    assert float(row_g[13]) < 0.3 and float(row_g[14]) > 0.7  # the transition sits on the image edge


def test_jbu_3d_same_resolution_is_an_edge_preserving_filter() -> None:
    image = torch.full((1, 1, 12, 12, 6), 0.1)
    image[:, :, 6:] = 0.9
    noisy = image + 0.05 * torch.randn_like(image)
    filtered = joint_bilateral_upsample(noisy, image, radius=2, sigma_spatial=1.0, sigma_range=0.1)
    assert (filtered - image).abs().mean() < 0.5 * (noisy - image).abs().mean()
    assert float(filtered[0, 0, 5].mean()) < 0.2 and float(filtered[0, 0, 6].mean()) > 0.8


def test_jbu_code_paths_agree_and_preserve_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    features, image = torch.rand(2, 5, 4, 6), torch.rand(2, 2, 16, 24)
    reference = jbu._jbu_general(features, image, 2, 1.3, 0.2, 2)
    stacked = jbu._jbu_cells(features, image, 2, 1.3, 0.2, stacked=True)
    streamed = jbu._jbu_cells(features, image, 2, 1.3, 0.2, stacked=False)
    assert torch.allclose(stacked, reference, atol=1e-5) and torch.allclose(streamed, reference, atol=1e-5)
    monkeypatch.setattr(jbu, "STACK_BUDGET", 2000)  # forces chunking over the batch
    assert torch.allclose(joint_bilateral_upsample(features, image, 2, 1.3, 0.2), reference, atol=1e-5)
    volume_features, volume = torch.rand(1, 3, 3, 3, 2), torch.rand(1, 1, 9, 9, 6)
    assert torch.allclose(
        jbu._jbu_cells(volume_features, volume, 1, 1.0, 0.1, stacked=True),
        jbu._jbu_general(volume_features, volume, 1, 1.0, 0.1, 3),
        atol=1e-5,
    )
    constant = torch.full((1, 4, 5, 7), 3.0)
    for target in (torch.rand(1, 1, 20, 28), torch.rand(1, 1, 17, 30)):  # integer and non-integer scales
        assert torch.allclose(joint_bilateral_upsample(constant, target), torch.full((1, 4, *target.shape[2:]), 3.0))


def _reference_stage(stage: JBUStage, source: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
    """FeatUp's JBU stage written with F.unfold (materialising every neighbourhood)."""
    b, _, h, w = guidance.shape
    r, d = stage.radius, stage.diameter
    keys = stage.range_proj(guidance)
    neighbours = F.unfold(F.pad(keys, [r] * 4, mode="reflect"), d).reshape(b, keys.shape[1], d * d, h, w)
    logits = torch.einsum("bckhw,bchw->bkhw", neighbours, keys)
    range_kernel = torch.softmax(stage.range_temp.exp().clamp(1e-4, 1e4) * logits, dim=1)
    axis = torch.linspace(-1, 1, d)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    spatial = torch.exp(-(rows**2 + cols**2) / (2 * stage.sigma_spatial**2)).reshape(1, d * d, 1, 1)
    kernel = range_kernel * spatial
    kernel = kernel / kernel.sum(1, keepdim=True).clamp(1e-7)
    kernel = kernel + 0.1 * stage.fixup_proj(torch.cat([kernel, guidance], dim=1))
    upsampled = F.interpolate(source, (h, w), mode="bicubic", align_corners=False)
    patches = F.unfold(F.pad(upsampled, [r] * 4, mode="reflect"), d).reshape(b, source.shape[1], d * d, h, w)
    return torch.einsum("bckhw,bkhw->bchw", patches, kernel)


def _perturbed(feature_dim: int) -> FeatUpJBU:
    torch.manual_seed(1)
    up = FeatUpJBU.untrained(feature_dim)
    with torch.no_grad():
        for p in up.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return up.eval()


def test_featup_stage_matches_an_unfold_formulation() -> None:
    up = _perturbed(6)
    source, guidance = torch.randn(2, 6, 5, 4), torch.randn(2, 3, 10, 8)
    with torch.no_grad():
        assert torch.allclose(up.up1(source, guidance), _reference_stage(up.up1, source, guidance), atol=1e-5)


def test_featup_parameter_names_follow_featup() -> None:
    state = FeatUpJBU.untrained(384).state_dict()
    for stage in ("up1", "up2", "up3", "up4"):
        assert state[f"{stage}.range_temp"].shape == ()
        assert state[f"{stage}.sigma_spatial"].shape == ()
        assert state[f"{stage}.range_proj.0.weight"].shape == (32, 3, 1, 1)
        assert state[f"{stage}.range_proj.3.weight"].shape == (32, 32, 1, 1)
        assert state[f"{stage}.fixup_proj.0.weight"].shape == (49, 52, 1, 1)
        assert state[f"{stage}.fixup_proj.3.weight"].shape == (49, 49, 1, 1)
    assert state["fixup_proj.1.weight"].shape == (384, 384, 1, 1)
    assert len(state) == 4 * 10 + 2


def test_featup_reload_through_config_is_identical(tmp_path: Path) -> None:
    up = _perturbed(8)
    features, image = torch.randn(2, 8, 2, 3), torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        expected = up(features, image)
    assert expected.shape == (2, 8, 32, 48)
    plain = tmp_path / "jbu.pt"
    torch.save(up.state_dict(), plain)
    reloaded = build_upsampler("featup-jbu", {"weights": str(plain)}, feature_dim=8)
    with torch.no_grad():
        assert torch.equal(reloaded(features, image), expected)
    # a FeatUp (PyTorch Lightning) checkpoint: upsampler.* plus backbone, channel norm and training extras
    norm = torch.nn.LayerNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    lightning = {f"upsampler.{k}": v for k, v in up.state_dict().items()}
    lightning |= {
        "model.1.norm.weight": norm.weight.detach(),
        "model.1.norm.bias": norm.bias.detach(),
        "model.0.cls_token": torch.zeros(1, 1, 8),
        "scale_net.net.weight": torch.zeros(1, 8, 1, 1),
    }
    ckpt = tmp_path / "dino16_jbu_stack_cocostuff.ckpt"
    torch.save({"state_dict": lightning, "epoch": 0}, ckpt)
    featup = FeatUpJBU({"weights": ckpt})
    assert featup.feature_dim == 8 and featup.channel_norm is not None
    normed = norm(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.allclose(featup(features, image), up(normed, image), atol=1e-6)


def test_featup_needs_matching_weights(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_upsampler("featup-jbu", feature_dim=384)
    assert "dino16_jbu_stack_cocostuff.ckpt" in str(info.value) and "--upsampler-weights" in str(info.value)
    path = tmp_path / "jbu.pt"
    torch.save(FeatUpJBU.untrained(8).state_dict(), path)
    with pytest.raises(ConfigError, match="8-dim"):
        FeatUpJBU({"weights": path}, feature_dim=384)
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="no FeatUp JBU stack"):
        FeatUpJBU({"weights": path})
