"""Fixtures for the image I/O tests: an oblique affine and a small random volume."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from three angles in radians (x, then y, then z)."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def oblique_affine(
    angles: tuple[float, float, float],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
) -> np.ndarray:
    """A voxel -> world affine with a rotation and anisotropic spacing."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(*angles) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.fixture
def make_affine() -> Callable[..., np.ndarray]:
    """The :func:`oblique_affine` factory, for tests that draw their own geometry."""
    return oblique_affine


@pytest.fixture
def oblique() -> np.ndarray:
    return oblique_affine((0.3, -0.2, 0.5), (0.7, 1.3, 2.5), (12.5, -40.0, 7.25))


@pytest.fixture
def int_volume() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(-1024, 3000, size=(6, 7, 5)).astype(np.int16)
