"""An nnssl / OpenMind-style pretraining collection of brain MRI phantoms, with its ``pretrain_data.json``.

Images come from the BraTS brain generator without skull stripping (whole heads, as in OpenMind),
stored as int16 NIfTI in RAS orientation. Each case is one image; image ``i`` is always the same
image, whatever the number of cases: subjects alternate between two datasets, every third subject has
two sessions, each session has a T1w image and (every other session) a T2w image of the same head, and
each image has an anatomy mask (the brain). Dataset ``ds002`` has 1.2 mm slices. Layout::

    <out>/pretrain_data.json
    <out>/ds001/sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz        (+ _T2w, and ..._T1w_mask.nii.gz)
    <out>/ds002/sub-002/ses-1/anat/...

Image paths in ``pretrain_data.json`` are relative to its folder.

Example:
    >>> [(i.dataset, i.subject, i.session, i.contrast) for i in identities(3)]
    [('ds001', 'sub-001', 'ses-1', 'T1w'), ('ds001', 'sub-001', 'ses-1', 'T2w'), ('ds002', 'sub-002', 'ses-1', 'T1w')]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiossl.data.phantoms.base import PhantomCase
from radiossl.data.phantoms.brats import SCALE, grade_of, make_brain
from radiossl.data.phantoms.preview import Tile, slice_tile
from radiossl.utils.seeding import rng_for

COLLECTION_NAME = "Dataset900_PhantomCollection"
COLLECTION_INDEX = 900
DEFAULT_SHAPE = (48, 48, 40)
DATASETS = ("ds001", "ds002")
SPACINGS: dict[str, tuple[float, float, float]] = {"ds001": (1.0, 1.0, 1.0), "ds002": (1.0, 1.0, 1.2)}
CONTRAST_CHANNELS = {"T1w": "t1", "T2w": "t2"}
LABEL_NAMES: dict[int, str] = {1: "anatomy mask"}
"""The anatomy-mask value, for the preview legend."""
FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class ImageIdentity:
    """Where image ``index`` of the collection belongs: dataset, subject, session and contrast."""

    index: int
    dataset: str
    subject: str
    session: str
    contrast: str
    subject_number: int

    @property
    def stem(self) -> str:
        """The BIDS file stem, e.g. ``sub-001_ses-1_T1w``."""
        return f"{self.subject}_{self.session}_{self.contrast}"

    @property
    def folder(self) -> str:
        """The image's folder relative to the collection root."""
        return f"{self.dataset}/{self.subject}/{self.session}/anat"

    @property
    def image_path(self) -> str:
        """The image file relative to the collection root."""
        return f"{self.folder}/{self.stem}{FILE_ENDING}"

    @property
    def mask_path(self) -> str:
        """The anatomy mask relative to the collection root."""
        return f"{self.folder}/{self.stem}_mask{FILE_ENDING}"


def _all_identities() -> Iterator[ImageIdentity]:
    index = 0
    subject = 0
    while True:
        subject += 1
        dataset = DATASETS[(subject - 1) % len(DATASETS)]
        sessions = 2 if subject % 3 == 0 else 1
        for session in range(1, sessions + 1):
            contrasts = ("T1w", "T2w") if (subject + session) % 2 == 0 else ("T1w",)
            for contrast in contrasts:
                yield ImageIdentity(index, dataset, f"sub-{subject:03d}", f"ses-{session}", contrast, subject)
                index += 1


def identities(count: int) -> list[ImageIdentity]:
    """The first ``count`` images of the collection (the same images whatever ``count``)."""
    found = []
    for identity in _all_identities():
        if identity.index >= count:
            break
        found.append(identity)
    return found


def pretrain_json(images: Sequence[ImageIdentity]) -> dict[str, Any]:
    """The ``pretrain_data.json`` content listing ``images`` (every nnssl field, paths relative)."""
    datasets: dict[str, Any] = {}
    for image in images:
        dataset = datasets.setdefault(
            image.dataset,
            {
                "dataset_index": image.dataset,
                "name": f"phantom {image.dataset}",
                "dataset_info": {"source": "radiossl synth nnssl"},
                "subjects": {},
            },
        )
        subject = dataset["subjects"].setdefault(
            image.subject,
            {"subject_id": image.subject, "subject_info": {"age": 20 + image.subject_number % 60}, "sessions": {}},
        )
        session = subject["sessions"].setdefault(
            image.session, {"session_id": image.session, "session_info": None, "images": []}
        )
        session["images"].append(
            {
                "name": f"{image.stem}{FILE_ENDING}",
                "modality": image.contrast,
                "image_info": {"scanner": "phantom", "spacing": list(SPACINGS[image.dataset])},
                "image_path": image.image_path,
                "associated_masks": {"anatomy_mask": image.mask_path, "anonymization_mask": None},
            }
        )
    return {"collection_index": COLLECTION_INDEX, "collection_name": COLLECTION_NAME, "datasets": datasets}


def write_case(
    out: Path, index: int, seed: int, shape: Sequence[int] = DEFAULT_SHAPE, preview: bool = False
) -> PhantomCase:
    """Write image ``index`` of the collection and its anatomy mask (the caller writes ``pretrain_data.json``)."""
    from radiossl.data.datasets.nnssl import case_id_of
    from radiossl.io import write_image

    image = identities(index + 1)[index]
    # One head per session: the T1w and T2w images of a session show the same anatomy.
    rng = rng_for(seed, "phantom", "nnssl", image.subject, image.session)
    brain = make_brain(rng, shape, grade_of(image.subject_number), skull_strip=False)
    channel = CONTRAST_CHANNELS[image.contrast]
    scale = SCALE[channel] * float(rng_for(seed, "phantom", "nnssl-scale", image.index).uniform(0.85, 1.15))
    values = np.clip(np.rint(brain.images[channel] * scale), 0, 32767).astype(np.int16)
    mask = brain.brain.astype(np.uint8)
    spacing = np.asarray(SPACINGS[image.dataset])
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape, np.float64) - 1.0) / 2.0 * spacing  # RAS storage, centred
    files = [
        write_image(out / image.image_path, values, affine=affine),
        write_image(out / image.mask_path, mask, affine=affine),
    ]
    tiles: list[Tile] = []
    if preview:
        tiles = [
            slice_tile("axial", values, affine, mask, title=image.contrast, overlay=False),
            slice_tile("axial", values, affine, mask, title=f"{image.contrast}+mask"),
            slice_tile("coronal", values, affine, mask, title=f"{image.contrast} cor"),
        ]
    case_id = case_id_of(image.dataset, image.subject, image.session, f"{image.stem}{FILE_ENDING}")
    return PhantomCase(case_id, image.dataset, files, tiles)
