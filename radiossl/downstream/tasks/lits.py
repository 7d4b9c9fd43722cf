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

from typing import Any, ClassVar, Literal

from pydantic import Field

from radiossl.config import deep_merge
from radiossl.data.labels import LabelSet
from radiossl.data.normalise import IntensityConfig
from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig

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
