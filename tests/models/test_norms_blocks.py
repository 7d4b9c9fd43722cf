"""Norm factory (incl. ModelsGenesis' batch-statistics norm) and the building blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from radiossl.models.blocks import ConvUnit, DoubleConv, Down, Out, Up, scale_channels
from radiossl.models.norms import ContBatchNorm3d, SafeBatchNorm1d, canonical_norm, make_norm


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("batch", nn.BatchNorm3d),
        ("group", nn.GroupNorm),
        ("instance", nn.InstanceNorm3d),
        ("genesis", ContBatchNorm3d),
        ("bn", nn.BatchNorm3d),
        ("gn", nn.GroupNorm),
        ("cbn", ContBatchNorm3d),
    ],
)
def test_make_norm_kinds(kind: str, cls: type) -> None:
    norm = make_norm(kind, 16)
    assert type(norm) is cls
    assert {"weight", "bias"} <= set(norm.state_dict())


@pytest.mark.parametrize("kind", ["group", "instance", "genesis", "batch"])
def test_single_channel_is_always_batchnorm(kind: str) -> None:
    assert type(make_norm(kind, 1)) is nn.BatchNorm3d


def test_group_norm_uses_eight_groups_and_rejects_other_counts() -> None:
    norm = make_norm("group", 16)
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 8
    with pytest.raises(ValueError, match="multiple of 8"):
        make_norm("group", 12)
    with pytest.raises(ValueError, match="unknown norm"):
        canonical_norm("layer")


def test_genesis_norm_uses_batch_statistics_in_eval_mode() -> None:
    norm = ContBatchNorm3d(4)
    with torch.no_grad():
        norm.running_mean.fill_(100.0)  # would dominate if running stats were used
    x = torch.randn(3, 4, 4, 4, 4) * 3 + 1
    expected = nn.functional.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
    train_out = norm.train()(x)
    eval_out = norm.eval()(x)
    assert torch.allclose(train_out, expected, atol=1e-6)
    assert torch.allclose(eval_out, expected, atol=1e-6)


def test_genesis_norm_updates_running_stats_only_when_training() -> None:
    norm = ContBatchNorm3d(4)
    x = torch.randn(2, 4, 4, 4, 4) + 5
    norm.eval()(x)
    assert torch.equal(norm.running_mean, torch.zeros(4)) and int(norm.num_batches_tracked) == 0
    norm.train()(x)
    assert torch.allclose(norm.running_mean, 0.1 * x.mean(dim=(0, 2, 3, 4)), atol=1e-5)
    assert int(norm.num_batches_tracked) == 1
    with pytest.raises(ValueError):
        norm(torch.randn(2, 4, 4))


def test_safe_batchnorm1d_single_sample_uses_running_stats() -> None:
    bn = SafeBatchNorm1d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        bn.running_var.fill_(4.0)
    out = bn.train()(torch.tensor([[3.0, 2.0, 1.0]]))
    assert torch.allclose(out, torch.tensor([[1.0, 0.0, -1.0]]), atol=1e-4)
    assert torch.equal(bn.running_mean, torch.tensor([1.0, 2.0, 3.0]))


def test_conv_unit_and_double_conv_keys() -> None:
    unit = ConvUnit(2, 8, norm="group")
    assert set(unit.state_dict()) == {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"}
    assert set(ConvUnit(2, 8, act="prelu").state_dict()) >= {"activation.weight"}
    double = DoubleConv(2, 8, 16, norm="batch")
    assert double(torch.rand(2, 2, 4, 4, 4)).shape == (2, 16, 4, 4, 4)
    assert "1.bn1.running_var" in double.state_dict()
    with pytest.raises(ValueError, match="activation"):
        ConvUnit(1, 8, act="gelu")


def test_down_up_out_blocks() -> None:
    down = Down(1, depth=1, width=0.25)
    assert down.out_channels == scale_channels(128, 0.25) == 32
    assert down(torch.rand(1, 1, 4, 4, 4)).shape == (1, 32, 4, 4, 4)
    up = Up(16, 8, 8, norm="group", heads=True)
    h = up(torch.rand(2, 16, 2, 2, 2), torch.rand(2, 8, 4, 4, 4))
    assert h.shape == (2, 8, 4, 4, 4)
    pro, pre, mask = up.heads(h)
    assert pro.shape == pre.shape == (2, 8) and mask is not None and mask.shape == (2, 1, 4, 4, 4)
    with pytest.raises(ValueError, match="skip"):
        up(torch.rand(2, 16, 2, 2, 2))
    with pytest.raises(RuntimeError, match="heads"):
        Up(16, 0, 8).heads(h)
    assert Out(8, 3)(h).shape == (2, 3, 4, 4, 4)


def test_scale_channels() -> None:
    assert [scale_channels(c, 1.0) for c in (32, 64, 512)] == [32, 64, 512]
    assert scale_channels(32, 0.125) == 8 and scale_channels(64, 0.3) == 16 and scale_channels(64, 0.375) == 24
    with pytest.raises(ValueError):
        scale_channels(32, 0.0)
