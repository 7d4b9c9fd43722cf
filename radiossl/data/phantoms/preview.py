"""A PNG montage of phantom cases: orthogonal slices in radiological display with a label overlay.

Slices are cut from the arrays *as stored on disk* and reoriented with their affine, so the
montage also shows that the written geometry is right: anterior is up in axial views, superior is
up in coronal views, and the patient's right is on the viewer's left.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> vol = np.random.default_rng(0).random((24, 24, 12)).astype(np.float32)
    >>> seg = (vol > 0.9).astype(np.uint8)
    >>> tiles = [slice_tile("axial", vol, np.diag([-1.0, -1.0, 2.0, 1.0]), seg, title="demo")]
    >>> out = save_montage([("case 0", tiles)], pathlib.Path(tempfile.mkdtemp()) / "preview.png")
    >>> out.name
    'preview.png'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as PILImage

View = Literal["axial", "coronal", "sagittal"]

TILE_HEIGHT = 176
HEADER = 18
PAD = 4
MAX_ROWS = 8
LABEL_COLOURS: dict[int, tuple[int, int, int]] = {
    1: (235, 60, 60),
    2: (60, 210, 80),
    3: (70, 130, 255),
    4: (255, 220, 40),
}


@dataclass(frozen=True)
class Tile:
    """One 2-D image as displayed (row 0 at the top), with an optional label map and grey window."""

    title: str
    image: np.ndarray
    label: np.ndarray | None = None
    window: tuple[float, float] | None = None
    pixel_aspect: float = 1.0  # physical height / width of one pixel


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Reorder and flip ``array`` so its axes point Right, Anterior, Superior; also return the spacing."""
    from nibabel.orientations import apply_orientation, io_orientation

    ornt = io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    ras_spacing = [0.0, 0.0, 0.0]
    for axis, (world, _) in enumerate(ornt):
        ras_spacing[int(world)] = float(spacing[axis])
    return apply_orientation(array, ornt), (ras_spacing[0], ras_spacing[1], ras_spacing[2])


def slice_tile(
    view: View,
    array: np.ndarray,
    affine: np.ndarray,
    label: np.ndarray | None = None,
    *,
    title: str = "",
    window: tuple[float, float] | None = None,
    index: int | None = None,
    overlay: bool = True,
) -> Tile:
    """A tile of ``array`` in ``view`` through ``index``.

    The default slice is the one with most voxels of the highest label (e.g. the tumour), else the middle.
    """
    ras, (sx, sy, sz) = to_ras(array, affine)
    ras_label = to_ras(label, affine)[0] if label is not None else None
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[view]
    if index is None:
        index = _best_slice(ras_label, axis, ras.shape[axis])
    take = [slice(None)] * 3
    take[axis] = slice(index, index + 1)
    plane = ras[tuple(take)].squeeze(axis)
    lab = ras_label[tuple(take)].squeeze(axis) if ras_label is not None and overlay else None
    # Radiological display: axial (x, y) -> rows anterior..posterior, columns right..left;
    # coronal (x, z) -> rows superior..inferior; sagittal (y, z) -> columns anterior..posterior.
    image = plane[::-1, ::-1].T
    shown = lab[::-1, ::-1].T if lab is not None else None
    aspect = {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]
    return Tile(title or view, np.asarray(image, np.float32), shown, window, aspect)


def _best_slice(label: np.ndarray | None, axis: int, n: int) -> int:
    if label is None or not np.any(label):
        return n // 2
    others = tuple(a for a in range(3) if a != axis)
    return int(np.argmax(np.count_nonzero(label == label.max(), axis=others)))


def save_montage(rows: Sequence[tuple[str, Sequence[Tile]]], path: Path) -> Path:
    """Render rows of tiles (at most :data:`MAX_ROWS`) into one PNG at ``path`` (written atomically)."""
    from PIL import Image, ImageDraw

    from radiossl.utils.atomic import atomic_write_path

    rendered = [(name, [_render(tile) for tile in tiles]) for name, tiles in list(rows)[:MAX_ROWS]]
    width = max(sum(t.width for t in tiles) + PAD * (len(tiles) + 1) for _, tiles in rendered)
    height = len(rendered) * (TILE_HEIGHT + HEADER + PAD) + PAD
    canvas = Image.new("RGB", (max(width, 200), height), (24, 24, 28))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    y = PAD
    for (name, tiles_in), (_, tiles) in zip(list(rows)[:MAX_ROWS], rendered, strict=True):
        x = PAD
        draw.text((x, y + 2), name, fill=(230, 230, 230), font=font)
        for tile, img in zip(tiles_in, tiles, strict=True):
            canvas.paste(img, (x, y + HEADER))
            draw.text((x + 3, y + HEADER + 2), tile.title, fill=(255, 255, 160), font=font)
            x += img.width + PAD
        y += TILE_HEIGHT + HEADER + PAD
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def _render(tile: Tile) -> PILImage.Image:
    from PIL import Image

    grey = _to_uint8(tile.image, tile.window)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    if tile.label is not None:
        for value in np.unique(tile.label):
            if value == 0:
                continue
            colour = np.asarray(LABEL_COLOURS.get(int(value), (200, 80, 255)), np.float32)
            mask = tile.label == value
            rgb[mask] = 0.55 * rgb[mask] + 0.45 * colour
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    rows, cols = tile.image.shape
    out_width = max(8, round(TILE_HEIGHT * cols / (rows * tile.pixel_aspect)))
    return img.resize((out_width, TILE_HEIGHT), Image.Resampling.BILINEAR)


def _to_uint8(image: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    if window is None:
        values = image[image != 0] if np.any(image != 0) else image
        lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
        lo = min(lo, 0.0) if float(image.min()) >= 0 else lo
    else:
        lo, hi = window
    scaled = (image.astype(np.float32) - lo) / max(hi - lo, 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow without FreeType support for sized default fonts
        return ImageFont.load_default()
