"""A PNG montage of phantom cases: orthogonal slices in radiological display with a label overlay.

Slices are cut from the arrays *as stored on disk* and reoriented with their affine, so the
montage also shows that the written geometry is right: anterior is up in axial views, superior is
up in coronal views, and the patient's right is on the viewer's left. A row per case, a title per
slice, and a legend of the label colours (label value ``v`` has colour
:func:`radiossl.utils.figures.label_colours` ``[v]``); drawn by :mod:`radiossl.utils.figures`.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> vol = np.random.default_rng(0).random((24, 24, 12)).astype(np.float32)
    >>> seg = (vol > 0.9).astype(np.uint8)
    >>> tiles = [slice_tile("axial", vol, np.diag([-1.0, -1.0, 2.0, 1.0]), seg, title="demo")]
    >>> out = save_montage([("case 0", tiles)], pathlib.Path(tempfile.mkdtemp()) / "preview.png", label_names={1: "x"})
    >>> out.name
    'preview.png'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from radiossl.utils.figures import (
    Figure,
    LegendEntry,
    Panel,
    Row,
    blend,
    colour_values,
    label_colours,
    save_figure,
    to_rgb_uint8,
)

View = Literal["axial", "coronal", "sagittal"]

MAX_ROWS = 8
OVERLAY_ALPHA = 0.45


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


def save_montage(
    rows: Sequence[tuple[str, Sequence[Tile]]],
    path: Path,
    *,
    title: str = "",
    label_names: Mapping[int, str] | None = None,
) -> Path:
    """Render :func:`montage_figure` into one PNG at ``path`` (written atomically)."""
    return save_figure(path, montage_figure(rows, title=title, label_names=label_names))


def montage_figure(
    rows: Sequence[tuple[str, Sequence[Tile]]],
    *,
    title: str = "",
    label_names: Mapping[int, str] | None = None,
) -> Figure:
    """A row per case (at most :data:`MAX_ROWS`), a panel per tile, a legend of the label colours.

    The legend lists the values of ``label_names`` (value -> name) and any other value found in the
    overlays (as ``label V``).
    """
    shown = list(rows)[:MAX_ROWS]
    found = {int(v) for _, tiles in shown for tile in tiles if tile.label is not None for v in np.unique(tile.label)}
    names = {**{v: f"label {v}" for v in sorted(found) if v}, **(label_names or {})}
    colours = label_colours([*names, *found])
    legend = [LegendEntry(f"{value} {name}", colours[value]) for value, name in sorted(names.items()) if value > 0]
    panels = [Row(name, [_panel(tile, colours) for tile in tiles]) for name, tiles in shown]
    return Figure(title, panels, legend, legend_title="labels")


def _panel(tile: Tile, colours: Mapping[int, tuple[int, int, int]]) -> Panel:
    grey = to_rgb_uint8(tile.image, _window(tile.image, tile.window))
    if tile.label is not None:
        grey = blend(grey, colour_values(tile.label, colours), tile.label != 0, OVERLAY_ALPHA)
    return Panel(tile.title, grey, pixel_aspect=tile.pixel_aspect)


def _window(image: np.ndarray, window: tuple[float, float] | None) -> tuple[float, float]:
    """``window``, or a robust one: the 0.5-99.5 percentiles of the non-zero voxels (from 0 for non-negative images)."""
    if window is not None:
        return window
    values = image[image != 0] if np.any(image != 0) else image
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    lo = min(lo, 0.0) if float(image.min()) >= 0 else lo
    return lo, max(hi, lo + 1e-6)
