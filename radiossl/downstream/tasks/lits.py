"""LiTS liver segmentation: 1 CT channel in, liver (including tumour) and optionally tumour out.

Label set: {0, 1, 2} (background, liver, tumour); a case holding another value is reported and
left out. Regions: ``liver`` = labels {1, 2} (the thesis merges tumour into liver, spec §2.7.2) and, with
``tumour: true``, a second channel ``tumour`` = label 2. Label maps are rebuilt as liver → 1, then
tumour → 2.

Example:
    >>> [(r.name, r.labels) for r in LiTSTask(LiTSConfig(tumour=True)).regions()]
    [('liver', (1, 2)), ('tumour', (2,))]
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from radiossl.config import deep_merge
from radiossl.data.labels import LabelSet
from radiossl.data.normalise import IntensityConfig
from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig
from radiossl.errors import ConfigError

if TYPE_CHECKING:
    from radiossl.data.datasets import Case
    from radiossl.data.loading import CaseArrays, RawCase

LIVER = 1
TUMOUR = 2


class LiTSConfig(TaskConfig):
    """The ``task`` section of ``--task lits``."""

    name: Literal["lits"] = "lits"
    dataset: str = Field("lits17", description="Dataset adapter: lits17 (thesis layout) or nnunet.")
    intensity: IntensityConfig = Field(
        default_factory=lambda: IntensityConfig.model_validate({"mode": "ct-window"}),
        description="CT window to [0, 1] (thesis: clip to [-1000, 1000] HU).",
    )
    spacing: tuple[float, float, float] | None = Field(
        (1.0, 1.0, 1.0),
        description="Resample to this spacing in mm (as LiTS pretraining does); null = native.",
    )
    zoom: tuple[float, float, float] | None = Field(
        (0.75, 0.75, 1.0),
        description="Further in-plane zoom, as LiTS pretraining does (spec §2.3), so finetuning sees the "
        "pretraining geometry (fixes spec §8 item 16); null = none.",
    )
    tumour: bool = Field(False, description="Add a second output channel for the tumour (label 2).")
    grid: Literal["resampled", "thesis"] = Field(
        "resampled",
        description="resampled = spacing/zoom above; thesis = the thesis' finetuning grid (spec §2.7.2, §8 item "
        "16): native voxels, in-plane nearest subsampling by 2, the two in-plane axes swapped, each crop "
        "min-max normalised. Needs spacing and zoom null; evaluate with --protocol thesis-crops.",
    )

    @model_validator(mode="after")
    def _thesis_grid_is_native(self) -> LiTSConfig:
        if self.grid == "thesis" and (self.spacing is not None or self.zoom is not None):
            raise ValueError("grid thesis uses the native voxel grid: set spacing and zoom to null")
        return self


class LiTSTask(SegmentationTask):
    """Liver (and tumour) from CT (spec §2.7.2)."""

    name: ClassVar[str] = "lits"
    config_class: ClassVar[type[TaskConfig]] = LiTSConfig
    summary: ClassVar[str] = "LiTS liver CT: 1 channel -> liver (+ tumour)"

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """Thesis LiTS finetuning: 128x128x64 patches, otherwise as BraTS."""
        return deep_merge(super().default_settings(), {"data": {"crop_size": [128, 128, 64]}})

    def regions(self) -> list[Region]:
        regions = [Region("liver", (LIVER, TUMOUR), LIVER)]
        if self.settings.tumour:  # type: ignore[attr-defined]
            regions.append(Region("tumour", (TUMOUR,), TUMOUR))
        return regions

    def label_set(self) -> LabelSet:
        """{0, 1, 2}: background, liver, tumour (whatever the dataset adapter)."""
        return LabelSet(frozenset({0, LIVER, TUMOUR}), "LiTS labels")

    @property
    def thesis_grid(self) -> bool:
        """True with ``grid: thesis``."""
        return self.settings.grid == "thesis"  # type: ignore[attr-defined]

    def load(self, case: Case) -> CaseArrays:
        """The case on the task's grid; with ``grid: thesis`` the thesis' (see :func:`to_thesis_grid`)."""
        arrays = super().load(case)
        if not self.thesis_grid:
            return arrays
        label = None if arrays.label is None else to_thesis_grid(arrays.label[None])[0]
        return dataclasses.replace(arrays, image=to_thesis_grid(arrays.image), label=label)

    def load_with_raw(self, case: Case) -> tuple[RawCase, CaseArrays]:
        """Full-volume evaluation needs the resampled grid (predictions go back to the image's geometry)."""
        if self.thesis_grid:
            raise ConfigError("task.grid thesis is the thesis' crop geometry: evaluate it with --protocol thesis-crops")
        return super().load_with_raw(case)

    def normalise_crop(self, image: np.ndarray) -> np.ndarray:
        """With ``grid: thesis``, min-max of each channel of the crop (a constant crop becomes 0)."""
        if not self.thesis_grid:
            return image
        return per_crop_minmax(image)


def to_thesis_grid(array: np.ndarray) -> np.ndarray:
    """``(C, X, Y, Z)`` on the native grid -> the thesis' LiTS grid ``(C, Y/2, X/2, Z)``.

    The thesis read the CT as ``(Z, Y, X)`` and shrank each slice with ``F.interpolate(scale_factor=0.5)``
    (nearest: output voxel ``i`` is input voxel ``2i``, ``floor(n / 2)`` of them), then gave the network
    ``(Y, X, Z)`` crops — the in-plane axes swapped with respect to the pretraining arrays.
    """
    x, y = array.shape[1] // 2, array.shape[2] // 2
    return np.ascontiguousarray(array[:, : 2 * x : 2, : 2 * y : 2].transpose(0, 2, 1, 3))


def per_crop_minmax(image: np.ndarray) -> np.ndarray:
    """Each channel of ``image`` mapped to [0, 1] by its own minimum and maximum (0 where constant)."""
    out = np.empty(image.shape, dtype=np.float32)
    for channel in range(image.shape[0]):
        low, high = float(image[channel].min()), float(image[channel].max())
        out[channel] = (image[channel] - low) / (high - low) if high > low else 0.0
    return out
