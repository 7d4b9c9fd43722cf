"""The ``rotation-cubes`` view: each volume, resized whole to the crop size, turned by a stored multiple of 90°.

``radiossl preprocess --views rotation-cubes`` stores ``pairs`` samples per volume: the whole
(padded) volume resized to ``crop_size`` and rotated in-plane (about the slice axis) by ``q`` quarter
turns, with ``q`` drawn from ``rng_for(seed, group_id, i)`` and stored beside the cubes in
``arrays/<group_id>.rotation.npy``. Its own setting is the ``rotation-cubes`` section
(``rotations``: how many of the four quarter turns are used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from pydantic import Field

from radiossl.config import Section
from radiossl.data.preprocess.boxes import crop_resize
from radiossl.errors import DataError
from radiossl.utils.seeding import rng_for
from radiossl.views.base import View, ViewDataset, ViewDefaults, ViewSamples

if TYPE_CHECKING:
    from radiossl.data.preprocess.config import Plan

ROTATION_SUFFIX = ".rotation"


class RotationCubesOptions(Section):
    """Settings of the rotation-cubes view."""

    rotations: int = Field(4, ge=2, le=4, description="Quarter turns drawn from 0..rotations-1 (2 to 4).")


class RotationSample(NamedTuple):
    """A rotated cube ``(C, H, W, D)`` and its number of quarter turns (int64 scalar)."""

    cube: torch.Tensor
    rotation: torch.Tensor


class RotationCubeDataset(ViewDataset[RotationSample]):
    """The rotated cubes of a ``rotation-cubes`` folder and their rotations."""

    views = ("rotation-cubes",)

    def __getitem__(self, index: int) -> RotationSample:
        record = self.records[index]
        cube = torch.from_numpy(self.data.load_crops(record))
        rotation = torch.tensor(int(self.data.load_array(record, ROTATION_SUFFIX)), dtype=torch.int64)
        return self._finish(RotationSample(cube, rotation), index)


class RotationCubes(View):
    """Whole volumes resized to the crop size, each sample turned by a random multiple of 90° in-plane."""

    name = "rotation-cubes"
    summary = "Whole volumes resized to the crop size and turned by k x 90 degrees in-plane (example plugin)."
    options_class = RotationCubesOptions
    defaults = ViewDefaults(candidate_sizes=None, border=(0, 0, 0), native_spacing=False, pairs=4)
    dataset_class = RotationCubeDataset
    options: RotationCubesOptions

    def sample(
        self, volume: np.ndarray, group_id: str, plan: Plan, thresholds: Sequence[float], dtype: torch.dtype
    ) -> ViewSamples:
        size = plan.crop_size
        if size[0] != size[1]:
            raise DataError(f"rotation-cubes needs a square crop in-plane, got crop_size {size}")
        whole = np.array([[0, volume.shape[1], 0, volume.shape[2], 0, volume.shape[3]]], dtype=np.int64)
        cube = crop_resize(volume, whole, size, plan.resize_mode, dtype)[0]
        turns = np.array(
            [rng_for(plan.seed, group_id, i).integers(self.options.rotations) for i in range(plan.pairs)],
            dtype=np.int64,
        )
        cubes = torch.stack([torch.rot90(cube, int(q), dims=(1, 2)) for q in turns])
        boxes = np.repeat(whole[None], plan.pairs, axis=0).repeat(2, axis=1)  # (N, 2, 6): the whole volume
        return ViewSamples(cubes, boxes, extra_arrays={ROTATION_SUFFIX: turns})

    @classmethod
    def small_settings(cls, crop_size: tuple[int, int, int]) -> dict[str, Any]:
        return {"crop_size": (crop_size[0], crop_size[0], crop_size[2])}
