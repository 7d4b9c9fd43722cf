"""A frozen backbone encoder with a trained linear segmentation head: :class:`ProbeNet` (``radiossl probe``).

The probe measures what a pretrained encoder already knows: its features stay as they are (parameters
frozen, every encoder module in eval mode, forward without autograd) and only a 1×1×1 convolution per
encoder stage trains. Each stage's logits are upsampled (trilinearly) to the input size and summed.
Convolving at the stage's own resolution and then upsampling equals upsampling every stage's features
and applying one 1×1×1 convolution to their concatenation (both operations are linear, and the bias
survives interpolation), at a fraction of the memory.

Parameter names stay the backbone's (``down_tr64...`` or ``encoder.stages...``, adopted as in
:class:`~radiossl.models.composite.BackboneComposite`), so pretrained encoders load by name; the head is
``probe_head.<stage>``. The checkpoint spec is ``{"class": "ProbeNet", "kwargs": {"backbone": spec,
"out_channels": N}}``, so ``radiossl evaluate`` rebuilds it like any other network.

Example:
    >>> import torch
    >>> from radiossl.models import UNet3D
    >>> net = ProbeNet(UNet3D(width=0.125), out_channels=3)
    >>> net(torch.zeros(1, 1, 16, 16, 16)).shape, len(net.probe_head)
    (torch.Size([1, 3, 16, 16, 16]), 4)
    >>> sorted({name.split(".")[0] for name, p in net.named_parameters() if p.requires_grad})
    ['probe_head']
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from radiossl.models.composite import BackboneComposite

HEAD = "probe_head"
"""The attribute (and parameter-name prefix) of the probe's head."""


class ProbeNet(BackboneComposite):
    """The encoder of ``backbone``, frozen, with a 1×1×1 convolution per stage to ``out_channels`` logits.

    Args:
        backbone: a backbone network or its model spec; its decoder and output head are dropped.
        out_channels: regions to segment (one logit channel each).
    """

    def __init__(self, backbone: nn.Module, out_channels: int = 1) -> None:
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        super().__init__(backbone, encoder_only=True)
        self.in_channels = int(getattr(backbone, "in_channels"))  # noqa: B009 (an nn.Module attribute mypy cannot type)
        self.out_channels = int(out_channels)
        for param in self.parameters():  # everything adopted so far is the encoder
            param.requires_grad_(False)
        self.probe_head = nn.ModuleList(nn.Conv3d(c, out_channels, kernel_size=1) for c in self.stage_channels)
        self.head_prefixes: tuple[str, ...] = (HEAD + ".",)
        self.train(self.training)

    def train(self, mode: bool = True) -> ProbeNet:
        """Training mode for the head only: the encoder always stays in eval mode (norm statistics fixed)."""
        super().train(mode)
        self.backbone.train(False)  # the backbone's children are the encoder modules (shared with us)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Region logits at the input's size: the sum of every stage's upsampled head output."""
        with torch.no_grad():
            features = self.encode(x)
        return self.segment(features, tuple(int(s) for s in x.shape[2:]))

    def segment(self, features: list[torch.Tensor], size: tuple[int, ...]) -> torch.Tensor:
        """The head on encoder ``features`` (finest first), every stage upsampled to ``size`` and summed."""
        logits: torch.Tensor | None = None
        for conv, stage in zip(self.probe_head, features, strict=True):
            out = conv(stage.detach())
            if tuple(out.shape[2:]) != size:
                out = F.interpolate(out, size=size, mode="trilinear", align_corners=False)
            logits = out if logits is None else logits + out
        assert logits is not None
        return logits

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        return {"backbone": self.backbone, "out_channels": self.out_channels}
