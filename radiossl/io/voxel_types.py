"""Which voxel types radiossl reads: one decision for every reader (nibabel and SimpleITK alike).

radiossl works on real-valued scalar volumes: images become float32 and labels int16 once read. A
file whose voxels are not one real number each is refused by name instead of being squeezed into
that form (NumPy would silently drop the imaginary part of a complex image, and an RGB NIfTI has
no single intensity to normalise).

* integers (uint8 ... uint64, int8 ... int64): read as stored. Images are cast to float32 later,
  exact for integers up to 2**24, far above CT/MRI intensities;
* float32, float64: read as stored; the readers refuse NaN/Inf voxels, and float64 values beyond
  the float32 range (they would become Inf);
* bool: no format stores it; masks are uint8 0/1 and read as such;
* complex64, complex128: refused ("complex-valued voxels");
* RGB24 / RGBA32 NIfTI, 3 or 4 uint8 components (ITK): refused ("RGB image");
* other multi-component voxels (NIfTI's 5th axis, ITK vector images): refused ("vector image").

Example:
    >>> import numpy as np
    >>> voxel_type_problem(np.dtype(np.int16)) is None
    True
    >>> voxel_type_problem(np.dtype(np.complex64))
    'complex-valued voxels (complex64), expected a real scalar volume (save the magnitude or the real part)'
"""

from __future__ import annotations

import numpy as np

_RGB_NAMES = {("R", "G", "B"): "RGB", ("R", "G", "B", "A"): "RGBA"}


def voxel_type_problem(dtype: np.dtype, components: int = 1) -> str | None:
    """Why voxels of ``dtype`` (``components`` values per voxel) cannot be read, or ``None`` if they can.

    ``dtype`` is the array's element type as the reader returns it: nibabel gives a structured dtype
    (fields ``R``, ``G``, ``B``[, ``A``]) for RGB NIfTI files, SimpleITK the component type of a vector
    image together with its ``components`` count.
    """
    if dtype.names is not None:
        kind = _RGB_NAMES.get(tuple(dtype.names))
        if kind is not None:
            return f"{kind} image ({len(dtype.names)} colour components per voxel), expected a scalar volume"
        return f"vector image ({len(dtype.names)} components per voxel: {dtype}), expected a scalar volume"
    if components != 1:
        if dtype == np.uint8 and components in (3, 4):
            kind = "RGB" if components == 3 else "RGBA"
            return f"{kind} image ({components} colour components per voxel), expected a scalar volume"
        return (
            f"vector image ({components} components per voxel, e.g. complex values or a displacement field), "
            "expected a scalar volume"
        )
    if dtype.kind == "c":
        return (
            f"complex-valued voxels ({dtype.name}), expected a real scalar volume (save the magnitude or the real part)"
        )
    if dtype.kind not in "buif":
        return f"unsupported voxel type {dtype}, expected integer or floating-point voxels"
    return None


def float32_overflow(array: np.ndarray) -> float | None:
    """The largest magnitude in a floating-point ``array`` wider than float32 when float32 cannot hold it."""
    if array.dtype.kind != "f" or array.dtype.itemsize <= 4 or array.size == 0:
        return None
    peak = max(abs(float(array.min())), abs(float(array.max())))
    return peak if peak > float(np.finfo(np.float32).max) else None
