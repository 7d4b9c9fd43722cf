"""Resampling volumes to a target voxel spacing, in torch (linear for images, nearest for labels).

The output grid keeps the input's origin and axis directions (as SimpleITK's identity-transform
resampling does): output voxel ``i`` lies at ``i * target_spacing`` mm from the first voxel, and the
output size is ``int(size * spacing / target_spacing + 0.5)`` per axis (the original code's rule).
Interpolation is separable — one 1-D pass per axis with gathered neighbours — so it is exactly
trilinear (or nearest) and fully vectorised; points past the last input voxel take the edge value.

Example:
    >>> import numpy as np
    >>> a = np.arange(4, dtype=np.float32).reshape(4, 1, 1).repeat(2, 1).repeat(2, 2)
    >>> resample_array(a, (1.0, 1.0, 1.0), (0.5, 1.0, 1.0))[:, 0, 0].tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from radiossl.io import Volume

Mode = Literal["linear", "nearest"]


def output_shape(
    shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]
) -> tuple[int, int, int]:
    """Size of the resampled grid: ``int(size * spacing / target + 0.5)`` per axis (at least 1)."""
    out = [max(1, int(n * s / t + 0.5)) for n, s, t in zip(shape, spacing, target_spacing, strict=True)]
    return out[0], out[1], out[2]


def resample_array(
    array: np.ndarray,
    spacing: Sequence[float],
    target_spacing: Sequence[float],
    mode: Mode = "linear",
    shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample a ``(X, Y, Z)`` or ``(C, X, Y, Z)`` array from ``spacing`` to ``target_spacing``.

    ``shape`` fixes the output size (e.g. to map a prediction back onto its reference grid); by
    default it is :func:`output_shape`. ``"linear"`` returns float32, ``"nearest"`` keeps the dtype.
    The input is returned unchanged when nothing would change.
    """
    spatial = tuple(array.shape[-3:])
    target_shape = tuple(shape) if shape is not None else output_shape(spatial, spacing, target_spacing)
    steps = [t / s for s, t in zip(spacing, target_spacing, strict=True)]
    if target_shape == spatial and all(abs(step - 1.0) < 1e-6 for step in steps):
        return array if mode == "nearest" else array.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if mode == "linear":
        tensor = tensor.to(torch.float32)
    offset = array.ndim - 3
    for axis in range(3):
        tensor = _resample_axis(tensor, offset + axis, target_shape[axis], steps[axis], mode)
    return tensor.numpy()


def resample_volume(volume: Volume, target_spacing: Sequence[float], mode: Mode = "linear") -> Volume:
    """A :class:`Volume` resampled to ``target_spacing`` (same origin and directions)."""
    array = resample_array(volume.array, volume.spacing, target_spacing, mode)
    return Volume(array, scaled_affine(volume.affine, volume.spacing, target_spacing), volume.path)


def scaled_affine(affine: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float]) -> np.ndarray:
    """``affine`` with each voxel axis rescaled from ``spacing`` to ``target_spacing`` (origin kept)."""
    out = np.array(affine, dtype=np.float64, copy=True)
    out[:3, :3] = out[:3, :3] * (np.asarray(target_spacing, np.float64) / np.asarray(spacing, np.float64))
    return out


def _resample_axis(tensor: torch.Tensor, axis: int, size: int, step: float, mode: Mode) -> torch.Tensor:
    n = tensor.shape[axis]
    if size == n and abs(step - 1.0) < 1e-9:
        return tensor
    coords = torch.arange(size, dtype=torch.float64) * step
    if mode == "nearest":
        index = torch.floor(coords + 0.5).clamp_(0, n - 1).long()
        return tensor.index_select(axis, index)
    low = torch.floor(coords).clamp_(0, n - 1)
    weight = (coords - low).clamp_(0.0, 1.0).to(torch.float32)
    low_index = low.long()
    high_index = (low_index + 1).clamp_(max=n - 1)
    shape = [1] * tensor.ndim
    shape[axis] = size
    a = tensor.index_select(axis, low_index)
    b = tensor.index_select(axis, high_index)
    return a.add_((b - a).mul_(weight.view(shape)))
