"""Conversion between ITK geometry (LPS origin/spacing/direction) and a voxel -> RAS+ affine.

ITK maps a voxel index to LPS world coordinates with ``origin + direction @ diag(spacing) @ index``.
RAS+ differs from LPS by the sign of the first two world axes, so the affine is
``diag(-1, -1, 1) @ [direction @ diag(spacing) | origin]``.

Example:
    >>> import numpy as np
    >>> aff = affine_from_itk((1.0, 2.0, 3.0), (5.0, 6.0, 7.0), np.eye(3).ravel())
    >>> aff[:3].tolist()
    [[-1.0, 0.0, 0.0, -5.0], [0.0, -2.0, 0.0, -6.0], [0.0, 0.0, 3.0, 7.0]]
    >>> itk_from_affine(aff)[0]
    (1.0, 2.0, 3.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_from_itk(
    spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Voxel -> RAS+ affine from ITK spacing, origin and row-major 3x3 direction (all in LPS)."""
    rot = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ rot @ np.diag(np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=np.float64)
    return affine


def itk_from_affine(
    affine: np.ndarray,
) -> tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, ...]]:
    """ITK ``(spacing, origin, row-major direction)`` in LPS for a voxel -> RAS+ affine."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)[:3, :]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    rot = lps[:, :3] / spacing[None, :]
    sx, sy, sz = (float(v) for v in spacing)
    ox, oy, oz = (float(v) for v in lps[:, 3])
    return (sx, sy, sz), (ox, oy, oz), tuple(float(v) for v in rot.ravel())
