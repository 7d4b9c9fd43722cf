"""The downstream-task plugin protocol: what a segmentation task tells finetuning and evaluation.

A task (``radiossl finetune --task NAME``) is a :class:`SegmentationTask` subclass registered in
the ``radiossl.tasks`` entry-point group. It names

* its dataset adapter (``radiossl.datasets`` group) that lists the cases of a raw dataset,
* the input channels (the adapter's channel names) and the intensity normalisation,
* the output **regions**: each a set of label values that together form one sigmoid channel
  (BraTS' whole tumour = labels {1, 2, 4}), plus the label value painted back when a prediction
  is turned into a label map. Regions may overlap; painting runs in region order, so a later
  region overwrites an earlier one (nnU-Net's ``regions_class_order`` convention),
* its **label set**: the voxel values its label files may hold (:meth:`SegmentationTask.label_set`;
  by default the dataset adapter's). A case whose label holds another value is reported (file and
  values) and left out by finetuning and evaluation,
* its own config section (``task`` in a finetune/evaluate config; ``name`` is the discriminator)
  and defaults for the shared sections (learning rate, crop size, ...).

Example:
    >>> import numpy as np
    >>> from radiossl.downstream.tasks.brats import BraTSTask
    >>> task = BraTSTask(BraTSTask.config_class())
    >>> [r.name for r in task.regions()], task.out_channels
    (['WT', 'TC', 'ET'], 3)
    >>> label = np.array([[[0, 1, 2, 4]]], np.int16)
    >>> task.region_targets(label)[:, 0, 0].tolist()
    [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    >>> task.label_map(task.region_targets(label).astype(bool)).tolist()
    [[[0, 1, 2, 4]]]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from radiossl.config import Section
from radiossl.data.normalise import IntensityConfig
from radiossl.errors import ConfigError, DataError, PluginError

if TYPE_CHECKING:
    from radiossl.data.datasets import Case, DatasetAdapter
    from radiossl.data.labels import LabelSet
    from radiossl.data.loading import CaseArrays, RawCase
    from radiossl.data.splits import Splits


@dataclass(frozen=True)
class Region:
    """One output channel: the label values it covers and the value painted for it in label maps."""

    name: str
    labels: tuple[int, ...]
    paint: int


class TaskConfig(Section):
    """Settings shared by every segmentation task (the ``task`` section)."""

    name: str = Field(description="Task name (the discriminator of this section).")
    dataset: str = Field("nnunet", description="Dataset adapter (radiossl.datasets plugin) listing the cases.")
    spacing: tuple[float, float, float] | None = Field(
        None,
        description="Resample images to this voxel spacing in mm (X, Y, Z); null = keep the native grid.",
    )
    zoom: tuple[float, float, float] | None = Field(
        None,
        description="Scale the resampled grid further per axis (e.g. [0.75, 0.75, 1.0]: the thesis' "
        "LiTS pretraining zoom); null = no zoom.",
    )
    intensity: IntensityConfig | None = Field(
        None,
        description="Intensity normalisation of the input channels; null = the dataset's default for its "
        "modality (CT: window [-1000, 1000] HU to [0, 1]; MRI: per-volume min-max).",
    )
    splits: Path | None = Field(
        None,
        description="A splits.json (train/val/test case ids); null = the dataset adapter's default split.",
    )
    val_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of the training cases set aside for validation when the split has no validation "
        "cases of its own, or when its validation cases are also its test cases (LiTS).",
    )
    val_is_test: bool = Field(
        False,
        description="Validate on the test cases and carve nothing out of the training cases (the thesis' LiTS "
        "setup, spec §8 item 15: its validation folder was also its test set). The checkpoint is then "
        "selected on the test set: for reproducing published numbers only.",
    )


class SegmentationTask(ABC):
    """Base class of downstream tasks; see the module docstring.

    Args:
        settings: the task's config section (an instance of ``config_class``).
        root: the raw dataset folder (needed by tasks whose regions come from the data, e.g. nnU-Net).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[TaskConfig]]
    summary: ClassVar[str] = ""

    def __init__(self, settings: TaskConfig, root: Path | None = None) -> None:
        if not isinstance(settings, self.config_class):
            raise ConfigError(f"task section is {type(settings).__name__}, expected {self.config_class.__name__}")
        self.settings = settings
        self.root = Path(root) if root is not None else None

    # ---------------------------------------------------------------------------------- defaults

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """Defaults of the shared finetune sections: the thesis finetuning recipe (spec §6.9, §7.1)."""
        return {
            "data": {"crop_size": [128, 128, 128], "ratio": 0.4},
            "model": {"skip_connections": True, "norm": "group"},
            "optim": {
                "optimizer": "adam",
                "lr": 1e-3,
                "weight_decay": 0.0,
                "schedule": "step",
                "step_size": 50,
                "gamma": 0.5,
                "epochs": 300,
                "batch_size": 4,
            },
        }

    # ---------------------------------------------------------------------------------- data

    def require_root(self) -> Path:
        """The dataset folder, or a DataError when none was given."""
        if self.root is None:
            raise DataError(f"task {self.name!r} needs the dataset folder (--data RAW_DIR)")
        return self.root

    def adapter(self) -> DatasetAdapter:
        """The dataset adapter named by ``settings.dataset``."""
        from radiossl.data.datasets import get_adapter

        return get_adapter(self.settings.dataset)

    def channel_names(self) -> tuple[str, ...]:
        """Input channel names, in model channel order."""
        return tuple(self.adapter().channel_names(self.require_root()))

    @property
    def in_channels(self) -> int:
        """Number of network input channels."""
        return len(self.channel_names())

    @property
    def out_channels(self) -> int:
        """Number of network output channels (one sigmoid channel per region)."""
        return len(self.regions())

    def list_cases(self) -> list[Case]:
        """Every case of the dataset (sorted by id)."""
        cases = self.adapter().list_cases(self.require_root())
        if not cases:
            raise DataError(f"{self.root}: no cases found for dataset {self.settings.dataset!r}")
        return cases

    def splits(self, cases: list[Case], seed: int) -> Splits:
        """Train/val/test case ids with a validation set disjoint from the test set.

        Uses ``settings.splits`` or the adapter's default split. A split with validation cases but
        no test cases (the thesis' LiTS setup, where validation doubled as test: spec §8 item 15)
        gets its validation cases as the test set. Then, when there are no validation cases, a
        seeded ``val_fraction`` of the training cases becomes the validation set (before the label
        ratio is applied, so it is the same for every ratio).
        """
        from radiossl.data.splits import Splits, load_splits

        root = self.require_root()
        base = load_splits(self.settings.splits) if self.settings.splits else self.adapter().default_splits(root, cases)
        known = {case.case_id for case in cases}
        for part in ("train", "val", "test"):
            unknown = [cid for cid in getattr(base, part) if cid not in known]
            if unknown:
                where = self.settings.splits or root
                raise DataError(f"{where}: split {part!r} names unknown case(s): {', '.join(unknown[:5])}")
        train, val, test = list(base.train), list(base.val), list(base.test)
        source = base.source
        if val and not test:
            test, val = val, []
            source += "; its validation cases are the test set"
        if self.settings.val_is_test:
            source += "; validation on the test cases (val_is_test, no carve-out)"
            return Splits(train=train, val=[], test=test, source=source)
        if not val and self.settings.val_fraction > 0 and len(train) > 1:
            val = carve_validation(train, self.settings.val_fraction, seed)
            train = [cid for cid in train if cid not in set(val)]
            fraction = self.settings.val_fraction
            source += f"; validation = {len(val)} training cases (seeded, val_fraction {fraction})"
        return Splits(train=train, val=val, test=test, source=source)

    def load(self, case: Case) -> CaseArrays:
        """Image ``(C, X, Y, Z)`` float32 and label ``(X, Y, Z)`` int16 of one case, normalised/resampled."""
        from radiossl.data.loading import load_case_arrays

        return load_case_arrays(
            case,
            spacing=self.settings.spacing,
            intensity=self.intensity(),
            zoom=self.settings.zoom,
            labels=self.label_set(),
        )

    def load_with_raw(self, case: Case) -> tuple[RawCase, CaseArrays]:
        """The case as read from disk (original grid, for metrics and predictions) and as loaded."""
        from radiossl.data.loading import arrays_from_raw, read_case

        raw = read_case(case, self.label_set())
        arrays = arrays_from_raw(
            case, raw, spacing=self.settings.spacing, intensity=self.intensity(), zoom=self.settings.zoom
        )
        return raw, arrays

    def normalise_crop(self, image: np.ndarray) -> np.ndarray:
        """A training patch or evaluation crop ``(C, X, Y, Z)`` after cutting; unchanged by default.

        Tasks that normalise per crop (the thesis' LiTS grid: min-max of each crop) override it.
        """
        return image

    def label_set(self) -> LabelSet:
        """The voxel values this task's label files may hold (checked whenever a case is loaded).

        Default: the dataset adapter's label set (:meth:`DatasetAdapter.label_set`). Tasks that give
        label values their own meaning (BraTS' ``et_label``) override it.
        """
        return self.adapter().label_set(self.require_root())

    def intensity(self) -> IntensityConfig:
        """The normalisation in use: the configured one, or the dataset's default for its modality."""
        if self.settings.intensity is not None:
            return self.settings.intensity
        from radiossl.data.normalise import default_intensity

        modalities = set(self.adapter().channel_modalities(self.require_root()).values())
        return default_intensity("ct" if modalities == {"ct"} else "mri")

    # ---------------------------------------------------------------------------------- regions

    @abstractmethod
    def regions(self) -> list[Region]:
        """The output regions, in channel (and painting) order."""

    def region_names(self) -> list[str]:
        """Names of the regions, in channel order."""
        return [region.name for region in self.regions()]

    def region_targets(self, label: np.ndarray) -> np.ndarray:
        """Binary region masks ``(R, X, Y, Z)`` uint8 from a label map ``(X, Y, Z)``."""
        regions = self.regions()
        out = np.empty((len(regions), *label.shape), dtype=np.uint8)
        for index, region in enumerate(regions):
            out[index] = np.isin(label, region.labels)
        return out

    def label_map(self, masks: np.ndarray) -> np.ndarray:
        """Label map ``(X, Y, Z)`` int16 from region masks ``(R, X, Y, Z)``, painted in region order."""
        regions = self.regions()
        if masks.shape[0] != len(regions):
            raise ValueError(f"{masks.shape[0]} mask channels but task {self.name!r} has {len(regions)} regions")
        out = np.zeros(masks.shape[1:], dtype=np.int16)
        for index, region in enumerate(regions):
            out[np.asarray(masks[index], dtype=bool)] = region.paint
        return out

    def describe(self) -> dict[str, Any]:
        """Regions, channels and allowed label values, for summaries."""
        info: dict[str, Any] = {
            "task": self.name,
            "regions": [{"name": r.name, "labels": list(r.labels), "paint": r.paint} for r in self.regions()],
        }
        if self.root is not None:
            info["channels"] = list(self.channel_names())
            info["label_values"] = sorted(self.label_set().values)
        return info


def carve_validation(train: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded ``fraction`` of ``train`` (at least one case, never all) as validation ids, sorted."""
    from radiossl.utils.seeding import rng_for

    ordered = sorted(train)
    count = min(max(1, round(len(ordered) * fraction)), len(ordered) - 1)
    order = rng_for(seed, "validation-carve-out").permutation(len(ordered))
    return sorted(ordered[i] for i in order[:count])


def get_task_class(name: str) -> type[SegmentationTask]:
    """The task class registered as ``name`` in the ``radiossl.tasks`` group."""
    from radiossl import registry

    obj = registry.get("radiossl.tasks", name)
    if not (isinstance(obj, type) and issubclass(obj, SegmentationTask)):
        raise PluginError(f"task plugin {name!r} is {obj!r}, not a SegmentationTask subclass")
    return obj
