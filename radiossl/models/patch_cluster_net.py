"""The patch-level clustering network (thesis ``ClusterPatch3d``): encoder + projection + prototypes.

Each 8x8x8 block of the input becomes one patch (with the thesis encoder; with another backbone, one
block of its total stride): the bottleneck ``[B, C, X/8, Y/8, Z/8]`` is flattened in ``(x, y, z)``
row-major order into ``[B, N, C]``, projected by ``cluster_projection_head`` (Linear C -> ``proj_dim``)
to the embeddings, and scored against K prototypes (``prototypes``, Linear ``proj_dim`` -> K without
bias). Embeddings are returned unnormalised; SwAV-style normalisation belongs to the pretext method.

Example:
    >>> import torch
    >>> net = PatchClusterNet(k=10, width=0.125)
    >>> emb, logits = net(torch.zeros(2, 1, 16, 16, 16))
    >>> emb.shape, logits.shape
    (torch.Size([2, 8, 64]), torch.Size([2, 8, 10]))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from radiossl.models.composite import BackboneComposite, encoder_backbone


class PatchClusterNet(BackboneComposite):
    """An encoder with ``cluster_projection_head`` and ``prototypes`` at the top level.

    Args:
        in_channels: input channels (of the thesis encoder; ignored when ``backbone`` is given).
        k: number of prototypes (clusters).
        width: channel multiplier of the thesis encoder (1.0 = 512 bottleneck channels; ignored with ``backbone``).
        norm: normalisation of the thesis encoder (see :mod:`radiossl.models.norms`; ignored with ``backbone``).
        proj_dim: embedding size (64 in the thesis; not scaled by ``width``).
        backbone: another backbone network, or its model spec: its encoder (keys as in the backbone)
            replaces the thesis encoder ``Encoder3D(in_channels, width, norm)``; one patch is one cell
            of its bottleneck (the backbone's total stride in voxels per axis).
    """

    def __init__(
        self,
        in_channels: int = 1,
        k: int = 50,
        width: float = 1.0,
        norm: str = "batch",
        proj_dim: int = 64,
        backbone: nn.Module | None = None,
    ) -> None:
        if k < 1 or proj_dim < 1:
            raise ValueError(f"k and proj_dim must be >= 1, got k={k}, proj_dim={proj_dim}")
        # the thesis encoder keeps the thesis spec: in_channels, k, width, norm, proj_dim
        backbone, self._nested = encoder_backbone(backbone, in_channels, width, norm)
        super().__init__(backbone, encoder_only=True)
        self.in_channels = int(getattr(backbone, "in_channels", in_channels))
        self.width = float(getattr(backbone, "width", width))
        self.norm = str(getattr(backbone, "norm", norm))
        self.k = k
        self.proto_num = k
        self.proj_dim = proj_dim
        stride = self.total_stride
        self.patch_size: int | tuple[int, int, int] = stride[0] if len(set(stride)) == 1 else stride
        """Voxels per patch edge (a tuple when the backbone's stride differs between axes)."""
        self.head_prefixes: tuple[str, ...] = ("cluster_projection_head", "prototypes")
        self.cluster_projection_head = nn.Linear(self.stage_channels[-1], proj_dim)
        self.prototypes = nn.Linear(proj_dim, k, bias=False)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck features per patch, ``[B, N, C]`` with patches in ``(x, y, z)`` row-major order."""
        bottleneck = self.encode(x)[-1]
        return torch.flatten(bottleneck, 2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings [B, N, proj_dim], logits [B, N, k])``, N = number of bottleneck cells."""
        emb = self.cluster_projection_head(self.patch_features(x))
        return emb, self.prototypes(emb)

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        if self._nested:
            return {"k": self.k, "proj_dim": self.proj_dim, "backbone": self.backbone}
        return {
            "in_channels": self.in_channels,
            "k": self.k,
            "width": self.width,
            "norm": self.norm,
            "proj_dim": self.proj_dim,
        }
