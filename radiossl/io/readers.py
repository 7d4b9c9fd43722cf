"""Reading 3-D images into :class:`~radiossl.io.volume.Volume` objects.

NIfTI (``.nii``, ``.nii.gz``) is read with nibabel; MetaImage (``.mha``, ``.mhd`` + ``.raw``) and
NRRD (``.nrrd``, ``.nhdr``) with SimpleITK. Both paths return the same axis order (i, j, k) and a
voxel -> RAS+ affine, so a file gives the same :class:`Volume` whichever library reads it.

Every problem with a file (missing, empty, truncated, corrupt, not 3-D, NaN voxels, voxels that are not
one real number each: complex, RGB, vector) raises :class:`~radiossl.errors.ImageReadError` with a
one-line message that starts with the path. Which voxel types are read is decided for both libraries
by :func:`~radiossl.io.voxel_types.voxel_type_problem`.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from radiossl.io import write_image
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.nii.gz"
    >>> _ = write_image(p, np.arange(24, dtype=np.int16).reshape(2, 3, 4), affine=np.eye(4))
    >>> vol = read_image(p)
    >>> vol.shape, vol.array.dtype.name, int(vol.array[1, 2, 3])
    ((2, 3, 4), 'int16', 23)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from radiossl.errors import ImageReadError
from radiossl.io.formats import SUPPORTED_EXTENSIONS, image_format
from radiossl.io.itk_geometry import affine_from_itk
from radiossl.io.volume import Volume, check_affine
from radiossl.io.voxel_types import float32_overflow, voxel_type_problem

_MAX_REASON = 240

# Bytes per voxel of the MetaImage element types, to detect a missing or truncated ``.raw`` file.
_MET_SIZES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
# Noise in SimpleITK exception texts, e.g.
# "Exception thrown in SimpleITK X: /src/file.cxx:123: ITK ERROR: Y(0x..): ".
_SITK_NOISE = re.compile(
    r"Exception thrown in SimpleITK \w+:\s*"
    r"|\S+\.(?:cxx|h|hxx):\d+:\s*"
    r"|(?:ITK|itk::)\s*ERROR:\s*\w+\(0x[0-9a-fA-F]+\):\s*"
    r"|sitk::ERROR:\s*"
)


def read_image(path: str | Path, dtype: DTypeLike | None = None) -> Volume:
    """Read a 3-D image file; ``dtype`` casts the array (default: the stored type, scaling applied)."""
    p = Path(path)
    fmt = image_format(p)
    if fmt is None:
        raise ImageReadError(p, f"unsupported file type (expected one of {', '.join(SUPPORTED_EXTENSIONS)})")
    return read_with_nibabel(p, dtype) if fmt == "nifti" else read_with_sitk(p, dtype)


def read_with_nibabel(path: str | Path, dtype: DTypeLike | None = None) -> Volume:
    """Read a NIfTI file with nibabel (affine from the sform, else the qform)."""
    return _read(Path(path), _load_nibabel, dtype)


def read_with_sitk(path: str | Path, dtype: DTypeLike | None = None) -> Volume:
    """Read any file SimpleITK understands (MetaImage, NRRD, NIfTI) and convert LPS to RAS+."""
    return _read(Path(path), _load_sitk, dtype)


def _read(path: Path, loader: Callable[[Path], tuple[np.ndarray, np.ndarray]], dtype: DTypeLike | None) -> Volume:
    _check_file(path)
    try:
        array, affine = loader(path)
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"cannot read image: {_one_line(exc)}") from exc
    array = _as_3d(path, array)
    _check_finite(path, array)
    try:
        check_affine(affine)
    except ValueError as exc:
        raise ImageReadError(path, f"invalid geometry: {exc}") from exc
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Volume(array, affine, path)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")


def _load_nibabel(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    # mmap=False reads everything now, so a truncated file fails here and no handle stays open.
    img: Any = nib.load(str(path), mmap=False)
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageReadError(path, f"not a NIfTI image (nibabel read it as {type(img).__name__})")
    # Checked before the data is read. RGB24/RGBA32 files have a structured dtype (fields R, G, B[, A]);
    # NIfTI's 5th axis holds the components of vector voxels (ITK reads it as such).
    shape = img.header.get_data_shape()
    _check_voxel_type(path, img.get_data_dtype(), int(shape[4]) if len(shape) > 4 else 1)
    array = np.asanyarray(img.dataobj)
    return np.asarray(array), np.asarray(img.affine, dtype=np.float64)


def _load_sitk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    if path.name.lower().endswith((".mhd", ".mha")):
        _check_metaimage_data(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageReadError(path, f"cannot read image: {_sitk_reason(exc, path)}") from exc
    ndim = img.GetDimension()
    # A vector image's array view has the component type; the view is only valid while img lives.
    _check_voxel_type(path, sitk.GetArrayViewFromImage(img).dtype, img.GetNumberOfComponentsPerPixel())
    if ndim < 3:
        raise ImageReadError(path, f"is {ndim}-D with size {img.GetSize()} (expected a 3-D volume)")
    # GetArrayFromImage orders axes (..., k, j, i); reverse them to (i, j, k, ...).
    array = sitk.GetArrayFromImage(img)
    array = array.transpose(tuple(reversed(range(array.ndim))))
    spacing = img.GetSpacing()[:3]
    origin = img.GetOrigin()[:3]
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(ndim, ndim)[:3, :3]
    return array, affine_from_itk(spacing, origin, direction.ravel())


def _check_voxel_type(path: Path, dtype: np.dtype, components: int = 1) -> None:
    problem = voxel_type_problem(dtype, components)
    if problem is not None:
        raise ImageReadError(path, problem)


def _check_metaimage_data(path: Path) -> None:
    """Check that a MetaImage file's voxel data (inline or in a ``.raw`` file) exists and is complete."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16).decode("latin-1")
    fields: dict[str, str] = {}
    offset = 0
    for line in head.splitlines(keepends=True):
        offset += len(line)
        key, sep, value = line.partition("=")
        if not sep:
            return  # not a MetaImage text header: leave the diagnosis to ITK
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    else:
        return
    data_name = fields["ElementDataFile"]
    if data_name.upper() == "LOCAL":
        actual = path.stat().st_size - offset
    elif data_name.upper() == "LIST" or "%" in data_name:
        return  # a file list or a pattern: leave the checks to ITK
    else:
        data = path.parent / data_name
        if not data.is_file():
            raise ImageReadError(path, f"data file {data_name} not found next to the header")
        actual = data.stat().st_size
    dims = fields.get("DimSize", "").split()
    size = _MET_SIZES.get(fields.get("ElementType", ""))
    channels = fields.get("ElementNumberOfChannels", "1")
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if compressed or size is None or not dims or not all(d.isdigit() for d in [*dims, channels]):
        return
    expected = size * int(channels) * int(np.prod([int(d) for d in dims]))
    if actual < expected:
        where = "voxel data" if data_name.upper() == "LOCAL" else f"data file {data_name}"
        raise ImageReadError(path, f"{where} is truncated ({actual} of {expected} bytes)")


def _as_3d(path: Path, array: np.ndarray) -> np.ndarray:
    # A 4-D (or 5-D) file whose extra axes all have size 1 is a 3-D volume stored with a time axis.
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ImageReadError(path, f"has shape {tuple(array.shape)} (expected a 3-D volume)")
    if 0 in array.shape:
        raise ImageReadError(path, f"has an empty axis, shape {tuple(array.shape)}")
    return array


def _check_finite(path: Path, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if finite.all():
        peak = float32_overflow(array)
        if peak is not None:
            raise ImageReadError(
                path, f"has {array.dtype.name} values up to {peak:.3g}, beyond the float32 range radiossl computes in"
            )
        return
    n_nan = int(np.isnan(array).sum())
    n_inf = int(array.size - finite.sum()) - n_nan
    parts = [f"{n} {name} voxel{'s' if n != 1 else ''}" for n, name in ((n_nan, "NaN"), (n_inf, "Inf")) if n]
    raise ImageReadError(path, f"contains {' and '.join(parts)}")


def _sitk_reason(exc: BaseException, path: Path) -> str:
    """The informative part of a SimpleITK exception (the last line of teem's NRRD error chain)."""
    lines = [line.strip() for line in _SITK_NOISE.sub("", str(exc)).splitlines() if line.strip()]
    if len(lines) > 1 and lines[-1].startswith("[nrrd]"):
        lines = [lines[-1].split(":", 1)[-1]]
    text = " ".join(lines).replace(str(path), path.name)
    if text.startswith("Unable to determine ImageIO reader"):
        text = "unrecognised or corrupt file content"
    if path.exists():  # ITK appends a stale errno text to "File cannot be read" for existing files
        text = text.replace(" Reason: No such file or directory", "")
    return _one_line(RuntimeError(text))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
