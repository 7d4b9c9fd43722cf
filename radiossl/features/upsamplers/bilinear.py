"""``bilinear``: plain interpolation to the image grid (the thesis' ``interp``; trilinear for 3-D).

Example:
    >>> import torch
    >>> BilinearUpsampler()(torch.rand(2, 4, 8, 8), torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 4, 32, 32])
"""

from __future__ import annotations

from typing import ClassVar

import torch

from radiossl.features.base import Upsampler, UpsamplerConfig, resize_to


class BilinearConfig(UpsamplerConfig):
    """``bilinear`` has no options."""


class BilinearUpsampler(Upsampler):
    """Bilinear (2-D) / trilinear (3-D) interpolation, ``align_corners=False``; ignores the image."""

    name: ClassVar[str] = "bilinear"
    config_class: ClassVar[type[UpsamplerConfig]] = BilinearConfig
    supported_dims: ClassVar[tuple[int, ...]] = (2, 3)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return resize_to(features, tuple(image.shape[2:]))
