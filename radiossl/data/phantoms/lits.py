"""LiTS-like abdominal CT phantoms (HU) with liver (label 1) and liver tumour (label 2) masks.

Anatomy: air outside the body, skin and subcutaneous fat, an abdominal muscle wall with
paraspinal muscles, visceral fat and bowel with gas, the liver (two lobes, contrast-enhanced
vessels) with hypodense lesions, spleen, stomach with a gas cap, kidneys, aorta and IVC, a spine
(cortical and cancellous bone, discs, spinal canal) and ribs in the upper slices. Spacing is
anisotropic and differs per case, like the real data.

Layout written by :func:`write_case` (the thesis' split of LiTS 2017): ``<out>/<train|val>/ct/volume-N.nii``
and ``<out>/<train|val>/seg/segmentation-N.nii``. See :func:`split_of` for the validation rule.

Example:
    >>> import numpy as np
    >>> ct, seg = make_abdomen(np.random.default_rng(0), (48, 40, 24), (0.8, 0.8, 2.5), lesions=2)
    >>> ct.dtype.name, sorted(np.unique(seg).tolist())
    ('int16', [0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
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

# 128 columns (77-115 mm at 0.6-0.9 mm): after resampling to 1 mm and the cluster view's 0.75 in-plane
# zoom the slab is still about as wide as the default 64 x 64 crop, so crops are not mostly padding.
DEFAULT_SHAPE = (128, 128, 32)
LABEL_NAMES: dict[int, str] = {1: "liver", 2: "tumour"}
"""Label values, for the preview legend."""
VAL_RANGE = range(28, 48)  # volumes 28-47 are the validation set of the thesis
WINDOW = (-160.0, 240.0)  # abdominal soft-tissue window for the preview

HU = {
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 50.0,
    "liver": 60.0,
    "vessel": 160.0,
    "lesion": 20.0,
    "lung": -850.0,
    "spleen": 55.0,
    "kidney": 150.0,
    "medulla": 60.0,
    "aorta": 180.0,
    "ivc": 130.0,
    "bowel": 35.0,
    "fluid": 10.0,
    "cortical": 700.0,
    "cancellous": 250.0,
    "disc": 80.0,
    "rib": 500.0,
}


def case_id(index: int) -> str:
    """LiTS-style volume name of phantom ``index``."""
    return f"volume-{index}"


def split_of(index: int, cases: int) -> str:
    """``"val"`` for volumes 28-47 (the thesis split); if none of the cases falls there and there are
    at least two cases, the last one is the validation case instead, so a small set still has one."""
    if any(i in VAL_RANGE for i in range(cases)):
        return "val" if index in VAL_RANGE else "train"
    return "val" if cases >= 2 and index == cases - 1 else "train"


def case_spacing(rng: np.random.Generator) -> tuple[float, float, float]:
    """Per-case voxel size: in-plane 0.6-0.9 mm, slices 1-2.5 mm (both vary in LiTS)."""
    in_plane = round(float(rng.uniform(0.6, 0.9)), 3)
    return in_plane, in_plane, float(rng.choice([1.0, 1.5, 2.0, 2.5]))


def make_abdomen(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], lesions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one abdomen in the canonical RAS grid: CT in HU (int16) and labels (uint8, 0/1/2)."""
    grid = Grid((int(shape[0]), int(shape[1]), int(shape[2])), (spacing[0], spacing[1], spacing[2]))
    x, y, z = grid.axes()
    edge = 1.2 * grid.voxel_units

    body_r = np.array([0.86, 0.64]) * rng.uniform(0.92, 1.04, 2)
    body = superellipse_xy(grid, (0.0, -0.06), body_r, power=2.4)
    body = body * (1.0 + 0.03 * smooth_field(rng, grid.shape, (3, 3, 2)))
    fat_depth = rng.uniform(0.06, 0.14)
    ct = np.full(grid.shape, HU["air"], np.float32)
    paint(ct, soft(body, 1.0, edge), HU["fat"] + 10.0)  # skin blends into the fat layer
    paint(ct, soft(body, 1.0 - fat_depth, edge), HU["muscle"])
    inner = soft(body, 1.0 - fat_depth - 0.05, edge)
    paint(ct, inner, HU["fat"])
    for side in (-1.0, 1.0):  # paraspinal muscles
        paint(ct, soft(cylinder_z(grid, (side * 0.16, -0.55), (0.13, 0.1)), 1.0, edge), HU["muscle"])

    # Bowel loops with gas in the lower and anterior abdomen.
    loops = smooth_field(rng, grid.shape, (8, 8, 5))
    gas = smooth_field(rng, grid.shape, (10, 10, 6))
    bowel_region = inner * soft(-y, 0.15, 0.3) * soft(z, 0.3, 0.3)
    paint(ct, bowel_region * soft(-loops, 0.2, 0.6), HU["bowel"])
    paint(ct, bowel_region * soft(-gas, -1.6, 0.3), HU["air"])

    # Spine with cortical shell, cancellous core, discs and spinal canal.
    vertebra = cylinder_z(grid, (0.0, -0.42), (0.12, 0.1))
    disc_period_mm = 28.0
    z_mm = z * np.float32(grid.half_extent_mm[2])
    disc = soft(np.abs(((z_mm / disc_period_mm) % 1.0) - 0.5), 0.1, 0.05)
    paint(ct, soft(vertebra, 1.0, edge), HU["cortical"])
    paint(ct, soft(vertebra, 0.8, edge), HU["cancellous"])
    paint(ct, soft(vertebra, 1.0, edge) * disc, HU["disc"])
    paint(ct, soft(cylinder_z(grid, (0.0, -0.6), (0.05, 0.05)), 1.0, edge), HU["fluid"])
    paint(ct, soft(cylinder_z(grid, (0.0, -0.73), (0.03, 0.09)), 1.0, edge), HU["cortical"] * 0.8)
    paint(ct, soft(cylinder_z(grid, (-0.1, -0.24), (0.05, 0.05)), 1.0, edge), HU["aorta"])
    paint(ct, soft(cylinder_z(grid, (0.12, -0.2), (0.06, 0.05)), 1.0, edge), HU["ivc"])

    # Kidneys low, spleen and stomach on the left, liver on the right (RAS: +x is patient right).
    for side in (-1.0, 1.0):
        kidney = ellipsoid(grid, (side * 0.36, -0.32, -0.35), (0.12, 0.09, 0.3))
        paint(ct, soft(kidney, 1.0, 0.1), HU["kidney"])
        paint(ct, soft(kidney, 0.55, 0.1), HU["medulla"])
    paint(ct, soft(ellipsoid(grid, (-0.5, -0.15, 0.25), (0.15, 0.24, 0.3)), 1.0, 0.08), HU["spleen"])
    stomach = ellipsoid(grid, (-0.28, 0.22, 0.35), (0.22, 0.18, 0.25))
    paint(ct, soft(stomach, 1.0, 0.08), HU["bowel"])
    paint(ct, soft(stomach, 0.85, 0.08), HU["fluid"])
    paint(ct, soft(stomach, 0.85, 0.08) * soft(-y, -0.3, 0.05), HU["air"])

    # Lung bases above the diaphragm, in the highest slices.
    for side in (-1.0, 1.0):
        lung = ellipsoid(grid, (side * 0.42, -0.1, 1.15), (0.34, 0.42, 0.55))
        paint(ct, soft(lung, 1.0, 0.08) * inner, HU["lung"])

    liver_level = _liver_level(rng, grid)
    liver_w = soft(liver_level, 1.0, 0.06) * inner
    texture = 4.0 * smooth_field(rng, grid.shape, (12, 12, 6))
    paint(ct, liver_w, HU["liver"] + rng.uniform(-8, 8) + texture)
    vessels = tube_network(smooth_field(rng, grid.shape, (6, 6, 4)), smooth_field(rng, grid.shape, (6, 6, 4)), 0.12)
    paint(ct, liver_w * soft(vessels, 1.0, 0.5), HU["vessel"])
    seg = np.zeros(grid.shape, np.uint8)
    seg[(liver_level < 1.0) & (inner > 0.5)] = 1

    for _ in range(lesions):
        _add_lesion(rng, grid, ct, seg, liver_level)

    # Ribs: short bone segments in the body wall at regular heights, in the upper abdomen.
    angle = np.arctan2(y + np.float32(0.06), x)
    rib_band = soft(np.abs(body - (1.0 - fat_depth - 0.025)), 0.025, edge)
    rib_z = soft(np.abs(((z_mm / 32.0) % 1.0) - 0.5), 0.14, 0.05) * soft(-z, -0.1, 0.2)
    rib_arc = soft(np.abs(np.abs(angle) - np.pi / 2), 1.1, 0.2) * soft(-np.abs(np.abs(angle) - np.pi / 2), -0.25, 0.2)
    paint(ct, rib_band * rib_z * rib_arc, HU["rib"])

    ct += ct_noise(rng, grid.shape, float(rng.uniform(10.0, 18.0)))
    return hu_int16(ct), seg


def _liver_level(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Level function of the liver: a large right lobe and a smaller left lobe, deformed."""
    scale = rng.uniform(0.9, 1.08)
    right = ellipsoid(grid, (0.34, 0.02, 0.18), np.array([0.40, 0.44, 0.55]) * scale)
    left = ellipsoid(grid, (-0.05, 0.2, 0.3), np.array([0.32, 0.2, 0.32]) * scale)
    level = np.minimum(right, left)
    return level * (1.0 + 0.06 * smooth_field(rng, grid.shape, (5, 5, 4)))


def _add_lesion(rng: np.random.Generator, grid: Grid, ct: np.ndarray, seg: np.ndarray, liver_level: np.ndarray) -> None:
    """A hypodense, slightly lobulated tumour centred inside the liver.

    The radius is 3-25 mm, but at most a third of the liver's size when the phantom is small.
    """
    inside = np.argwhere(liver_level < 0.75)
    if len(inside) == 0:
        return
    centre_idx = inside[rng.integers(len(inside))]
    centre = (centre_idx + 0.5) / np.asarray(grid.shape) * 2.0 - 1.0
    radius_mm = float(np.exp(rng.uniform(np.log(3.0), np.log(25.0))))
    radii = np.minimum(grid.mm_to_units(radius_mm), 0.13) * rng.uniform(0.8, 1.2, 3)
    radii = np.maximum(radii, 1.5 * 2.0 / np.asarray(grid.shape))  # at least ~1.5 voxels
    level = ellipsoid(grid, centre, radii) * (1.0 + 0.12 * smooth_field(rng, grid.shape, (10, 10, 6)))
    weight = soft(level, 1.0, 0.15) * soft(liver_level, 1.0, 0.06)
    paint(ct, weight, HU["lesion"] + rng.uniform(-12, 12))
    seg[(level < 1.0) & (seg > 0)] = 2


def write_case(
    out: Path, index: int, seed: int, cases: int, shape: Sequence[int] = DEFAULT_SHAPE, preview: bool = False
) -> PhantomCase:
    """Generate and write LiTS phantom ``index`` of ``cases`` (the count decides the split)."""
    from radiossl.io import write_image

    rng = case_rng(seed, "lits", index)
    spacing = case_spacing(rng)
    # Most volumes have tumours; the first always does, so the label set {0, 1, 2} is complete.
    lesions = int(rng.integers(1, 5)) if index == 0 or rng.random() < 0.8 else 0
    ct, seg = make_abdomen(rng, shape, spacing, lesions)
    affine = lps_affine(spacing, centred_origin(shape, spacing, (0.0, -20.0, rng.uniform(-600.0, -300.0))))
    split = split_of(index, cases)
    ct_s, seg_s = to_lps_storage(ct), to_lps_storage(seg)
    files = [
        write_image(out / split / "ct" / f"{case_id(index)}.nii", ct_s, affine=affine),
        write_image(out / split / "seg" / f"segmentation-{index}.nii", seg_s, affine=affine),
    ]
    return PhantomCase(case_id(index), split, files, preview_tiles(ct_s, seg_s, affine) if preview else [])


def preview_tiles(ct: np.ndarray, seg: np.ndarray, affine: np.ndarray) -> list[Tile]:
    """Axial CT through the largest liver/tumour slice, with labels, and a coronal view with labels."""
    return [
        slice_tile("axial", ct, affine, seg, title="ct", window=WINDOW, overlay=False),
        slice_tile("axial", ct, affine, seg, title="ct+seg", window=WINDOW),
        slice_tile("coronal", ct, affine, seg, title="coronal", window=WINDOW),
        slice_tile("axial", ct, affine, seg, title="bone window", window=(-400.0, 1200.0), overlay=False),
    ]
