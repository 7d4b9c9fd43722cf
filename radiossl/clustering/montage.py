"""PNG montage of crops and their cluster maps (a crop pair per row; per crop: image, clusters, overlay).

Each tile is the middle axial slice (``[:, :, D // 2]``) of the first channel, shown with the first
array axis (X) left to right and the second (Y) bottom to top, as an axial radiological view of the
RAS-ordered arrays. Cluster ids have fixed colours, so montages of one set of centroids compare.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.png"
    >>> crop = np.random.rand(1, 16, 16, 4).astype(np.float32)
    >>> labels = (crop[0] > 0.5).astype(np.uint8)
    >>> save_montage(path, [crop], [labels], k=2).exists()
    True
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radiossl.utils.atomic import atomic_write_path

BASE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
)
MIN_TILE = 128


def palette(k: int) -> np.ndarray:
    """``k x 3`` uint8 colours: 20 distinct base colours, then golden-ratio hues."""
    colours = list(BASE_COLOURS[:k])
    for i in range(len(colours), k):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.55 + 0.45 * ((i // 7) % 2), 0.95 - 0.35 * ((i // 3) % 2))
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.asarray(colours, dtype=np.uint8).reshape(k, 3)


def _axial(volume: np.ndarray) -> np.ndarray:
    """Middle axial slice, displayed with X to the right and Y upwards."""
    return np.flipud(volume[:, :, volume.shape[2] // 2].T)


def _upscale(tile: np.ndarray, factor: int) -> np.ndarray:
    return tile.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else tile


def _crop_tiles(crop: np.ndarray, label: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """Image | clusters | overlay for one crop, upscaled to at least ``MIN_TILE`` pixels."""
    image = _axial(np.asarray(crop, dtype=np.float32)[0])
    lo, hi = float(image.min()), float(image.max())
    grey = ((image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)) * 255.0
    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    ids = np.clip(_axial(np.asarray(label)).astype(np.int64), 0, len(colours) - 1)
    coloured = colours[ids].astype(np.float32)
    overlay = (1 - alpha) * grey_rgb + alpha * coloured
    factor = max(1, -(-MIN_TILE // max(image.shape)))
    tiles = [_upscale(t, factor) for t in (grey_rgb, coloured, overlay)]
    gap = np.full((tiles[0].shape[0], 2, 3), 255.0, dtype=np.float32)
    return np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)


def _pad_to(tile: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.pad(tile, ((0, height - tile.shape[0]), (0, width - tile.shape[1]), (0, 0)), constant_values=255.0)


def montage_array(
    crops: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    k: int,
    alpha: float = 0.45,
    per_row: int = 2,
) -> np.ndarray:
    """RGB uint8 image: ``per_row`` crops per row (a crop pair), each as image, cluster map, overlay."""
    if len(crops) != len(labels) or not crops:
        raise ValueError("montage needs as many label maps as crops (and at least one)")
    colours = palette(max(k, 1))
    tiles = [_crop_tiles(c, lab, colours, alpha) for c, lab in zip(crops, labels, strict=True)]
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    tiles = [_pad_to(t, height, width) for t in tiles]
    blank = np.full((height, width, 3), 255.0, dtype=np.float32)
    rows = []
    for start in range(0, len(tiles), per_row):
        group = tiles[start : start + per_row]
        group += [blank] * (per_row - len(group))
        cells: list[np.ndarray] = []
        for tile in group:
            cells.extend([tile, np.full((height, 12, 3), 255.0, dtype=np.float32)])
        rows.append(np.concatenate(cells[:-1], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255.0, dtype=np.float32))
    return np.clip(np.concatenate(rows[:-1], axis=0), 0, 255).astype(np.uint8)


def save_montage(path: str | Path, crops: Sequence[np.ndarray], labels: Sequence[np.ndarray], k: int) -> Path:
    """Write :func:`montage_array` as a PNG (atomically) and return its path.

    ``crops`` are ``(C, H, W, D)`` arrays, ``labels`` the matching ``(H, W, D)`` cluster ids.
    """
    from PIL import Image

    path = Path(path)
    with atomic_write_path(path) as tmp:
        Image.fromarray(montage_array(crops, labels, k)).save(tmp, format="PNG")
    return path
