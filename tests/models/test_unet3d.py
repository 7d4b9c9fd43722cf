"""UNet3D: published parameter counts, original key layout, shapes, heads and input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from radiossl.models import Encoder3D, PatchClusterNet, UNet3D
from radiossl.models.blocks import scale_channels

TINY = 0.125

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(factory, *args, **kwargs) -> nn.Module:  # type: ignore[no-untyped-def]
    with torch.device("meta"):  # no memory, no initialisation cost
        return factory(*args, **kwargs)


@pytest.mark.parametrize(
    ("factory", "kwargs", "expected"),
    [
        (Encoder3D, {}, 7_027_776),
        (Encoder3D, {"in_channels": 4}, 7_030_368),
        (UNet3D, {"norm": "genesis"}, 19_073_665),  # ModelsGenesis UNet3D 1 -> 1
        (UNet3D, {"norm": "group", "pretrain_heads": True}, 19_433_866),  # SegmentationModel LiTS
        (UNet3D, {"in_channels": 4, "out_channels": 3, "norm": "group", "pretrain_heads": True}, 19_436_588),
        (UNet3D, {"skip_connections": False, "pretrain_heads": True}, 17_111_434),  # PCRLv23d
        (UNet3D, {"out_channels": 10, "skip_connections": False, "pretrain_heads": True}, 17_112_019),
        (PatchClusterNet, {"k": 10}, 7_061_248),
        (PatchClusterNet, {"k": 50}, 7_063_808),
    ],
)
def test_parameter_counts_match_the_published_networks(factory, kwargs, expected) -> None:  # type: ignore[no-untyped-def]
    assert n_params(on_meta(factory, **kwargs)) == expected


def _conv_unit(prefix: str, out: int, inp: int, k: int = 3) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.conv1.weight": (out, inp, k, k, k), f"{prefix}.conv1.bias": (out,)}
    for suffix in BN_SUFFIXES:
        keys[f"{prefix}.bn1.{suffix}"] = () if suffix == "num_batches_tracked" else (out,)
    return keys


def _encoder_layout(in_channels: int = 1) -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}
    plan = {
        "down_tr64": (in_channels, 32, 64),
        "down_tr128": (64, 64, 128),
        "down_tr256": (128, 128, 256),
        "down_tr512": (256, 256, 512),
    }
    for name, (a, b, c) in plan.items():
        keys |= _conv_unit(f"{name}.ops.0", b, a) | _conv_unit(f"{name}.ops.1", c, b)
    return keys


def _genesis_layout() -> dict[str, tuple[int, ...]]:
    """ModelsGenesis UNet3D keys and shapes (baselines spec A2.3)."""
    keys = _encoder_layout()
    for name, (up, inp, c) in {
        "up_tr256": (512, 768, 256),
        "up_tr128": (256, 384, 128),
        "up_tr64": (128, 192, 64),
    }.items():
        keys[f"{name}.up_conv.weight"] = (up, up, 2, 2, 2)
        keys[f"{name}.up_conv.bias"] = (up,)
        keys |= _conv_unit(f"{name}.ops.0", c, inp) | _conv_unit(f"{name}.ops.1", c, c)
    keys["out_tr.final_conv.weight"] = (1, 64, 1, 1, 1)
    keys["out_tr.final_conv.bias"] = (1,)
    return keys


def _pcrlv2_layout() -> dict[str, tuple[int, ...]]:
    """PCRLv23d keys and shapes (baselines spec B2.3)."""
    keys = _encoder_layout()
    for name, (inp, c) in {"up_tr256": (512, 256), "up_tr128": (256, 128), "up_tr64": (128, 64)}.items():
        keys[f"{name}.up_conv.weight"] = (inp, inp, 2, 2, 2)
        keys[f"{name}.up_conv.bias"] = (inp,)
        keys |= _conv_unit(f"{name}.ops.0", c, inp) | _conv_unit(f"{name}.ops.1", c, c)
        for suffix in BN_SUFFIXES:
            keys[f"{name}.bn.{suffix}"] = () if suffix == "num_batches_tracked" else (c,)
            keys[f"{name}.predictor_head.1.{suffix}"] = () if suffix == "num_batches_tracked" else (2 * c,)
        keys[f"{name}.predictor_head.0.weight"] = (2 * c, c)
        keys[f"{name}.predictor_head.0.bias"] = (2 * c,)
        keys[f"{name}.predictor_head.3.weight"] = (c, 2 * c)
        keys[f"{name}.predictor_head.3.bias"] = (c,)
        keys |= _conv_unit(f"{name}.deep_supervision_head", 1, c)
    keys["out_tr.final_conv.weight"] = (1, 64, 1, 1, 1)
    keys["out_tr.final_conv.bias"] = (1,)
    return keys


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_genesis_key_layout_is_the_original() -> None:
    layout = _shapes(on_meta(UNet3D, norm="genesis"))
    assert len(layout) == 106
    assert layout == _genesis_layout()


def test_pcrlv2_key_layout_is_the_original() -> None:
    layout = _shapes(on_meta(UNet3D, skip_connections=False, pretrain_heads=True))
    assert len(layout) == 169
    assert layout == _pcrlv2_layout()


def test_encoder_only_key_layout() -> None:
    layout = _shapes(on_meta(UNet3D, decoder=False))
    assert len(layout) == 56
    assert layout == _encoder_layout()


def test_group_norm_model_has_same_names_without_running_stats() -> None:
    keys = set(on_meta(UNet3D, norm="group").state_dict())
    genesis = {k for k in _genesis_layout() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert keys == genesis


@pytest.mark.parametrize("width", [0.1, 0.125, 0.25, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0])
def test_width_scales_channels_to_multiples_of_eight(width: float) -> None:
    net = on_meta(UNet3D, width=width, norm="group")
    for module in net.modules():
        if isinstance(module, nn.Conv3d) and module.out_channels != 1:
            assert module.out_channels % 8 == 0
    assert net.encoder_channels == tuple(scale_channels(c, width) for c in (64, 128, 256, 512))


def test_width_one_is_published_and_half_width_halves() -> None:
    assert on_meta(UNet3D).encoder_channels == (64, 128, 256, 512)
    assert on_meta(UNet3D, width=0.5).encoder_channels == (32, 64, 128, 256)


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "genesis"])
@pytest.mark.parametrize("skip", [True, False])
def test_forward_shapes(norm: str, skip: bool, volume: torch.Tensor) -> None:
    net = UNet3D(in_channels=1, out_channels=3, width=TINY, skip_connections=skip, norm=norm)
    out = net(volume)
    assert out.shape == (2, 3, 16, 16, 16)
    feats = net.encode(volume)
    assert [tuple(f.shape) for f in feats] == [
        (2, 8, 16, 16, 16),
        (2, 16, 8, 8, 8),
        (2, 32, 4, 4, 4),
        (2, 64, 2, 2, 2),
    ]
    assert feats[-1].shape[1] == net.encoder_channels[-1]
    dec = net.decoder_features(volume)
    assert [tuple(f.shape) for f in dec] == [(2, 32, 4, 4, 4), (2, 16, 8, 8, 8), (2, 8, 16, 16, 16)]


def test_non_cubic_input(volume: torch.Tensor) -> None:
    net = UNet3D(width=TINY, norm="group").eval()
    assert net(torch.rand(1, 1, 32, 16, 8)).shape == (1, 1, 32, 16, 8)


def test_output_is_logits_not_probabilities(volume: torch.Tensor) -> None:
    net = UNet3D(width=TINY, norm="group")
    with torch.no_grad():
        net.out_tr.final_conv.bias.fill_(5.0)
        net.out_tr.final_conv.weight.zero_()
    assert torch.allclose(net(volume), torch.full((2, 1, 16, 16, 16), 5.0))


def test_forward_pretrain_global_and_local(volume: torch.Tensor) -> None:
    net = UNet3D(width=TINY, skip_connections=False, pretrain_heads=True)
    out, feats, masks = net.forward_pretrain(volume)
    assert out.shape == (2, 1, 16, 16, 16)
    assert [(tuple(pro.shape), tuple(pre.shape)) for pro, pre in feats] == [
        ((2, 32), (2, 32)),
        ((2, 16), (2, 16)),
        ((2, 8), (2, 8)),
    ]
    assert [tuple(m.shape) for m in masks] == [(2, 1, 16, 16, 16)] * 3
    local = torch.rand(3, 1, 8, 8, 8)
    out, feats, masks = net.forward_pretrain(local, local=True)
    assert out.shape == (3, 1, 8, 8, 8) and masks == [] and len(feats) == 3


def test_masks_are_logits_upsampled_from_each_level(volume: torch.Tensor) -> None:
    net = UNet3D(width=TINY, skip_connections=False, pretrain_heads=True).eval()
    with torch.no_grad():
        _, _, masks = net.forward_pretrain(volume)
        hidden = net.decoder_features(volume)
        coarse = net.up_tr256.deep_supervision_head(hidden[0])
    assert coarse.shape == (2, 1, 4, 4, 4)
    expected = nn.functional.interpolate(coarse, size=(16, 16, 16), mode="trilinear", align_corners=False)
    assert torch.allclose(masks[0], expected)
    assert torch.allclose(masks[2], net.up_tr64.deep_supervision_head(hidden[2]))
    assert isinstance(net.up_tr64.deep_supervision_head.bn1, nn.BatchNorm3d)


def test_forward_pretrain_with_skip_connections(volume: torch.Tensor) -> None:
    net = UNet3D(out_channels=5, width=TINY, skip_connections=True, norm="group", pretrain_heads=True)
    out, feats, masks = net.forward_pretrain(volume)
    assert out.shape == (2, 5, 16, 16, 16) and len(masks) == 3 and len(feats) == 3
    assert isinstance(net.up_tr256.deep_supervision_head.bn1, nn.BatchNorm3d)  # 1 channel: never GroupNorm


def test_batch_of_one_in_training_mode_works_and_keeps_key_names() -> None:
    net = UNet3D(width=TINY, skip_connections=False, pretrain_heads=True).train()
    before = {k: v.clone() for k, v in net.state_dict().items() if ".bn." in k or "predictor_head.1" in k}
    out, feats, masks = net.forward_pretrain(torch.rand(1, 1, 16, 16, 16))
    (out.mean() + sum(pre.sum() for _, pre in feats)).backward()
    assert len(masks) == 3 and feats[0][0].shape == (1, 32)
    after = net.state_dict()
    for key, value in before.items():  # a single sample leaves the projection statistics unchanged
        assert torch.equal(after[key], value), key
    assert "up_tr256.predictor_head.1.running_mean" in after


def test_projection_bn_is_plain_batchnorm_for_larger_batches() -> None:
    net = UNet3D(width=TINY, skip_connections=False, pretrain_heads=True).train()
    reference = nn.BatchNorm1d(32)
    reference.load_state_dict(net.up_tr256.bn.state_dict())
    x = torch.randn(4, 32)
    assert torch.allclose(net.up_tr256.bn(x), reference(x))
    assert torch.allclose(net.up_tr256.bn.running_mean, reference.running_mean)
    assert int(net.up_tr256.bn.num_batches_tracked) == 1


@pytest.mark.parametrize("shape", [(1, 1, 12, 16, 16), (1, 1, 16, 16, 20), (1, 1, 4, 8, 8)])
def test_sizes_not_divisible_by_eight_are_rejected(shape: tuple[int, ...]) -> None:
    net = UNet3D(width=TINY)
    with pytest.raises(ValueError, match="multiple of 8"):
        net(torch.rand(shape))


def test_wrong_channels_and_rank_are_rejected() -> None:
    net = UNet3D(in_channels=4, width=TINY)
    with pytest.raises(ValueError, match="4 input channel"):
        net(torch.rand(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="5-D"):
        net(torch.rand(1, 16, 16, 16))


def test_encoder_only_model() -> None:
    net = UNet3D(width=TINY, decoder=False)
    assert not any(k.startswith(("up_tr", "out_tr")) for k in net.state_dict())
    x = torch.rand(1, 1, 16, 16, 16)
    assert net.encode(x)[-1].shape == (1, 64, 2, 2, 2)
    assert torch.equal(net(x), net.encode(x)[-1])
    with pytest.raises(RuntimeError, match="decoder=False"):
        net.decoder_features(x)
    with pytest.raises(ValueError, match="pretrain_heads"):
        UNet3D(decoder=False, pretrain_heads=True)


def test_forward_pretrain_needs_heads(volume: torch.Tensor) -> None:
    with pytest.raises(RuntimeError, match="pretrain_heads=True"):
        UNet3D(width=TINY).forward_pretrain(volume)


def test_prefix_attributes() -> None:
    net = UNet3D(width=TINY)
    assert net.encoder_prefixes == ("down_tr",)
    assert net.decoder_prefixes == ("up_tr",)
    assert net.head_prefixes == ("out_tr",)
    keys = list(net.state_dict())
    assert all(k.startswith(net.encoder_prefixes + net.decoder_prefixes + net.head_prefixes) for k in keys)


def test_unknown_norm_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown norm"):
        UNet3D(width=TINY, norm="layer")
    assert UNet3D(width=TINY, norm="gn").norm == "group"
