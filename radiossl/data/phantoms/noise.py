"""Random fields and scanner noise for the phantoms: smooth fields, bias fields, Rician and CT noise.

All functions are vectorised. A smooth field is a tensor product of small Gaussian interpolation
matrices applied to a coarse random grid, so a 240x240x155 field costs a few matrix products rather
than a 3-D convolution.

Example:
    >>> import numpy as np
    >>> f = smooth_field(np.random.default_rng(0), (32, 32, 16), cells=4)
    >>> f.shape, f.dtype.name, bool(abs(float(f.std()) - 1.0) < 0.1)
    ((32, 32, 16), 'float32', True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _interpolation_matrix(n: int, cells: int) -> np.ndarray:
    """(n, cells + 3) weights of control points (spaced 2/cells apart over [-1, 1]) for n voxel centres."""
    step = 2.0 / cells
    controls = np.linspace(-1.0 - step, 1.0 + step, cells + 3)
    positions = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    weights = np.exp(-0.5 * ((positions[:, None] - controls[None, :]) / (0.6 * step)) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def smooth_field(rng: np.random.Generator, shape: Sequence[int], cells: int | Sequence[int] = 4) -> np.ndarray:
    """A random smooth float32 field of ``shape`` with zero mean and unit standard deviation.

    ``cells`` is the number of independent bumps along each axis (one int or one per axis).
    """
    cells_3 = (cells,) * 3 if isinstance(cells, int) else tuple(cells)
    cells_3 = tuple(max(1, int(c)) for c in cells_3)
    coarse = rng.standard_normal(tuple(c + 3 for c in cells_3))
    wx, wy, wz = (_interpolation_matrix(int(n), c) for n, c in zip(shape, cells_3, strict=True))
    # Contract the smallest axes first; the full-size array is only created in the last product.
    field = np.einsum("abc,kc->abk", coarse, wz)
    field = np.einsum("abk,jb->ajk", field, wy)
    field = np.tensordot(wx.astype(np.float32), field.astype(np.float32), axes=(1, 0))
    # Normalise with statistics of a strided subsample: as good, and much cheaper on large grids.
    sample = field[::3, ::3, ::3]
    mean, std = float(sample.mean()), float(sample.std())
    field -= np.float32(mean)
    if std > 0:
        field *= np.float32(1.0 / std)
    return field


def cells_for(shape: Sequence[int], feature_voxels: float, minimum: int = 2) -> tuple[int, int, int]:
    """Cells per axis so that features are about ``feature_voxels`` wide (at least ``minimum`` cells)."""
    c = [max(minimum, round(int(n) / feature_voxels)) for n in shape]
    return c[0], c[1], c[2]


def bias_field(rng: np.random.Generator, shape: Sequence[int], strength: float = 0.15) -> np.ndarray:
    """A smooth multiplicative MRI bias field, about ``exp(+-strength)``."""
    return np.exp(strength * smooth_field(rng, shape, cells=2)).astype(np.float32)


def rician_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude-MRI noise: ``|image + n1 + i n2|`` with Gaussian ``n1, n2`` of std ``sigma``."""
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)


def ct_noise(rng: np.random.Generator, shape: Sequence[int], sigma_hu: float) -> np.ndarray:
    """CT quantum noise in HU: white noise plus a weaker smooth (correlated) part."""
    white = rng.standard_normal(tuple(shape), dtype=np.float32)
    correlated = smooth_field(rng, shape, cells=cells_for(shape, 3.0))
    return sigma_hu * (0.85 * white + 0.5 * correlated)


def smooth_field_at(rng: np.random.Generator, points: np.ndarray, cells: int) -> np.ndarray:
    """A random smooth field (unit std) evaluated at ``points`` (N, 3) with coordinates in [-1.5, 1.5].

    The field is drawn on a small grid with ``cells`` bumps per unit length and interpolated
    trilinearly, so it can be sampled at arbitrary positions (e.g. projected onto a sphere).
    """
    n = max(4, 4 * int(cells)) * 3 // 2 * 2 + 1
    grid = smooth_field(rng, (n, n, n), cells=3 * int(cells))
    coords = (np.clip(points, -1.5, 1.5) + 1.5) / 3.0 * (n - 1)
    base = np.minimum(np.floor(coords).astype(np.int64), n - 2)
    frac = (coords - base).astype(np.float32)
    out = np.zeros(len(points), np.float32)
    for corner in range(8):
        offs = [(corner >> axis) & 1 for axis in range(3)]
        weight = np.ones(len(points), np.float32)
        for axis, o in enumerate(offs):
            weight *= frac[:, axis] if o else 1.0 - frac[:, axis]
        out += weight * grid[base[:, 0] + offs[0], base[:, 1] + offs[1], base[:, 2] + offs[2]]
    return out
