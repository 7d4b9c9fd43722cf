"""``load_case_arrays`` (finetuning input) and ``lits-layout`` (thesis folders from a LiTS download)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.datasets import Case, get_adapter
from radiossl.data.datasets.lits17 import LiTS17
from radiossl.data.lits_layout import lay_out_lits
from radiossl.data.loading import IntensityConfig, load_case_arrays, read_case, to_reference
from radiossl.errors import ConfigError, DataError, ImageReadError
from radiossl.io import write_image


def test_brats_case_arrays(phantom_root: Callable[[str], Path]) -> None:
    root = phantom_root("brats")
    case = get_adapter("brats18").list_cases(root)[0]
    arrays = load_case_arrays(case, spacing=None, intensity=IntensityConfig(mode="minmax"))
    assert arrays.image.shape == (4, 48, 48, 32) and arrays.image.dtype == np.float32
    assert arrays.image.flags["C_CONTIGUOUS"]
    assert float(arrays.image.min()) == 0.0 and float(arrays.image.max()) == 1.0
    assert arrays.label is not None and arrays.label.dtype == np.int16
    assert set(np.unique(arrays.label)) <= {0, 1, 2, 4}
    assert arrays.reference.shape == (48, 48, 32) and set(arrays.intensity) == {"t1", "t2", "flair", "t1ce"}


def test_ct_case_is_resampled_and_maps_back(phantom_root: Callable[[str], Path]) -> None:
    root = phantom_root("lits")
    case = get_adapter("lits17").list_cases(root)[0]
    arrays = load_case_arrays(case, spacing=(1.0, 1.0, 1.0), intensity=IntensityConfig(mode="ct-window"))
    assert arrays.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert arrays.label is not None and arrays.label.shape == arrays.image.shape[1:]
    assert float(arrays.image.min()) >= 0.0 and float(arrays.image.max()) <= 1.0
    back = to_reference(arrays.label, arrays)
    assert back.shape == arrays.reference.shape
    per_channel = load_case_arrays(
        case, spacing=None, intensity={"ct": IntensityConfig(mode="zscore")}, zoom=(0.5, 0.5, 1.0)
    )
    assert per_channel.image.shape[1] == round(arrays.reference.shape[0] * 0.5)
    with pytest.raises(DataError, match="no intensity config"):
        load_case_arrays(case, spacing=None, intensity={"t1": IntensityConfig()})


def test_channel_shape_mismatch(tmp_path: Path) -> None:
    a = write_image(tmp_path / "a.nii.gz", np.zeros((4, 4, 4), np.float32), affine=np.eye(4))
    b = write_image(tmp_path / "b.nii.gz", np.zeros((4, 4, 5), np.float32), affine=np.eye(4))
    with pytest.raises(DataError, match="b has shape"):
        load_case_arrays(Case("x", {"a": a, "b": b}, None), spacing=None, intensity=IntensityConfig())


def test_channel_and_label_geometry_mismatch(tmp_path: Path) -> None:
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    shifted[:3, 3] = (0.0, 5.0, 0.0)
    a = write_image(tmp_path / "a.nii.gz", np.zeros((4, 4, 4), np.float32), affine=np.diag([1.0, 1.0, 2.0, 1.0]))
    b = write_image(tmp_path / "b.nii.gz", np.zeros((4, 4, 4), np.float32), affine=shifted)
    label = write_image(tmp_path / "seg.nii.gz", np.zeros((4, 4, 4), np.int16), affine=shifted)
    with pytest.raises(DataError, match=r"case x: b and a have different geometry .*up to 5 mm.*b\.nii\.gz vs "):
        read_case(Case("x", {"a": a, "b": b}, None))
    with pytest.raises(DataError, match=r"case x: label and a have different geometry .*seg\.nii\.gz vs .*a\.nii"):
        read_case(Case("x", {"a": a}, label))
    nearly = np.diag([1.0, 1.0, 2.0, 1.0])
    nearly[:3, 3] = 1e-5  # float32 header round-off is not a different grid
    close = write_image(tmp_path / "close.nii.gz", np.zeros((4, 4, 4), np.int16), affine=nearly)
    assert read_case(Case("x", {"a": a}, close)).label is not None


@pytest.mark.parametrize("spacing", [None, (1.0, 1.0, 1.0)])
def test_label_dtypes_become_exact_int16_classes(tmp_path: Path, spacing: tuple[float, ...] | None) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = write_image(tmp_path / "ct.nii.gz", np.arange(216, dtype=np.int16).reshape(6, 6, 6), affine=affine)
    classes = np.zeros((6, 6, 6), np.int64)
    classes[1:3], classes[4:] = 1, 2
    stored = {
        "int64": classes,
        "uint64": classes.astype(np.uint64),
        "float64": classes.astype(np.float64),
        # float32 storage or NIfTI scaling leave class 1 as 0.99999994: it is class 1, not 0
        "float32": np.where(classes == 1, np.float32(1 - 2**-24), classes).astype(np.float32),
    }

    def label_of(name: str, label: np.ndarray) -> np.ndarray:
        path = write_image(tmp_path / f"seg_{name}.nii.gz", label, affine=affine)
        arrays = load_case_arrays(Case("x", {"ct": image}, path), spacing=spacing, intensity=IntensityConfig())
        assert arrays.label is not None and arrays.label.dtype == np.int16
        return arrays.label

    expected = label_of("int16", classes.astype(np.int16))
    assert set(np.unique(expected)) == {0, 1, 2}
    for name, label in stored.items():
        np.testing.assert_array_equal(label_of(name, label), expected, err_msg=name)


def test_labels_that_are_not_int16_classes_are_refused_by_name(tmp_path: Path) -> None:
    image = write_image(tmp_path / "ct.nii.gz", np.zeros((4, 4, 4), np.int16), affine=np.eye(4))
    too_large = np.zeros((4, 4, 4), np.int64)
    too_large[0, 0, 0] = 70_000  # int16 would wrap it to class 4464
    soft = np.full((4, 4, 4), 0.5, np.float32)  # a probability map, not a label
    for name, label, reason in (
        ("big", too_large, "label values range from 0 to 70000, beyond the int16 range"),
        ("soft", soft, "label has non-integer values (e.g. 0.5)"),
    ):
        path = write_image(tmp_path / f"{name}.nii.gz", label, affine=np.eye(4))
        with pytest.raises(ImageReadError) as info:
            read_case(Case("x", {"ct": image}, path))
        assert str(info.value).startswith(f"{path}: {reason}"), str(info.value)


def _download(root: Path, lits: Path) -> None:
    ct = next((lits / "train" / "ct").iterdir())
    seg = next((lits / "train" / "seg").iterdir())
    for number in (5, 28, 47, 48):
        batch = root / ("Training Batch 1" if number < 30 else "Training Batch 2")
        batch.mkdir(parents=True, exist_ok=True)
        shutil.copy(ct, batch / f"volume-{number}.nii")
        if number != 48:
            shutil.copy(seg, batch / f"segmentation-{number}.nii")


def test_lits_layout_makes_the_thesis_split(tmp_path: Path, phantom_root: Callable[[str], Path]) -> None:
    _download(tmp_path / "download", phantom_root("lits"))
    result = lay_out_lits(tmp_path / "download", tmp_path / "lits")
    assert (result.train, result.val, result.missing_segmentations) == (2, 2, ["volume-48.nii"])
    assert (tmp_path / "lits" / "val" / "ct" / "volume-28.nii").is_symlink()
    adapter = LiTS17()
    splits = adapter.default_splits(tmp_path / "lits", adapter.list_cases(tmp_path / "lits"))
    assert (splits.train, splits.val) == (["volume-48", "volume-5"], ["volume-28", "volume-47"])
    again = lay_out_lits(tmp_path / "download", tmp_path / "lits")  # idempotent
    assert (again.train, again.val) == (2, 2)


def test_lits_layout_conflicts_and_cli(tmp_path: Path, phantom_root: Callable[[str], Path]) -> None:
    _download(tmp_path / "download", phantom_root("lits"))
    target = tmp_path / "lits" / "train" / "ct"
    target.mkdir(parents=True)
    (target / "volume-5.nii").write_bytes(b"other")
    with pytest.raises(ConfigError, match="exists"):
        lay_out_lits(tmp_path / "download", tmp_path / "lits", mode="copy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no volume"):
        lay_out_lits(tmp_path / "empty", tmp_path / "x")
    result = CliRunner().invoke(
        app, ["lits-layout", str(tmp_path / "download"), "--out", str(tmp_path / "cli"), "--mode", "copy"]
    )
    assert result.exit_code == 0, result.output
    assert "2 train and 2 val" in result.output and "volume-48.nii" in result.output
    assert not (tmp_path / "cli" / "train" / "ct" / "volume-5.nii").is_symlink()
    bad = CliRunner().invoke(
        app, ["lits-layout", str(tmp_path / "download"), "--out", str(tmp_path / "c2"), "--mode", "teleport"]
    )
    assert bad.exit_code == 2
