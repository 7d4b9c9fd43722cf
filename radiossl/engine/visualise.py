"""Small image helpers for ``--vis``: grey slices, coloured label maps, tiling, PNG writing.

Tasks build their visualisations with these (``task.visualise`` returns named ``H x W x 3`` uint8
images); the engine writes them to ``<run>/vis/<name>_e<epoch>.png`` and to TensorBoard.

Example:
    >>> import numpy as np
    >>> grey = to_rgb_uint8(np.arange(12.0).reshape(3, 4))
    >>> labels = colorize_labels(np.array([[0, 1], [2, 1]]), k=3)
    >>> tile_images([grey, labels], pad=2).shape
    (3, 10, 3)
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radiossl.utils.atomic import atomic_write_path

# Twelve hand-picked, clearly distinct colours first; further labels get golden-ratio hues.
_BASE_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 232),
    (255, 127, 14),
    (44, 190, 44),
    (220, 30, 40),
    (150, 90, 210),
    (140, 86, 60),
    (235, 100, 200),
    (128, 128, 128),
    (200, 200, 20),
    (20, 200, 220),
    (0, 90, 50),
    (120, 0, 70),
)


def palette(k: int) -> np.ndarray:
    """``k`` distinct RGB colours (uint8, ``k x 3``); the same ``k`` always gives the same colours."""
    colours = list(_BASE_PALETTE[:k])
    index = 0
    while len(colours) < k:
        hue = (index * 0.618033988749895) % 1.0
        saturation = 0.55 + 0.4 * ((index // 3) % 2)
        value = 0.95 - 0.3 * ((index // 2) % 2)
        r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
        index += 1
    return np.asarray(colours, dtype=np.uint8).reshape(k, 3)


def _as_numpy(image: Any) -> np.ndarray:
    if hasattr(image, "detach"):  # torch tensors, without importing torch here
        image = image.detach().float().cpu().numpy()
    return np.asarray(image)


def to_rgb_uint8(slice2d: Any) -> np.ndarray:
    """A 2-D array (numpy or torch) min-max scaled to grey ``H x W x 3`` uint8 (constant input -> black)."""
    array = _as_numpy(slice2d).astype(np.float64)
    if array.ndim != 2:
        raise ValueError(f"to_rgb_uint8 expects a 2-D slice, got shape {array.shape}")
    finite = np.isfinite(array)
    array = np.where(finite, array, 0.0)
    low, high = (float(array[finite].min()), float(array[finite].max())) if finite.any() else (0.0, 0.0)
    if high > low:
        scaled = (array - low) / (high - low) * 255.0
    else:
        scaled = np.zeros_like(array)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def colorize_labels(labels2d: Any, k: int) -> np.ndarray:
    """Colour a 2-D integer label map with :func:`palette` ``(k)``; labels outside ``[0, k)`` are black."""
    labels = _as_numpy(labels2d)
    if labels.ndim != 2:
        raise ValueError(f"colorize_labels expects a 2-D label map, got shape {labels.shape}")
    if k < 1:
        raise ValueError(f"colorize_labels needs k >= 1, got {k}")
    labels = labels.astype(np.int64)
    colours = palette(k)
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = (labels >= 0) & (labels < k)
    out[valid] = colours[labels[valid]]
    return out


def _as_rgb(image: Any) -> np.ndarray:
    array = _as_numpy(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array


def tile_images(images: Sequence[Any] | Sequence[Sequence[Any]], pad: int = 2, ncols: int | None = None) -> np.ndarray:
    """Tile images into one ``H x W x 3`` uint8 image with white ``pad``-pixel gaps.

    ``images`` is either a flat sequence (one row, or rows of ``ncols``) or a sequence of rows.
    Images of different sizes are top-left aligned in cells of the largest size.
    """
    if len(images) == 0:
        raise ValueError("tile_images needs at least one image")
    nested = isinstance(images[0], (list, tuple))
    if nested:
        rows = [[_as_rgb(img) for img in row] for row in images]  # type: ignore[union-attr]
    else:
        flat = [_as_rgb(img) for img in images]
        per_row = ncols or len(flat)
        rows = [flat[i : i + per_row] for i in range(0, len(flat), per_row)]
    rows = [row for row in rows if row]
    cell_h = max(img.shape[0] for row in rows for img in row)
    cell_w = max(img.shape[1] for row in rows for img in row)
    n_cols = max(len(row) for row in rows)
    height = len(rows) * cell_h + (len(rows) - 1) * pad
    width = n_cols * cell_w + (n_cols - 1) * pad
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = r * (cell_h + pad), c * (cell_w + pad)
            canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
    return canvas


def save_png(path: str | Path, image: Any) -> Path:
    """Write an ``H x W x 3`` (or ``H x W``) uint8 image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    array = _as_rgb(image)
    with atomic_write_path(path) as tmp, open(tmp, "wb") as handle:
        Image.fromarray(np.ascontiguousarray(array)).save(handle, format="PNG")
    return path
