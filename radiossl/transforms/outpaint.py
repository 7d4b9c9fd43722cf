"""Models Genesis' out-painting: everything becomes uniform noise except a few windows.

Per sample: one window plus up to 4 more, each extra one drawn while ``U(0, 1) < 0.95``. Window
size per axis is ``S - r`` with ``r ∈ [3·S // 7, 4·S // 7]`` (64 → 28..37, 32 → 14..19), corner
``∈ [3, S - size - 3]``, all inclusive. Inside the windows the input is kept; outside, i.i.d.
U(0, 1) noise. Every channel of a sample shares the windows.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> y = outpaint(torch.full((4, 1, 64, 64, 32), 5.0), generator_for(0))
    >>> 0.05 < float((y == 5).float().mean()) < 0.6
    True
"""

from __future__ import annotations

import torch

from radiossl.transforms._boxes import active_boxes, box_slices, check_room, random_boxes
from radiossl.transforms._random import check_batch, leading_successes, uniform_noise
from radiossl.transforms.compose import random_apply


def outpaint_size_range(size: int) -> tuple[int, int]:
    """Window edge range ``(S - 4·S // 7, S - 3·S // 7)`` along an axis of ``size`` voxels."""
    return size - 4 * size // 7, size - 3 * size // 7


def outpaint_windows(
    batch: int,
    spatial: tuple[int, int, int],
    generator: torch.Generator,
    device: torch.device,
    max_extra: int = 4,
    continue_prob: float = 0.95,
) -> list[tuple[int, ...]]:
    """The kept windows ``(sample, x, y, z, size_x, size_y, size_z)`` of a batch."""
    check_room(spatial, 14, "out-painting")
    extra = leading_successes((batch, max_extra), continue_prob, generator, device)
    active = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=device), extra], dim=1)
    ranges = [outpaint_size_range(s) for s in spatial]
    corners, sizes = random_boxes(batch, max_extra + 1, ranges, spatial, 3, generator, device)
    return active_boxes(corners, sizes, active)


def outpaint(
    x: torch.Tensor, generator: torch.Generator, max_extra: int = 4, continue_prob: float = 0.95
) -> torch.Tensor:
    """Replace everything outside each sample's random windows with U(0, 1) noise."""
    check_batch(x, "outpaint")
    spatial = (x.shape[2], x.shape[3], x.shape[4])
    windows = outpaint_windows(x.shape[0], spatial, generator, x.device, max_extra, continue_prob)
    out = uniform_noise(x.shape, generator, x.device, x.dtype)
    for window in windows:
        index = box_slices(window)
        out[index] = x[index]
    return out


class OutPaint:
    """Out-painting applied per sample with probability ``p`` (inside Models Genesis' painting step: 1)."""

    def __init__(self, p: float = 1.0, max_extra: int = 4, continue_prob: float = 0.95) -> None:
        self.p = p
        self.max_extra = max_extra
        self.continue_prob = continue_prob

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_apply(
            x, self.p, generator, lambda sub: outpaint(sub, generator, self.max_extra, self.continue_prob)
        )

    def __repr__(self) -> str:
        return f"OutPaint(p={self.p:g}, max_extra={self.max_extra}, continue_prob={self.continue_prob:g})"
