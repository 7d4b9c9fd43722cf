"""LUNA16-like chest CT phantoms (HU, int16 MetaImage) with lung nodules.

Anatomy: air outside, skin, fat and chest-wall muscle, ribs, sternum and spine, two lungs
(about -850 HU, denser posteriorly) with a tree-like network of vessels thickest near the hila,
heart, aorta and trachea in the mediastinum, liver and spleen under the diaphragm, and 0-3
nodules (3-30 mm spheres with lobulated edges; most solid, some ground-glass). Some scans are
padded with -2048 outside the circular reconstruction field, as many LUNA scans are.

The default shape is a whole chest (:data:`DEFAULT_SHAPE`, voxel sizes from :func:`case_spacing`):
ModelsGenesis cubes (64 x 64 x 32 voxels, 100 voxels in from each side, mostly lung) must fit in it.

Layout written by :func:`write_case`: ``<out>/subset<K>/<seriesuid>.mhd`` + ``.raw`` (cases go to
subset0..subset9 round robin), and :func:`annotation_rows` gives the rows of LUNA's
``annotations.csv`` (``seriesuid,coordX,coordY,coordZ,diameter_mm``; world coordinates in LPS mm,
as ITK reports them).

Example:
    >>> import numpy as np
    >>> ct, nodules, mask = make_chest(np.random.default_rng(0), (48, 48, 32), (0.7, 0.7, 2.5), 1)
    >>> ct.dtype.name, len(nodules), bool(mask.any())
    ('int16', 1, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radiossl.data.phantoms.base import (
    PhantomCase,
    case_rng,
    centred_origin,
    hu_int16,
    lps_affine,
    to_lps_storage,
)
from radiossl.data.phantoms.noise import ct_noise, smooth_field
from radiossl.data.phantoms.preview import Tile, slice_tile
from radiossl.data.phantoms.shapes import (
    Grid,
    cylinder_z,
    ellipsoid,
    paint,
    soft,
    superellipse_xy,
    tube_network,
)

# A whole chest at LUNA-like voxel sizes: 384 columns of 0.78-0.98 mm (a 30-38 cm field of view, so
# the ModelsGenesis view's 100-voxel border still leaves the lungs reachable) and 96 slices of 2.5 mm.
DEFAULT_SHAPE = (384, 384, 96)
FIELD_OF_VIEW_MM = (300.0, 380.0)
IN_PLANE_MM = (0.55, 0.98)
SMALL_IN_PLANE_MM = (0.55, 0.85)
COVERAGE_MM = (200.0, 400.0)
SLICE_MM = (0.625, 1.0, 1.25, 2.5)
LABEL_NAMES: dict[int, str] = {1: "nodule"}
"""Values of the nodule mask drawn in the preview."""
UID_ROOT = "1.3.6.1.4.1.14519.5.2.1.6279.6001"
LUNG_WINDOW = (-1200.0, 400.0)
PADDING_HU = -2048

HU = {
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 45.0,
    "mediastinum": -60.0,
    "blood": 40.0,
    "lung": -850.0,
    "vessel": 30.0,
    "solid": 30.0,
    "ground_glass": -500.0,
    "cortical": 700.0,
    "cancellous": 230.0,
    "liver": 55.0,
}


@dataclass(frozen=True)
class Nodule:
    """A nodule in the canonical grid: centre voxel index and diameter in mm."""

    index: tuple[int, int, int]
    diameter_mm: float


def series_uid(rng: np.random.Generator, index: int) -> str:
    """A LUNA-style DICOM series UID; the last six digits are the case index, so uids never clash."""
    digits = "".join(str(d) for d in rng.integers(0, 10, 24))
    return f"{UID_ROOT}.{int(rng.integers(1, 10))}{digits}{index:06d}"


def case_spacing(rng: np.random.Generator, shape: Sequence[int]) -> tuple[float, float, float]:
    """Per-case voxel size, as varied as in LUNA16, and chosen so that ``shape`` covers a whole chest.

    In-plane: within LUNA's 0.55-0.98 mm, such that the field of view is 300-380 mm; slices: one of
    LUNA's thicknesses that gives a cranio-caudal coverage of 200-400 mm. When ``shape`` is too small
    for that (test-sized phantoms), any LUNA-like spacing (in-plane 0.55-0.85 mm, any thickness).
    """
    columns = max(int(shape[0]), int(shape[1]))
    low = max(IN_PLANE_MM[0], FIELD_OF_VIEW_MM[0] / columns)
    high = min(IN_PLANE_MM[1], FIELD_OF_VIEW_MM[1] / columns)
    if low > high:
        low, high = SMALL_IN_PLANE_MM
    in_plane = round(float(rng.uniform(low, high)), 3)
    covering = [t for t in SLICE_MM if COVERAGE_MM[0] <= t * int(shape[2]) <= COVERAGE_MM[1]]
    return in_plane, in_plane, float(rng.choice(covering or SLICE_MM))


def make_chest(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], nodules: int
) -> tuple[np.ndarray, list[Nodule], np.ndarray]:
    """Draw one chest in the canonical RAS grid: CT in HU (int16), its nodules and their mask."""
    grid = Grid((int(shape[0]), int(shape[1]), int(shape[2])), (spacing[0], spacing[1], spacing[2]))
    x, y, z = grid.axes()
    edge = 1.2 * grid.voxel_units

    body = superellipse_xy(grid, (0.0, -0.04), np.array([0.9, 0.66]) * rng.uniform(0.93, 1.03, 2), 2.2)
    body = body * (1.0 + 0.02 * smooth_field(rng, grid.shape, (3, 3, 2)))
    fat_depth = rng.uniform(0.05, 0.12)
    ct = np.full(grid.shape, HU["air"], np.float32)
    paint(ct, soft(body, 1.0, edge), HU["fat"] + 10.0)
    paint(ct, soft(body, 1.0 - fat_depth, edge), HU["muscle"])
    inner_level = 1.0 - fat_depth - 0.07
    paint(ct, soft(body, inner_level, edge), HU["mediastinum"])

    # Ribs (short arcs in the wall at regular heights), sternum, spine and paraspinal muscles.
    z_mm = z * np.float32(grid.half_extent_mm[2])
    angle = np.arctan2(y + np.float32(0.04), x)
    rib_band = soft(np.abs(body - (inner_level + 0.03)), 0.03, edge)
    rib_z = soft(np.abs(((z_mm / 24.0 + 0.4 * np.cos(angle)) % 1.0) - 0.5), 0.09, 0.05)
    rib_arc = soft(np.abs(np.sin(angle)), 0.97, 0.05) + soft(-np.sin(angle), -0.3, 0.2)
    paint(ct, rib_band * rib_z * np.clip(rib_arc, 0.0, 1.0), HU["cortical"] * 0.75)
    paint(ct, soft(cylinder_z(grid, (0.0, 0.56), (0.08, 0.03)), 1.0, edge), HU["cortical"] * 0.6)
    for side in (-1.0, 1.0):
        paint(ct, soft(cylinder_z(grid, (side * 0.17, -0.55), (0.12, 0.09)), 1.0, edge), HU["muscle"])
    vertebra = cylinder_z(grid, (0.0, -0.42), (0.11, 0.1))
    paint(ct, soft(vertebra, 1.0, edge), HU["cortical"])
    paint(ct, soft(vertebra, 0.8, edge), HU["cancellous"])
    paint(ct, soft(cylinder_z(grid, (0.0, -0.59), (0.045, 0.045)), 1.0, edge), 15.0)

    # Lungs: tapered at the apex, domed at the base; the heart indents the left lung.
    lung_level = np.full(grid.shape, np.inf, np.float32)
    for side in (-1.0, 1.0):
        level = ellipsoid(grid, (side * 0.39, -0.03, 0.05), np.array([0.31, 0.5, 0.98]) * rng.uniform(0.92, 1.05))
        level *= 1.0 + 0.35 * np.clip(z - np.float32(0.45), 0.0, None)
        np.minimum(lung_level, level, out=lung_level)
    lung_level *= 1.0 + 0.03 * smooth_field(rng, grid.shape, (4, 4, 4))
    heart = ellipsoid(grid, (-0.1, 0.14, -0.38), (0.33, 0.3, 0.42))
    lung_level = np.maximum(lung_level, 1.0 + 0.6 * (1.0 - heart))
    lung_w = soft(lung_level, 1.0, 0.05) * soft(body, inner_level, edge)
    parenchyma = HU["lung"] + 25.0 * smooth_field(rng, grid.shape, (10, 10, 8)) + 90.0 * np.clip(-y - 0.2, 0, 1)
    paint(ct, lung_w, parenchyma)

    # Vessels: tubes where two smooth fields vanish, thicker towards the hila.
    hilum = np.minimum(
        ellipsoid(grid, (0.16, 0.0, 0.05), (0.5, 0.5, 0.7)),
        ellipsoid(grid, (-0.16, 0.0, 0.05), (0.5, 0.5, 0.7)),
    )
    radius = 0.22 + 0.4 * np.clip(1.0 - hilum, 0.0, 1.0)
    vessels = tube_network(
        smooth_field(rng, grid.shape, (12, 12, 10)), smooth_field(rng, grid.shape, (12, 12, 10)), radius
    )
    paint(ct, lung_w * soft(vessels, 1.0, 0.5), HU["vessel"])

    # Mediastinum: heart, ascending and descending aorta, trachea; liver and spleen below.
    paint(ct, soft(heart, 1.0, 0.06), HU["blood"])
    paint(ct, soft(cylinder_z(grid, (-0.12, -0.28), (0.06, 0.06)), 1.0, edge), HU["blood"])
    paint(ct, soft(ellipsoid(grid, (0.0, 0.12, 0.15), (0.08, 0.08, 0.3)), 1.0, 0.1), HU["blood"])
    trachea = cylinder_z(grid, (0.0, 0.02), (0.06, 0.055))
    above = soft(-z, -0.3, 0.1)
    paint(ct, soft(trachea, 1.35, edge) * above, HU["muscle"])
    paint(ct, soft(trachea, 1.0, edge) * above, HU["air"])
    paint(ct, soft(ellipsoid(grid, (0.3, 0.0, -1.15), (0.55, 0.5, 0.45)), 1.0, 0.06), HU["liver"])
    paint(ct, soft(ellipsoid(grid, (-0.42, -0.15, -1.05), (0.2, 0.25, 0.3)), 1.0, 0.08), HU["liver"] - 5)

    found: list[Nodule] = []
    mask = np.zeros(grid.shape, bool)
    for _ in range(nodules):
        nodule = _add_nodule(rng, grid, ct, mask, lung_level)
        if nodule is not None:
            found.append(nodule)

    ct += ct_noise(rng, grid.shape, float(rng.uniform(18.0, 32.0)))
    out = hu_int16(ct)
    if rng.random() < 0.3:  # padding outside the circular field of view
        out[np.broadcast_to(x * x + y * y > 1.0, grid.shape)] = PADDING_HU
    return out, found, mask


def _add_nodule(
    rng: np.random.Generator, grid: Grid, ct: np.ndarray, mask: np.ndarray, lung_level: np.ndarray
) -> Nodule | None:
    """Paint one nodule at a random position well inside a lung; return it (None if no room)."""
    inside = np.argwhere(lung_level < 0.8)
    if len(inside) == 0:
        return None
    centre_idx = inside[rng.integers(len(inside))]
    centre = (centre_idx + 0.5) / np.asarray(grid.shape) * 2.0 - 1.0
    # 3-30 mm (log-uniform), but at most about a fifth of the lung's width in small phantoms, and
    # never below 3 mm or 2.5 in-plane voxels.
    diameter = float(np.exp(rng.uniform(np.log(3.0), np.log(30.0))))
    diameter = min(diameter, max(3.0, 0.12 * float(grid.half_extent_mm[:2].min())))
    diameter = max(diameter, 3.0, 2.5 * float(max(grid.spacing[:2])))
    radii = grid.mm_to_units(diameter / 2.0)
    level = ellipsoid(grid, centre, radii) * (1.0 + 0.1 * smooth_field(rng, grid.shape, (14, 14, 14)))
    solid = rng.random() < 0.8
    value = HU["solid"] + rng.uniform(-25, 25) if solid else HU["ground_glass"] + rng.uniform(-100, 100)
    paint(ct, soft(level, 1.0, 0.2), value)
    mask |= level < 1.0
    i, j, k = (int(v) for v in centre_idx)
    return Nodule((i, j, k), round(diameter, 2))


def annotation_rows(uid: str, nodules: Sequence[Nodule], shape: Sequence[int], affine: np.ndarray) -> list[dict]:
    """Rows of LUNA's annotations.csv for nodules given in the canonical grid (world LPS mm)."""
    rows: list[dict] = []
    for nodule in nodules:
        i, j, k = nodule.index
        stored = np.array([shape[0] - 1 - i, shape[1] - 1 - j, k, 1.0])  # canonical -> LPS storage
        ras = affine @ stored
        rows.append(
            {
                "seriesuid": uid,
                "coordX": round(-float(ras[0]), 3),
                "coordY": round(-float(ras[1]), 3),
                "coordZ": round(float(ras[2]), 3),
                "diameter_mm": nodule.diameter_mm,
            }
        )
    return rows


def write_case(
    out: Path, index: int, seed: int, shape: Sequence[int] = DEFAULT_SHAPE, preview: bool = False
) -> PhantomCase:
    """Generate and write LUNA phantom ``index`` into ``subset<index % 10>``."""
    from radiossl.io import write_image

    rng = case_rng(seed, "luna", index)
    uid = series_uid(rng, index)
    spacing = case_spacing(rng, shape)
    count = int(rng.integers(1, 4)) if index == 0 or rng.random() < 0.75 else 0
    ct, nodules, mask = make_chest(rng, shape, spacing, count)
    centre = (rng.uniform(-20.0, 20.0), rng.uniform(150.0, 200.0), rng.uniform(-250.0, -100.0))
    affine = lps_affine(spacing, centred_origin(shape, spacing, centre))
    group = f"subset{index % 10}"
    stored = to_lps_storage(ct)
    files = [write_image(out / group / f"{uid}.mhd", stored, affine=affine)]
    files.append(files[0].with_suffix(".raw"))
    tiles: list[Tile] = []
    if preview:
        mask_s = to_lps_storage(mask.astype(np.uint8))
        tiles = [
            slice_tile("axial", stored, affine, mask_s, title="lung window", window=LUNG_WINDOW, overlay=False),
            slice_tile("axial", stored, affine, mask_s, title="nodules", window=LUNG_WINDOW),
            slice_tile("coronal", stored, affine, mask_s, title="coronal", window=LUNG_WINDOW),
            slice_tile("axial", stored, affine, mask_s, title="mediastinum", window=(-160.0, 240.0), overlay=False),
        ]
    return PhantomCase(uid, group, files, tiles, annotation_rows(uid, nodules, shape, affine))
