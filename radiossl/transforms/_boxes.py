"""Random axis-aligned boxes and their union masks, for in- and out-painting.

Example:
    >>> import torch
    >>> corners = torch.tensor([[[1, 1, 0]]]); sizes = torch.tensor([[[2, 3, 1]]])
    >>> int(union_mask(corners, sizes, torch.ones(1, 1, dtype=torch.bool), (4, 4, 2)).sum())
    6
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
    device: torch.device,
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


def union_mask(
    corners: torch.Tensor, sizes: torch.Tensor, active: torch.Tensor, spatial: Sequence[int]
) -> torch.Tensor:
    """Boolean ``[B, X, Y, Z]``: voxels inside at least one active box (``active``: ``[B, count]``)."""
    inside = []
    for axis, size in enumerate(spatial):
        coords = torch.arange(size, device=corners.device)
        lo = corners[..., axis].unsqueeze(-1)
        hi = lo + sizes[..., axis].unsqueeze(-1)
        inside.append((coords >= lo) & (coords < hi) & active.unsqueeze(-1))
    per_box = inside[0][..., :, None, None] & inside[1][..., None, :, None] & inside[2][..., None, None, :]
    return per_box.any(dim=1)


def check_room(spatial: Sequence[int], minimum: int, what: str) -> None:
    """Raise ``ValueError`` when a spatial size is below ``minimum`` (the published ranges need room)."""
    if any(s < minimum for s in spatial):
        raise ValueError(f"{what} needs every spatial size >= {minimum}, got {tuple(spatial)}")
