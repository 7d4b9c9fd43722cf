"""The network of the contrastive methods (``simclr``, ``voco``): encoder, pooled stage features, projection head.

:class:`ContrastiveEncoder` is the encoder of the backbone named by ``model.name`` with a
``projection_head`` at the top level; the encoder keeps the backbone's key names (``down_tr*`` on
``unet3d``, ``encoder.*`` on the nnU-Net backbones), so ``radiossl finetune --transfer encoder`` and
``checkpoint export-nnssl`` read it like any other encoder. Its ``forward`` maps a batch of crops to one
embedding per crop: the global average of the bottleneck (``pooled="bottleneck"``, SimCLR) or of every
encoder stage, concatenated (``pooled="all"``, VoCo's ``forward_encs`` and nnssl's ``VoCoArchitecture``),
then the MLP :class:`ProjectionHead`, whose input width follows the backbone's ``stage_channels``.

Checkpoints describe it as ``ContrastiveEncoder``: on ``unet3d`` with the thesis encoder's arguments
(``in_channels``, ``width``, ``norm``), on other backbones with the backbone's spec under
``kwargs.backbone`` (:func:`radiossl.models.factory.backbone_spec`). The model factory imports this
module when a spec names the class, so a checkpoint rebuilds in a process that never imported it.

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

from radiossl.models.composite import BackboneComposite, encoder_backbone

Pooled = Literal["bottleneck", "all"]


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


class ContrastiveEncoder(BackboneComposite):
    """A backbone's encoder (its own keys) plus ``projection_head``; ``forward`` returns ``[B, out_dim]`` embeddings.

    Args:
        in_channels, width, norm: the thesis encoder's (:class:`radiossl.models.unet3d.Encoder3D`, the
            ``unet3d`` backbone); ignored when ``backbone`` is given.
        hidden_dim, out_dim, layers: the :class:`ProjectionHead` (not scaled by ``width``).
        pooled: ``"bottleneck"`` or ``"all"`` encoder stages feed the head (see the module docstring).
        backbone: another backbone network, or its model spec; only its encoder is kept.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.0,
        norm: str = "batch",
        hidden_dim: int = 2048,
        out_dim: int = 128,
        layers: int = 2,
        pooled: Pooled = "bottleneck",
        backbone: nn.Module | None = None,
    ) -> None:
        if pooled not in ("bottleneck", "all"):
            raise ValueError(f"pooled must be 'bottleneck' or 'all', got {pooled!r}")
        # the thesis encoder keeps the published spec (in_channels, width, norm); others nest their own
        backbone, self._nested = encoder_backbone(backbone, in_channels, width, norm)
        super().__init__(backbone, encoder_only=True)
        self.in_channels = int(getattr(backbone, "in_channels", in_channels))
        self.width = float(getattr(backbone, "width", width))
        self.norm = str(getattr(backbone, "norm", norm))
        self.head_prefixes: tuple[str, ...] = ("projection_head",)
        self.pooled: Pooled = pooled
        channels = self.stage_channels
        in_dim = channels[-1] if pooled == "bottleneck" else sum(channels)
        self.projection_head = ProjectionHead(in_dim, hidden_dim, out_dim, layers)
        self.hidden_dim, self.out_dim, self.layers = hidden_dim, out_dim, layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, out_dim]`` (float32 from the pooling on)."""
        return self.projection_head(pooled_features(self.encode(x), self.pooled))

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        head = {"hidden_dim": self.hidden_dim, "out_dim": self.out_dim, "layers": self.layers, "pooled": self.pooled}
        if self._nested:
            return {**head, "backbone": self.backbone}
        return {"in_channels": self.in_channels, "width": self.width, "norm": self.norm, **head}


SPEC_CLASS_NAMES: dict[str, type[nn.Module]] = {"ContrastiveEncoder": ContrastiveEncoder}
"""Model-spec class names this module defines (imported by :mod:`radiossl.models.factory` on demand)."""


def build_contrastive_encoder(config: Any, input_sizes: dict[str, tuple[int, ...]]) -> ContrastiveEncoder:
    """The encoder of ``config.model`` (no decoder) with the projection head of ``config.method``.

    Shared by the contrastive methods (simclr, voco); ``input_sizes`` are checked against the backbone's
    total stride before anything is built.
    """
    from radiossl.models.network import build_network

    m, s = config.model, config.method
    encoder = build_network(
        m, in_channels=m.in_channels, out_channels=m.in_channels, decoder=False, input_sizes=input_sizes
    )
    return ContrastiveEncoder(
        hidden_dim=s.hidden_dim, out_dim=s.out_dim, layers=s.head_layers, pooled=s.pooled, backbone=encoder
    )
