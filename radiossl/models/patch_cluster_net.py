"""The patch-level clustering network (thesis ``ClusterPatch3d``): encoder + projection + prototypes.

Each 8x8x8 block of the input becomes one patch: the bottleneck ``[B, C, X/8, Y/8, Z/8]`` is
flattened in ``(x, y, z)`` row-major order into ``[B, N, C]``, projected by
``cluster_projection_head`` (Linear C -> ``proj_dim``) to the embeddings, and scored against K
prototypes (``prototypes``, Linear ``proj_dim`` -> K without bias). Embeddings are returned
unnormalised; SwAV-style normalisation belongs to the pretext method.

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

from radiossl.models.unet3d import Encoder3D


class PatchClusterNet(Encoder3D):
    """Encoder (keys ``down_tr*``) with ``cluster_projection_head`` and ``prototypes`` at the top level.

    Args:
        in_channels: input channels.
        k: number of prototypes (clusters).
        width: channel multiplier of the encoder (1.0 = 512 bottleneck channels).
        norm: encoder normalisation (see :mod:`radiossl.models.norms`).
        proj_dim: embedding size (64 in the thesis; not scaled by ``width``).
    """

    head_prefixes: tuple[str, ...] = ("cluster_projection_head", "prototypes")
    patch_size = 8

    def __init__(
        self, in_channels: int = 1, k: int = 50, width: float = 1.0, norm: str = "batch", proj_dim: int = 64
    ) -> None:
        super().__init__(in_channels, width, norm)
        if k < 1 or proj_dim < 1:
            raise ValueError(f"k and proj_dim must be >= 1, got k={k}, proj_dim={proj_dim}")
        self.k = k
        self.proto_num = k
        self.proj_dim = proj_dim
        self.cluster_projection_head = nn.Linear(self.encoder_channels[-1], proj_dim)
        self.prototypes = nn.Linear(proj_dim, k, bias=False)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck features per patch, ``[B, N, C]`` with patches in ``(x, y, z)`` row-major order."""
        bottleneck = self.encode(x)[-1]
        return torch.flatten(bottleneck, 2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """``(embeddings [B, N, proj_dim], logits [B, N, k])``, N = X·Y·Z / 512."""
        emb = self.cluster_projection_head(self.patch_features(x))
        return emb, self.prototypes(emb)

    def spec_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, for :func:`radiossl.models.factory.model_spec`."""
        return {
            "in_channels": self.in_channels,
            "k": self.k,
            "width": self.width,
            "norm": self.norm,
            "proj_dim": self.proj_dim,
        }
