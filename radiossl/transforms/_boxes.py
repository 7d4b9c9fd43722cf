"""Random axis-aligned boxes for in- and out-painting.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> corners, sizes = random_boxes(2, 3, [(10, 21)] * 2 + [(5, 10)], (64, 64, 32), 3, generator_for(0), "cpu")
    >>> bool(((sizes >= 5) & (corners >= 3) & (corners + sizes <= torch.tensor([61, 61, 29]))).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from radiossl.transforms._random import randint_inclusive


def random_boxes(
    batch: int,
    count: int,
    size_ranges: Sequence[tuple[int, int]],
    spatial: Sequence[int],
    margin: int,
    generator: torch.Generator,
    device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners and sizes ``[batch, count, 3]``: size ~ U{low..high}, corner ~ U{margin..S - size - margin}.

    All ranges include both ends (Python's ``random.randint``, as in Models Genesis).
    """
    low = torch.tensor([r[0] for r in size_ranges], device=device).expand(batch, count, 3)
    high = torch.tensor([r[1] for r in size_ranges], device=device).expand(batch, count, 3)
    sizes = randint_inclusive(low, high, generator)
    extent = torch.tensor(list(spatial), device=device)
    corners = randint_inclusive(torch.full_like(sizes, margin), extent - sizes - margin, generator)
    return corners, sizes


def active_boxes(corners: torch.Tensor, sizes: torch.Tensor, active: torch.Tensor) -> list[tuple[int, ...]]:
    """``(sample, x, y, z, size_x, size_y, size_z)`` of each active box, in drawing order per sample."""
    rows = torch.cat([corners, sizes], dim=-1)[active]
    samples = active.nonzero()[:, 0]
    return [tuple(r) for r in torch.cat([samples.unsqueeze(1), rows], dim=1).tolist()]


def box_slices(box: tuple[int, ...]) -> tuple[int, slice, slice, slice, slice]:
    """Index ``[sample, :, x-range, y-range, z-range]`` of a box from :func:`active_boxes`."""
    b, x, y, z, sx, sy, sz = box
    return b, slice(None), slice(x, x + sx), slice(y, y + sy), slice(z, z + sz)


def check_room(spatial: Sequence[int], minimum: int, what: str) -> None:
    """Raise ``ValueError`` when a spatial size is below ``minimum`` (the published ranges need room)."""
    if any(s < minimum for s in spatial):
        raise ValueError(f"{what} needs every spatial size >= {minimum}, got {tuple(spatial)}")
