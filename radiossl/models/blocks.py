"""Building blocks of the 3D U-Net family (attribute names follow the original checkpoints).

* :class:`ConvUnit` — ``conv1`` (3x3x3, bias) -> ``bn1`` (norm) -> ``activation``;
* :class:`DoubleConv` — two ConvUnits in an ``nn.Sequential`` (keys ``0.*``, ``1.*``);
* :class:`Down` — one encoder stage, ``ops`` = DoubleConv (pooling is done by the parent);
* :class:`Up` — one decoder stage: ``up_conv`` (transposed conv), optional skip concatenation,
  ``ops`` = DoubleConv, and optionally the PCRLv2 pretraining heads ``bn``, ``predictor_head``
  and ``deep_supervision_head``;
* :class:`Out` — ``final_conv`` (1x1x1, bias), returning logits.

Example:
    >>> import torch
    >>> unit = ConvUnit(1, 8, norm="group")
    >>> unit(torch.zeros(1, 1, 4, 4, 4)).shape
    torch.Size([1, 8, 4, 4, 4])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from radiossl.models.norms import SafeBatchNorm1d, make_norm


def scale_channels(base: int, width: float) -> int:
    """Channel count ``base * width`` rounded to a multiple of 8 (at least 8); width 1.0 keeps ``base``."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(8, 8 * round(base * width / 8))


def _activation(name: str, channels: int) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "elu":
        return nn.ELU(inplace=True)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; expected relu, prelu, elu, sigmoid or none")


class ConvUnit(nn.Module):
    """Conv3d 3x3x3 (padding 1, bias) -> norm -> activation; BatchNorm3d when ``out_channels == 1``."""

    def __init__(self, in_channels: int, out_channels: int, act: str = "relu", norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
        self.bn1 = make_norm(norm, out_channels)
        self.activation = _activation(act, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.bn1(self.conv1(x)))


class DoubleConv(nn.Sequential):
    """Two ConvUnits: ``in -> mid -> out``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__(
            ConvUnit(in_channels, mid_channels, norm=norm),
            ConvUnit(mid_channels, out_channels, norm=norm),
        )


class Down(nn.Module):
    """Encoder stage of depth ``d``: ``in -> 32·2^d·w -> 64·2^d·w`` (no pooling inside)."""

    def __init__(self, in_channels: int, depth: int, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        mid = scale_channels(32 * 2**depth, width)
        self.out_channels = scale_channels(64 * 2**depth, width)
        self.ops = DoubleConv(in_channels, mid, self.out_channels, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class Up(nn.Module):
    """Decoder stage: upsample by 2, concatenate the skip feature (if any), DoubleConv to ``out_channels``.

    With ``heads=True`` it also owns the PCRLv2 pretraining heads, evaluated by :meth:`heads`:
    ``bn`` (BatchNorm1d on the globally pooled output = projection), ``predictor_head``
    (Linear c->2c, BatchNorm1d, ReLU, Linear 2c->c) and ``deep_supervision_head`` (ConvUnit c->1
    returning a 1-channel logit map; the original applies a sigmoid there, callers do it here).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        norm: str = "batch",
        heads: bool = False,
    ) -> None:
        super().__init__()
        self.skip_channels = skip_channels
        self.up_conv = nn.ConvTranspose3d(in_channels, in_channels, kernel_size=2, stride=2)
        self.ops = DoubleConv(in_channels + skip_channels, out_channels, out_channels, norm=norm)
        self.has_heads = heads
        if heads:
            make_projection_heads(self, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        up = self.up_conv(x)
        if self.skip_channels:
            if skip is None:
                raise ValueError("this decoder stage has skip connections but no skip feature was given")
            up = torch.cat([up, skip], dim=1)
        return self.ops(up)

    def heads(self, h: torch.Tensor, with_mask: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Projection ``pro`` [B, c], prediction ``pre`` [B, c] and (optionally) mask logits [B, 1, ...]."""
        if not self.has_heads:
            raise RuntimeError("this decoder stage was built without pretraining heads (pretrain_heads=False)")
        return projection_heads(self, h, with_mask)


def make_projection_heads(module: nn.Module, channels: int, norm: str) -> None:
    """Add PCRLv2's heads for ``channels`` features to ``module`` (``bn``, ``predictor_head``, mask head)."""
    module.bn = SafeBatchNorm1d(channels)
    module.predictor_head = nn.Sequential(
        nn.Linear(channels, 2 * channels),
        SafeBatchNorm1d(2 * channels),
        nn.ReLU(inplace=True),
        nn.Linear(2 * channels, channels),
    )
    module.deep_supervision_head = ConvUnit(channels, 1, act="none", norm=norm)


def projection_heads(
    module: Any, h: torch.Tensor, with_mask: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """PCRLv2's heads of ``module`` (see :func:`make_projection_heads`) on the decoder features ``h``."""
    pro = module.bn(torch.flatten(nn.functional.adaptive_avg_pool3d(h, 1), 1))
    pre = module.predictor_head(pro)
    mask = module.deep_supervision_head(h) if with_mask else None
    return pro, pre, mask


class StageHeads(nn.Module):
    """PCRLv2's heads for one decoder stage of a backbone whose stages do not carry them (keys ``bn``...)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # the 1-channel mask head always normalises with BatchNorm3d (see make_norm), whatever the backbone uses
        make_projection_heads(self, channels, norm="batch")

    def heads(self, h: torch.Tensor, with_mask: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Projection ``pro`` [B, c], prediction ``pre`` [B, c] and (optionally) mask logits [B, 1, ...]."""
        return projection_heads(self, h, with_mask)


class Out(nn.Module):
    """1x1x1 convolution to ``n`` output channels; returns logits (apply a sigmoid/softmax outside)."""

    def __init__(self, in_channels: int, n: int) -> None:
        super().__init__()
        self.final_conv = nn.Conv3d(in_channels, n, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(x)
