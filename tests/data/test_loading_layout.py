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
from radiossl.errors import ConfigError, DataError
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
