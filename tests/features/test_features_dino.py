"""DINO ViT: official key names, parameter counts, weight loading through the config, pos-embed resizing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radiossl.errors import CheckpointError, ConfigError
from radiossl.features import build_extractor, build_pipeline
from radiossl.features.base import to_rgb
from radiossl.features.extractors.dino import DinoViTB16, DinoViTS8, DinoViTS16
from radiossl.features.vit import VisionTransformer

BLOCK_KEYS = (
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
)
TOP_KEYS = (
    "cls_token",
    "pos_embed",
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "norm.weight",
    "norm.bias",
)


def _count(patch: int, dim: int, heads: int) -> int:
    with torch.device("meta"):
        vit = VisionTransformer(patch_size=patch, embed_dim=dim, depth=12, num_heads=heads)
    return sum(p.numel() for p in vit.parameters())


def test_official_key_names_and_shapes(vits16: VisionTransformer) -> None:
    state = vits16.state_dict()
    expected = set(TOP_KEYS) | {f"blocks.{i}.{k}" for i in range(12) for k in BLOCK_KEYS}
    assert set(state) == expected
    assert state["pos_embed"].shape == (1, 197, 384)  # 14x14 patches of a 224 image + CLS
    assert state["patch_embed.proj.weight"].shape == (384, 3, 16, 16)
    assert state["blocks.0.attn.qkv.weight"].shape == (1152, 384)
    assert state["blocks.11.mlp.fc1.weight"].shape == (1536, 384)


def test_parameter_counts() -> None:
    # ViT-S/16: patch embed 3*16*16*384 + 384 = 295,296; CLS 384; pos 197*384 = 75,648;
    # 12 blocks x 1,774,464 (2 LayerNorms 1,536 + qkv 443,520 + proj 147,840 + MLP 1,181,568);
    # final norm 768: 21,665,664 in total (the published dino_deitsmall16_pretrain.pth).
    assert _count(16, 384, 6) == 21_665_664
    assert _count(8, 384, 6) == 21_670_272  # 3*8*8*384 + 384 patch embed, 785 positions
    assert _count(16, 768, 12) == 85_798_656


def test_reload_through_config_gives_identical_outputs(vits16: VisionTransformer, vits16_file: Path) -> None:
    slices = torch.rand(2, 1, 32, 48)
    extractor = build_extractor("dino-vits16", {"imagenet_norm": True}, weights=vits16_file)
    assert isinstance(extractor, DinoViTS16)
    with torch.no_grad():
        got = extractor.extract(slices)
        expected = vits16.patch_tokens(to_rgb(slices, imagenet_norm=True))
    assert got.shape == (2, 384, 2, 3)
    assert torch.equal(got, expected)
    thesis = DinoViTS16({"weights": str(vits16_file), "imagenet_norm": False})
    with torch.no_grad():
        assert torch.equal(thesis.extract(slices), vits16.patch_tokens(slices.expand(-1, 3, -1, -1)))


def test_training_checkpoint_layout_loads(vits16: VisionTransformer, tmp_path: Path) -> None:
    state = {f"module.backbone.{k}": v for k, v in vits16.state_dict().items()}
    state["module.head.last_layer.weight_g"] = torch.ones(3, 1)
    path = tmp_path / "checkpoint.pth"
    torch.save({"teacher": state, "epoch": 3}, path)
    extractor = DinoViTS16({"weights": path})
    assert torch.equal(extractor.vit.pos_embed, vits16.pos_embed)


def test_missing_weights_message_is_one_actionable_line() -> None:
    for cls, file in (
        (DinoViTS16, "dino_deitsmall16_pretrain.pth"),
        (DinoViTS8, "dino_deitsmall8_pretrain.pth"),
        (DinoViTB16, "dino_vitbase16_pretrain.pth"),
    ):
        with pytest.raises(ConfigError) as info:
            cls()
        message = str(info.value)
        assert "\n" not in message
        assert file in message and "--weights" in message and "github.com/facebookresearch/dino" in message


def test_wrong_files_are_refused(vits16: VisionTransformer, tmp_path: Path) -> None:
    state = vits16.state_dict()
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("blocks.11.")}, partial)
    with pytest.raises(CheckpointError, match=r"missing blocks\.11"):
        DinoViTS16({"weights": partial})
    full = tmp_path / "vits16.pth"
    torch.save(state, full)
    with pytest.raises(CheckpointError, match=r"shape mismatch: patch_embed\.proj\.weight"):
        DinoViTS8({"weights": full})
    with pytest.raises(CheckpointError, match="not found"):
        DinoViTS16({"weights": tmp_path / "absent.pth"})


def test_positional_embedding_interpolation(vits16: VisionTransformer) -> None:
    assert vits16.interpolate_pos_encoding(14, 14) is vits16.pos_embed
    resized = vits16.interpolate_pos_encoding(3, 5)
    assert resized.shape == (1, 1 + 15, 384)
    assert torch.equal(resized[:, 0], vits16.pos_embed[:, 0])  # CLS position kept
    vit = VisionTransformer(patch_size=16, embed_dim=8, depth=1, num_heads=2)
    with torch.no_grad():
        vit.pos_embed[:, 1:] = torch.linspace(-1, 1, 8)  # the same vector at every position
    constant = vit.interpolate_pos_encoding(7, 20)[:, 1:]
    assert torch.allclose(constant, vit.pos_embed[:, 1:2].expand_as(constant), atol=1e-5)


def test_slices_are_padded_to_the_patch_size_and_pipeline_layout(vits16_file: Path) -> None:
    extractor = DinoViTS16({"weights": vits16_file})
    assert extractor.extract(torch.rand(3, 1, 20, 33)).shape == (3, 384, 2, 3)
    assert DinoViTS16({"weights": vits16_file, "resize": 64}).extract(torch.rand(1, 1, 20, 20)).shape == (
        1,
        384,
        4,
        4,
    )
    pipeline = build_pipeline("dino-vits16", "bilinear", weights=vits16_file, slice_batch=3)
    crops = torch.rand(2, 1, 32, 32, 4)
    features = pipeline(crops)
    assert features.shape == (2, 384, 32, 32, 4)
    # slice d of crop b is the ViT output of crops[b, :, :, :, d], upsampled
    single = pipeline.upsampler(extractor.extract(crops[1:2, :, :, :, 2]), crops[1:2, :, :, :, 2])
    assert torch.allclose(features[1, :, :, :, 2], single[0], atol=1e-5)
