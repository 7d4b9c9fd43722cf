"""Geometry for the phantoms: a normalised voxel grid, ellipsoid level functions and soft masks.

Anatomy is drawn in a canonical grid whose axes point patient Right, Anterior and Superior (RAS),
with coordinates normalised to [-1, 1] over the field of view along each axis. A *level* function
is below 1 inside a shape and grows with distance from its centre; :func:`soft` turns it into a
partial-volume weight in [0, 1] so that edges are smooth like in a real scan.

Example:
    >>> grid = Grid((20, 20, 10), (1.0, 1.0, 2.0))
    >>> level = ellipsoid(grid, (0.0, 0.0, 0.0), (0.5, 0.5, 0.5))
    >>> bool(level[10, 10, 5] < 1.0), bool(level[0, 0, 0] > 1.0)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Three coordinates or lengths: a tuple/list or a NumPy array.
Vec3 = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape``, voxel ``spacing`` in mm, and broadcastable normalised coordinates."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def half_extent_mm(self) -> np.ndarray:
        """Half the field of view along each axis, in mm."""
        return np.asarray(self.shape, np.float64) * np.asarray(self.spacing, np.float64) / 2.0

    @property
    def voxel_units(self) -> float:
        """The mean voxel size in normalised units (2 / shape)."""
        return float(np.mean(2.0 / np.asarray(self.shape, np.float64)))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised voxel-centre coordinates shaped (X,1,1), (1,Y,1), (1,1,Z), float32."""
        out = []
        for axis, n in enumerate(self.shape):
            c = ((np.arange(n, dtype=np.float32) + 0.5) / n * 2.0 - 1.0).astype(np.float32)
            view = [1, 1, 1]
            view[axis] = n
            out.append(c.reshape(view))
        return out[0], out[1], out[2]

    def mm_to_units(self, mm: float | Sequence[float]) -> np.ndarray:
        """Convert a length (or per-axis lengths) in mm into normalised units along each axis."""
        return np.broadcast_to(np.asarray(mm, np.float64), (3,)) / self.half_extent_mm

    def units_to_index(self, point: Sequence[float]) -> tuple[int, int, int]:
        """Nearest voxel index of a point given in normalised units."""
        idx = [
            int(np.clip(np.floor((float(p) + 1.0) / 2.0 * n), 0, n - 1)) for p, n in zip(point, self.shape, strict=True)
        ]
        return idx[0], idx[1], idx[2]


def ellipsoid(
    grid: Grid,
    centre: Vec3,
    radii: Vec3,
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Level function of an (optionally rotated) ellipsoid: ``sqrt(sum(((p - c) / r) ** 2))``.

    ``centre`` and ``radii`` are in normalised units; ``rotation`` (3x3) maps shape axes to grid axes.
    """
    x, y, z = grid.axes()
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    if rotation is None:
        rx, ry, rz = (np.float32(r) for r in radii)
        # Only the last sum is full size: the per-axis terms are 1-D broadcasts.
        total = ((dx / rx) ** 2 + (dy / ry) ** 2) + (dz / rz) ** 2
        return np.sqrt(total, out=total)
    rot = np.asarray(rotation, np.float32)
    total = np.zeros(grid.shape, np.float32)
    for axis in range(3):
        # Coordinate along the shape's own axis `axis` = column `axis` of the rotation, dotted with d.
        u = (rot[0, axis] * dx + rot[1, axis] * dy) + rot[2, axis] * dz
        u *= np.float32(1.0 / radii[axis])
        u *= u
        total += u
    return np.sqrt(total, out=total)


def superellipse_xy(grid: Grid, centre: Vec3, radii: Vec3, power: float = 2.5) -> np.ndarray:
    """Level function of an axial (x-y) superellipse extruded along z: a boxy body cross-section.

    Shape ``(X, Y, 1)``: the same in every slice, it broadcasts against the grid (and costs one slice).
    """
    x, y, _ = grid.axes()
    ax = np.abs((x - np.float32(centre[0])) / np.float32(radii[0]))
    ay = np.abs((y - np.float32(centre[1])) / np.float32(radii[1]))
    level = (ax**power + ay**power) ** (1.0 / power)
    return level.astype(np.float32)


def cylinder_z(grid: Grid, centre_xy: Vec3, radii_xy: Vec3) -> np.ndarray:
    """Level function of an elliptic cylinder along z, of shape ``(X, Y, 1)`` (broadcasts to the grid)."""
    x, y, _ = grid.axes()
    level = np.sqrt(
        ((x - np.float32(centre_xy[0])) / np.float32(radii_xy[0])) ** 2
        + ((y - np.float32(centre_xy[1])) / np.float32(radii_xy[1])) ** 2
    )
    return level.astype(np.float32)


def soft(level: np.ndarray, threshold: float | np.ndarray = 1.0, width: float = 0.05) -> np.ndarray:
    """Partial-volume weight of ``level < threshold``: 1 inside, 0 outside, a linear ramp of ``width``."""
    w = np.subtract(np.asarray(threshold, np.float32), level, dtype=np.float32)
    w *= np.float32(1.0 / width)
    w += np.float32(0.5)
    return np.clip(w, 0.0, 1.0, out=w)


def union(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Voxel-wise maximum of several weights (without stacking them into one big array)."""
    out = np.array(weights[0], dtype=np.float32, copy=True)
    for w in weights[1:]:
        np.maximum(out, w, out=out)
    return out


def paint(image: np.ndarray, weight: np.ndarray, value: float | np.ndarray) -> None:
    """Composite ``value`` over ``image`` in place with opacity ``weight`` (partial volume)."""
    image += weight * (np.asarray(value, np.float32) - image)


def random_rotation(rng: np.random.Generator, max_angle: float = np.pi) -> np.ndarray:
    """A random 3x3 rotation about a random axis by an angle in [-max_angle, max_angle]."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def tube_network(field_a: np.ndarray, field_b: np.ndarray, radius: float | np.ndarray) -> np.ndarray:
    """Level function of a random network of tubes: where two smooth fields are both near zero.

    The zero set of one smooth field is a surface; the intersection of two is a set of curves, so
    ``sqrt(a**2 + b**2) / radius`` is below 1 inside curvy tubes (vessels).
    """
    return (np.sqrt(field_a * field_a + field_b * field_b) / np.asarray(radius, np.float32)).astype(np.float32)
