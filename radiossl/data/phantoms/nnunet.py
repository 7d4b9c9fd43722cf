"""An nnU-Net v2 raw data set of brain-tumour phantoms: two MRI channels, labels background/edema/tumor.

Images come from the BraTS generator without skull stripping (scalp, skull and CSF are kept),
stored as float32 NIfTI in RAS orientation, so they differ from the BraTS phantoms in both
content and header. Layout (nnU-Net v2)::

    <out>/Dataset901_Phantom/
        dataset.json                       channel_names, labels, numTraining, file_ending, ...
        imagesTr/case_XXXX_0000.nii.gz     FLAIR       imagesTr/case_XXXX_0001.nii.gz   T1ce
        labelsTr/case_XXXX.nii.gz          0 background, 1 edema, 2 tumor (necrosis + enhancing)
        imagesTs/..., labelsTs/...         held-out cases (labelsTs is not part of nnU-Net's
                                           layout; it is there so the test split can be evaluated)

Example:
    >>> test_cases(4), test_cases(1)
    (1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radiossl.data.phantoms.base import PhantomCase, case_rng
from radiossl.data.phantoms.brats import grade_of, make_brain
from radiossl.data.phantoms.preview import Tile, slice_tile

DATASET_NAME = "Dataset901_Phantom"
DEFAULT_SHAPE = (48, 48, 40)
SPACING = (1.0, 1.0, 1.0)
CHANNELS = {"0": "FLAIR", "1": "T1ce"}
LABELS = {"background": 0, "edema": 1, "tumor": 2}
LABEL_NAMES: dict[int, str] = {value: name for name, value in LABELS.items() if value}
"""Label values, for the preview legend."""
FILE_ENDING = ".nii.gz"


def case_id(index: int) -> str:
    """nnU-Net case identifier of phantom ``index``."""
    return f"case_{index:04d}"


def test_cases(training: int) -> int:
    """Number of held-out cases written next to ``training`` training cases (a quarter, at least 1)."""
    return max(1, training // 4)


def dataset_json(training: int) -> dict[str, object]:
    """The ``dataset.json`` content for ``training`` training cases."""
    return {
        "channel_names": CHANNELS,
        "labels": LABELS,
        "numTraining": training,
        "file_ending": FILE_ENDING,
        "name": "Phantom",
        "description": "Synthetic brain-tumour MRI phantoms made by `radiossl synth nnunet`.",
        "reference": "radiossl",
        "licence": "CC0-1.0",
    }


def brats_to_task_labels(seg: np.ndarray) -> np.ndarray:
    """Map BraTS labels (1 necrosis, 2 oedema, 4 enhancing) to this task's (1 edema, 2 tumor)."""
    out = np.zeros(seg.shape, np.uint8)
    out[seg == 2] = 1
    out[(seg == 1) | (seg == 4)] = 2
    return out


def write_case(
    out: Path,
    index: int,
    seed: int,
    training: int,
    shape: Sequence[int] = DEFAULT_SHAPE,
    preview: bool = False,
) -> PhantomCase:
    """Write phantom ``index``; indices from ``training`` on are held-out (imagesTs/labelsTs) cases."""
    from radiossl.io import write_image

    rng = case_rng(seed, "nnunet", index)
    brain = make_brain(rng, shape, grade_of(index), skull_strip=False)
    # RAS storage (identity directions), centred on the world origin.
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = -(np.asarray(shape, np.float64) - 1.0) / 2.0 * np.asarray(SPACING)
    images_dir, labels_dir = ("imagesTr", "labelsTr") if index < training else ("imagesTs", "labelsTs")
    root = out / DATASET_NAME
    name = case_id(index)
    flair = brain.images["flair"].astype(np.float32)
    t1ce = brain.images["t1ce"].astype(np.float32)
    label = brats_to_task_labels(brain.seg)
    files = [
        write_image(root / images_dir / f"{name}_0000{FILE_ENDING}", flair, affine=affine),
        write_image(root / images_dir / f"{name}_0001{FILE_ENDING}", t1ce, affine=affine),
        write_image(root / labels_dir / f"{name}{FILE_ENDING}", label, affine=affine),
    ]
    tiles: list[Tile] = []
    if preview:
        tiles = [
            slice_tile("axial", flair, affine, label, title="FLAIR", overlay=False),
            slice_tile("axial", t1ce, affine, label, title="T1ce", overlay=False),
            slice_tile("axial", flair, affine, label, title="FLAIR+labels"),
            slice_tile("coronal", t1ce, affine, label, title="T1ce cor+labels"),
        ]
    return PhantomCase(name, images_dir, files, tiles)
