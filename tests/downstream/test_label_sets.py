"""Task label sets: cases with other label values (or a duplicate id) are reported and left out."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.datasets import Case
from radiossl.data.labels import LabelValueError
from radiossl.downstream.datasets import CaseCache
from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig
from radiossl.downstream.tasks.brats import BraTSConfig, BraTSTask
from radiossl.downstream.tasks.lits import LiTSConfig, LiTSTask
from radiossl.downstream.tasks.nnunet import NnUNetConfig, NnUNetTask
from radiossl.io import read_image, write_image


def add_label_values(label_file: Path, values: list[int]) -> None:
    """Paint ``values`` into the first voxels of ``label_file`` (one voxel each), keeping its geometry."""
    volume = read_image(label_file)
    data = np.array(volume.array)
    for index, value in enumerate(values):
        data[index, 0, 0] = value
    write_image(label_file, data, like=volume)


def relabel(label_file: Path, old: int, new: int) -> None:
    """Rewrite ``label_file`` with every ``old`` voxel set to ``new``."""
    volume = read_image(label_file)
    data = np.array(volume.array)
    data[data == old] = new
    write_image(label_file, data, like=volume)


def label_file(case: Case) -> Path:
    """The label file of a labelled case."""
    assert case.label is not None
    return case.label


def case_folder(root: Path, case_id: str) -> Path:
    return next(root.glob(f"*/{case_id}"))


class PluginTask(SegmentationTask):
    """A third-party task that declares no label set of its own."""

    name: ClassVar[str] = "plugin-brats"
    config_class: ClassVar[type[TaskConfig]] = TaskConfig

    def regions(self) -> list[Region]:
        return [Region("tumour", (1, 2, 4), 1)]


def test_every_task_declares_its_label_set(nnunet_root: Path, brats_root: Path) -> None:
    assert BraTSTask(BraTSConfig()).label_set().values == {0, 1, 2, 4}
    assert BraTSTask(BraTSConfig(et_label=3)).label_set().values == {0, 1, 2, 3}
    assert LiTSTask(LiTSConfig(tumour=True)).label_set().values == {0, 1, 2}
    assert NnUNetTask(NnUNetConfig(), nnunet_root).label_set().values == {0, 1, 2}  # from dataset.json
    plugin = PluginTask(TaskConfig(name="plugin-brats", dataset="brats18"), brats_root)
    assert plugin.label_set().values == {0, 1, 2, 4}  # the base class: the dataset adapter's set
    assert BraTSTask(BraTSConfig(), brats_root).describe()["label_values"] == [0, 1, 2, 4]


def test_brats_et_label_3_uses_cases_labelled_3(brats_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(brats_root, tmp_path / "brats2023"))
    for seg in root.glob("*/*/*_seg.nii.gz"):
        relabel(seg, 4, 3)  # the BraTS 2023 convention
    default = BraTSTask(BraTSConfig(), root)
    enhancing = [c for c in default.list_cases() if 3 in np.unique(read_image(label_file(c)).array)]
    assert enhancing
    with pytest.raises(LabelValueError, match=r"task\.et_label=3"):
        default.load(enhancing[0])  # never silently read as background
    task = BraTSTask(BraTSConfig(et_label=3), root)
    cache = CaseCache(task, task.list_cases())
    cache.preload()
    assert cache.left_out == [] and len(cache) == len(task.list_cases())
    item = cache.get(cache.case_ids.index(enhancing[0].case_id))
    assert len(item.foreground[task.region_names().index("ET")]) > 0  # label 3 is enhancing tumour


def test_lits_case_with_label_3_is_reported_and_left_out(lits_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(lits_root, tmp_path / "lits"))
    task = LiTSTask(LiTSConfig(), root)
    cases = task.list_cases()
    add_label_values(label_file(cases[0]), [3])
    cache = CaseCache(task, cases)
    cache.preload()
    assert [c.case_id for c in cache.left_out] == [cases[0].case_id]
    assert str(cases[0].label) in cache.left_out[0].error and "3 (1 voxel)" in cache.left_out[0].error
    assert cache.case_ids == [c.case_id for c in cases[1:]]
    with pytest.raises(LabelValueError, match=r"allowed: \{0, 1, 2\}, the LiTS labels"):
        task.load_with_raw(cases[0])  # the evaluation path runs the same check


def test_nnunet_case_with_a_label_not_in_dataset_json_is_reported(nnunet_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(nnunet_root, tmp_path / nnunet_root.name))
    task = NnUNetTask(NnUNetConfig(), root)
    cases = [c for c in task.list_cases() if c.label is not None]
    add_label_values(label_file(cases[1]), [5])
    cache = CaseCache(task, cases, threads=2)
    cache.preload()
    assert [c.case_id for c in cache.left_out] == [cases[1].case_id]
    error = cache.left_out[0].error
    assert str(cases[1].label) in error and "5 (1 voxel)" in error and str(root / "dataset.json") in error
    assert len(cache) == len(cases) - 1


def tiny_finetune_args(root: Path, runs: Path, splits: Path) -> list[str]:
    return [
        "finetune",
        "--task",
        "brats",
        "--data",
        str(root),
        "--out",
        str(runs),
        "--epochs",
        "1",
        "--width",
        "0.125",
        "--batch-size",
        "2",
        "--ratio",
        "1.0",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        f"task.splits={splits}",
        "--set",
        "data.crop_size=[16,16,16]",
        "--set",
        "sliding_window.roi=[32,32,24]",
        "--set",
        "logging.progress=false",
    ]


def test_cli_finetune_and_evaluate_leave_out_bad_labels_and_duplicate_ids(brats_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(brats_root, tmp_path / "raw"))
    ids = sorted(p.name for p in root.glob("*/*"))
    bad, duplicated = ids[0], ids[1]
    seg = case_folder(root, bad) / f"{bad}_seg.nii.gz"
    add_label_values(seg, [3, 7])
    first = case_folder(root, duplicated)
    second = root / ("LGG" if first.parent.name == "HGG" else "HGG") / duplicated
    shutil.copytree(first, second)
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": ids[:4], "val": [ids[4]], "test": [ids[5]]}))
    runs = tmp_path / "runs"
    runner = CliRunner()

    trained = runner.invoke(app, tiny_finetune_args(root, runs, splits))
    assert trained.exit_code == 1, trained.output  # trained on the others, then reported
    output = " ".join(trained.output.split())
    assert "2 case(s) left out" in output
    assert str(seg) in output and "3 (1 voxel), 7 (1 voxel)" in output and "task.et_label=3" in output
    assert str(first) in output and str(second) in output
    run = next(runs.iterdir())
    assert (run / "checkpoint_final.pt").is_file()
    left_out = json.loads((run / "splits.json").read_text())["left_out"]
    assert [(c["case"], c["split"]) for c in left_out] == [(bad, "train"), (duplicated, "train")]

    out = tmp_path / "eval"
    flags = ["--data", str(root), "--weights", str(run / "checkpoint_final.pt"), "--out", str(out)]
    evaluated = runner.invoke(app, ["evaluate", "--task", "brats", *flags, "--split", "all"])
    assert evaluated.exit_code == 1, evaluated.output
    assert "2 case(s) failed" in evaluated.output
    failures = {f["case"]: f["error"] for f in json.loads((out / "summary.json").read_text())["failures"]}
    assert set(failures) == {bad, duplicated}
    assert str(seg) in failures[bad] and "3 (1 voxel), 7 (1 voxel)" in failures[bad]
    assert str(first) in failures[duplicated] and str(second) in failures[duplicated]
    with (out / "metrics.csv").open() as handle:
        scored = {row["case"] for row in csv.DictReader(handle)}
    assert scored == set(ids) - {bad, duplicated}


def test_finetune_without_loadable_validation_or_training_cases(brats_root: Path, tmp_path: Path) -> None:
    from radiossl.downstream.config import load_task_config
    from radiossl.downstream.finetune import FinetuneTask
    from radiossl.errors import DataError

    root = Path(shutil.copytree(brats_root, tmp_path / "raw"))
    ids = sorted(p.name for p in root.glob("*/*"))
    add_label_values(case_folder(root, ids[0]) / f"{ids[0]}_seg.nii.gz", [7])
    splits = tmp_path / "splits.json"

    def datasets(train: list[str], val: list[str]) -> FinetuneTask:
        splits.write_text(json.dumps({"train": train, "val": val, "test": [ids[5]]}))
        flags = {"data": {"root": str(root), "ratio": 1.0}, "task": {"splits": str(splits)}}
        runner = FinetuneTask(load_task_config("finetune", "brats", flags=flags))
        _, val_set = runner.build_datasets()
        assert val_set is None and runner.monitor is None  # no usable validation case: train without it
        return runner

    runner = datasets(ids[1:3], [ids[0]])
    assert runner.left_out[0]["case"] == ids[0] and runner.left_out[0]["split"] == "val"
    assert runner.train_cache is not None and runner.train_cache.case_ids == ids[1:3]
    with pytest.raises(DataError, match=r"none of the 1 training case\(s\) could be loaded"):
        datasets([ids[0]], [])
