"""Label sets: counting values, the shared check in ``read_case``, adapters' sets, and preprocessing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.datasets import get_adapter
from radiossl.data.datasets.nnunet import NnUNetRaw
from radiossl.data.labels import LabelSet, LabelValueError, check_label_values, value_counts
from radiossl.data.loading import read_case
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.errors import DataError
from radiossl.io import Volume, read_image, write_image


def add_label_values(label_file: Path, values: list[int]) -> None:
    """Paint ``values`` into the first voxels of ``label_file`` (one voxel each), keeping its geometry."""
    volume = read_image(label_file)
    data = np.array(volume.array)
    for index, value in enumerate(values):
        data[index, 0, 0] = value
    write_image(label_file, data, like=volume)


def brats_cases(root: Path) -> list[Path]:
    """The case folders of a BraTS-layout phantom, sorted by case id."""
    return sorted((p for grade in ("HGG", "LGG") for p in (root / grade).iterdir()), key=lambda p: p.name)


def duplicate_into_other_grade(case: Path) -> Path:
    """Copy a BraTS case folder under the other grade folder (the same case id twice)."""
    other = case.parent.parent / ("LGG" if case.parent.name == "HGG" else "HGG")
    return Path(shutil.copytree(case, other / case.name))


def test_value_counts_integer_float_and_wide_arrays() -> None:
    assert value_counts(np.array([0, 0, 4, 2, 4, 4], np.uint8)) == {0: 2, 2: 1, 4: 3}
    assert value_counts(np.array([-1, 70000, 70000], np.int32)) == {-1: 1, 70000: 2}  # beyond one bincount
    assert value_counts(np.array([0.0, 1.0, 0.5, 1.0])) == {0.0: 1, 0.5: 1, 1.0: 2}
    assert value_counts(np.zeros((0,), np.int16)) == {}


def test_check_names_file_values_hints_and_advice() -> None:
    allowed = LabelSet(frozenset({0, 1, 2}), "LiTS labels", hints={7: "seven hint"}, advice="general advice")
    ok = Volume(np.array([[[0, 1, 2, 2.0]]]), np.eye(4), Path("seg.nii"))
    check_label_values("c", ok, allowed)  # integral floats of allowed values are fine
    bad = Volume(np.array([[[0, 3, 3, 7, 0.5]]], np.float32), np.eye(4), Path("seg.nii"))
    with pytest.raises(LabelValueError) as info:
        check_label_values("c", bad, allowed)
    message = str(info.value)
    assert message.startswith("case c: seg.nii: unexpected label values 0.5 (1 voxel), 3 (2 voxels), 7 (1 voxel)")
    assert "(allowed: {0, 1, 2}, the LiTS labels)" in message
    assert message.endswith("; seven hint; general advice")
    assert info.value.path == Path("seg.nii") and info.value.unexpected == {0.5: 1, 3.0: 2, 7.0: 1}
    assert isinstance(info.value, DataError)  # reported like every other bad case


def test_read_case_checks_label_values(phantom_copy: Callable[[str], Path]) -> None:
    root = phantom_copy("brats")
    adapter = get_adapter("brats18")
    case = adapter.list_cases(root)[0]
    assert case.label is not None and read_case(case, adapter.label_set(root)).label is not None
    add_label_values(case.label, [3, 7])
    assert read_case(case).label is not None  # without a label set nothing is checked
    with pytest.raises(LabelValueError, match=r"3 \(1 voxel\), 7 \(1 voxel\)") as info:
        read_case(case, adapter.label_set(root))
    assert str(case.label) in str(info.value) and "BraTS 2023 and later label enhancing tumour 3" in str(info.value)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"background": 0, "edema": 1, "tumor": 2}, {0, 1, 2}),  # v2 plain labels
        ({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}, {0, 1, 2, 3}),  # v2 regions
        ({"background": 0, "liver": 1, "ignore": 4}, {0, 1, 4}),  # an ignore label may be painted
        ({"0": "background", "1": "liver", "2": "tumour"}, {0, 1, 2}),  # v1 / Decathlon
    ],
)
def test_nnunet_label_set_from_dataset_json(tmp_path: Path, labels: dict[str, object], expected: set[int]) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels}))
    label_set = NnUNetRaw().label_set(tmp_path)
    assert label_set.values == frozenset(expected)
    assert str(tmp_path / "dataset.json") in label_set.source


def test_nnunet_label_set_rejects_a_malformed_label(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"a": "x"}}))
    with pytest.raises(DataError, match="must be an integer or a list of integers"):
        NnUNetRaw().label_set(tmp_path)


def test_preprocess_reports_bad_labels_and_duplicate_ids_per_case(
    phantom_copy: Callable[[str], Path], tmp_path: Path
) -> None:
    root = phantom_copy("brats")
    bad, duplicated, good = brats_cases(root)
    seg = bad / f"{bad.name}_seg.nii.gz"
    add_label_values(seg, [3, 7])
    copy = duplicate_into_other_grade(duplicated)
    out = tmp_path / "proc"
    args = ["preprocess", "--dataset", "brats18", "--data", str(root), "--out", str(out), "--pairs", "2"]
    small = ["--set", "crop_size=[16,16,8]", "--set", "candidate_sizes=[[16,16,8],[24,24,8]]"]
    result = CliRunner().invoke(app, [*args, *small])
    assert result.exit_code == 1, result.output
    assert "failed cases" in result.output and bad.name in result.output and duplicated.name in result.output
    cases = json.loads((out / "preprocess.json").read_text())["cases"]
    assert cases[good.name]["status"] == "ok" and cases[good.name]["samples"] > 0
    error = cases[bad.name]["error"]
    assert cases[bad.name]["status"] == "failed" and str(seg) in error
    assert "3 (1 voxel), 7 (1 voxel)" in error and "check_labels=false" in error
    duplicate_error = cases[duplicated.name]["error"]
    assert cases[duplicated.name]["status"] == "failed" and "appears 2 times" in duplicate_error
    assert str(duplicated) in duplicate_error and str(copy) in duplicate_error
    assert not list((out / "arrays").glob(f"{duplicated.name}*")) and not list((out / "arrays").glob(f"{bad.name}*"))


def test_preprocess_without_check_labels_uses_the_case(
    phantom_copy: Callable[[str], Path], small_config: Callable[..., PreprocessConfig], tmp_path: Path
) -> None:
    root = phantom_copy("brats")
    bad = brats_cases(root)[0]
    add_label_values(bad / f"{bad.name}_seg.nii.gz", [3, 7])
    result = preprocess(small_config(root, tmp_path / "proc", check_labels=False))
    assert (result.ok, result.failed) == (3, 0)
