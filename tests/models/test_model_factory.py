"""model_spec / build_model round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from radiossl.errors import CheckpointError
from radiossl.models import Encoder3D, PatchClusterNet, UNet3D, build_model, model_spec, register_model_class
from radiossl.models.factory import model_classes, unwrap_model

TINY = 0.125


@pytest.mark.parametrize(
    "model",
    [
        UNet3D(in_channels=4, out_channels=3, width=TINY, skip_connections=True, norm="group"),
        UNet3D(width=TINY, skip_connections=False, norm="batch", pretrain_heads=True),
        UNet3D(width=0.25, norm="genesis", decoder=False),
        PatchClusterNet(k=7, width=TINY, norm="instance", proj_dim=16),
        Encoder3D(in_channels=2, width=TINY),
    ],
)
def test_round_trip(model: nn.Module) -> None:
    spec = model_spec(model)
    assert json.loads(json.dumps(spec)) == spec  # primitives only
    rebuilt = build_model(spec)
    assert type(rebuilt) is type(model)
    assert model_spec(rebuilt) == spec
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, model.in_channels, 16, 16, 16)  # type: ignore[arg-type]
    model.eval()
    rebuilt.eval()
    with torch.no_grad():
        a, b = model(x), rebuilt(x)
    for left, right in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True):
        assert torch.equal(left, right)


def test_spec_contents() -> None:
    spec = model_spec(UNet3D(out_channels=2, width=TINY, norm="gn"))
    assert spec == {
        "class": "UNet3D",
        "kwargs": {
            "in_channels": 1,
            "out_channels": 2,
            "width": 0.125,
            "skip_connections": True,
            "norm": "group",
            "decoder": True,
            "pretrain_heads": False,
        },
    }


def test_wrappers_are_unwrapped() -> None:
    net = UNet3D(width=TINY)
    assert unwrap_model(nn.DataParallel(net)) is net
    assert model_spec(nn.DataParallel(net)) == model_spec(net)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"class": "ResNet"}, "unknown class"),
        ({"class": "UNet3D", "kwargs": {"depth": 5}}, "invalid"),
        ({"class": "UNet3D", "kwargs": {"norm": "layer"}}, "invalid"),
        ({"kwargs": {}}, "'class'"),
        ({"class": "UNet3D", "kwargs": [1]}, "kwargs"),
    ],
)
def test_bad_specs(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        build_model(spec)


def test_unregistered_models_cannot_be_described() -> None:
    with pytest.raises(CheckpointError, match="Conv3d"):
        model_spec(nn.Conv3d(1, 1, 1))


def test_register_model_class() -> None:
    class Tiny(nn.Module):
        def __init__(self, channels: int = 2) -> None:
            super().__init__()
            self.channels = channels
            self.conv = nn.Conv3d(1, channels, 1)

        def spec_kwargs(self) -> dict[str, Any]:
            return {"channels": self.channels}

    register_model_class(Tiny, "TinyForTest")
    try:
        spec = model_spec(Tiny(3))
        assert spec == {"class": "TinyForTest", "kwargs": {"channels": 3}}
        assert build_model(spec).conv.out_channels == 3  # type: ignore[union-attr]
    finally:
        from radiossl.models import factory

        factory._CLASSES.pop("TinyForTest")
    assert "TinyForTest" not in model_classes()
    with pytest.raises(TypeError, match="spec_kwargs"):
        register_model_class(nn.Linear)
