"""The nnU-Net U-Nets as radiossl model classes: plain specs, identical keys, rebuild from the spec."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("dynamic_network_architectures")

from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

from radiossl.models.arch_kwargs import import_dotted, resolve_arch_kwargs, serialise_arch_kwargs
from radiossl.models.factory import build_model, model_spec

TINY = {
    "input_channels": 1,
    "n_stages": 3,
    "features_per_stage": [4, 8, 16],
    "conv_op": torch.nn.Conv3d,
    "kernel_sizes": [[3, 3, 3]] * 3,
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
    "n_blocks_per_stage": [1, 1, 2],
    "num_classes": 2,
    "n_conv_per_stage_decoder": [1, 1],
    "conv_bias": True,
    "norm_op": torch.nn.InstanceNorm3d,
    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
    "nonlin": torch.nn.LeakyReLU,
    "nonlin_kwargs": {"inplace": True},
}


def test_spec_is_plain_json_and_rebuilds_the_same_keys() -> None:
    from radiossl.models.dna_networks import ResEncUNet

    net = ResEncUNet(**TINY)
    spec = model_spec(net)
    assert spec["class"] == "ResidualEncoderUNet"
    assert spec["kwargs"]["conv_op"] == "torch.nn.modules.conv.Conv3d"
    json.dumps(spec)
    rebuilt = build_model(json.loads(json.dumps(spec)))
    assert type(rebuilt) is ResEncUNet
    reference = ResidualEncoderUNet(**TINY)
    assert list(rebuilt.state_dict()) == list(reference.state_dict())
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    x = torch.randn(1, 1, 16, 16, 16)
    net.eval()
    rebuilt.eval()
    assert torch.equal(net(x), rebuilt(x))


def test_serialise_and_resolve_are_inverse() -> None:
    plain = serialise_arch_kwargs(TINY)
    assert resolve_arch_kwargs(plain)["norm_op"] is torch.nn.InstanceNorm3d
    assert serialise_arch_kwargs(resolve_arch_kwargs(plain)) == plain


def test_unknown_dotted_name_is_a_one_line_error() -> None:
    from radiossl.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"cannot import 'torch\.nn\.NoSuchLayer'"):
        import_dotted("torch.nn.NoSuchLayer")
