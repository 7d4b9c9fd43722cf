"""Image helpers for ``--vis``, for tasks that build their own pictures.

Tasks return named ``H x W x 3`` uint8 images from ``task.visualise``; the engine writes each to
``<run>/vis/<name>_e<epoch>.png`` and sends the very same array to TensorBoard. :func:`vis_title`
and :func:`batch_case` name what a picture shows (the case of a training sample, the epoch); they
read the training set the engine passes as ``context.extra["train_set"]``. The drawing code lives
in :mod:`radiossl.utils.figures` (titled, upscaled panels with a legend: build a
:class:`~radiossl.utils.figures.Figure` and :func:`~radiossl.utils.figures.render` it); this module
re-exports it under the names plugins have used, and keeps :func:`tile_images`, a bare grid without
text.

Example:
    >>> import numpy as np
    >>> grey = to_rgb_uint8(np.arange(12.0).reshape(3, 4))
    >>> labels = colorize_labels(np.array([[0, 1], [2, 1]]), k=3)
    >>> tile_images([grey, labels], pad=2).shape
    (3, 10, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from radiossl.engine.protocol import StepContext
from radiossl.utils.figures import (
    Figure,
    LegendEntry,
    Panel,
    Row,
    as_rgb_uint8,
    blend,
    cluster_legend,
    colorize_labels,
    figure_title,
    palette,
    region_legend,
    render,
    save_png,
    to_rgb_uint8,
)


def batch_case(batch: Any, context: StepContext, sample: int = 0) -> str | None:
    """Case id of ``sample`` of a training batch, or None where it cannot be known.

    Needs dataset indices in the batch (``batch.index``, as the view datasets and finetuning patches
    carry them) and a training set with ``case_id(index)`` in ``context.extra["train_set"]``.
    """
    indices: Any = getattr(batch, "index", None)
    dataset: Any = context.extra.get("train_set")
    if not hasattr(indices, "reshape") or not callable(getattr(dataset, "case_id", None)):
        return None
    flat = indices.reshape(-1)
    if not 0 <= sample < len(flat):
        return None
    try:
        return str(dataset.case_id(int(flat[sample])))
    except (IndexError, KeyError):
        return None


def vis_title(subject: str, batch: Any, context: StepContext, sample: int = 0) -> str:
    """``"subject | case ID | epoch E/N"`` for a picture of ``sample`` (epochs counted from 1, as in file names)."""
    return figure_title(
        subject, case=batch_case(batch, context, sample), epoch=context.epoch + 1, total_epochs=context.total_epochs
    )


def restoration_picture(title: str, corrupted: Any, target: Any, restored: Any, z: int) -> np.ndarray:
    """Three titled grey panels of ``[H, W, D]`` volumes at slice ``z``: corrupted input, target, restoration."""
    panels = [
        Panel(f"corrupted input (z={z})", to_rgb_uint8(corrupted[:, :, z])),
        Panel("target", to_rgb_uint8(target[:, :, z])),
        Panel("restoration", to_rgb_uint8(restored[:, :, z])),
    ]
    return render(Figure(title, [Row("", panels)]))


def tile_images(images: Sequence[Any] | Sequence[Sequence[Any]], pad: int = 2, ncols: int | None = None) -> np.ndarray:
    """Tile images into one ``H x W x 3`` uint8 image with white ``pad``-pixel gaps (no titles, no scaling).

    ``images`` is either a flat sequence (one row, or rows of ``ncols``) or a sequence of rows.
    Images of different sizes are top-left aligned in cells of the largest size. For pictures people
    look at, prefer a :class:`Figure`.
    """
    if len(images) == 0:
        raise ValueError("tile_images needs at least one image")
    nested = isinstance(images[0], (list, tuple))
    if nested:
        rows = [[as_rgb_uint8(img) for img in row] for row in images]  # type: ignore[union-attr]
    else:
        flat = [as_rgb_uint8(img) for img in images]
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


__all__ = [
    "Figure",
    "LegendEntry",
    "Panel",
    "Row",
    "as_rgb_uint8",
    "batch_case",
    "blend",
    "cluster_legend",
    "colorize_labels",
    "figure_title",
    "palette",
    "region_legend",
    "render",
    "restoration_picture",
    "save_png",
    "tile_images",
    "to_rgb_uint8",
    "vis_title",
]
