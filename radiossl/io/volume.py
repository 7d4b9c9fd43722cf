"""The :class:`Volume` type: a 3-D voxel array together with its voxel-to-world affine.

Axis order and world convention are fixed for the whole package, so that nibabel and SimpleITK
files can be mixed without flipped or transposed predictions:

* ``array`` is indexed ``(i, j, k)``: the voxel index order of NIfTI and ITK (x, y, z), slice axis
  last. This is nibabel's array order and SimpleITK's ``GetArrayFromImage`` transposed.
* ``affine`` is the 4x4 matrix that maps ``(i, j, k, 1)`` to RAS+ world coordinates in mm (the
  nibabel convention; ITK's LPS geometry is converted on read and write).
* ``spacing``, ``origin`` and ``direction`` are derived from ``affine`` and use the same axis order.

Example:
    >>> import numpy as np
    >>> vol = Volume(np.zeros((4, 5, 6), np.float32), np.diag([0.8, 0.8, 2.5, 1.0]))
    >>> vol.shape, vol.spacing
    ((4, 5, 6), (0.8, 0.8, 2.5))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image: ``array`` indexed (i, j, k), ``affine`` voxel -> RAS+ mm, and its source ``path``."""

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3-D, got shape {self.array.shape}")
        affine = np.asarray(self.affine, dtype=np.float64)
        check_affine(affine)
        object.__setattr__(self, "affine", affine)
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(I, J, K)``."""
        i, j, k = self.array.shape
        return int(i), int(j), int(k)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (column norms of the affine's 3x3 part)."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[0]), float(norms[1]), float(norms[2])

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS+ world position (mm) of the centre of voxel (0, 0, 0)."""
        t = self.affine[:3, 3]
        return float(t[0]), float(t[1]), float(t[2])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the RAS+ unit vectors of the i, j, k axes."""
        return self.affine[:3, :3] / np.linalg.norm(self.affine[:3, :3], axis=0)

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume with the same geometry and a new array of the same shape (e.g. a prediction)."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {tuple(array.shape)} does not match volume shape {self.shape}")
        return Volume(array, self.affine.copy(), None)


def check_affine(affine: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``affine`` is a finite 4x4 matrix with an invertible 3x3 part."""
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
    if not np.all(np.isfinite(affine)):
        raise ValueError("affine contains non-finite values")
    if not np.allclose(affine[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"affine's last row must be [0, 0, 0, 1], got {affine[3].tolist()}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("affine's 3x3 part is singular (zero voxel size or degenerate axes)")


def affine_from_geometry(
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """Build a voxel -> RAS+ affine from spacing, origin and direction (columns = axis unit vectors).

    Example:
        >>> affine_from_geometry((1.0, 2.0, 3.0), (10.0, 0.0, 0.0))[:3].tolist()
        [[1.0, 0.0, 0.0, 10.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]]
    """
    rot = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = rot * np.asarray(spacing, dtype=np.float64)[None, :]
    affine[:3, 3] = origin
    return affine
