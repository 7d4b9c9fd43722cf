"""A backbone with PCRLv2's projection heads on every decoder stage: :class:`MultiScaleHeadNet`.

PCRLv2 compares features of several views at every decoder scale. The heads of one stage (``bn``
projection, ``predictor_head``, 1-channel ``deep_supervision_head``) sit inside the decoder stages
of the original ``UNet3D`` (keys ``up_tr256.bn...``), which keeps PCRLv2 and thesis checkpoints
loadable; a backbone without such stages gets them as ``stage_heads.<i>`` (coarsest first), one per
decoder stage, so the number of scales follows the backbone.

Example:
    >>> import torch
    >>> from radiossl.models import UNet3D
    >>> net = MultiScaleHeadNet(UNet3D(width=0.125, pretrain_heads=True))
    >>> out, feats, masks = net.forward_pretrain(torch.zeros(2, 1, 16, 16, 16))
    >>> from radiossl.models.factory import model_spec
    >>> [pro.shape[1] for pro, _ in feats], model_spec(net.described_network())["class"]
    ([32, 16, 8], 'UNet3D')
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from radiossl.models.blocks import StageHeads
from radiossl.models.composite import BackboneComposite

Features = list[tuple[torch.Tensor, torch.Tensor]]


class MultiScaleHeadNet(BackboneComposite):
    """A backbone network plus PCRLv2's heads on each of its decoder stages.

    Args:
        backbone: the network or its model spec. When its ``stage_heads()`` returns modules (UNet3D
            built with ``pretrain_heads=True``), those are used; otherwise :class:`StageHeads` are added.
    """

    def __init__(self, backbone: Any) -> None:
        stage_heads = getattr(backbone, "stage_heads", None)
        native = stage_heads() if callable(stage_heads) else None
        super().__init__(backbone)
        self.head_prefixes: tuple[str, ...] = tuple(backbone.head_prefixes)
        self.native_heads = native is not None
        if native is None:
            self.stage_heads = nn.ModuleList(StageHeads(c) for c in self.decoder_channels)
            self.head_prefixes = (*self.head_prefixes, "stage_heads.")
        self._heads: list[Any] = list(native) if native is not None else list(self.stage_heads)

    @property
    def levels(self) -> int:
        """Number of decoder stages with heads (PCRLv2's scales)."""
        return len(self._heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's logits."""
        return self.head(self.decode(self.encode(x)))

    def forward_pretrain(
        self, x: torch.Tensor, local: bool = False
    ) -> tuple[torch.Tensor, Features, list[torch.Tensor]]:
        """PCRLv2 forward: ``(out_logits, [(pro, pre)] per decoder stage, mask logits per stage)``.

        Stages are coarsest first; masks are trilinearly upsampled to the input size and left out for
        local views (``local=True``), whose mask heads are not evaluated at all.
        """
        hidden = self.decode(self.encode(x))
        features: Features = []
        masks: list[torch.Tensor] = []
        for stage, h in zip(self._heads, hidden, strict=True):
            pro, pre, mask = stage.heads(h, with_mask=not local)
            features.append((pro, pre))
            if mask is not None:
                if mask.shape[2:] != x.shape[2:]:
                    mask = F.interpolate(mask, size=x.shape[2:], mode="trilinear", align_corners=False)
                masks.append(mask)
        return self.head(hidden), features, masks

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        return {"backbone": self.backbone}

    def described_network(self) -> nn.Module:
        """What checkpoints describe: the backbone itself when it carries the heads (a plain ``UNet3D``)."""
        return self.backbone if self.native_heads else self
