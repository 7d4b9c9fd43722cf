"""BraTS-like brain MRI phantoms: four contrasts and a tumour label map per case.

Anatomy: a brain with folded cortex (grey matter), white matter, deep grey nuclei, sulcal CSF, the
interhemispheric fissure and lateral/third ventricles; optionally CSF, skull and scalp around it
(BraTS itself is skull-stripped, so :func:`write_case` strips by default). A tumour at a random
position inside the brain is a deformed, rotated ellipsoid: necrotic core (label 1), enhancing rim
(label 4) and surrounding oedema (label 2). Low-grade cases mostly lack enhancement (the core is
label 1). Tissue intensities follow real contrasts (T1: WM > GM > CSF; T2: CSF bright; FLAIR: CSF
dark, oedema bright; T1ce: enhancing rim bright), with a smooth bias field and Rician noise.

Layout written by :func:`write_case` (BraTS 2018):
``<out>/<HGG|LGG>/<case>/<case>_<flair|t1|t1ce|t2|seg>.nii.gz``.

Example:
    >>> import numpy as np
    >>> brain = make_brain(np.random.default_rng(0), (32, 32, 24), "HGG")
    >>> sorted(brain.images), sorted(np.unique(brain.seg).tolist())
    (['flair', 't1', 't1ce', 't2'], [0, 1, 2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from radiossl.data.phantoms.base import PhantomCase, case_rng, lps_affine, to_lps_storage
from radiossl.data.phantoms.noise import bias_field, cells_for, rician_noise, smooth_field, smooth_field_at
from radiossl.data.phantoms.preview import Tile, slice_tile
from radiossl.data.phantoms.shapes import Grid, ellipsoid, paint, random_rotation, soft, union

Grade = Literal["HGG", "LGG"]
CONTRASTS = ("flair", "t1", "t1ce", "t2")
SPACING = (1.0, 1.0, 1.0)
DEFAULT_SHAPE = (64, 64, 48)
LABEL_NAMES: dict[int, str] = {1: "necrosis", 2: "oedema", 4: "enhancing"}
"""BraTS label values, for the preview legend."""

# Relative signal per tissue, in the order of CONTRASTS (flair, t1, t1ce, t2).
TISSUE: dict[str, tuple[float, float, float, float]] = {
    "wm": (0.50, 0.80, 0.80, 0.32),
    "gm": (0.66, 0.55, 0.57, 0.55),
    "deep_gm": (0.60, 0.63, 0.65, 0.45),
    "csf": (0.08, 0.15, 0.16, 1.00),
    "oedema": (0.98, 0.50, 0.52, 0.88),
    "enhancing": (0.80, 0.52, 1.20, 0.62),
    "necrosis": (0.42, 0.25, 0.30, 0.95),
    "lgg_core": (0.88, 0.42, 0.44, 0.92),
    "bone": (0.04, 0.05, 0.05, 0.04),
    "marrow": (0.40, 0.75, 0.75, 0.45),
    "scalp": (0.65, 0.90, 0.92, 0.70),
}
# Scanner units per relative unit, per contrast (randomised +-15% per case).
SCALE = {"flair": 600.0, "t1": 700.0, "t1ce": 800.0, "t2": 1400.0}


@dataclass
class BrainPhantom:
    """A brain in the canonical RAS grid: relative-intensity images, BraTS labels and the brain mask."""

    images: dict[str, np.ndarray]
    seg: np.ndarray
    brain: np.ndarray


def case_id(index: int) -> str:
    """BraTS-style case id of phantom ``index``."""
    return f"Brats18_PHANTOM_{index:03d}_1"


def grade_of(index: int) -> Grade:
    """HGG or LGG by a fixed rule (about 3:1, as in BraTS 2018; case 1 is the first LGG)."""
    return "LGG" if index % 4 == 1 else "HGG"


def make_brain(rng: np.random.Generator, shape: Sequence[int], grade: Grade, skull_strip: bool = True) -> BrainPhantom:
    """Draw one brain with a tumour; intensities are relative (white matter T1 about 0.8)."""
    grid = Grid((int(shape[0]), int(shape[1]), int(shape[2])), SPACING)
    x, y, z = grid.axes()
    centre = np.array([0.0, rng.normal(0.0, 0.02), -0.03])
    radii = np.array([0.60, 0.76, 0.72]) * rng.uniform(0.94, 1.04, 3)
    edge = grid.voxel_units / float(radii.mean())  # one voxel in level units of the brain

    # Brain outline: a deformed ellipsoid, flatter at the skull base.
    r_brain = ellipsoid(grid, centre, radii) * (1.0 + 0.035 * smooth_field(rng, grid.shape, 3))
    r_brain *= 1.0 + 0.3 * np.clip(-(z - np.float32(centre[2])) / np.float32(radii[2]) - 0.45, 0.0, None)
    brain_w = soft(r_brain, 1.0, edge)
    brain = r_brain < 1.0

    # Depth below the cortical surface, including the medial surface along the fissure above the
    # corpus callosum.
    medial = np.abs(x - np.float32(centre[0])) / np.float32(radii[0])
    deep = ellipsoid(grid, centre + np.array([0.0, 0.0, -0.06]), radii * [0.8, 0.55, 0.42]) < 1.0
    depth = np.minimum(1.0 - r_brain, np.where(deep, np.float32(9.0), medial))
    thickness = 0.06 + 0.015 * smooth_field(rng, grid.shape, 6)
    cortex = soft(depth, thickness, edge)
    csf_parts = [soft(depth, 0.012, edge)]
    _add_sulci(rng, grid, centre, radii, r_brain, depth, thickness, edge, cortex, csf_parts)

    # Ventricles: two lateral ones arching over the thalami, and a thin third ventricle.
    vent = rng.uniform(0.8, 1.3)
    dy = (y - np.float32(centre[1])) / np.float32(radii[1])
    arch = np.float32(radii[2]) * dy * dy  # horns lower than the body of the ventricle
    for side in (-1.0, 1.0):
        vx = (x - np.float32(centre[0] + side * 0.09 * radii[0])) / np.float32(radii[0] * 0.075 * vent)
        vy = dy / np.float32(0.42 * vent)
        vz = (z - np.float32(centre[2] + 0.12 * radii[2]) + arch) / np.float32(radii[2] * 0.10 * vent)
        csf_parts.append(soft(np.sqrt(vx * vx + vy * vy + vz * vz), 1.0, 3 * edge))
    third = ellipsoid(grid, centre + np.array([0.0, -0.02, -0.05]), radii * np.array([0.018, 0.16, 0.12]))
    csf_parts.append(soft(third, 1.0, 3 * edge))
    ventricles = union(csf_parts[-3:])
    csf_parts.append(soft(medial, 0.012, edge) * (~deep))
    csf_w = union(csf_parts) * brain_w
    nuclei = union(
        [
            soft(
                ellipsoid(grid, centre + radii * [s * 0.16, -0.08, -0.08], radii * [0.12, 0.14, 0.13]),
                1,
                0.15,
            )
            for s in (-1.0, 1.0)
        ]
        + [
            soft(ellipsoid(grid, centre + radii * [s * 0.24, 0.16, 0.0], radii * [0.07, 0.16, 0.13]), 1, 0.15)
            for s in (-1.0, 1.0)
        ]
    )

    # Tumour: centre inside the brain away from its edge, random size, shape and orientation.
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    t_centre = centre + radii * direction * 0.55 * rng.random() ** (1.0 / 3.0)
    rotation = random_rotation(rng)
    axes = rng.uniform(0.07, 0.17) * rng.uniform(0.7, 1.3, 3)
    lumpy = smooth_field(rng, grid.shape, (12, 12, 10))
    r_tumour = ellipsoid(grid, t_centre, axes, rotation) * (1.0 + 0.18 * lumpy)
    oedema_scale = rng.uniform(1.4, 2.2) if grade == "HGG" else rng.uniform(1.2, 1.6)
    # Oedema spreads along white matter: irregular, and pushed back where there is cortex.
    plain_oedema = ellipsoid(grid, t_centre, axes * oedema_scale, rotation)
    r_oedema = plain_oedema * (1.0 + 0.22 * smooth_field(rng, grid.shape, (14, 14, 12))) + 0.35 * cortex
    r_oedema[plain_oedema > 1.3] = 9.0  # no detached islands of oedema
    ring = smooth_field(rng, grid.shape, (16, 16, 12))
    r_necrosis = r_tumour / np.float32(rng.uniform(0.35, 0.65)) * (1.0 + 0.15 * ring)
    enhancing_lgg = grade == "LGG" and rng.random() < 0.3

    tumour_w = soft(r_tumour, 1.0, 0.08) * brain_w
    oedema_w = soft(r_oedema, 1.0, 0.1) * brain_w * (1.0 - ventricles)
    necrosis_w = soft(r_necrosis, 1.0, 0.15) * tumour_w

    seg = np.zeros(grid.shape, np.uint8)
    seg[(r_oedema < 1.0) & (ventricles < 0.5)] = 2
    if grade == "HGG":
        seg[r_tumour < 1.0] = 4
        seg[(r_necrosis < 1.0) & (r_tumour < 1.0)] = 1
    else:
        seg[r_tumour < 1.0] = 1
        if enhancing_lgg:
            seg[(r_tumour < 1.0) & (ring > 1.0)] = 4
    seg[~brain] = 0

    texture = 1.0 + 0.035 * smooth_field(rng, grid.shape, cells_for(grid.shape, 3.0))
    head = None if skull_strip else _head_layers(r_brain, edge)
    images: dict[str, np.ndarray] = {}
    for c, name in enumerate(CONTRASTS):
        img = np.zeros(grid.shape, np.float32)
        if head is not None:
            scalp_w, bone_w, marrow_w, outer_csf_w = head
            paint(img, scalp_w, TISSUE["scalp"][c])
            paint(img, bone_w, TISSUE["bone"][c])
            paint(img, marrow_w, TISSUE["marrow"][c])
            paint(img, outer_csf_w, TISSUE["csf"][c])
        paint(img, brain_w, TISSUE["wm"][c])
        paint(img, cortex * brain_w, TISSUE["gm"][c])
        paint(img, nuclei * brain_w, TISSUE["deep_gm"][c])
        paint(img, csf_w, TISSUE["csf"][c])
        paint(img, 0.9 * oedema_w, TISSUE["oedema"][c])
        if grade == "HGG":
            paint(img, tumour_w, TISSUE["enhancing"][c])
            paint(img, necrosis_w, TISSUE["necrosis"][c])
        else:
            paint(img, tumour_w, TISSUE["lgg_core"][c])
            if enhancing_lgg:
                paint(img, tumour_w * soft(-ring, -1.0, 0.3), TISSUE["enhancing"][c])
        img *= texture * bias_field(rng, grid.shape, 0.12)
        images[name] = rician_noise(rng, img, float(rng.uniform(0.018, 0.03)))
    return BrainPhantom(images, seg, brain)


def _add_sulci(
    rng: np.random.Generator,
    grid: Grid,
    centre: np.ndarray,
    radii: np.ndarray,
    r_brain: np.ndarray,
    depth: np.ndarray,
    thickness: np.ndarray,
    edge: float,
    cortex: np.ndarray,
    csf_parts: list[np.ndarray],
) -> None:
    """Fold the cortex: sulci are radial sheets (zero set of a field on the brain's directions).

    Updates ``cortex`` in place (grey matter lining each sulcus) and appends the sulcal CSF weight.
    """
    x, y, z = grid.axes()
    shell = np.nonzero((depth < 0.3) & (r_brain < 1.0 + edge))
    offsets = np.stack(
        [
            (np.broadcast_to(axis_coord, grid.shape)[shell] - np.float32(c)) / np.float32(r)
            for axis_coord, c, r in zip((x, y, z), centre, radii, strict=True)
        ],
        axis=1,
    )
    directions = offsets / np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True), 1e-6)
    d = depth[shell]
    # Sample the fold field slightly inside the surface as depth grows, so sulci curve, not spokes.
    inward = directions * (1.0 - 0.6 * np.clip(d, 0.0, None))[:, None]
    # About one sulcus per 10 voxels of brain surface, at most 14 across the brain (real gyri ~ 1 cm).
    radius_vox = float(np.min(radii * np.asarray(grid.shape)) / 2.0)
    cells = int(np.clip(round(radius_vox / 3.2), 5, 14))
    fold = np.abs(smooth_field_at(rng, inward, cells))
    sulcus_depth = 0.16 + 0.05 * smooth_field_at(rng, directions, 3)
    lining = soft(fold, 0.45, 0.2) * soft(d, sulcus_depth + thickness[shell], edge)
    cortex[shell] = np.maximum(cortex[shell], lining)
    sulcal_csf = np.zeros(grid.shape, np.float32)
    sulcal_csf[shell] = soft(fold, 0.07, 0.08) * soft(d, sulcus_depth, edge)
    csf_parts.append(sulcal_csf)


def _head_layers(r_brain: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Partial-volume weights of scalp, skull, diploic marrow and outer CSF around the brain."""
    scalp = soft(r_brain, 1.24, edge)
    bone = soft(r_brain, 1.17, edge)
    marrow = soft(np.abs(r_brain - 1.125), 0.018, edge)
    outer_csf = soft(r_brain, 1.06, edge)
    return scalp, bone, marrow, outer_csf


def write_case(
    out: Path,
    index: int,
    seed: int,
    shape: Sequence[int] = DEFAULT_SHAPE,
    preview: bool = False,
) -> PhantomCase:
    """Generate and write BraTS phantom ``index``; return its record (with preview tiles if asked)."""
    from radiossl.io import write_image

    rng = case_rng(seed, "brats", index)
    grade = grade_of(index)
    brain = make_brain(rng, shape, grade, skull_strip=True)
    name = case_id(index)
    folder = out / grade / name
    # BraTS 2018 headers: voxel axes point Left and Posterior, origin at (0, 239, 0) for 240 voxels.
    affine = lps_affine(SPACING, (0.0, float(shape[1]) - 1.0, 0.0))
    files: list[Path] = []
    stored: dict[str, np.ndarray] = {}
    for contrast in CONTRASTS:
        scale = SCALE[contrast] * rng.uniform(0.85, 1.15)
        values = np.clip(np.rint(brain.images[contrast] * scale), 0, 32767).astype(np.int16)
        values[~brain.brain] = 0  # skull-stripped like BraTS: exactly zero outside the brain mask
        stored[contrast] = to_lps_storage(values)
        files.append(write_image(folder / f"{name}_{contrast}.nii.gz", stored[contrast], affine=affine))
    seg = to_lps_storage(brain.seg)
    files.append(write_image(folder / f"{name}_seg.nii.gz", seg, affine=affine))
    tiles = preview_tiles(stored, seg, affine) if preview else []
    return PhantomCase(name, grade, files, tiles)


def preview_tiles(images: dict[str, np.ndarray], seg: np.ndarray, affine: np.ndarray) -> list[Tile]:
    """Axial slices of the four contrasts through the tumour, plus FLAIR with labels (axial, coronal)."""
    tiles = [slice_tile("axial", images[c], affine, seg, title=c, overlay=False) for c in CONTRASTS]
    tiles.append(slice_tile("axial", images["flair"], affine, seg, title="flair+seg"))
    tiles.append(slice_tile("coronal", images["t1ce"], affine, seg, title="t1ce+seg cor"))
    return tiles
