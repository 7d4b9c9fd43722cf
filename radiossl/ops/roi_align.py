"""Align two views' dense maps on the physical overlap of their crop boxes (spec §6.2, fixed).

Each view of a crop pair is a box ``(x1, x2, y1, y2, z1, z2)`` (ends exclusive) of a common voxel
grid, resized to the network input; a dense map ``[B, C, h, w, d]`` of that view (full-resolution
predictions, or the 8³-patch grid) therefore tiles its box with ``h x w x d`` equal cells. The
overlap of the two boxes is divided into an output grid, and every output cell takes the value of
each view at the cell's **physical centre**, so cell ``(i, j, l)`` of both aligned maps refers to the
same anatomy:

    p = o1 + (i + ½)(o2 - o1) / m          (output cell centre, physical coordinates)
    u = (p - s) / (e - s) · n               (continuous index into a map of n cells covering [s, e))
    nearest: cell floor(u);   trilinear: linear interpolation between cell centres u - ½ (edges replicated)

Indices are computed with exact integer arithmetic, so the result does not depend on floating-point
ties. Samples whose boxes do not overlap (or are degenerate) are returned as zeros and flagged in
``valid`` instead of raising.

``legacy=True`` reproduces the thesis' ``roi_align_intersect``: the overlap is converted to map
indices by truncation (``int()``), the sub-block is sliced and resized with ``F.interpolate``'s
default nearest mode. Its cells are offset by up to one map cell between the views.

Example:
    >>> import torch
    >>> maps = torch.arange(4.0).reshape(1, 1, 4, 1, 1)          # 4 cells along x covering [0, 8)
    >>> box = torch.tensor([[0, 8, 0, 1, 0, 1]]); other = torch.tensor([[4, 12, 0, 1, 0, 1]])
    >>> out = roi_align_overlap(maps, maps, box, other, output_size=(2, 1, 1))
    >>> out.view1.flatten().tolist(), out.view2.flatten().tolist(), out.valid.tolist()
    ([2.0, 3.0], [0.0, 1.0], [True])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

AlignMode = Literal["nearest", "trilinear"]


class AlignedPair(NamedTuple):
    """Both views resampled to the overlap grid, and which samples have a non-empty overlap."""

    view1: torch.Tensor
    """``[B, C, *output_size]`` (zeros where not ``valid``)."""
    view2: torch.Tensor
    valid: torch.Tensor
    """``[B]`` bool: the two boxes overlap in a non-empty region."""


def _check_inputs(map1: torch.Tensor, map2: torch.Tensor, box1: torch.Tensor, box2: torch.Tensor) -> None:
    if map1.dim() != 5 or map2.dim() != 5:
        raise ValueError(f"maps must be [B, C, h, w, d], got {tuple(map1.shape)} and {tuple(map2.shape)}")
    if map1.shape[:2] != map2.shape[:2]:
        raise ValueError(f"maps differ in batch/channels: {tuple(map1.shape)} vs {tuple(map2.shape)}")
    batch = map1.shape[0]
    for box in (box1, box2):
        if tuple(box.shape) != (batch, 6):
            raise ValueError(f"boxes must be [B, 6] = (x1, x2, y1, y2, z1, z2) with B={batch}, got {tuple(box.shape)}")


def overlap_of_boxes(box1: torch.Tensor, box2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(start [B, 3], end [B, 3], valid [B])`` of the intersection of two ``[B, 6]`` integer boxes."""
    b1 = box1.to(torch.int64)
    b2 = box2.to(torch.int64)
    start = torch.maximum(b1[:, 0::2], b2[:, 0::2])
    end = torch.minimum(b1[:, 1::2], b2[:, 1::2])
    proper = (b1[:, 1::2] > b1[:, 0::2]).all(1) & (b2[:, 1::2] > b2[:, 0::2]).all(1)
    valid = (end > start).all(1) & proper
    return start, end, valid


def _sample_positions(
    box: torch.Tensor, start: torch.Tensor, end: torch.Tensor, valid: torch.Tensor, axis: int, n: int, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numerator and denominator (int64, ``[B, m]``) of ``u``, the map index of each output cell centre."""
    s = box[:, 2 * axis]
    e = box[:, 2 * axis + 1]
    o1 = start[:, axis]
    o2 = end[:, axis]
    # invalid samples get a harmless dummy geometry (the whole box, extent >= 1); they are zeroed later
    s = torch.where(valid, s, torch.zeros_like(s))
    e = torch.where(valid, e, torch.ones_like(e))
    o1 = torch.where(valid, o1, s)
    o2 = torch.where(valid, o2, e)
    j = torch.arange(m, device=box.device, dtype=torch.int64)
    num = (2 * m * (o1 - s)[:, None] + (2 * j[None, :] + 1) * (o2 - o1)[:, None]) * n
    den = (2 * m * (e - s))[:, None].expand_as(num)
    return num, den, j


def _gather_axis(maps: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``maps`` indexed along ``dim`` (2, 3 or 4) by a per-sample index ``[B, m]``."""
    shape = list(maps.shape)
    shape[dim] = index.shape[1]
    view = [index.shape[0]] + [1] * (maps.dim() - 1)
    view[dim] = index.shape[1]
    return torch.gather(maps, dim, index.view(view).expand(shape))


def _resample_axis(maps: torch.Tensor, dim: int, num: torch.Tensor, den: torch.Tensor, mode: AlignMode) -> torch.Tensor:
    n = maps.shape[dim]
    if mode == "nearest":
        index = torch.div(num, den, rounding_mode="floor").clamp_(0, n - 1)
        return _gather_axis(maps, dim, index)
    # centres of cells sit at integer + ½: interpolate at c = u - ½ = (2·num - den) / (2·den)
    shifted = 2 * num - den
    i0 = torch.div(shifted, 2 * den, rounding_mode="floor")
    frac = (shifted - i0 * 2 * den).to(torch.float64) / (2 * den).to(torch.float64)
    lo = _gather_axis(maps, dim, i0.clamp(0, n - 1))
    hi = _gather_axis(maps, dim, (i0 + 1).clamp(0, n - 1))
    view = [frac.shape[0]] + [1] * (maps.dim() - 1)
    view[dim] = frac.shape[1]
    weight = frac.to(maps.dtype).view(view)
    return lo + (hi - lo) * weight


def _align_one(
    maps: torch.Tensor,
    box: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    valid: torch.Tensor,
    output_size: tuple[int, int, int],
    mode: AlignMode,
) -> torch.Tensor:
    out = maps
    for axis in range(3):
        num, den, _ = _sample_positions(box, start, end, valid, axis, maps.shape[2 + axis], output_size[axis])
        out = _resample_axis(out, 2 + axis, num, den, mode)
    keep = valid.view(-1, 1, 1, 1, 1)
    return torch.where(keep, out, torch.zeros((), dtype=out.dtype, device=out.device))


def _legacy_align_one(
    maps: torch.Tensor,
    box: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    valid: torch.Tensor,
    output_size: tuple[int, int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Thesis behaviour: float32 fractions of the box, truncated to ints, slice, nearest ``interpolate``."""
    sizes = torch.tensor(maps.shape[2:], dtype=torch.float32, device=box.device)
    extent = (box[:, 1::2] - box[:, 0::2]).to(torch.float32)
    first = ((start - box[:, 0::2]).to(torch.float32) / extent * sizes).int()
    last = ((end - box[:, 0::2]).to(torch.float32) / extent * sizes).int()
    out = torch.zeros((*maps.shape[:2], *output_size), dtype=maps.dtype, device=maps.device)
    ok = valid & (last > first).all(1) & (first >= 0).all(1)
    for b in torch.nonzero(ok).flatten().tolist():
        (x0, y0, z0), (x1, y1, z1) = first[b].tolist(), last[b].tolist()
        block = maps[b : b + 1, :, x0:x1, y0:y1, z0:z1]
        resized = F.interpolate(block if block.is_floating_point() else block.float(), size=output_size)
        out[b] = resized[0].to(maps.dtype)
    return out, ok


def roi_align_overlap(
    map1: torch.Tensor,
    map2: torch.Tensor,
    box1: torch.Tensor,
    box2: torch.Tensor,
    output_size: Sequence[int] | None = None,
    mode: AlignMode = "nearest",
    legacy: bool = False,
) -> AlignedPair:
    """Resample both views' maps to a common grid over the overlap of their boxes.

    Args:
        map1, map2: ``[B, C, h, w, d]`` maps of view 1 and 2, each covering its whole box (any
            dtype for ``nearest``, e.g. one-hot targets or integer labels; floating for ``trilinear``).
        box1, box2: ``[B, 6]`` integer boxes ``(x1, x2, y1, y2, z1, z2)`` in the common voxel grid.
        output_size: ``(h, w, d)`` of the aligned maps; default = ``map1``'s spatial size.
        mode: ``"nearest"`` (targets, and the thesis' choice for predictions) or ``"trilinear"``.
        legacy: reproduce the thesis' truncation-based alignment (nearest only; spec §6.2).

    Returns:
        :class:`AlignedPair`; gradients flow from the aligned maps to ``map1``/``map2``.
    """
    _check_inputs(map1, map2, box1, box2)
    size = tuple(int(v) for v in (output_size if output_size is not None else map1.shape[2:]))
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"output_size must be three positive ints, got {output_size}")
    out_size: tuple[int, int, int] = (size[0], size[1], size[2])
    if mode not in ("nearest", "trilinear"):
        raise ValueError(f"mode must be 'nearest' or 'trilinear', got {mode!r}")
    if mode == "trilinear" and not (map1.is_floating_point() and map2.is_floating_point()):
        raise ValueError("trilinear alignment needs floating-point maps")
    b1 = box1.to(device=map1.device, dtype=torch.int64)
    b2 = box2.to(device=map1.device, dtype=torch.int64)
    start, end, valid = overlap_of_boxes(b1, b2)
    if legacy:
        if mode != "nearest":
            raise ValueError("legacy alignment is nearest-only (as in the thesis)")
        out1, ok1 = _legacy_align_one(map1, b1, start, end, valid, out_size)
        out2, ok2 = _legacy_align_one(map2, b2, start, end, valid, out_size)
        both = ok1 & ok2
        keep = both.view(-1, 1, 1, 1, 1)
        zero = torch.zeros((), dtype=out1.dtype, device=out1.device)
        return AlignedPair(torch.where(keep, out1, zero), torch.where(keep, out2, zero), both)
    out1 = _align_one(map1, b1, start, end, valid, out_size, mode)
    out2 = _align_one(map2.to(device=map1.device), b2, start, end, valid, out_size, mode)
    return AlignedPair(out1, out2, valid)
