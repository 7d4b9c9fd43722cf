"""Models Genesis' non-linear intensity transform: a random monotone Bézier remapping.

Per sample, a cubic Bézier curve through ``(0, 0)``, ``(x1, y1)``, ``(x2, y2)``, ``(1, 1)`` with the
four inner coordinates ~ U(0, 1) is sampled at evenly spaced parameter values. With probability
0.5 the map is increasing (``f(0) = 0``, ``f(1) = 1``: both sample arrays sorted); otherwise only
the x samples are sorted, which pairs them with the y samples in reverse order and gives a
decreasing map (``f(0) = 1``, ``f(1) = 0``, an intensity inversion). Intensities are clamped to
``[0, 1]`` and mapped by linear interpolation on those samples, as ``np.interp`` does.

Speed: per sample, the curve is sampled at 8,193 evenly spaced parameter values and resampled
onto a table of 8,193 evenly spaced intensities (``np.interp`` on CPU); each voxel then costs one
multiply, one floor, two table look-ups and one interpolation, done one sample at a time so that
the table and the scratch arrays stay in cache (on CPU in one compiled pass when Numba is installed,
otherwise in a few NumPy passes; both give the same values). The original sampled 100,000 points; the map
differs from ``np.interp`` on the original's 100,000-point curve by ~1e-7 (median, float32
rounding) and at most ~1.4e-3 where the curve is nearly vertical (measured over 2 x 300 random
curves; the test suite checks a bound of 5e-3). ``n_points`` and ``table_size`` can be raised.

Example:
    >>> import torch
    >>> x = torch.linspace(0, 1, 11).view(1, 1, 11, 1, 1)
    >>> controls = torch.tensor([[0.2, 0.8, 0.6, 0.9]])
    >>> up = bezier_remap(x, controls, torch.tensor([False])).flatten()
    >>> down = bezier_remap(x, controls, torch.tensor([True])).flatten()
    >>> bool((up.diff() >= 0).all()), bool((down.diff() <= 0).all())
    (True, True)
    >>> round(float(up[0]), 3), round(float(down[0]), 3)
    (0.0, 1.0)
"""

from __future__ import annotations

import numpy as np
import torch

from radiossl.transforms import _compiled
from radiossl.transforms._random import check_batch, float64_device
from radiossl.transforms.compose import random_apply

N_POINTS = 8_193
"""Curve samples per transform (the original's ``nTimes`` is 100,000; see the module docstring)."""
TABLE_SIZE = 8_193
"""Evenly spaced intensities at which the sampled curve is tabulated."""


def _bernstein(coefficient1: torch.Tensor, coefficient2: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``3(1-s)²s·c1 + 3(1-s)s²·c2 + s³``: one coordinate of the Bézier from (0, 0) to (1, 1), Horner form."""
    a = 3 * coefficient1 - 3 * coefficient2 + 1
    b = 3 * coefficient2 - 6 * coefficient1
    c = 3 * coefficient1
    return ((a * s + b) * s + c) * s


def bezier_curves(controls: torch.Tensor, n_points: int = N_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``(xs, ys)`` ``[B, n_points]`` (float64) of each curve, in the original's traversal order.

    ``controls[b] = (x1, y1, x2, y2)``. The original's Bernstein weights run from ``(1, 1)`` at the
    first sample to ``(0, 0)`` at the last, so both arrays decrease.
    """
    if controls.dim() != 2 or controls.shape[1] != 4:
        raise ValueError(f"controls must have shape [B, 4] (x1, y1, x2, y2), got {tuple(controls.shape)}")
    c = controls.double()
    t = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64, device=controls.device)
    s = 1.0 - t
    return _bernstein(c[:, 0:1], c[:, 2:3], s), _bernstein(c[:, 1:2], c[:, 3:4], s)


def bezier_tables(
    controls: torch.Tensor,
    inverted: torch.Tensor,
    n_points: int = N_POINTS,
    table_size: int = TABLE_SIZE,
) -> torch.Tensor:
    """``[B, table_size]`` values of each intensity map at ``linspace(0, 1, table_size)``.

    Equal to ``np.interp(grid, sorted xs, paired ys)`` on the ``n_points``-sample curve. Sorting the
    decreasing ``xs`` reverses them, so sorted sample ``k`` sits at parameter ``s_k = k / (n - 1)`` of
    the curve run from (0, 0) to (1, 1); it pairs with ``y(s_k)`` (increasing map) or, when only the
    x samples were sorted, with ``y(1 - s_k)`` (decreasing map). On CPU this is one ``np.interp`` per
    sample; elsewhere only ``x`` is sampled densely and ``y`` is evaluated at the bracketing samples
    of each table entry, for the whole batch at once.
    """
    if table_size < 2 or n_points < 2:
        raise ValueError("n_points and table_size must both be >= 2")
    if controls.dim() != 2 or controls.shape[1] != 4:
        raise ValueError(f"controls must have shape [B, 4] (x1, y1, x2, y2), got {tuple(controls.shape)}")
    if controls.device.type == "cpu":
        return torch.from_numpy(_tables_numpy(controls.double().numpy(), inverted.numpy(), n_points, table_size))
    return _tables(controls, inverted, n_points, table_size)


def _tables(controls: torch.Tensor, inverted: torch.Tensor, n_points: int, table_size: int) -> torch.Tensor:
    c = controls.double()
    s = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64, device=controls.device)
    # Monotone in exact arithmetic; cummax removes rounding wiggles where the curve is flat.
    x_sorted = _bernstein(c[:, 0:1], c[:, 2:3], s).cummax(dim=1).values.contiguous()
    batch = controls.shape[0]
    grid = torch.linspace(0.0, 1.0, table_size, dtype=torch.float64, device=controls.device)
    grid = grid.expand(batch, table_size)
    # searchsorted(x_sorted, grid) by counting: the samples below grid point g are those whose
    # bucket floor(x·(T-1)) is below g (a histogram and a cumulative sum instead of binary searches).
    bucket = (x_sorted * (table_size - 1)).long().clamp_(0, table_size - 1)
    bucket += torch.arange(batch, device=controls.device).unsqueeze(1) * table_size
    below = torch.bincount(bucket.reshape(-1), minlength=batch * table_size).reshape(batch, table_size)
    right = (below.cumsum(dim=1) - below).clamp(1, n_points - 1)
    x0, x1 = x_sorted.gather(1, right - 1), x_sorted.gather(1, right)
    s0, s1 = (right - 1).double() / (n_points - 1), right.double() / (n_points - 1)
    flip = inverted.to(controls.device).view(-1, 1)
    s0, s1 = torch.where(flip, 1.0 - s0, s0), torch.where(flip, 1.0 - s1, s1)
    y0, y1 = _bernstein(c[:, 1:2], c[:, 3:4], s0), _bernstein(c[:, 1:2], c[:, 3:4], s1)
    span = x1 - x0
    frac = torch.where(span > 0, (grid - x0) / torch.where(span > 0, span, torch.ones_like(span)), 1.0)
    return y0 + frac.clamp(0.0, 1.0) * (y1 - y0)


def _bernstein_numpy(coefficient1: float, coefficient2: float, s: np.ndarray) -> np.ndarray:
    a = 3 * coefficient1 - 3 * coefficient2 + 1
    b = 3 * coefficient2 - 6 * coefficient1
    c = 3 * coefficient1
    return ((a * s + b) * s + c) * s


def _tables_numpy(controls: np.ndarray, inverted: np.ndarray, n_points: int, table_size: int) -> np.ndarray:
    """:func:`bezier_tables` on CPU: one ``np.interp`` per sample (linear time on the sorted grid)."""
    s = np.linspace(0.0, 1.0, n_points)
    grid = np.linspace(0.0, 1.0, table_size)
    tables = np.empty((controls.shape[0], table_size))
    for row, (c, flip) in enumerate(zip(controls.tolist(), inverted.tolist(), strict=True)):
        # Monotone in exact arithmetic; the running maximum removes rounding wiggles where it is flat.
        xs = np.maximum.accumulate(_bernstein_numpy(c[0], c[2], s))
        ys = _bernstein_numpy(c[1], c[3], s)
        tables[row] = np.interp(grid, xs, ys[::-1] if flip else ys)
    return tables


def _apply_numpy(x: np.ndarray, tables: np.ndarray, out: np.ndarray) -> None:
    """``out[b] = tables[b](clip(x[b], 0, 1))`` for ``x``, ``out`` ``[B, N]`` and ``tables`` ``[B, T]``.

    With Numba installed, one compiled pass per voxel does the same operations (same results).
    """
    size = tables.shape[1]
    # The last slope is 0, so x = 1 (index T - 1, fraction 0) needs no index clamp.
    slopes = np.diff(tables, axis=1, append=tables[:, -1:])
    kernels = _compiled.kernels()
    if kernels is not None:
        kind = x.dtype.type
        kernels.map_tables(x, tables, slopes, out, kind(0), kind(1), kind(size - 1))
        return
    position = np.empty(x.shape[1], dtype=x.dtype)
    floor = np.empty_like(position)
    index = np.empty(x.shape[1], dtype=np.intp)
    for b in range(x.shape[0]):
        np.clip(x[b], 0.0, 1.0, out=position)
        position *= size - 1
        np.floor(position, out=floor)
        position -= floor
        np.copyto(index, floor, casting="unsafe")
        # mode="clip" is faster than the default bounds check; NaN voxels stay NaN through ``position``.
        np.take(slopes[b], index, out=out[b], mode="clip")
        out[b] *= position
        out[b] += np.take(tables[b], index, mode="clip")


def apply_tables(x: torch.Tensor, tables: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Map each sample's intensities (clamped to ``[0, 1]``) through its table ``[B, T]``, interpolating.

    With ``out`` (shaped like ``x``), the result is written there and ``out`` is returned; on CPU a
    contiguous ``out`` of ``x``'s dtype receives it directly, without an intermediate tensor.
    ``out`` may be ``x`` itself (mapping in place).
    """
    check_batch(x, "apply_tables")
    if out is not None and out.shape != x.shape:
        raise ValueError(f"apply_tables: out has shape {tuple(out.shape)}, x {tuple(x.shape)}")
    batch, size = tables.shape
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        array = x.detach().reshape(batch, -1).contiguous().numpy()
        if out is not None and out.is_contiguous() and out.dtype == x.dtype:
            _apply_numpy(array, tables.to(x.dtype).numpy(), out.numpy().reshape(batch, -1))
            return out
        result = np.empty_like(array)
        _apply_numpy(array, tables.to(x.dtype).numpy(), result)
        mapped = torch.from_numpy(result).reshape(x.shape)
    else:
        position = x.reshape(batch, -1).clamp(0.0, 1.0) * (size - 1)
        index = position.long().clamp_max(size - 2)
        frac = position - index
        flat_index = index + torch.arange(batch, device=x.device).unsqueeze(1) * size
        table = tables.to(x.dtype).reshape(-1)
        low, high = table[flat_index], table[flat_index + 1]
        mapped = (low + frac * (high - low)).reshape(x.shape)
    return mapped if out is None else out.copy_(mapped)


def bezier_remap(
    x: torch.Tensor,
    controls: torch.Tensor,
    inverted: torch.Tensor,
    n_points: int = N_POINTS,
    table_size: int = TABLE_SIZE,
) -> torch.Tensor:
    """Remap sample ``b`` through the curve ``controls[b]`` (decreasing where ``inverted[b]``)."""
    check_batch(x, "bezier_remap")
    if controls.shape[0] != x.shape[0] or inverted.shape != (x.shape[0],):
        raise ValueError("controls must be [B, 4] and inverted [B] for a batch of B samples")
    where = float64_device(x.device)
    tables = bezier_tables(controls.to(where), inverted.to(where), n_points, table_size)
    return apply_tables(x, tables.to(x.device))


class BezierIntensity:
    """Models Genesis' non-linear transform, applied per sample with probability ``p`` (published 0.9).

    Each applied map is decreasing with probability ``inversion_prob`` (0.5).
    """

    def __init__(
        self,
        p: float = 0.9,
        inversion_prob: float = 0.5,
        n_points: int = N_POINTS,
        table_size: int = TABLE_SIZE,
    ) -> None:
        self.p = p
        self.inversion_prob = inversion_prob
        self.n_points = n_points
        self.table_size = table_size

    def _apply(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch = x.shape[0]
        controls = torch.rand(batch, 4, generator=generator, device=x.device)
        inverted = torch.rand(batch, generator=generator, device=x.device) < self.inversion_prob
        return bezier_remap(x, controls, inverted, self.n_points, self.table_size)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_apply(x, self.p, generator, lambda sub: self._apply(sub, generator))

    def __repr__(self) -> str:
        return f"BezierIntensity(p={self.p:g}, inversion_prob={self.inversion_prob:g})"
