"""File-format detection from a path's extension.

Example:
    >>> image_format("case/flair.nii.gz"), image_format("scan.MHD")
    ('nifti', 'itk')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

ImageFormat = Literal["nifti", "itk"]

# Extension (lower case) -> library that handles it. NIfTI goes through nibabel, the rest through ITK.
_EXTENSIONS: dict[str, ImageFormat] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".mha": "itk",
    ".mhd": "itk",
    ".nrrd": "itk",
    ".nhdr": "itk",
}

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_EXTENSIONS)


def image_extension(path: str | Path) -> str | None:
    """The supported extension ``path`` ends with (lower case, e.g. ``".nii.gz"``), or ``None``."""
    name = Path(path).name.lower()
    for ext in _EXTENSIONS:  # ".nii.gz" is listed before ".nii" so the longest match wins
        if name.endswith(ext) and len(name) > len(ext):
            return ext
    return None


def image_format(path: str | Path) -> ImageFormat | None:
    """``"nifti"`` or ``"itk"`` for a supported image path, else ``None``."""
    ext = image_extension(path)
    return None if ext is None else _EXTENSIONS[ext]


def is_image_path(path: str | Path) -> bool:
    """True when ``path`` has an extension radiossl can read and write."""
    return image_extension(path) is not None


def strip_image_extension(path: str | Path) -> str:
    """The file name without its image extension (``"a.nii.gz"`` -> ``"a"``)."""
    name = Path(path).name
    ext = image_extension(name)
    return name if ext is None else name[: -len(ext)]
