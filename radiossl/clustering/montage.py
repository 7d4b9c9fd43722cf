"""PNG montage of crops and their cluster maps: per crop the image, its clusters and their overlay.

Each crop shows its middle axial slice (``[:, :, D // 2]``) of the first channel, with the first
array axis (X) left to right and the second (Y) bottom to top, as an axial view of the RAS-ordered
arrays. Crops are laid out ``per_row`` to a row (a crop pair per row by default), under a title and
above a legend of the cluster colours. Cluster ids have the fixed colours of
:func:`radiossl.utils.figures.palette` (the same as in the ``--vis`` pictures of training runs), so
montages of one set of centroids compare.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.png"
    >>> crop = np.random.rand(1, 16, 16, 4).astype(np.float32)
    >>> labels = (crop[0] > 0.5).astype(np.uint8)
    >>> save_montage(path, [crop], [labels], k=2, title="k-means demo").exists()
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radiossl.utils.figures import (
    Figure,
    Panel,
    Row,
    blend,
    cluster_legend,
    colorize_labels,
    palette,
    render,
    save_png,
    to_rgb_uint8,
)

if TYPE_CHECKING:
    from radiossl.data.processed import SampleRecord


def _axial(volume: np.ndarray) -> np.ndarray:
    """Middle axial slice, displayed with X to the right and Y upwards."""
    return np.flipud(volume[:, :, volume.shape[2] // 2].T)


def _crop_panels(crop: np.ndarray, label: np.ndarray, k: int, name: str, alpha: float) -> list[Panel]:
    """Image | clusters | overlay of one crop."""
    grey = to_rgb_uint8(_axial(np.asarray(crop, dtype=np.float32)[0]))
    ids = np.clip(_axial(np.asarray(label)).astype(np.int64), 0, k - 1)
    clusters = colorize_labels(ids, k)
    overlay = blend(grey, clusters, np.ones(ids.shape, dtype=bool), alpha)
    return [Panel(name, grey), Panel("clusters", clusters, exact=True), Panel("overlay", overlay)]


def montage_figure(
    crops: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    k: int,
    *,
    title: str = "",
    names: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    alpha: float = 0.45,
    per_row: int = 2,
) -> Figure:
    """The montage as a :class:`~radiossl.utils.figures.Figure`.

    ``names`` title each crop's image panel (default ``crop 1``, ``crop 2``, ...); ``row_labels`` label
    the rows of ``per_row`` crops (e.g. the case of a crop pair).
    """
    if len(crops) != len(labels) or not crops:
        raise ValueError("montage needs as many label maps as crops (and at least one)")
    if names is not None and len(names) != len(crops):
        raise ValueError(f"montage got {len(names)} crop names for {len(crops)} crops")
    if per_row < 1:
        raise ValueError(f"montage needs per_row >= 1, got {per_row}")
    k = max(k, 1)
    names = list(names) if names is not None else [f"crop {i + 1}" for i in range(len(crops))]
    rows = []
    for row, start in enumerate(range(0, len(crops), per_row)):
        panels = [
            panel
            for i in range(start, min(start + per_row, len(crops)))
            for panel in _crop_panels(crops[i], labels[i], k, names[i], alpha)
        ]
        label = row_labels[row] if row_labels is not None and row < len(row_labels) else ""
        rows.append(Row(label, panels))
    return Figure(title, rows, cluster_legend(k), legend_title="clusters")


def montage_array(
    crops: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    k: int,
    *,
    title: str = "",
    names: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    alpha: float = 0.45,
    per_row: int = 2,
) -> np.ndarray:
    """:func:`montage_figure` rendered as an RGB uint8 image."""
    figure = montage_figure(
        crops, labels, k, title=title, names=names, row_labels=row_labels, alpha=alpha, per_row=per_row
    )
    return render(figure)


def save_montage(
    path: str | Path,
    crops: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    k: int,
    *,
    title: str = "",
    names: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Write :func:`montage_array` as a PNG (atomically) and return its path.

    ``crops`` are ``(C, H, W, D)`` arrays, ``labels`` the matching ``(H, W, D)`` cluster ids.
    """
    return save_png(path, montage_array(crops, labels, k, title=title, names=names, row_labels=row_labels))


def pair_captions(records: Sequence[SampleRecord]) -> tuple[list[str], list[str]]:
    """Crop names (``view 1``, ``view 2`` per pair) and row labels (case, pair) for a montage of crop pairs."""
    names = [name for _ in records for name in ("view 1", "view 2")]
    row_labels = [f"case {record.case_id}, pair {record.index}" for record in records]
    return names, row_labels


__all__ = ["montage_array", "montage_figure", "pair_captions", "palette", "save_montage"]
