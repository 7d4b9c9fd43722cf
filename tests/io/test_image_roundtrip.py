"""Round trips through every supported format keep the array and the affine exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radiossl.io import Volume, read_image, write_image, write_like
from radiossl.io.readers import read_with_nibabel, read_with_sitk

EXTENSIONS = [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr"]
DTYPES = [np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64]


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_roundtrip_oblique(tmp_path: Path, ext: str, oblique: np.ndarray, int_volume: np.ndarray) -> None:
    path = write_image(tmp_path / f"img{ext}", int_volume, affine=oblique)
    vol = read_image(path)
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, int_volume)
    np.testing.assert_allclose(vol.affine, oblique, atol=1e-5)
    assert vol.path == path
    np.testing.assert_allclose(vol.spacing, (0.7, 1.3, 2.5), atol=1e-5)

    # Write the read volume again (geometry taken from the Volume itself) and read it back.
    again = read_image(write_image(tmp_path / f"again{ext}", vol))
    np.testing.assert_array_equal(again.array, int_volume)
    np.testing.assert_allclose(again.affine, oblique, atol=1e-5)


@pytest.mark.parametrize("ext", [".nii.gz", ".mha", ".nrrd"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_roundtrip_keeps_dtype(tmp_path: Path, ext: str, dtype: type) -> None:
    rng = np.random.default_rng(1)
    array = (rng.random((3, 4, 5)) * 200).astype(dtype)
    vol = read_image(write_image(tmp_path / f"x{ext}", array, affine=np.diag([1.0, 2.0, 3.0, 1.0])))
    assert vol.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(vol.array, array)


@pytest.mark.parametrize("ext", [".nii.gz", ".mhd", ".nrrd"])
def test_bool_and_float16_are_converted(tmp_path: Path, ext: str) -> None:
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    back = read_image(write_image(tmp_path / f"m{ext}", mask, affine=np.eye(4))).array
    assert back.dtype == np.uint8 and int(back.sum()) == 1 and back[1, 1, 1] == 1
    half = np.full((2, 2, 2), 1.5, np.float16)
    back = read_image(write_image(tmp_path / f"h{ext}", half, affine=np.eye(4))).array
    assert back.dtype == np.float32 and np.all(back == 1.5)


def test_mhd_writes_header_and_raw_with_final_names(tmp_path: Path, int_volume: np.ndarray) -> None:
    write_image(tmp_path / "1.2.840.113.mhd", int_volume, affine=np.eye(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.2.840.113.mhd", "1.2.840.113.raw"]
    header = (tmp_path / "1.2.840.113.mhd").read_text()
    assert "ElementDataFile = 1.2.840.113.raw" in header
    assert "ElementType = MET_SHORT" in header


def test_write_leaves_no_temporary_files(tmp_path: Path, int_volume: np.ndarray) -> None:
    for ext in EXTENSIONS:
        write_image(tmp_path / f"a{ext.replace('.', '_')}{ext}", int_volume, affine=np.eye(4))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_failed_write_keeps_old_file(tmp_path: Path, int_volume: np.ndarray) -> None:
    target = write_image(tmp_path / "a.nii.gz", int_volume, affine=np.eye(4))
    before = target.read_bytes()
    with pytest.raises(ValueError, match="NaN"):
        write_image(target, np.full((2, 2, 2), np.nan, np.float32), affine=np.eye(4))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz"]


def test_nibabel_and_sitk_agree_on_nifti(tmp_path: Path, oblique: np.ndarray, int_volume: np.ndarray) -> None:
    path = write_image(tmp_path / "a.nii.gz", int_volume, affine=oblique)
    by_nib = read_with_nibabel(path)
    by_itk = read_with_sitk(path)
    np.testing.assert_array_equal(by_nib.array, by_itk.array)
    np.testing.assert_allclose(by_nib.affine, by_itk.affine, atol=1e-5)


def test_nibabel_and_sitk_agree_on_foreign_nifti(tmp_path: Path, oblique: np.ndarray) -> None:
    """A file written by nibabel's defaults (sform only, no qform code) reads the same in both."""
    import nibabel as nib

    array = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    nib.save(nib.Nifti1Image(array, oblique), tmp_path / "n.nii.gz")
    by_nib = read_with_nibabel(tmp_path / "n.nii.gz")
    by_itk = read_with_sitk(tmp_path / "n.nii.gz")
    np.testing.assert_array_equal(by_nib.array, array)
    np.testing.assert_array_equal(by_itk.array, array)
    np.testing.assert_allclose(by_nib.affine, oblique, atol=1e-5)
    np.testing.assert_allclose(by_itk.affine, oblique, atol=1e-4)


def test_itk_lps_is_converted_to_ras(tmp_path: Path) -> None:
    """An identity-direction ITK image has voxel axes pointing Left and Posterior in RAS+."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.zeros((5, 4, 3), np.int16))  # ITK size (3, 4, 5)
    img.SetSpacing((0.5, 0.6, 2.0))
    img.SetOrigin((-100.0, 50.0, 10.0))
    sitk.WriteImage(img, str(tmp_path / "a.mha"))
    vol = read_image(tmp_path / "a.mha")
    assert vol.shape == (3, 4, 5)
    np.testing.assert_allclose(vol.affine[:3, :3], np.diag([-0.5, -0.6, 2.0]))
    np.testing.assert_allclose(vol.origin, (100.0, -50.0, 10.0))
    # The same world point through the ITK API and through the affine.
    index = (2, 1, 3)
    lps = np.array(img.TransformIndexToPhysicalPoint(index))
    ras = vol.affine @ np.array([*index, 1.0])
    np.testing.assert_allclose(ras[:3], lps * np.array([-1.0, -1.0, 1.0]))


def test_voxel_order_matches_between_libraries(tmp_path: Path) -> None:
    """Voxel (i, j, k) written with nibabel is voxel (i, j, k) when read through SimpleITK."""
    import nibabel as nib

    array = np.zeros((4, 5, 6), np.uint8)
    array[3, 1, 0] = 7
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "a.nii")
    vol = read_with_sitk(tmp_path / "a.nii")
    assert vol.shape == (4, 5, 6) and vol.array[3, 1, 0] == 7


def test_write_like_copies_reference_geometry(tmp_path: Path, oblique: np.ndarray) -> None:
    reference = read_image(write_image(tmp_path / "ct.nii.gz", np.zeros((4, 5, 6), np.int16), affine=oblique))
    prediction = np.ones((4, 5, 6), np.uint8)
    out = read_image(write_like(tmp_path / "pred.mha", prediction, reference))
    np.testing.assert_allclose(out.affine, reference.affine, atol=1e-5)
    np.testing.assert_array_equal(out.array, prediction)
    with pytest.raises(ValueError, match="does not match"):
        write_like(tmp_path / "bad.nii.gz", np.ones((4, 5, 7), np.uint8), reference)


def test_write_requires_geometry(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="geometry"):
        write_image(tmp_path / "a.nii.gz", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="3-D"):
        write_image(tmp_path / "a.nii.gz", np.zeros((2, 2)), affine=np.eye(4))


def test_volume_properties(oblique: np.ndarray) -> None:
    vol = Volume(np.zeros((2, 3, 4), np.float32), oblique)
    assert vol.shape == (2, 3, 4)
    np.testing.assert_allclose(vol.spacing, (0.7, 1.3, 2.5))
    np.testing.assert_allclose(vol.origin, (12.5, -40.0, 7.25))
    np.testing.assert_allclose(vol.direction.T @ vol.direction, np.eye(3), atol=1e-12)
    assert vol.with_array(np.ones((2, 3, 4), np.uint8)).affine is not vol.affine
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 3)), np.eye(4))
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 3, 4)), np.zeros((4, 4)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    angles=st.tuples(*(st.floats(-np.pi, np.pi) for _ in range(3))),
    spacing=st.tuples(*(st.floats(0.2, 5.0) for _ in range(3))),
    origin=st.tuples(*(st.floats(-500.0, 500.0) for _ in range(3))),
    ext=st.sampled_from(EXTENSIONS),
    seed=st.integers(0, 2**16),
)
def test_random_geometry_roundtrip(
    tmp_path: Path,
    make_affine: Callable[..., np.ndarray],
    shape: tuple[int, int, int],
    angles: tuple[float, float, float],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    ext: str,
    seed: int,
) -> None:
    affine = make_affine(angles, spacing, origin)
    array = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    vol = read_image(write_image(tmp_path / f"r{ext}", array, affine=affine))
    np.testing.assert_array_equal(vol.array, array)
    # NIfTI stores the affine in float32: allow its rounding on large origins.
    np.testing.assert_allclose(vol.affine, affine, rtol=1e-6, atol=1e-5)
