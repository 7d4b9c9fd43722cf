"""Segmentation metrics on binary masks: Dice and the percentile Hausdorff distance in millimetres.

Pure NumPy/SciPy. Every metric takes one region's boolean masks (X, Y, Z) and the voxel spacing in
mm (same axis order), and follows one explicit, documented policy for empty masks
(:class:`EmptyPolicy`):

=========================  ===========================  ============================================
ground truth / prediction  Dice                         HD95
=========================  ===========================  ============================================
both non-empty             2|P∩G| / (|P|+|G|)           max of the two directed 95th percentiles
both empty                 1.0 (``both_empty="nan"``:   0.0 (``both_empty="nan"``: NaN)
                           NaN)
exactly one empty          0.0                          the image diagonal in mm (worst possible
                                                        distance inside the image; configurable:
                                                        NaN or inf)
=========================  ===========================  ============================================

Surfaces are the mask voxels with at least one face-neighbour outside the mask (voxels outside the
image count as outside), and distances are Euclidean distances between surface voxel centres —
the definition MONAI's ``HausdorffDistanceMetric`` uses, so non-empty cases agree with it.

Example:
    >>> import numpy as np
    >>> a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True
    >>> b = np.zeros_like(a); b[2:6, 2:6, 3:7] = True
    >>> round(dice(a, b), 3), hausdorff(a, b, spacing=(1.0, 1.0, 2.0))
    (0.75, 2.0)
    >>> dice(np.zeros_like(a), np.zeros_like(a)), hausdorff(a, np.zeros_like(a), (1.0, 1.0, 1.0))
    (1.0, 13.856406460551018)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class EmptyPolicy:
    """What Dice and HD95 are when the ground truth and/or the prediction is empty.

    ``both_empty``: ``"perfect"`` (Dice 1, HD 0: nothing to find and nothing found) or ``"nan"`` (the
    case is left out of that region's mean). ``one_empty_hd``: ``"diagonal"`` (the image diagonal in
    mm, a finite worst case that keeps means finite), ``"nan"`` or ``"inf"``. Dice is 0 when exactly
    one mask is empty, whatever the policy.
    """

    both_empty: Literal["perfect", "nan"] = "perfect"
    one_empty_hd: Literal["diagonal", "nan", "inf"] = "diagonal"


DEFAULT_POLICY = EmptyPolicy()


def _as_bool(mask: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        array = array > 0.5 if array.dtype.kind == "f" else array != 0
    if array.ndim == 0:
        raise ValueError(f"{name} must be an array, got a scalar")
    return array


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = _as_bool(pred, "prediction"), _as_bool(gt, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground-truth shape {g.shape}")
    return p, g


def dice(pred: np.ndarray, gt: np.ndarray, policy: EmptyPolicy = DEFAULT_POLICY) -> float:
    """Hard Dice ``2|P∩G| / (|P|+|G|)`` of two masks (bool, integer != 0, or float > 0.5)."""
    p, g = _check_pair(pred, gt)
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0 if policy.both_empty == "perfect" else math.nan
    return 2.0 * int(np.logical_and(p, g).sum()) / total


def soft_dice(prob: np.ndarray, target: np.ndarray, smooth: float = 1e-5) -> float:
    """The thesis' soft Dice ``(2Σpt + s) / (Σp + Σt + s)`` of probabilities and a binary target (§7.3)."""
    p = np.asarray(prob, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"probability shape {p.shape} differs from target shape {t.shape}")
    return float((2.0 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth))


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the diagonal of an image of ``shape`` voxels with ``spacing`` mm."""
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def surface(mask: np.ndarray) -> np.ndarray:
    """Boolean surface of a mask: voxels with a face-neighbour outside the mask or the image."""
    from scipy import ndimage

    m = _as_bool(mask, "mask")
    if not m.any():
        return m.copy()
    eroded = ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(m.ndim, 1), border_value=0)
    return m & ~eroded


def surface_distances(from_mask: np.ndarray, to_mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distances in mm from each surface voxel of ``from_mask`` to the nearest surface voxel of ``to_mask``.

    Both masks must be non-empty. The distance transform runs on the bounding box of both surfaces
    (plus a margin), which is exact because the nearest surface voxel always lies inside it.
    """
    from scipy import ndimage

    a, b = _check_pair(from_mask, to_mask)
    sa, sb = surface(a), surface(b)
    if not sa.any() or not sb.any():
        raise ValueError("surface_distances needs two non-empty masks")
    both = sa | sb
    coords = np.argwhere(both)
    lo = np.maximum(coords.min(axis=0) - 1, 0)
    hi = np.minimum(coords.max(axis=0) + 2, np.asarray(both.shape))
    box = tuple(slice(int(l_), int(h_)) for l_, h_ in zip(lo, hi, strict=True))
    distance_to_b = ndimage.distance_transform_edt(~sb[box], sampling=tuple(float(s) for s in spacing))
    return np.asarray(distance_to_b[sa[box]], dtype=np.float64)


def hausdorff(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    percentile: float = 95.0,
    policy: EmptyPolicy = DEFAULT_POLICY,
) -> float:
    """Symmetric percentile Hausdorff distance in mm (``percentile=100``: the classical maximum).

    The larger of the two directed ``percentile``-th distances (prediction → truth and truth →
    prediction), with linear interpolation between distances. Empty masks follow ``policy``.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    p, g = _check_pair(pred, gt)
    if len(spacing) != p.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match a {p.ndim}-D mask")
    p_any, g_any = bool(p.any()), bool(g.any())
    if not p_any and not g_any:
        return 0.0 if policy.both_empty == "perfect" else math.nan
    if p_any != g_any:
        if policy.one_empty_hd == "diagonal":
            return image_diagonal(p.shape, spacing)
        return math.nan if policy.one_empty_hd == "nan" else math.inf
    forward = surface_distances(p, g, spacing)
    backward = surface_distances(g, p, spacing)
    return float(max(np.percentile(forward, percentile), np.percentile(backward, percentile)))


@dataclass(frozen=True)
class RegionScore:
    """Metrics of one region of one case."""

    region: str
    dice: float
    hd: float
    gt_voxels: int
    pred_voxels: int


def score_regions(
    pred: np.ndarray,
    gt: np.ndarray,
    region_names: Sequence[str],
    spacing: Sequence[float],
    percentile: float = 95.0,
    policy: EmptyPolicy = DEFAULT_POLICY,
) -> list[RegionScore]:
    """Dice and HD per region of ``(R, X, Y, Z)`` prediction and ground-truth masks."""
    p, g = _check_pair(pred, gt)
    if p.shape[0] != len(region_names):
        raise ValueError(f"{p.shape[0]} mask channels but {len(region_names)} region names")
    return [
        RegionScore(
            region=name,
            dice=dice(p[r], g[r], policy),
            hd=hausdorff(p[r], g[r], spacing, percentile, policy),
            gt_voxels=int(g[r].sum()),
            pred_voxels=int(p[r].sum()),
        )
        for r, name in enumerate(region_names)
    ]


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, population standard deviation and count of the values that are not NaN (inf stays in)."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan, 0
    if not np.isfinite(array).all():
        return float(array.sum()), math.nan, int(array.size)
    return float(array.mean()), float(array.std()), int(array.size)
