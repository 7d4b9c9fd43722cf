"""Writing 3-D arrays as NIfTI, MetaImage or NRRD files, atomically and with explicit geometry.

The file is first written into a temporary folder next to the destination (keeping its final
name, so the format is chosen by the extension and a ``.mhd`` header names its final ``.raw``),
then moved into place with :func:`os.replace` — data files before the header. An interrupted write
therefore never leaves a half-written image under the final name.

Geometry is never guessed: pass a :class:`Volume`, ``like=`` (a volume whose affine is reused,
e.g. the input of a prediction) or an explicit ``affine``.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = write_image(d / "scan.mhd", np.zeros((4, 4, 2), np.int16), affine=np.diag([0.7, 0.7, 2.5, 1]))
    >>> sorted(f.name for f in d.iterdir())
    ['scan.mhd', 'scan.raw']
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from radiossl.errors import DataError
from radiossl.io.formats import SUPPORTED_EXTENSIONS, image_format
from radiossl.io.itk_geometry import itk_from_affine
from radiossl.io.volume import Volume, check_affine

# Types that NIfTI and ITK both store exactly; others are converted (bool -> uint8, float16 -> float32).
_STORABLE = {
    np.dtype(t)
    for t in (
        np.uint8,
        np.int8,
        np.uint16,
        np.int16,
        np.uint32,
        np.int32,
        np.uint64,
        np.int64,
        np.float32,
        np.float64,
    )
}


def write_image(
    path: str | Path,
    image: np.ndarray | Volume,
    like: Volume | None = None,
    affine: ArrayLike | None = None,
) -> Path:
    """Write a 3-D array or volume to ``path`` (format from the extension); returns the path.

    Geometry comes from ``affine`` if given, else from ``like``, else from ``image`` when it is a
    :class:`Volume`. The array dtype is kept, except bool -> uint8 and float16 -> float32.
    """
    target = Path(path)
    fmt = image_format(target)
    if fmt is None:
        raise DataError(f"{target}: cannot write this file type (use one of {', '.join(SUPPORTED_EXTENSIONS)})")
    array = image.array if isinstance(image, Volume) else np.asarray(image)
    geometry = _resolve_affine(image, like, affine)
    array = _storable(array)
    if like is not None and tuple(array.shape) != like.shape:
        raise ValueError(f"array shape {tuple(array.shape)} does not match the reference shape {like.shape}")
    writer = _write_nifti if fmt == "nifti" else _write_itk
    _write_atomically(target, lambda tmp: writer(tmp, array, geometry))
    return target


def write_like(path: str | Path, array: np.ndarray, reference: Volume) -> Path:
    """Write ``array`` (e.g. a prediction) with the geometry of ``reference`` (e.g. the input image)."""
    return write_image(path, array, like=reference)


def _resolve_affine(image: np.ndarray | Volume, like: Volume | None, affine: ArrayLike | None) -> np.ndarray:
    if affine is not None:
        resolved = np.asarray(affine, dtype=np.float64)
    elif like is not None:
        resolved = like.affine
    elif isinstance(image, Volume):
        resolved = image.affine
    else:
        raise TypeError("write_image needs geometry: pass a Volume, like=<Volume> or affine=<4x4 array>")
    check_affine(resolved)
    return resolved


def _storable(array: np.ndarray) -> np.ndarray:
    if array.ndim != 3:
        raise ValueError(f"can only write 3-D arrays, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    if array.dtype not in _STORABLE:
        raise ValueError(f"cannot store arrays of dtype {array.dtype} in an image file")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError("array contains NaN or Inf voxels; such a file could not be read back")
    return array


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine, dtype=array.dtype)
    # Both forms set (code 1 = scanner) so nibabel and ITK, which prefer different ones, agree.
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))


def _write_itk(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)), isVector=False)
    spacing, origin, direction = itk_from_affine(affine)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path), useCompression=False)


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}.", dir=target.parent))
    try:
        tmp_target = tmp_dir / target.name
        write(tmp_target)
        if not tmp_target.is_file():
            raise DataError(f"{target}: the image writer produced no file")
        # Detached data files (.raw) first, the header last: a reader never sees a dangling header.
        produced = sorted(tmp_dir.iterdir(), key=lambda f: f == tmp_target)
        for file in produced:
            os.replace(file, target.parent / file.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
