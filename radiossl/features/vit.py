"""A plain-torch Vision Transformer whose parameter names match the official DINO checkpoints.

The published DINO backbones (``dino_deitsmall16_pretrain.pth``, ``dino_deitsmall8_pretrain.pth``,
``dino_vitbase16_pretrain.pth``) are plain ``state_dict`` files with keys such as ``cls_token``,
``pos_embed``, ``patch_embed.proj.weight``, ``blocks.0.attn.qkv.weight`` and ``norm.bias``; the modules
below are named so that those files load with ``load_state_dict(strict=True)``. Only what feature
extraction needs is implemented: no classifier head, no dropout, no stochastic depth.

Example:
    >>> import torch
    >>> vit = VisionTransformer(patch_size=16, embed_dim=384, depth=2, num_heads=6)
    >>> vit.patch_tokens(torch.zeros(1, 3, 64, 32)).shape
    torch.Size([1, 384, 4, 2])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6
"""DINO builds every LayerNorm with ``eps=1e-6``."""


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size``² patches projected to ``embed_dim`` (``patch_embed.proj``)."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> tokens ``[B, (H/p)(W/p), D]`` in row-major patch order."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc1`` -> GELU -> ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT backbone (no head) with DINO's parameter names.

    Args:
        patch_size: 16 or 8 for the published DINO models.
        embed_dim: 384 (ViT-S) or 768 (ViT-B).
        depth: number of blocks (12 for both).
        num_heads: 6 (ViT-S) or 12 (ViT-B).
        mlp_ratio: hidden width of the MLP relative to ``embed_dim`` (4).
        img_size: training image size; fixes the length of ``pos_embed`` (``(img_size/patch)^2 + 1``).
        in_channels: image channels (3).
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        img_size: int = 224,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def pos_grid(self) -> int:
        """Side length of the square patch grid that ``pos_embed`` was trained for."""
        return math.isqrt(self.pos_embed.shape[1] - 1)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Positional embeddings ``[1, 1 + grid_h*grid_w, D]`` for a ``grid_h`` x ``grid_w`` patch grid.

        The stored square grid is resized bicubically. As in DINO, 0.1 is added to the target size
        before deriving the scale factor, so that the output size is exact despite rounding.
        """
        n = self.pos_grid
        if (grid_h, grid_w) == (n, n):
            return self.pos_embed
        cls_pos = self.pos_embed[:, :1]
        patch_pos = self.pos_embed[:, 1:].reshape(1, n, n, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(
            patch_pos,
            scale_factor=((grid_h + 0.1) / n, (grid_w + 0.1) / n),
            mode="bicubic",
            align_corners=False,
        )
        if patch_pos.shape[-2:] != (grid_h, grid_w):
            raise RuntimeError(
                f"positional embedding resized to {tuple(patch_pos.shape[-2:])}, expected {(grid_h, grid_w)}"
            )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """All output tokens ``[B, 1 + N, D]`` after the final LayerNorm (CLS first)."""
        b, _, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {(h, w)} is not a multiple of the patch size {p}")
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(x)], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(h // p, w // p)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens of the last block after the final norm, CLS dropped: ``[B, D, H/p, W/p]``."""
        b, _, h, w = x.shape
        p = self.patch_size
        tokens = self.tokens(x)[:, 1:]
        return tokens.transpose(1, 2).reshape(b, self.embed_dim, h // p, w // p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`patch_tokens`."""
        return self.patch_tokens(x)
