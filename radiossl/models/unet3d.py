"""The 3D U-Net family of radioSSL, PCRLv2 and ModelsGenesis in one class.

One class covers the five published variants, with their ``state_dict`` key names, so released
checkpoints load without renaming:

============================  =====================================================================
original                      ``UNet3D(...)``
============================  =====================================================================
PCRLv2 ``PCRLv23d``           ``skip_connections=False, norm="batch", pretrain_heads=True``
thesis ``Cluster3d(K)``       ``out_channels=K, norm="batch", pretrain_heads=True``
thesis ``SegmentationModel``  ``norm="group", pretrain_heads=True`` (heads unused in fine-tuning)
ModelsGenesis ``UNet3D``      ``skip_connections=True, norm="genesis"``
encoder only                  ``decoder=False``
============================  =====================================================================

``width`` scales every channel count (rounded to a multiple of 8); width 1.0 is the published
network (19,073,665 parameters for the ModelsGenesis variant). The output convolution returns
logits: the originals' final sigmoid is the caller's job (it belongs in the loss).

Example:
    >>> import torch
    >>> net = UNet3D(width=0.125, norm="group")
    >>> net(torch.zeros(2, 1, 16, 16, 16)).shape
    torch.Size([2, 1, 16, 16, 16])
    >>> [f.shape[1] for f in net.encode(torch.zeros(1, 1, 16, 16, 16))]
    [8, 16, 32, 64]
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from radiossl.models.backbone import StageHook, apply_hook
from radiossl.models.blocks import Down, Out, Up
from radiossl.models.norms import canonical_norm

DIVISOR = 8
"""Every spatial size must be a multiple of this (three 2x poolings)."""


def check_input(x: torch.Tensor, in_channels: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, in_channels, X, Y, Z]`` with sizes divisible by 8."""
    if x.dim() != 5:
        raise ValueError(f"expected a 5-D input [B, C, X, Y, Z], got shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"expected {in_channels} input channel(s), got shape {tuple(x.shape)}")
    bad = [s for s in x.shape[2:] if s % DIVISOR]
    if bad:
        raise ValueError(
            f"every spatial size must be a multiple of {DIVISOR} (three 2x poolings), got {tuple(x.shape[2:])}"
        )


class Encoder3D(nn.Module):
    """The shared encoder: ``down_tr64``, ``down_tr128``, ``down_tr256``, ``down_tr512`` with 2x max-pooling.

    Channels at width 1.0: 64, 128, 256, 512 (7,027,776 parameters with one input channel). It
    implements the encoder half of :class:`radiossl.models.backbone.BackboneNetwork`.
    """

    encoder_prefixes: tuple[str, ...] = ("down_tr",)
    decoder_prefixes: tuple[str, ...] = ()
    head_prefixes: tuple[str, ...] = ()
    stem_key = "down_tr64.ops.0.conv1.weight"
    """The first convolution's weight; its input-channel axis is adapted when loading checkpoints."""

    def __init__(self, in_channels: int = 1, width: float = 1.0, norm: str = "batch") -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.width = float(width)
        self.norm = canonical_norm(norm)
        self.down_tr64 = Down(in_channels, 0, self.width, self.norm)
        self.down_tr128 = Down(self.down_tr64.out_channels, 1, self.width, self.norm)
        self.down_tr256 = Down(self.down_tr128.out_channels, 2, self.width, self.norm)
        self.down_tr512 = Down(self.down_tr256.out_channels, 3, self.width, self.norm)
        self.maxpool = nn.MaxPool3d(2)
        self.encoder_channels: tuple[int, ...] = tuple(
            stage.out_channels for stage in (self.down_tr64, self.down_tr128, self.down_tr256, self.down_tr512)
        )
        self.stage_channels = self.encoder_channels
        self.stage_strides: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))
        self.decoder_channels: tuple[int, ...] = ()

    def encode(self, x: torch.Tensor, after_stage: StageHook | None = None) -> list[torch.Tensor]:
        """Features of the four encoder stages at full, 1/2, 1/4 and 1/8 resolution (last = bottleneck).

        ``after_stage(i, f)`` replaces stage ``i``'s output before the next stage (and the decoder) use it.
        """
        check_input(x, self.in_channels)
        f64 = apply_hook(after_stage, 0, self.down_tr64(x))
        f128 = apply_hook(after_stage, 1, self.down_tr128(self.maxpool(f64)))
        f256 = apply_hook(after_stage, 2, self.down_tr256(self.maxpool(f128)))
        f512 = apply_hook(after_stage, 3, self.down_tr512(self.maxpool(f256)))
        return [f64, f128, f256, f512]

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The encoder alone has no decoder stages."""
        raise RuntimeError(f"{type(self).__name__} has no decoder; use encode() for its features")

    def head(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """The encoder alone has no output head."""
        raise RuntimeError(f"{type(self).__name__} has no output head; use encode() for its features")

    def stage_heads(self) -> list[Up] | None:
        """PCRLv2 heads owned by the decoder stages (none in the encoder)."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck features ``[B, encoder_channels[-1], X/8, Y/8, Z/8]``."""
        return self.encode(x)[-1]

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        return {"in_channels": self.in_channels, "width": self.width, "norm": self.norm}


class UNet3D(Encoder3D):
    """3D U-Net with optional skip connections, decoder and PCRLv2 pretraining heads.

    Args:
        in_channels: input channels (4 for BraTS as one multi-modal sample).
        out_channels: channels of ``out_tr`` (classes, or K clusters).
        width: channel multiplier (1.0 = published network).
        skip_connections: concatenate encoder features in the decoder (ModelsGenesis, fine-tuning).
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"genesis"`` (see :mod:`radiossl.models.norms`).
        decoder: build ``up_tr*`` and ``out_tr``; ``False`` gives the encoder alone, whose ``forward``
            returns the bottleneck features like :class:`Encoder3D`.
        pretrain_heads: build the PCRLv2 heads in each decoder stage (needed by :meth:`forward_pretrain`
            and to load PCRLv2/thesis checkpoints strictly).
    """

    decoder_prefixes: tuple[str, ...] = ("up_tr",)
    head_prefixes: tuple[str, ...] = ("out_tr",)

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        skip_connections: bool = True,
        norm: str = "batch",
        decoder: bool = True,
        pretrain_heads: bool = False,
    ) -> None:
        super().__init__(in_channels, width, norm)
        if pretrain_heads and not decoder:
            raise ValueError("pretrain_heads=True needs decoder=True (the heads sit in the decoder stages)")
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        self.out_channels = out_channels
        self.skip_connections = skip_connections
        self.has_decoder = decoder
        self.pretrain_heads = pretrain_heads
        if not decoder:
            self.decoder_prefixes = ()
            self.head_prefixes = ()
            return
        e64, e128, e256, e512 = self.encoder_channels
        self.decoder_channels = (e256, e128, e64)
        skip = skip_connections
        self.up_tr256 = Up(e512, e256 if skip else 0, e256, self.norm, heads=pretrain_heads)
        self.up_tr128 = Up(e256, e128 if skip else 0, e128, self.norm, heads=pretrain_heads)
        self.up_tr64 = Up(e128, e64 if skip else 0, e64, self.norm, heads=pretrain_heads)
        self.out_tr = Out(e64, out_channels)

    def _stages(self) -> tuple[Up, Up, Up]:
        if not self.has_decoder:
            raise RuntimeError("this UNet3D was built with decoder=False; use encode() for its features")
        return self.up_tr256, self.up_tr128, self.up_tr64

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decoder stage outputs ``[up_tr256, up_tr128, up_tr64]`` from :meth:`encode`'s features."""
        f64, f128, f256, f512 = features
        up256, up128, up64 = self._stages()
        h256 = up256(f512, f256 if self.skip_connections else None)
        h128 = up128(h256, f128 if self.skip_connections else None)
        h64 = up64(h128, f64 if self.skip_connections else None)
        return [h256, h128, h64]

    def head(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``[B, out_channels, ...]`` from the last decoder stage (``out_tr``)."""
        return self.out_tr(decoded[-1])

    def stage_heads(self) -> list[Up] | None:
        """The decoder stages that carry PCRLv2's heads (coarsest first), or None without ``pretrain_heads``."""
        return list(self._stages()) if self.pretrain_heads else None

    def decoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Decoder stage outputs at 1/4, 1/2 and full resolution."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, X, Y, Z]`` (bottleneck features when built with ``decoder=False``)."""
        if not self.has_decoder:
            return super().forward(x)
        hidden = self.decoder_features(x)
        return self.out_tr(hidden[-1])

    def forward_pretrain(
        self, x: torch.Tensor, local: bool = False
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
        """PCRLv2 forward: ``(out_logits, middle_features, middle_masks)``.

        ``middle_features`` = ``[(pro, pre)]`` of ``up_tr256``, ``up_tr128``, ``up_tr64`` (coarsest
        first). ``middle_masks`` = the three deep-supervision logit maps, trilinearly upsampled to the
        input size (x4, x2, x1); empty for local views (``local=True``), where the mask heads are not
        evaluated at all.
        """
        if not self.pretrain_heads:
            raise RuntimeError("forward_pretrain needs a UNet3D built with pretrain_heads=True")
        hidden = self.decoder_features(x)
        features: list[tuple[torch.Tensor, torch.Tensor]] = []
        masks: list[torch.Tensor] = []
        for stage, h in zip(self._stages(), hidden, strict=True):
            pro, pre, mask = stage.heads(h, with_mask=not local)
            features.append((pro, pre))
            if mask is not None:
                if mask.shape[2:] != x.shape[2:]:
                    mask = F.interpolate(mask, size=x.shape[2:], mode="trilinear", align_corners=False)
                masks.append(mask)
        return self.out_tr(hidden[-1]), features, masks

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "width": self.width,
            "skip_connections": self.skip_connections,
            "norm": self.norm,
            "decoder": self.has_decoder,
            "pretrain_heads": self.pretrain_heads,
        }
