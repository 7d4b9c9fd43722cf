"""The thesis' evaluation crop (``--protocol thesis-crops``): one centred box per volume.

Example:
    >>> import numpy as np
    >>> centre_start((10, 10, 4), (4, 4, 4))
    [2, 2, 0]
    >>> centre_crop(np.ones((1, 3, 3, 3)), (4, 4, 4)).shape
    (1, 4, 4, 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def centre_start(shape: tuple[int, ...], crop: tuple[int, ...]) -> list[int]:
    """The thesis' evaluation crop start per axis: ``(size - crop - 1) // 2``, at least 0."""
    return [max((size - window - 1) // 2, 0) for size, window in zip(shape, crop, strict=True)]


def centre_crop(array: np.ndarray, crop: tuple[int, int, int], fill: float = 0.0) -> np.ndarray:
    """The thesis crop of the last three axes of ``array`` (padded with ``fill`` where it is smaller)."""
    spatial = array.shape[-3:]
    start = centre_start(spatial, crop)
    box: tuple[Any, ...] = (Ellipsis, *(slice(s, s + c) for s, c in zip(start, crop, strict=True)))
    cut = array[box]
    if cut.shape[-3:] == crop:
        return np.ascontiguousarray(cut)
    out = np.full((*array.shape[:-3], *crop), fill, dtype=array.dtype)
    inner: tuple[Any, ...] = (Ellipsis, *(slice(0, n) for n in cut.shape[-3:]))
    out[inner] = cut
    return out
