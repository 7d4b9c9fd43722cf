"""Image input/output with one axis and world convention for every format.

``read_image`` returns a :class:`Volume` whose array is indexed (i, j, k) and whose affine maps
voxels to RAS+ mm; ``write_image``/``write_like`` write arrays back atomically with explicit
geometry. NIfTI goes through nibabel, MetaImage and NRRD through SimpleITK (imported lazily).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from radiossl.io import Volume, read_image, write_image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> vol = Volume(np.ones((3, 4, 5), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    >>> read_image(write_image(d / "x.nrrd", vol)).spacing
    (1.0, 1.0, 2.0)
"""

from radiossl.io.formats import SUPPORTED_EXTENSIONS, is_image_path, strip_image_extension
from radiossl.io.readers import read_image
from radiossl.io.volume import Volume, affine_from_geometry
from radiossl.io.writers import write_image, write_like

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Volume",
    "affine_from_geometry",
    "is_image_path",
    "read_image",
    "strip_image_extension",
    "write_image",
    "write_like",
]
