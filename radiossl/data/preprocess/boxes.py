"""Box geometry shared by the samplers: drawing boxes, 3-D IoU, foreground fractions, crop + resize.

Boxes are integer arrays ``(n, 6)`` in the order ``(x1, x2, y1, y2, z1, z2)`` with exclusive ends, in
voxels of the (padded) volume. Foreground fractions of any number of boxes are read in O(1) each from
a summed-volume table, so rejection tests never loop over voxels. Crops are resized with torch, all
boxes of one size in one ``interpolate`` call.

Example:
    >>> import numpy as np
    >>> a = np.array([[0, 10, 0, 10, 0, 10]]); b = np.array([[5, 15, 0, 10, 0, 10]])
    >>> round(float(iou3d(a, b)[0]), 4)
    0.3333
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from radiossl.errors import DataError


class SamplingError(DataError):
    """No acceptable sample was found within the attempt budget."""


def box_sizes(boxes: np.ndarray) -> np.ndarray:
    """``(n, 3)`` sizes of ``(n, 6)`` boxes."""
    return boxes[:, 1::2] - boxes[:, 0::2]


def iou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of paired boxes ``a[i]``, ``b[i]``."""
    low = np.maximum(a[:, 0::2], b[:, 0::2])
    high = np.minimum(a[:, 1::2], b[:, 1::2])
    inter = np.clip(high - low, 0, None).prod(axis=1).astype(np.float64)
    union = box_sizes(a).prod(axis=1) + box_sizes(b).prod(axis=1) - inter
    return inter / np.maximum(union, 1)


def draw_boxes(
    rng: np.random.Generator,
    count: int,
    sizes: np.ndarray,
    shape: Sequence[int],
    border: Sequence[int],
) -> np.ndarray:
    """Draw ``count`` boxes: a size from ``sizes`` (clipped to the volume), then a uniform corner.

    On each axis the border is reduced to ``(dim - size) // 2`` when the box would not fit with the
    full border, so a box always lies inside the volume.
    """
    dims = np.asarray(shape, dtype=np.int64)
    choice = rng.integers(0, len(sizes), size=count)
    size = np.minimum(sizes[choice], dims)
    margin = np.minimum(np.asarray(border, dtype=np.int64), (dims - size) // 2)
    start = rng.integers(margin, dims - size - margin + 1)
    boxes = np.empty((count, 6), dtype=np.int64)
    boxes[:, 0::2] = start
    boxes[:, 1::2] = start + size
    return boxes


class ForegroundScorer:
    """Foreground fraction of boxes of one volume (see :class:`~.config.RejectionConfig`).

    ``volume`` is ``(C, X, Y, Z)``; a voxel is foreground when any channel ``c`` is at least
    ``thresholds[c]``. With ``look_ahead = L > 0`` the voxel scores ``1 - k/L`` for the first
    ``k < L`` such that the voxel ``k`` slices further is foreground (0 if none).
    """

    def __init__(self, volume: np.ndarray, thresholds: Sequence[float], look_ahead: int = 0) -> None:
        depth = int(volume.shape[3])
        mask = volume[0] >= thresholds[0]
        for channel, threshold in zip(volume[1:], thresholds[1:], strict=True):
            mask |= channel >= threshold
        self.scale = max(look_ahead, 1)
        score: np.ndarray = mask
        if look_ahead > 0:
            # Integer score L - k (k = first foreground offset), divided by L when reading.
            score = np.zeros(mask.shape, dtype=np.int32)
            for k in reversed(range(look_ahead)):
                shifted = np.zeros_like(mask)
                shifted[:, :, : depth - k] = mask[:, :, k:]
                score[shifted] = look_ahead - k
        # Summed-volume table; int32 suffices unless the total could overflow it. The first cumsum
        # reads the score directly (no separate copy), along the contiguous axis: several times faster.
        dtype = np.int32 if score.size * self.scale < 2**31 else np.int64
        size = [int(n) + 1 for n in volume.shape[1:]]
        table = np.zeros(size, dtype=dtype)
        np.cumsum(score, axis=2, dtype=dtype, out=table[1:, 1:, 1:])
        np.cumsum(table, axis=1, out=table)
        np.cumsum(table, axis=0, out=table)
        self.table = table

    def fractions(self, boxes: np.ndarray) -> np.ndarray:
        """Mean foreground score inside each box, in [0, 1]."""
        t = self.table
        x1, x2, y1, y2, z1, z2 = (boxes[:, i] for i in range(6))
        total = (
            t[x2, y2, z2].astype(np.int64)
            - t[x1, y2, z2]
            - t[x2, y1, z2]
            - t[x2, y2, z1]
            + t[x1, y1, z2]
            + t[x1, y2, z1]
            + t[x2, y1, z1]
            - t[x1, y1, z1]
        )
        volume = np.maximum(box_sizes(boxes).prod(axis=1), 1)
        return total / (volume * self.scale)


def acceptable(fractions: np.ndarray, max_background: float | None, max_foreground: float | None) -> np.ndarray:
    """Boolean mask of boxes whose foreground fraction passes the rejection rule."""
    ok = np.ones(fractions.shape, dtype=bool)
    if max_background is not None:
        ok &= (1.0 - fractions) <= max_background + 1e-12
    if max_foreground is not None:
        ok &= fractions <= max_foreground + 1e-12
    return ok


def pad_to(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Pad ``(C, X, Y, Z)`` at the end of each axis up to ``shape``, with each channel's minimum."""
    pads = [max(0, int(t) - n) for t, n in zip(shape, volume.shape[1:], strict=True)]
    if not any(pads):
        return volume
    out = np.empty((volume.shape[0], *(n + p for n, p in zip(volume.shape[1:], pads, strict=True))), dtype=volume.dtype)
    for c in range(volume.shape[0]):
        out[c] = volume[c].min()
        out[c, : volume.shape[1], : volume.shape[2], : volume.shape[3]] = volume[c]
    return out


def crop_resize(
    volume: np.ndarray,
    boxes: np.ndarray,
    size: Sequence[int],
    mode: str = "trilinear",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Crops ``(n, C, *size)`` of ``volume`` ``(C, X, Y, Z)``, each box resized to ``size``.

    Boxes of equal size are stacked and resized together (in float32); a box already of ``size`` is
    copied. Parts of a box outside the volume are cut off before resizing (used for PCRLv2 local
    crops). ``dtype`` is the output type (float16 halves the memory of large sample sets).
    """
    n = len(boxes)
    out = torch.empty((n, volume.shape[0], *size), dtype=dtype)
    dims = np.asarray(volume.shape[1:])
    clipped = boxes.copy()
    clipped[:, 1::2] = np.minimum(clipped[:, 1::2], dims)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, box_size in enumerate(map(tuple, box_sizes(clipped).tolist())):
        groups.setdefault(box_size, []).append(i)
    for box_size, members in groups.items():
        # NumPy slicing + stack copies strided windows much faster than torch.stack does.
        windows = [volume[:, b[0] : b[1], b[2] : b[3], b[4] : b[5]] for b in clipped[members].tolist()]
        stack = torch.from_numpy(np.stack(windows))
        if tuple(box_size) != tuple(size):
            stack = stack.to(torch.float32)
            if mode == "area":
                stack = F.interpolate(stack, size=tuple(size), mode="area")
            else:
                stack = F.interpolate(stack, size=tuple(size), mode="trilinear", align_corners=False)
        out.index_copy_(0, torch.as_tensor(members), stack.to(dtype))
    return out
