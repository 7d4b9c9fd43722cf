"""BraTS brain-tumour segmentation: 4 MRI channels in, 3 nested sigmoid regions out.

Channels (model order): T1, T2, FLAIR, T1ce. Regions (the BraTS challenge definition):

* ``WT`` whole tumour = every tumour label (necrosis 1, oedema 2, enhancing ``et_label``);
* ``TC`` tumour core = necrosis 1 + enhancing ``et_label``;
* ``ET`` enhancing tumour = ``et_label``.

``et_label`` is 4 up to BraTS 2021 and 3 from BraTS 2023 on. Label maps are rebuilt from predicted
regions as WT \\ TC → 2 (oedema), TC \\ ET → 1 (necrosis), ET → ``et_label``. The label set is
{0, 1, 2, ``et_label``}: with the default 4, a case holding 3 is reported (the message suggests
``task.et_label=3``) and left out, never read as background.

Example:
    >>> task = BraTSTask(BraTSConfig(et_label=3))
    >>> [(r.name, r.labels, r.paint) for r in task.regions()]
    [('WT', (1, 2, 3), 2), ('TC', (1, 3), 1), ('ET', (3,), 3)]
    >>> task.label_set().describe()
    '{0, 1, 2, 3}'
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from radiossl.data.labels import LabelSet
from radiossl.data.normalise import IntensityConfig
from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig

NECROSIS = 1
OEDEMA = 2


class BraTSConfig(TaskConfig):
    """The ``task`` section of ``--task brats``."""

    name: Literal["brats"] = "brats"
    dataset: str = Field("brats18", description="Dataset adapter: brats18 (thesis layout) or nnunet.")
    intensity: IntensityConfig = Field(
        default_factory=lambda: IntensityConfig.model_validate({"mode": "minmax"}),
        description="Per-channel normalisation; the thesis min-max scales each MRI volume to [0, 1].",
    )
    et_label: int = Field(4, ge=1, description="Label value of enhancing tumour: 4 (BraTS <= 2021) or 3 (2023).")

    @model_validator(mode="after")
    def _distinct_labels(self) -> BraTSConfig:
        if self.et_label in (NECROSIS, OEDEMA):
            raise ValueError(f"et_label {self.et_label} clashes with necrosis (1) or oedema (2)")
        return self


class BraTSTask(SegmentationTask):
    """Brain tumour regions WT/TC/ET from multi-modal MRI (spec §2.7.1)."""

    name: ClassVar[str] = "brats"
    config_class: ClassVar[type[TaskConfig]] = BraTSConfig
    summary: ClassVar[str] = "BraTS glioma: 4 MRI channels -> WT, TC, ET"

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """Thesis BraTS recipe: 128^3 patches, Adam 1e-3, StepLR(50, 0.5), batch 4, 300 epochs, ratio 0.4."""
        return super().default_settings()

    def regions(self) -> list[Region]:
        et = self.settings.et_label  # type: ignore[attr-defined]
        return [
            Region("WT", (NECROSIS, OEDEMA, et), OEDEMA),
            Region("TC", (NECROSIS, et), NECROSIS),
            Region("ET", (et,), et),
        ]

    def label_set(self) -> LabelSet:
        """{0, 1, 2, ``et_label``}; the message for the other enhancing-tumour value names the option."""
        et = self.settings.et_label  # type: ignore[attr-defined]
        hints = {
            3: "BraTS 2023 and later label enhancing tumour 3: for such data set task.et_label=3 "
            "(--set task.et_label=3)",
            4: "BraTS up to 2021 labels enhancing tumour 4: for such data set task.et_label=4 (--set task.et_label=4)",
        }
        hints.pop(et, None)
        return LabelSet(frozenset({0, NECROSIS, OEDEMA, et}), f"BraTS labels with task.et_label={et}", hints=hints)
