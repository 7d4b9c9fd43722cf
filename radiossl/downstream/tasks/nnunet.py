"""Any dataset in nnU-Net's raw format: regions and labels from its ``dataset.json``.

``dataset.json`` ``labels`` maps names to label values. Two forms are understood:

* plain labels (``{"background": 0, "liver": 1, "tumour": 2}``): one sigmoid channel per foreground
  label, painted back with its own value;
* regions (nnU-Net's region-based training: ``{"background": 0, "whole tumour": [1, 2, 3],
  "tumour core": [2, 3], "enhancing tumour": 3}`` plus ``"regions_class_order": [1, 2, 3]``): one
  channel per region, painted back in order with the value ``regions_class_order`` gives it.

An ``ignore`` label is not a region (its voxels count as background). ``task.regions`` in the config
overrides all of this.

Example:
    >>> import json, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": [1, 2], "b": 2},
    ...     "regions_class_order": [1, 2], "channel_names": {"0": "CT"}}))
    >>> [(r.name, r.labels, r.paint) for r in NnUNetTask(NnUNetConfig(), root).regions()]
    [('a', (1, 2), 1), ('b', (2,), 2)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig
from radiossl.errors import DataError

DATASET_JSON = "dataset.json"


class RegionSpec(BaseModel):
    """One region written in a config: its name, label values and the value painted back."""

    model_config = ConfigDict(extra="forbid")

    name: str
    labels: list[int] = Field(min_length=1)
    paint: int | None = Field(None, description="Label value for label maps; null = the largest of labels.")


class NnUNetConfig(TaskConfig):
    """The ``task`` section of ``--task nnunet``."""

    name: Literal["nnunet"] = "nnunet"
    dataset: str = Field("nnunet", description="Dataset adapter (nnunet: DatasetXXX_Name raw folders).")
    regions: list[RegionSpec] | None = Field(
        None,
        description="Output regions; null = from dataset.json (labels or regions + regions_class_order).",
    )


def read_dataset_json(root: Path) -> dict[str, Any]:
    """The parsed ``dataset.json`` of an nnU-Net raw dataset folder (or of the one dataset inside ``root``)."""
    from radiossl.data.datasets.nnunet import NnUNetRaw

    adapter = NnUNetRaw()
    data = adapter.dataset_json(Path(root))
    if not isinstance(data.get("labels"), dict):
        path = adapter.dataset_root(Path(root)) / DATASET_JSON
        raise DataError(f"{path}: needs a 'labels' mapping of names to label values")
    return data


def regions_from_dataset_json(data: dict[str, Any], where: str = DATASET_JSON) -> list[Region]:
    """Regions of a parsed ``dataset.json`` (see the module docstring).

    Understands nnU-Net v2 labels (name -> value or list of values) and v1 labels (value -> name).
    """
    entries: list[tuple[str, tuple[int, ...]]] = []
    for key, value in data["labels"].items():
        if isinstance(value, str) and str(key).lstrip("-").isdigit():  # v1: "value" -> name
            key, value = value, int(key)
        if key == "ignore":
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise DataError(f"{where}: label {key!r} must be an integer or a list of integers, got {value!r}")
        if values == [0]:
            continue
        entries.append((str(key), tuple(int(v) for v in values)))
    if not entries:
        raise DataError(f"{where}: no foreground labels")
    order = data.get("regions_class_order")
    if any(len(labels) > 1 for _, labels in entries) or order is not None:
        if not isinstance(order, list) or len(order) != len(entries):
            raise DataError(
                f"{where}: region-based labels need 'regions_class_order' with one value per region ({len(entries)})"
            )
        return [Region(name, labels, int(paint)) for (name, labels), paint in zip(entries, order, strict=True)]
    return [Region(name, labels, labels[0]) for name, labels in sorted(entries, key=lambda e: e[1])]


class NnUNetTask(SegmentationTask):
    """Generic task driven by an nnU-Net raw dataset's ``dataset.json``."""

    name: ClassVar[str] = "nnunet"
    config_class: ClassVar[type[TaskConfig]] = NnUNetConfig
    summary: ClassVar[str] = "nnU-Net raw dataset: channels and regions from dataset.json"

    def regions(self) -> list[Region]:
        configured = self.settings.regions  # type: ignore[attr-defined]
        if configured:
            return [
                Region(spec.name, tuple(spec.labels), spec.paint if spec.paint is not None else max(spec.labels))
                for spec in configured
            ]
        root = self.require_root()
        return regions_from_dataset_json(read_dataset_json(root), str(root / DATASET_JSON))
