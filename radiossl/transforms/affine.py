"""Random scaling and rotation about the image centre, trilinear, padded with the image minimum.

This is torchio's ``RandomAffine()`` with its defaults, as PCRLv2 uses it: a scale factor
``U(0.9, 1.1)`` and a rotation angle ``U(-10°, 10°)`` per axis, no translation, linear
interpolation, and points that fall outside the image take the sample's minimum. Geometry is
in voxel units (unit spacing), so a rotation of an anisotropic cube stays a rotation.

The forward map is ``T(p) = c + R·S·(p - c)`` (scale, then rotate with ``R = Rz·Ry·Rx``); a
factor above 1 makes structures look larger. The output samples the input at ``T⁻¹(q)``.

Example:
    >>> import torch
    >>> x = torch.rand(2, 1, 8, 8, 4)
    >>> same = affine_warp(x, torch.ones(2, 3), torch.zeros(2, 3))
    >>> bool(torch.allclose(same, x, atol=1e-5))
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from radiossl.transforms._random import check_batch, float64_device, uniform
from radiossl.transforms.compose import random_apply


def rotation_matrices(degrees: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` rotations ``Rz·Ry·Rx`` from per-axis angles ``[B, 3]`` in degrees (axes X, Y, Z)."""
    rad = degrees.double() * (math.pi / 180.0)
    cos, sin = rad.cos(), rad.sin()
    batch = degrees.shape[0]
    eye = torch.eye(3, dtype=torch.float64, device=degrees.device).expand(batch, 3, 3)
    mats = []
    for axis in range(3):
        m = eye.clone()
        i, j = [a for a in range(3) if a != axis]
        m[:, i, i] = cos[:, axis]
        m[:, j, j] = cos[:, axis]
        m[:, i, j] = -sin[:, axis]
        m[:, j, i] = sin[:, axis]
        mats.append(m)
    rx, ry, rz = mats
    return rz @ ry @ rx


def affine_warp(x: torch.Tensor, scales: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Warp each sample by its scale factors ``[B, 3]`` and rotation angles ``[B, 3]`` (degrees)."""
    check_batch(x, "affine_warp")
    batch = x.shape[0]
    if scales.shape != (batch, 3) or degrees.shape != (batch, 3):
        raise ValueError("scales and degrees must both have shape [B, 3]")
    where = float64_device(x.device)
    size = torch.tensor(x.shape[2:], dtype=torch.float64, device=where)
    half = torch.diag_embed((size / 2).expand(batch, 3))
    inv_half = torch.diag_embed((2 / size).expand(batch, 3))
    inv_scale = torch.diag_embed(1.0 / scales.to(where).double())
    rotation = rotation_matrices(degrees.to(where))
    # Source position in normalised coordinates: n_src = D⁻¹ S⁻¹ Rᵀ D n_out, with D = diag(size / 2).
    m = inv_half @ inv_scale @ rotation.transpose(1, 2) @ half
    # affine_grid orders coordinates (W, H, D) = (Z, Y, X): reverse both axes of the matrix.
    theta = torch.zeros(batch, 3, 4, dtype=torch.float64, device=where)
    theta[:, :, :3] = m.flip(1).flip(2)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    low = x.amin(dim=(1, 2, 3, 4), keepdim=True)
    sampled = F.grid_sample(x - low, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # ITK interpolates up to the image edge (half a voxel past the outer centres) and pads beyond it.
    inside = (grid.abs() <= 1.0).all(dim=-1).unsqueeze(1)
    return torch.where(inside, sampled, torch.zeros((), dtype=x.dtype, device=x.device)) + low


class RandomAffine:
    """Scale ~ U(scales), rotation ~ U(±degrees) per axis; per sample with probability ``p`` (torchio: 1)."""

    def __init__(self, scales: tuple[float, float] = (0.9, 1.1), degrees: float = 10.0, p: float = 1.0) -> None:
        if not 0 < scales[0] <= scales[1]:
            raise ValueError(f"scales must be a range of positive factors, got {scales}")
        self.scales = scales
        self.degrees = float(degrees)
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "RandomAffine")
        return random_apply(x, self.p, generator, lambda sub: self._apply(sub, generator))

    def _apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch = x.shape[0]
        scales = uniform((batch, 3), self.scales[0], self.scales[1], generator, x.device)
        degrees = uniform((batch, 3), -self.degrees, self.degrees, generator, x.device)
        return affine_warp(x, scales, degrees)

    def __repr__(self) -> str:
        return f"RandomAffine(scales={self.scales}, degrees={self.degrees:g}, p={self.p:g})"
