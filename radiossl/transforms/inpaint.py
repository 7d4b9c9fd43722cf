"""Models Genesis' in-painting: random boxes replaced by uniform noise.

Per sample: up to 5 boxes, each drawn only while ``U(0, 1) < 0.95`` (checked before every box,
so no box at all has probability 0.05). Box size per axis ``∈ [S // 6, S // 3]`` (64 → 10..21,
32 → 5..10), corner ``∈ [3, S - size - 3]``, all inclusive. Box voxels become i.i.d. U(0, 1)
noise (the code's behaviour; the paper's figure shows flat grey boxes). Every channel of a
sample shares the boxes.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> y = inpaint(torch.full((4, 1, 64, 64, 32), 5.0), generator_for(0))
    >>> 0.0 < float((y != 5).float().mean()) < 0.5
    True
"""

from __future__ import annotations

import torch

from radiossl.transforms._boxes import active_boxes, box_slices, check_room, random_boxes
from radiossl.transforms._random import check_batch, leading_successes, uniform_noise
from radiossl.transforms.compose import random_apply


def inpaint_size_range(size: int) -> tuple[int, int]:
    """Box edge range ``(S // 6, S // 3)`` along an axis of ``size`` voxels."""
    return size // 6, size // 3


def inpaint_boxes(
    batch: int,
    spatial: tuple[int, int, int],
    generator: torch.Generator,
    device: torch.device,
    max_boxes: int = 5,
    continue_prob: float = 0.95,
) -> list[tuple[int, ...]]:
    """The drawn boxes ``(sample, x, y, z, size_x, size_y, size_z)`` of a batch."""
    check_room(spatial, 9, "in-painting")
    active = leading_successes((batch, max_boxes), continue_prob, generator, device)
    ranges = [inpaint_size_range(s) for s in spatial]
    corners, sizes = random_boxes(batch, max_boxes, ranges, spatial, 3, generator, device)
    return active_boxes(corners, sizes, active)


def inpaint(
    x: torch.Tensor, generator: torch.Generator, max_boxes: int = 5, continue_prob: float = 0.95
) -> torch.Tensor:
    """Fill each sample's random boxes with U(0, 1) noise."""
    check_batch(x, "inpaint")
    spatial = (x.shape[2], x.shape[3], x.shape[4])
    out = x.clone()
    for box in inpaint_boxes(x.shape[0], spatial, generator, x.device, max_boxes, continue_prob):
        index = box_slices(box)
        out[index] = uniform_noise(out[index].shape, generator, x.device, x.dtype)
    return out


class InPaint:
    """In-painting applied per sample with probability ``p`` (inside Models Genesis' painting step: 1)."""

    def __init__(self, p: float = 1.0, max_boxes: int = 5, continue_prob: float = 0.95) -> None:
        self.p = p
        self.max_boxes = max_boxes
        self.continue_prob = continue_prob

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_apply(
            x, self.p, generator, lambda sub: inpaint(sub, generator, self.max_boxes, self.continue_prob)
        )

    def __repr__(self) -> str:
        return f"InPaint(p={self.p:g}, max_boxes={self.max_boxes}, continue_prob={self.continue_prob:g})"
