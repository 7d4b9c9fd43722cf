"""Pieces shared by the phantom generators: per-case random streams, storage orientation, results.

Each generator draws its anatomy in a canonical RAS grid (see :mod:`.shapes`) and stores it the way
the real data sets do: with the first two voxel axes pointing Left and Posterior (LPS storage, as in
DICOM-derived NIfTI and MetaImage files), described by the affine.

Example:
    >>> import numpy as np
    >>> canonical = np.zeros((4, 4, 2), np.int16); canonical[3, 0, 0] = 1   # right-most, posterior voxel
    >>> stored, affine = to_lps_storage(canonical), lps_affine((1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    >>> int(stored[0, 3, 0]), affine[:3, :3].diagonal().tolist()
    (1, [-1.0, -1.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radiossl.data.phantoms.preview import Tile
from radiossl.utils.seeding import rng_for


@dataclass
class PhantomCase:
    """One written case: its id, group (HGG/LGG, train/val, subsetK, imagesTr/imagesTs) and files.

    ``tiles`` are its preview slices (empty unless a preview was asked for); ``annotations`` are rows
    of a data-set level table (e.g. LUNA nodule positions).
    """

    case_id: str
    group: str
    files: list[Path]
    tiles: list[Tile] = field(default_factory=list)
    annotations: list[dict[str, str | float]] = field(default_factory=list)


def case_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """The random stream of case ``index`` of ``kind``: independent of how many cases are made."""
    return rng_for(seed, "phantom", kind, index)


def to_lps_storage(canonical: np.ndarray) -> np.ndarray:
    """Flip a RAS-ordered array (axes Right, Anterior, Superior) into LPS storage order."""
    return np.ascontiguousarray(canonical[::-1, ::-1, :])


def lps_affine(spacing: Sequence[float], origin_ras: Sequence[float] | np.ndarray) -> np.ndarray:
    """Voxel -> RAS+ affine of an LPS-stored array; ``origin_ras`` is the world position of voxel 0."""
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-float(spacing[0]), -float(spacing[1]), float(spacing[2])])
    affine[:3, 3] = [float(v) for v in origin_ras]
    return affine


def centred_origin(shape: Sequence[int], spacing: Sequence[float], centre_ras: Sequence[float]) -> np.ndarray:
    """RAS+ position of stored voxel (0, 0, 0) so that the volume centre lies at ``centre_ras``."""
    half = (np.asarray(shape, np.float64) - 1.0) / 2.0 * np.asarray(spacing, np.float64)
    return np.asarray(centre_ras, np.float64) + half * np.array([1.0, 1.0, -1.0])


def hu_int16(image: np.ndarray, low: float = -1024.0, high: float = 3071.0) -> np.ndarray:
    """Round a float image in HU to int16 within the usual CT range."""
    return np.clip(np.rint(image), low, high).astype(np.int16)
