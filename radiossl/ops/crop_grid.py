"""Boxes for volume contrast (VoCo): base crops on a grid, random crops, and their overlap fractions.

Boxes are integer ``[..., 6]`` tensors ``(x0, x1, y0, y1, z0, z1)`` with exclusive ends, the layout
of the crop boxes elsewhere in radiossl (:func:`radiossl.ops.roi_align.overlap_of_boxes`).

* :func:`grid_boxes` splits a volume into ``gx·gy·gz`` equal base crops, x-major (the order of
  nnssl's ``VocoTransform`` and the authors' ``get_crop_transform``);
* :func:`random_boxes` places crops of the base-crop size uniformly at integer offsets inside the volume;
* :func:`overlap_fractions` is ``|crop ∩ base| / |crop|`` for every crop and base: VoCo's regression
  target. For crops inside the volume the fractions of one crop sum to 1;
* :func:`cut_boxes` cuts equally sized boxes out of a batch of volumes.

Example:
    >>> import torch
    >>> bases = grid_boxes((64, 64, 32), (2, 2, 1))
    >>> bases.tolist()[1]
    [0, 32, 32, 64, 0, 32]
    >>> crop = torch.tensor([[16, 48, 16, 48, 0, 32]])   # centred: a quarter in each base crop
    >>> overlap_fractions(crop, bases).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def base_crop_size(volume_size: Sequence[int], grid: Sequence[int]) -> tuple[int, int, int]:
    """Size of one base crop; every volume size must be a multiple of its grid count."""
    sizes, counts = tuple(int(s) for s in volume_size), tuple(int(g) for g in grid)
    if len(sizes) != 3 or len(counts) != 3 or min(counts) < 1:
        raise ValueError(f"expected 3 sizes and 3 grid counts >= 1, got {sizes} and {counts}")
    if any(s % g for s, g in zip(sizes, counts, strict=True)):
        raise ValueError(f"volume size {sizes} is not divisible by the grid {counts}")
    return sizes[0] // counts[0], sizes[1] // counts[1], sizes[2] // counts[2]


def grid_boxes(volume_size: Sequence[int], grid: Sequence[int]) -> torch.Tensor:
    """``[gx·gy·gz, 6]`` base-crop boxes tiling the volume, x-major."""
    size = base_crop_size(volume_size, grid)
    boxes = [
        (i * size[0], (i + 1) * size[0], j * size[1], (j + 1) * size[1], k * size[2], (k + 1) * size[2])
        for i in range(int(grid[0]))
        for j in range(int(grid[1]))
        for k in range(int(grid[2]))
    ]
    return torch.tensor(boxes, dtype=torch.int64)


def random_boxes(
    volume_size: Sequence[int], crop_size: Sequence[int], count: int, rng: np.random.Generator
) -> torch.Tensor:
    """``[count, 6]`` boxes of ``crop_size`` at uniform integer offsets, entirely inside the volume."""
    if any(c > v for c, v in zip(crop_size, volume_size, strict=True)):
        raise ValueError(f"crop size {tuple(crop_size)} exceeds the volume {tuple(volume_size)}")
    starts = np.stack([rng.integers(0, v - c + 1, size=count) for v, c in zip(volume_size, crop_size, strict=True)], 1)
    ends = starts + np.asarray(crop_size)
    boxes = np.stack([starts[:, 0], ends[:, 0], starts[:, 1], ends[:, 1], starts[:, 2], ends[:, 2]], 1)
    return torch.from_numpy(boxes.astype(np.int64))


def overlap_fractions(crops: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """``[..., M, K]`` float32: the fraction of each crop ``[..., M, 6]`` inside each base ``[K, 6]``."""
    c = crops.to(torch.int64).unsqueeze(-2)
    b = bases.to(torch.int64)
    extent = (torch.minimum(c[..., 1::2], b[..., 1::2]) - torch.maximum(c[..., 0::2], b[..., 0::2])).clamp_min(0)
    volume = (c[..., 1::2] - c[..., 0::2]).prod(-1)
    return (extent.prod(-1).double() / volume.double().clamp_min(1)).float()


def cut_boxes(volumes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``[B·M, C, dx, dy, dz]``: box ``m`` of volume ``b`` at row ``b·M + m``; boxes ``[B, M, 6]`` or ``[M, 6]``.

    Every box must have the same size (as VoCo's crops do).
    """
    if boxes.dim() == 2:
        boxes = boxes.unsqueeze(0).expand(volumes.shape[0], -1, -1)
    sizes = boxes[..., 1::2] - boxes[..., 0::2]
    if not bool((sizes == sizes[0, 0]).all()):
        raise ValueError("cut_boxes needs boxes of one size")
    rows = []
    for volume, volume_boxes in zip(volumes, boxes.tolist(), strict=True):
        for x0, x1, y0, y1, z0, z1 in volume_boxes:
            rows.append(volume[:, x0:x1, y0:y1, z0:z1])
    return torch.stack(rows)
