"""The network of the contrastive methods (``simclr``, ``voco``): encoder, pooled stage features, projection head.

:class:`ContrastiveEncoder` is radiossl's 3D U-Net encoder (keys ``down_tr*``, so ``radiossl finetune
--transfer encoder`` and ``checkpoint export`` read it like any other encoder) with a
``projection_head`` at the top level. Its ``forward`` maps a batch of crops to one embedding per crop:
the global average of the bottleneck (``pooled="bottleneck"``, SimCLR) or of every encoder stage,
concatenated (``pooled="all"``, VoCo's ``forward_encs`` and nnssl's ``VoCoArchitecture``), then the MLP
:class:`ProjectionHead`.

The two functions at the top, :func:`encoder_stages` and :func:`stage_channels`, are the only places
that touch the backbone; switching these methods to another backbone means changing them (and the
base class).

Example:
    >>> import torch
    >>> net = ContrastiveEncoder(width=0.125, hidden_dim=32, out_dim=16)
    >>> net(torch.zeros(2, 1, 16, 16, 16)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from radiossl.models.factory import register_model_class
from radiossl.models.unet3d import Encoder3D

Pooled = Literal["bottleneck", "all"]


def encoder_stages(net: Encoder3D, x: torch.Tensor) -> list[torch.Tensor]:
    """Backbone access: the encoder's stage features, finest first, the bottleneck last."""
    return net.encode(x)


def stage_channels(net: Encoder3D) -> tuple[int, ...]:
    """Backbone access: channels of each encoder stage, finest first."""
    return net.encoder_channels


def pooled_features(stages: list[torch.Tensor], pooled: Pooled) -> torch.Tensor:
    """``[B, C]``: global average of the bottleneck, or of every stage concatenated (finest first)."""
    chosen = stages[-1:] if pooled == "bottleneck" else stages
    return torch.cat([feature.float().mean(dim=(2, 3, 4)) for feature in chosen], dim=1)


class ProjectionHead(nn.Module):
    """MLP ``in -> hidden -> ... -> out``: ``layers - 1`` blocks of Linear, BatchNorm1d, ReLU, then a Linear.

    The BatchNorm1d layers have no affine parameters and no running statistics (they always use the
    batch), as in VoCo's ``projection_head``; with ``layers=2`` this is lightly's
    ``SimCLRProjectionHead`` up to those two settings.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, layers: int = 2) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, out_dim) < 1 or layers < 1:
            raise ValueError(f"dimensions and layers must be >= 1, got {in_dim}, {hidden_dim}, {out_dim}, {layers}")
        blocks: list[nn.Module] = []
        width = in_dim
        for _ in range(layers - 1):
            blocks += [
                nn.Linear(width, hidden_dim),
                nn.BatchNorm1d(hidden_dim, affine=False, track_running_stats=False),
                nn.ReLU(inplace=True),
            ]
            width = hidden_dim
        blocks.append(nn.Linear(width, out_dim))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ContrastiveEncoder(Encoder3D):
    """Encoder (keys ``down_tr*``) plus ``projection_head``; ``forward`` returns ``[B, out_dim]`` embeddings.

    Args:
        in_channels, width, norm: the encoder's (see :class:`radiossl.models.unet3d.Encoder3D`).
        hidden_dim, out_dim, layers: the :class:`ProjectionHead` (not scaled by ``width``).
        pooled: ``"bottleneck"`` or ``"all"`` encoder stages feed the head (see the module docstring).
    """

    head_prefixes: tuple[str, ...] = ("projection_head",)

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.0,
        norm: str = "batch",
        hidden_dim: int = 2048,
        out_dim: int = 128,
        layers: int = 2,
        pooled: Pooled = "bottleneck",
    ) -> None:
        super().__init__(in_channels, width, norm)
        if pooled not in ("bottleneck", "all"):
            raise ValueError(f"pooled must be 'bottleneck' or 'all', got {pooled!r}")
        self.pooled: Pooled = pooled
        channels = stage_channels(self)
        in_dim = channels[-1] if pooled == "bottleneck" else sum(channels)
        self.projection_head = ProjectionHead(in_dim, hidden_dim, out_dim, layers)
        self.hidden_dim, self.out_dim, self.layers = hidden_dim, out_dim, layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, out_dim]`` (float32 from the pooling on)."""
        return self.projection_head(pooled_features(encoder_stages(self, x), self.pooled))

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        return {
            **super().spec_kwargs(),
            "hidden_dim": self.hidden_dim,
            "out_dim": self.out_dim,
            "layers": self.layers,
            "pooled": self.pooled,
        }


register_model_class(ContrastiveEncoder)
