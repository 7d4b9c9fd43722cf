"""Task plugins: regions, label maps, nnU-Net dataset.json, splits with a validation carve-out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from radiossl import registry
from radiossl.data.datasets import Case, DatasetAdapter
from radiossl.data.splits import Splits, ratio_subset
from radiossl.downstream.tasks.base import carve_validation, get_task_class
from radiossl.downstream.tasks.brats import BraTSConfig, BraTSTask
from radiossl.downstream.tasks.lits import LiTSConfig, LiTSTask
from radiossl.downstream.tasks.nnunet import NnUNetConfig, NnUNetTask, regions_from_dataset_json
from radiossl.errors import DataError, PluginError


def test_entry_points_resolve() -> None:
    assert get_task_class("brats") is BraTSTask
    assert get_task_class("lits") is LiTSTask
    assert get_task_class("nnunet") is NnUNetTask
    with pytest.raises(PluginError, match="unknown"):
        get_task_class("no-such-task")


@pytest.mark.parametrize("et", [4, 3])
def test_brats_regions_and_label_map_round_trip(et: int) -> None:
    task = BraTSTask(BraTSConfig(et_label=et))
    label = np.array([0, 1, 2, et, 0, 2], np.int16).reshape(1, 2, 3)
    targets = task.region_targets(label)
    assert targets[0].ravel().tolist() == [0, 1, 1, 1, 0, 1]  # WT
    assert targets[1].ravel().tolist() == [0, 1, 0, 1, 0, 0]  # TC
    assert targets[2].ravel().tolist() == [0, 0, 0, 1, 0, 0]  # ET
    assert np.array_equal(task.label_map(targets.astype(bool)), label)


def test_brats_rejects_clashing_et_label() -> None:
    with pytest.raises(ValueError, match="clashes"):
        BraTSConfig(et_label=2)


def test_lits_regions() -> None:
    label = np.array([[[0, 1, 2]]], np.int16)
    liver = LiTSTask(LiTSConfig())
    assert liver.out_channels == 1 and liver.region_targets(label)[0].ravel().tolist() == [0, 1, 1]
    both = LiTSTask(LiTSConfig(tumour=True))
    assert np.array_equal(both.label_map(both.region_targets(label).astype(bool)), label)


def test_nnunet_labels_and_regions(tmp_path: Path) -> None:
    plain = {"labels": {"background": 0, "b": 2, "a": 1, "ignore": 3}}
    assert [(r.name, r.labels, r.paint) for r in regions_from_dataset_json(plain)] == [
        ("a", (1,), 1),
        ("b", (2,), 2),
    ]
    v1 = {"labels": {"0": "background", "1": "liver"}}
    assert [r.name for r in regions_from_dataset_json(v1)] == ["liver"]
    with pytest.raises(DataError, match="regions_class_order"):
        regions_from_dataset_json({"labels": {"background": 0, "wt": [1, 2]}})
    with pytest.raises(DataError, match="no foreground"):
        regions_from_dataset_json({"labels": {"background": 0}})
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "t1"},
                "labels": {"background": 0, "wt": [1, 2, 3], "tc": [2, 3], "et": 3},
                "regions_class_order": [1, 2, 3],
            }
        )
    )
    task = NnUNetTask(NnUNetConfig(), tmp_path)
    label = np.array([[[0, 1, 2, 3]]], np.int16)
    assert [r.name for r in task.regions()] == ["wt", "tc", "et"]
    assert np.array_equal(task.label_map(task.region_targets(label).astype(bool)), label)
    override = NnUNetTask(NnUNetConfig.model_validate({"regions": [{"name": "fg", "labels": [1, 2, 3]}]}), tmp_path)
    assert [(r.name, r.paint) for r in override.regions()] == [("fg", 3)]
    with pytest.raises(DataError, match=r"missing: nnU-Net dataset folder not found"):
        NnUNetTask(NnUNetConfig(), tmp_path / "missing").regions()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty/dataset\.json: not found"):
        NnUNetTask(NnUNetConfig(), tmp_path / "empty").regions()


class FakeAdapter(DatasetAdapter):
    """Cases c00..c09 with a split chosen by the test (no files needed)."""

    name: ClassVar[str] = "fake-split"
    modality: ClassVar[str] = "ct"
    split = Splits([f"c{i:02d}" for i in range(7)], ["c07", "c08"], [], source="fake")

    def channel_names(self, root: Path) -> tuple[str, ...]:
        return ("ct",)

    def label_values(self, root: Path) -> dict[str, int]:
        return {"background": 0, "liver": 1, "tumour": 2}

    def list_cases(self, root: Path) -> list[Case]:
        return [Case(f"c{i:02d}", {"ct": Path(f"c{i:02d}.nii.gz")}, None) for i in range(10)]

    def default_splits(self, root: Path, cases: list[Case]) -> Splits:
        return self.split


@pytest.fixture
def fake_adapter() -> type[FakeAdapter]:
    registry.register("radiossl.datasets", "fake-split", FakeAdapter)
    yield FakeAdapter
    registry.unregister("radiossl.datasets", "fake-split")


def test_validation_is_carved_out_when_val_doubles_as_test(fake_adapter: type[FakeAdapter], tmp_path: Path) -> None:
    task = LiTSTask(LiTSConfig(dataset="fake-split", val_fraction=0.3), tmp_path)
    cases = task.list_cases()
    splits = task.splits(cases, seed=1)
    assert splits.test == ["c07", "c08"]  # the old validation cases
    assert len(splits.val) == 2 and set(splits.val) <= {f"c{i:02d}" for i in range(7)}
    assert not set(splits.val) & set(splits.train) and len(splits.train) == 5
    assert task.splits(cases, seed=1).val == splits.val  # seeded
    assert "validation" in splits.source
    # The carve-out comes first, so ratio subsets of the remaining training cases stay nested.
    small, large = ratio_subset(splits.train, 0.4, 1), ratio_subset(splits.train, 0.8, 1)
    assert set(small) <= set(large)


def test_custom_splits_file_is_checked(fake_adapter: type[FakeAdapter], tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["c00", "c01", "c02"], "val": ["c03"], "test": ["zz"]}))
    task = LiTSTask(LiTSConfig(dataset="fake-split", splits=path), tmp_path)
    with pytest.raises(DataError, match="unknown case"):
        task.splits(task.list_cases(), seed=0)
    path.write_text(json.dumps({"train": ["c00", "c01", "c02"], "val": ["c03"], "test": ["c04"]}))
    splits = task.splits(task.list_cases(), seed=0)
    assert (splits.train, splits.val, splits.test) == (["c00", "c01", "c02"], ["c03"], ["c04"])


def test_carve_validation_bounds() -> None:
    assert len(carve_validation(["a", "b"], 0.9, 0)) == 1
    assert carve_validation([f"x{i}" for i in range(10)], 0.2, 3) == sorted(
        carve_validation([f"x{i}" for i in range(10)], 0.2, 3)
    )


def test_brats_phantom_channels_and_loading(brats_root: Path) -> None:
    task = BraTSTask(BraTSConfig(), brats_root)
    assert task.channel_names() == ("t1", "t2", "flair", "t1ce") and task.in_channels == 4
    arrays = task.load(task.list_cases()[0])
    assert arrays.image.shape == (4, 32, 32, 24) and arrays.image.dtype == np.float32
    assert float(arrays.image.min()) >= 0.0 and float(arrays.image.max()) <= 1.0
    assert arrays.label is not None and set(np.unique(arrays.label).tolist()) <= {0, 1, 2, 4}


def test_nnunet_task_accepts_the_folder_that_holds_the_dataset(nnunet_root: Path) -> None:
    # `radiossl synth nnunet --out DIR` writes DIR/Dataset901_Phantom; --data DIR must work as for preprocess.
    parent_task = NnUNetTask(NnUNetConfig(), nnunet_root.parent)
    dataset_task = NnUNetTask(NnUNetConfig(), nnunet_root)
    assert [r.name for r in parent_task.regions()] == [r.name for r in dataset_task.regions()]
    assert parent_task.out_channels == dataset_task.out_channels >= 1
