"""Every kind of bad image file raises ImageReadError with a one-line message naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiossl.errors import ImageReadError
from radiossl.io import read_image, write_image
from radiossl.io.readers import read_with_sitk

EXTENSIONS = [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"]


def _assert_error(path: Path, match: str | None = None, reader=read_image) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    assert info.value.path == path
    if match is not None:
        assert match in message, message
    return info.value


def _good_file(tmp_path: Path, ext: str, name: str = "good") -> Path:
    array = np.arange(8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10)
    return write_image(tmp_path / f"{name}{ext}", array, affine=np.eye(4))


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_empty_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"empty{ext}"
    path.write_bytes(b"")
    _assert_error(path, "empty")


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_corrupt_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"corrupt{ext}"
    path.write_bytes(np.random.default_rng(0).bytes(600))
    _assert_error(path)


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_truncated_file(tmp_path: Path, ext: str) -> None:
    good = _good_file(tmp_path, ext)
    data = good.read_bytes()
    if ext == ".mhd":  # the header is complete; its data file is cut short
        raw = tmp_path / "good.raw"
        raw.write_bytes(raw.read_bytes()[:1000])
        _assert_error(good, "truncated")
        return
    path = tmp_path / f"truncated{ext}"
    path.write_bytes(data[: len(data) * 2 // 3])
    _assert_error(path)


def test_missing_raw_of_mhd(tmp_path: Path) -> None:
    good = _good_file(tmp_path, ".mhd")
    (tmp_path / "good.raw").unlink()
    _assert_error(good, "good.raw not found")


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    _assert_error(tmp_path / "nothing.nii.gz", "not found")
    other = tmp_path / "scan.png"
    other.write_bytes(b"\x89PNG")
    _assert_error(other, "unsupported file type")
    _assert_error(tmp_path / ".nii", "unsupported file type")


@pytest.mark.parametrize("ext", [".nii.gz", ".mha", ".nrrd"])
def test_nan_voxels(tmp_path: Path, ext: str) -> None:
    import SimpleITK as sitk

    array = np.ones((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    path = tmp_path / f"nan{ext}"
    if ext == ".nii.gz":
        import nibabel as nib

        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(array.transpose(2, 1, 0).copy()), str(path))
    _assert_error(path, "1 NaN voxel")


def test_singleton_fourth_axis_is_squeezed(tmp_path: Path) -> None:
    import nibabel as nib
    import SimpleITK as sitk

    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    nib.save(nib.Nifti1Image(array[..., None], np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "t.nii.gz")
    for reader in (read_image, read_with_sitk):
        vol = reader(tmp_path / "t.nii.gz")
        np.testing.assert_array_equal(vol.array, array)
        np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 2.0))
    series = sitk.JoinSeries([sitk.GetImageFromArray(array.transpose(2, 1, 0).copy())])
    sitk.WriteImage(series, str(tmp_path / "t.nrrd"))
    np.testing.assert_array_equal(read_image(tmp_path / "t.nrrd").array, array)


def test_real_4d_and_2d_are_errors(tmp_path: Path) -> None:
    import nibabel as nib
    import SimpleITK as sitk

    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5, 2), np.float32), np.eye(4)), tmp_path / "r4.nii.gz")
    _assert_error(tmp_path / "r4.nii.gz", "expected a 3-D volume")
    _assert_error(tmp_path / "r4.nii.gz", "expected a 3-D volume", reader=read_with_sitk)
    frame = sitk.GetImageFromArray(np.zeros((5, 4, 3), np.float32))
    sitk.WriteImage(sitk.JoinSeries([frame, frame]), str(tmp_path / "r4.nrrd"))
    _assert_error(tmp_path / "r4.nrrd", "expected a 3-D volume")
    nib.save(nib.Nifti1Image(np.zeros((3, 4), np.float32), np.eye(4)), tmp_path / "flat.nii")
    _assert_error(tmp_path / "flat.nii", "expected a 3-D volume")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 3), np.float32)), str(tmp_path / "flat.mha"))
    _assert_error(tmp_path / "flat.mha", "expected a 3-D volume")
    vector = sitk.GetImageFromArray(np.zeros((5, 4, 3, 2), np.float32), isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "vec.mha"))
    _assert_error(tmp_path / "vec.mha", "components per voxel")


def test_write_unknown_extension(tmp_path: Path) -> None:
    from radiossl.errors import DataError

    with pytest.raises(DataError, match=r"out\.png"):
        write_image(tmp_path / "out.png", np.zeros((2, 2, 2)), affine=np.eye(4))


# --- voxel types: what a NIfTI, MetaImage or NRRD file can carry (docs/data.md, radiossl/io/voxel_types.py)


def _save_nifti(path: Path, array: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, np.eye(4), dtype=array.dtype), str(path))
    return path


def _save_itk(path: Path, array: np.ndarray, is_vector: bool = False) -> Path:
    """``array`` indexed (i, j, k[, component]), written with SimpleITK."""
    import SimpleITK as sitk

    axes = (2, 1, 0, 3) if is_vector else (2, 1, 0)
    sitk.WriteImage(sitk.GetImageFromArray(array.transpose(axes).copy(), isVector=is_vector), str(path))
    return path


def _complex(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.random((4, 5, 6)) + 1j * rng.random((4, 5, 6))).astype(dtype)


@pytest.mark.filterwarnings("error::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_voxels_are_refused_by_name(tmp_path: Path, dtype: str) -> None:
    nifti = _save_nifti(tmp_path / "phase.nii.gz", _complex(dtype))
    nrrd = _save_itk(tmp_path / "phase.nrrd", _complex(dtype))
    for path, reader in ((nifti, read_image), (nifti, read_with_sitk), (nrrd, read_image)):
        _assert_error(path, f"complex-valued voxels ({dtype}), expected a real scalar volume", reader=reader)
    # MetaImage has no complex type: ITK writes the two parts as two components per voxel.
    _assert_error(_save_itk(tmp_path / "phase.mha", _complex(dtype)), "vector image (2 components per voxel")


@pytest.mark.parametrize(
    ("fields", "kind"), [(["R", "G", "B"], "RGB image (3 colour"), (["R", "G", "B", "A"], "RGBA image (4 colour")]
)
def test_rgb_nifti_is_refused_by_both_readers(tmp_path: Path, fields: list[str], kind: str) -> None:
    rgb = np.zeros((4, 5, 6), dtype=[(name, "u1") for name in fields])
    path = _save_nifti(tmp_path / "photo.nii.gz", rgb)
    for reader in (read_image, read_with_sitk):
        _assert_error(path, f"{kind} components per voxel), expected a scalar volume", reader=reader)


@pytest.mark.parametrize("ext", [".mha", ".nrrd", ".nii.gz"])
def test_itk_rgb_and_vector_images_are_refused(tmp_path: Path, ext: str) -> None:
    rgb = _save_itk(tmp_path / f"rgb{ext}", np.zeros((4, 5, 6, 3), np.uint8), is_vector=True)
    field = _save_itk(tmp_path / f"field{ext}", np.zeros((4, 5, 6, 3), np.float32), is_vector=True)
    for reader in (read_image, read_with_sitk):
        _assert_error(rgb, "RGB image (3 colour components per voxel)", reader=reader)
        _assert_error(field, "vector image (3 components per voxel", reader=reader)


@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("dtype", ["int64", "uint64", "float64", "uint8"])
def test_wide_integer_and_float64_files_are_read_as_stored(tmp_path: Path, ext: str, dtype: str) -> None:
    array = np.arange(4 * 5 * 6).reshape(4, 5, 6).astype(dtype)
    if dtype == "uint8":  # a binary mask: no format stores bool, masks are 0/1 bytes
        array = (array % 2).astype(np.uint8)
    path = write_image(tmp_path / f"v{ext}", array, affine=np.eye(4))
    readers = (read_image, read_with_sitk) if ext.startswith(".nii") else (read_image,)
    for reader in readers:
        volume = reader(path)
        assert volume.array.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(volume.array, array)


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd"])
def test_float64_beyond_the_float32_range_is_refused(tmp_path: Path, ext: str) -> None:
    array = np.ones((4, 4, 4), np.float64)
    array[1, 2, 3] = -1e300  # finite as float64, -inf once cast to float32
    path = (
        _save_nifti(tmp_path / "huge.nii.gz", array) if ext == ".nii.gz" else _save_itk(tmp_path / "huge.nrrd", array)
    )
    _assert_error(path, "float64 values up to 1e+300, beyond the float32 range")
