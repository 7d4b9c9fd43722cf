"""Dataset adapters on phantom layouts and on hand-made edge cases."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from radiossl.data.datasets import get_adapter
from radiossl.data.datasets.brats18 import BraTS18
from radiossl.data.datasets.lits17 import LiTS17
from radiossl.data.datasets.luna16 import LUNA16
from radiossl.data.datasets.nnunet import NnUNetRaw
from radiossl.data.split_lists import read_list
from radiossl.errors import DataError, PluginError
from radiossl.io import strip_image_extension


@pytest.mark.parametrize(
    ("kind", "name", "channels", "labelled"),
    [
        ("brats", "brats18", ("t1", "t2", "flair", "t1ce"), True),
        ("lits", "lits17", ("ct",), True),
        ("luna", "luna16", ("ct",), False),
        ("nnunet", "nnunet", ("flair", "t1ce"), True),
    ],
)
def test_adapters_read_phantom_layouts(
    phantom_root: Callable[[str], Path], kind: str, name: str, channels: tuple[str, ...], labelled: bool
) -> None:
    root = phantom_root(kind)
    adapter = get_adapter(name)
    assert adapter.name == name
    cases = adapter.list_cases(root)
    assert [c.case_id for c in cases] == sorted(c.case_id for c in cases)
    assert len({c.case_id for c in cases}) == len(cases) >= 3
    assert adapter.channel_names(root) == channels
    for case in cases:
        assert tuple(case.images) == channels
        assert all(path.is_file() for path in case.images.values())
        if labelled and case.group != "Ts":
            assert case.label is not None and case.label.is_file()
    assert adapter.check(root) == []
    splits = adapter.default_splits(root, cases)
    listed = splits.train + splits.val + splits.test
    assert set(listed) <= {c.case_id for c in cases} and splits.train


def test_brats_uses_the_thesis_lists_when_their_patients_are_present(tmp_path: Path) -> None:
    train_pid = read_list("brats_train.txt")[0]
    valid_pid = read_list("brats_valid.txt")[0]
    for entry in (train_pid, valid_pid, "HGG/Brats18_NOT_LISTED_1"):
        folder = tmp_path / entry
        folder.mkdir(parents=True)
        for key in ("t1", "t2", "flair", "t1ce", "seg"):
            (folder / f"{folder.name}_{key}.nii.gz").write_bytes(b"")
    adapter = BraTS18()
    cases = adapter.list_cases(tmp_path)
    with pytest.warns(UserWarning, match=r"1 patient\(s\) not in the thesis split lists .*Brats18_NOT_LISTED_1") as w:
        splits = adapter.default_splits(tmp_path, cases)
    assert len(w) == 1 and "splits_file" in str(w[0].message)
    assert splits.train == [train_pid.split("/")[1]]
    assert splits.val == [valid_pid.split("/")[1]]
    assert splits.split_of("Brats18_NOT_LISTED_1") == "unused"
    assert "thesis" in splits.source
    shutil.rmtree(tmp_path / "HGG" / "Brats18_NOT_LISTED_1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every present patient is listed: nothing to warn about
        adapter.default_splits(tmp_path, adapter.list_cases(tmp_path))


def test_thesis_lists_have_the_published_sizes() -> None:
    lists = [read_list(f"brats_{name}.txt") for name in ("train", "valid", "test")]
    assert [len(x) for x in lists] == [199, 43, 35]
    assert [sum(e.startswith("HGG/") for e in x) for x in lists] == [141, 34, 30]
    assert len(set().union(*map(set, lists))) == 277


def test_brats_reports_missing_modalities_and_extra_files(phantom_copy: Callable[[str], Path]) -> None:
    root = phantom_copy("brats")
    adapter = BraTS18()
    case = adapter.list_cases(root)[0]
    case.images["t1ce"].unlink()
    (case.images["t1"].parent / "notes.txt").write_text("x")
    case = adapter.list_cases(root)[0]
    assert adapter.case_problems(case) == [f"case {case.case_id}: missing t1ce (expected {case.images['t1ce']})"]
    problems = adapter.check(root)
    assert any("missing t1ce" in p for p in problems) and any("unexpected file notes.txt" in p for p in problems)


def test_brats_without_grade_folders_and_bad_roots(tmp_path: Path, phantom_root: Callable[[str], Path]) -> None:
    source = next((phantom_root("brats") / "HGG").iterdir())
    shutil.copytree(source, tmp_path / "flat" / source.name)
    cases = BraTS18().list_cases(tmp_path / "flat")
    assert [c.case_id for c in cases] == [source.name] and cases[0].group is None
    with pytest.raises(DataError, match="no BraTS patient folders"):
        BraTS18().list_cases(tmp_path)
    with pytest.raises(DataError, match="folder not found"):
        BraTS18().list_cases(tmp_path / "missing")


def test_lits_flat_download_layout_and_both_segmentation_extensions(
    tmp_path: Path, phantom_root: Callable[[str], Path]
) -> None:
    ct = next((phantom_root("lits") / "train" / "ct").iterdir())
    seg = next((phantom_root("lits") / "train" / "seg").iterdir())
    for number, batch, seg_ext in ((3, "Training Batch 1", ".nii"), (30, "Training Batch 2", ".nii.gz")):
        folder = tmp_path / batch
        folder.mkdir(exist_ok=True)
        shutil.copy(ct, folder / f"volume-{number}.nii")
        shutil.copy(seg, folder / f"segmentation-{number}{seg_ext}")
    shutil.copy(ct, tmp_path / "Training Batch 2" / "volume-31.nii")  # no segmentation
    adapter = LiTS17()
    cases = adapter.list_cases(tmp_path)
    assert [c.case_id for c in cases] == ["volume-3", "volume-30", "volume-31"]
    assert cases[1].label is not None and cases[1].label.name == "segmentation-30.nii.gz"
    splits = adapter.default_splits(tmp_path, cases)
    assert (splits.train, splits.val, splits.test) == (["volume-3"], ["volume-30", "volume-31"], [])
    assert adapter.check(tmp_path) == ["case volume-31: no label file"]


def test_lits_duplicate_case_id_is_one_case_with_a_problem(phantom_copy: Callable[[str], Path]) -> None:
    from radiossl.data.loading import read_case

    root = phantom_copy("lits")
    volume = next((root / "train" / "ct").iterdir())
    shutil.copy(volume, root / "val" / "ct")
    adapter = LiTS17()
    cases = adapter.list_cases(root)  # listing no longer stops the whole run
    assert len(cases) == len({c.case_id for c in cases})
    duplicate = next(c for c in cases if c.problems)
    assert duplicate.case_id == strip_image_extension(volume)
    problem = duplicate.problems[0]
    assert "appears 2 times" in problem
    assert str(root / "train" / "ct" / volume.name) in problem and str(root / "val" / "ct" / volume.name) in problem
    assert problem in adapter.check(root)
    assert [c.case_id for c in cases if not c.problems] == [c.case_id for c in cases if c is not duplicate]
    with pytest.raises(DataError, match="appears 2 times"):
        read_case(duplicate)


def test_luna_reports_a_missing_raw_file(phantom_copy: Callable[[str], Path]) -> None:
    root = phantom_copy("luna")
    adapter = LUNA16()
    case = adapter.list_cases(root)[0]
    case.images["ct"].with_suffix(".raw").unlink()
    assert "missing data file" in adapter.case_problems(case)[0]
    with pytest.raises(DataError, match="no subset"):
        adapter.list_cases(root / "subset0")


def test_luna_held_out_subsets(tmp_path: Path) -> None:
    for subset in (0, 6, 7, 9):
        folder = tmp_path / f"subset{subset}"
        folder.mkdir()
        (folder / f"1.2.{subset}.mhd").write_text("ElementDataFile = LOCAL\n")
    adapter = LUNA16()
    splits = adapter.default_splits(tmp_path, adapter.list_cases(tmp_path))
    assert splits.train == ["1.2.0", "1.2.6"] and splits.val == ["1.2.7", "1.2.9"] and splits.test == []


def _write_v1_dataset(root: Path, phantom: Path) -> None:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    image = next((phantom / "imagesTr").glob("*_0000.nii.gz"))
    label = next((phantom / "labelsTr").glob("*.nii.gz"))
    for case in ("liver_001", "liver_002"):
        shutil.copy(image, root / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(label, root / "labelsTr" / f"{case}.nii.gz")
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "modality": {"0": "CT"},
                "labels": {"0": "background", "1": "liver", "2": "tumour"},
                "numTraining": 3,
            }
        )
    )


def test_nnunet_v1_dataset_json_and_nested_roots(tmp_path: Path, phantom_root: Callable[[str], Path]) -> None:
    phantom = next(p for p in phantom_root("nnunet").iterdir() if p.is_dir())
    _write_v1_dataset(tmp_path / "Task03_Liver", phantom)
    adapter = NnUNetRaw()
    assert adapter.channel_names(tmp_path) == ("ct",)  # the only dataset below tmp_path
    assert adapter.channel_modalities(tmp_path) == {"ct": "ct"}
    assert adapter.label_values(tmp_path) == {"background": 0, "liver": 1, "tumour": 2}
    cases = adapter.list_cases(tmp_path)
    assert [c.case_id for c in cases] == ["liver_001", "liver_002"]
    assert adapter.check(tmp_path) == ["dataset.json: numTraining is 3 but imagesTr holds 2 cases"]
    shutil.copytree(phantom, tmp_path / phantom.name)
    with pytest.raises(DataError, match="several nnU-Net datasets"):
        adapter.list_cases(tmp_path)
    with pytest.raises(DataError, match=r"dataset\.json"):
        adapter.list_cases(tmp_path / "Task03_Liver" / "imagesTr")


def test_get_adapter_unknown_name() -> None:
    with pytest.raises(PluginError, match=r"available: .*brats18"):
        get_adapter("brats2031")
