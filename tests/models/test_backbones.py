"""Backbone plugins: every registered backbone under every method, widths, published sizes, the stage hook."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from radiossl.config import ModelConfig
from radiossl.errors import ConfigError, PluginError
from radiossl.models import UNet3D
from radiossl.models.backbone import BackboneNetwork, backbone_names, get_backbone, total_stride
from radiossl.models.factory import backbone_spec, build_model, model_spec
from radiossl.models.multiscale import MultiScaleHeadNet
from radiossl.models.network import build_network, check_sizes
from radiossl.models.patch_cluster_net import PatchClusterNet

BUILT_IN = ["unet3d", "plainconv-unet", "resenc-unet", "resenc-m", "resenc-l", "resenc-xl"]


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_built_in_backbones_are_registered() -> None:
    assert set(BUILT_IN) <= set(backbone_names())
    with pytest.raises(PluginError, match=r"unknown models plugin 'resnet-99'; available: .*resenc-l"):
        build_network(ModelConfig(name="resnet-99"), 1, 1)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_method_network_builds_on_every_backbone_and_rebuilds_from_its_spec(name: str) -> None:
    pytest.importorskip("dynamic_network_architectures")
    model = ModelConfig(name=name, width=0.125)
    networks = {
        "finetune / pixel-cluster / models-genesis": build_network(model, 2, 3),
        "patch-cluster": PatchClusterNet(k=5, proj_dim=8, backbone=build_network(model, 2, 5, decoder=False)),
        "pcrlv2": MultiScaleHeadNet(build_network(model, 2, 2, stage_heads=True)),
    }
    for role, net in networks.items():
        spec = model_spec(net.described_network() if isinstance(net, MultiScaleHeadNet) else net)
        rebuilt = build_model(spec)
        assert list(rebuilt.state_dict()) == list(net.state_dict()), role
        rebuilt.load_state_dict(net.state_dict(), strict=True)
        assert isinstance(net, BackboneNetwork), role
        inner = backbone_spec(spec)
        if name != "unet3d":  # the nnU-Net network and its arch_kwargs, whatever heads the method added
            assert inner["class"] in ("ResidualEncoderUNet", "PlainConvUNet") and "n_stages" in inner["kwargs"], role
    heads = networks["pcrlv2"]
    assert isinstance(heads, MultiScaleHeadNet) and heads.levels == len(heads.decoder_channels)
    if name != "unet3d":  # the nnU-Net encoder keys, with no decoder in the encoder-only network
        keys = list(networks["patch-cluster"].state_dict())
        assert all(k.startswith(("encoder.", "cluster_projection_head", "prototypes")) for k in keys)


@pytest.mark.parametrize("name", ["unet3d", "resenc-l", "plainconv-unet"])
def test_encode_calls_the_stage_hook_on_every_stage_and_uses_what_it_returns(name: str) -> None:
    pytest.importorskip("dynamic_network_architectures")
    net = build_network(ModelConfig(name=name, width=0.125), 1, 1).eval()
    x = torch.randn(1, 1, *total_stride(net))
    seen: list[tuple[int, int]] = []

    def zero_first_stage(index: int, features: torch.Tensor) -> torch.Tensor:
        seen.append((index, features.shape[1]))
        return torch.zeros_like(features) if index == 0 else features

    with torch.no_grad():
        plain = net.encode(x)
        masked = net.encode(x, after_stage=zero_first_stage)
        assert torch.equal(net(x), net.head(net.decode(plain)))
    assert seen == list(enumerate(net.stage_channels))
    assert torch.count_nonzero(masked[0]) == 0 and not torch.equal(masked[-1], plain[-1])
    assert [f.shape[1] for f in plain] == list(net.stage_channels)
    assert [d.shape[1] for d in net.decode(plain)] == list(net.decoder_channels)


def test_unet3d_networks_are_unchanged() -> None:
    """The unet3d backbone builds exactly today's networks: same keys, same initial weights, same outputs."""
    model = ModelConfig(width=0.125, norm="group", skip_connections=True)
    torch.manual_seed(0)
    built = build_network(model, 1, 1, stage_heads=True)
    torch.manual_seed(0)
    direct = UNet3D(width=0.125, norm="group", skip_connections=True, pretrain_heads=True)
    assert model_spec(built) == model_spec(direct)
    for (key, a), (key_b, b) in zip(built.state_dict().items(), direct.state_dict().items(), strict=True):
        assert key == key_b and torch.equal(a, b)
    pcrlv2 = MultiScaleHeadNet(built)
    assert list(pcrlv2.state_dict()) == list(direct.state_dict()) and model_spec(
        pcrlv2.described_network()
    ) == model_spec(direct)
    x = torch.randn(2, 1, 16, 16, 16)
    out_a, feats_a, masks_a = pcrlv2.forward_pretrain(x)
    out_b, feats_b, masks_b = direct.forward_pretrain(x)
    assert torch.equal(out_a, out_b) and all(torch.equal(m, n) for m, n in zip(masks_a, masks_b, strict=True))
    assert all(torch.equal(p[0], q[0]) for p, q in zip(feats_a, feats_b, strict=True))
    encoder = PatchClusterNet(k=10, backbone=build_network(ModelConfig(width=0.125), 1, 10, decoder=False))
    assert model_spec(encoder) == model_spec(PatchClusterNet(k=10, width=0.125))


def test_width_scales_features_with_a_floor_and_group_norm_multiples() -> None:
    resenc_l = get_backbone("resenc-l")
    tiny = resenc_l.arch_kwargs(ModelConfig(width=0.01, norm="instance"), 1, 1)  # type: ignore[attr-defined]
    assert tiny["features_per_stage"] == [1, 1, 1, 3, 3, 3]
    group = resenc_l.arch_kwargs(ModelConfig(width=0.125, norm="group"), 1, 1)  # type: ignore[attr-defined]
    assert group["features_per_stage"] == [8, 8, 16, 32, 40, 40]
    pytest.importorskip("dynamic_network_architectures")
    net = build_network(ModelConfig(name="resenc-l", width=0.125, norm="group"), 1, 1)
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 8 for m in net.modules())


def test_crop_sizes_follow_the_total_stride() -> None:
    check_sizes(ModelConfig(), {"data.crop_size": (16, 16, 8)})
    assert get_backbone("resenc-xl").total_stride(ModelConfig()) == (64, 64, 64)
    with pytest.raises(ConfigError, match=r"data\.crop_size: .*resenc-l backbone's total stride \[32, 32, 32\]"):
        check_sizes(ModelConfig(name="resenc-l"), {"data.crop_size": (64, 64, 16), "sliding_window.roi": None})


def test_idle_deep_supervision_outputs_get_no_gradient() -> None:
    pytest.importorskip("dynamic_network_architectures")
    net = build_network(ModelConfig(name="resenc-l", width=0.125), 1, 2)
    net(torch.randn(2, 1, 32, 32, 32)).sum().backward()
    idle = [name for name, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert idle == []


def test_parameter_counts_at_width_one_are_the_published_networks() -> None:
    """ResEnc-L against nnssl's ``get_res_enc_l`` kwargs, built directly with dynamic-network-architectures;
    unet3d against ModelsGenesis' published 19,073,665 parameters."""
    pytest.importorskip("dynamic_network_architectures")
    from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet

    common = {
        "conv_op": nn.Conv3d,
        "kernel_sizes": [[3, 3, 3]] * 6,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
        "features_per_stage": [32, 64, 128, 256, 320, 320],
        "n_conv_per_stage_decoder": [1, 1, 1, 1, 1],
        "conv_bias": True,
        "norm_op": nn.InstanceNorm3d,
        "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "nonlin": nn.LeakyReLU,
        "nonlin_kwargs": {"inplace": True},
    }
    nnssl_resenc_l = ResidualEncoderUNet(
        input_channels=1, n_stages=6, n_blocks_per_stage=[1, 3, 4, 6, 6, 6], num_classes=1, **common
    )
    model = ModelConfig(name="resenc-l", norm="instance")
    assert n_params(build_network(model, 1, 1)) == n_params(nnssl_resenc_l)
    plain = PlainConvUNet(input_channels=1, n_stages=6, n_conv_per_stage=[2] * 6, num_classes=1, **common)
    assert n_params(build_network(ModelConfig(name="plainconv-unet", norm="instance"), 1, 1)) == n_params(plain)
    assert n_params(build_network(ModelConfig(skip_connections=True, norm="genesis"), 1, 1)) == 19_073_665


def test_a_missing_dynamic_network_architectures_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from radiossl.models import factory

    monkeypatch.setitem(sys.modules, "dynamic_network_architectures", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "dynamic_network_architectures.architectures.unet", None)
    monkeypatch.delitem(sys.modules, "radiossl.models.dna_networks", raising=False)
    for name in ("ResidualEncoderUNet", "PlainConvUNet"):
        monkeypatch.delitem(factory._CLASSES, name, raising=False)
    with pytest.raises(
        ConfigError, match=r"pip install --no-deps dynamic-network-architectures==0\.4\.4 einops"
    ) as err:
        build_network(ModelConfig(name="resenc-l", width=0.125), 1, 1)
    assert "\n" not in str(err.value)
    assert type(build_network(ModelConfig(width=0.125), 1, 1)).__name__ == "UNet3D"  # unet3d needs nothing more


def test_config_show_and_plugins_list_name_the_backbones() -> None:
    import yaml
    from typer.testing import CliRunner

    from radiossl.cli import app

    shown = CliRunner().invoke(app, ["config", "show", "--method", "pcrlv2"])
    assert shown.exit_code == 0, shown.output
    assert "# backbones for model.name (radiossl.models plugins):" in shown.stdout
    assert "#   resenc-l: nnU-Net ResEnc-L preset = nnssl's ResEnc-L" in shown.stdout
    assert yaml.safe_load(shown.stdout)["model"]["name"] == "unet3d"  # still a config file to start from
    listed = CliRunner().invoke(app, ["plugins", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "resenc-xl" in listed.stdout


def test_stale_entry_points_are_one_line_naming_the_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    from radiossl import registry

    monkeypatch.setattr(registry, "names", lambda group: [])
    with pytest.raises(PluginError, match=r"no backbone is registered .*pip install -e \. --no-deps"):
        build_network(ModelConfig(), 1, 1)


def test_a_crop_equal_to_the_stride_with_instance_norm_is_refused_before_training() -> None:
    from radiossl.errors import ConfigError
    from radiossl.models.network import check_sizes

    model = ModelConfig(name="resenc-l", width=0.125, norm="instance")
    with pytest.raises(ConfigError, match=r"data\.crop_size: \[32, 32, 32\] equals the resenc-l backbone's total"):
        check_sizes(model, {"data.crop_size": [32, 32, 32]})
    check_sizes(model, {"data.crop_size": [64, 32, 32]})
    check_sizes(ModelConfig(name="resenc-l", width=0.125, norm="batch"), {"data.crop_size": [32, 32, 32]})


def test_a_one_voxel_bottleneck_with_batch_norm_and_one_sample_is_refused_before_training() -> None:
    """torch stops batch norm on one value per channel; the config says so before any data is read."""
    from radiossl.errors import ConfigError
    from radiossl.models.network import check_sizes

    model = ModelConfig(name="resenc-l", width=0.125, norm="batch")
    with pytest.raises(ConfigError, match=r"data\.crop_size: .*batch norm cannot normalise with optim\.batch_size 1"):
        check_sizes(model, {"data.crop_size": [32, 32, 32]}, batch_size=1)
    check_sizes(model, {"data.crop_size": [32, 32, 32]}, batch_size=2)
    check_sizes(model, {"data.crop_size": [64, 32, 32]}, batch_size=1)


def test_pretraining_refuses_a_one_sample_one_voxel_batch_norm_bottleneck_when_the_model_is_built() -> None:
    import torch

    from radiossl.errors import ConfigError
    from radiossl.pretext.base import get_method, load_pretrain_config

    config = load_pretrain_config(
        "patch-cluster",
        overrides=["model.name=resenc-l", "model.width=0.0625", "data.crop_size=[32,32,32]", "optim.batch_size=1"],
    )
    with pytest.raises(ConfigError, match=r"optim\.batch_size 1"):
        get_method("patch-cluster")(config).build_model()
    config.optim.batch_size = 2
    net = get_method("patch-cluster")(config).build_model().train()
    emb, _ = net(torch.rand(2, 1, 32, 32, 32))
    assert emb.shape[0] == 2
