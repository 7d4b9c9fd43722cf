"""Loading one raw case as arrays: all channels stacked, resampled and normalised, plus its label.

Used by finetuning and evaluation (which read raw data) and by the preprocessing runner. Each image
file is read once; channel and label shapes and affines are checked against each other; images are
resampled linearly and labels with nearest neighbour; each channel is normalised on its own.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from radiossl.io import write_image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_image(d / "ct.nii.gz", np.full((4, 4, 2), 1000, np.int16), affine=np.diag([1, 1, 2, 1.0]))
    >>> arrays = load_case_arrays(Case("c", {"ct": d / "ct.nii.gz"}, None), spacing=(1.0, 1.0, 1.0),
    ...                           intensity=IntensityConfig(mode="ct-window"))
    >>> arrays.image.shape, float(arrays.image.max())
    ((1, 4, 4, 4), 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from radiossl.data.datasets.base import Case
from radiossl.data.labels import LabelSet, check_label_values
from radiossl.data.normalise import IntensityConfig, IntensityMap, fit_intensity
from radiossl.data.resample import Mode, resample_array, scaled_affine
from radiossl.errors import DataError, ImageReadError
from radiossl.io import Volume, read_image

__all__ = ["CaseArrays", "IntensityConfig", "load_case_arrays", "read_case", "to_reference"]

#: Largest difference between two files' affine entries (mm) still taken as the same grid: headers
#: store float32 values, and converters round spacing/origin slightly differently.
AFFINE_TOLERANCE_MM = 1e-3

#: Largest distance of a floating-point label value from a whole number still read as that number
#: (float32 storage and NIfTI scaling put class 1 at 0.99999994); labels are rounded, then stored as int16.
LABEL_ROUNDING_TOLERANCE = 1e-3
_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class CaseArrays:
    """A loaded case.

    ``image`` is float32 ``(C, X, Y, Z)``; ``label`` int16 ``(X, Y, Z)`` or None; ``reference`` is the
    first channel as read (original grid and geometry, for writing predictions back); ``affine`` is
    the voxel -> RAS+ affine of the returned arrays' grid; ``intensity`` the fitted map per channel.
    """

    image: np.ndarray
    label: np.ndarray | None
    reference: Volume
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    intensity: dict[str, IntensityMap] = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) of the returned arrays."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[0]), float(norms[1]), float(norms[2])


@dataclass(frozen=True)
class RawCase:
    """A case's volumes as read from disk, after the consistency checks (see :func:`read_case`)."""

    images: dict[str, Volume]
    label: Volume | None


def read_case(case: Case, labels: LabelSet | None = None) -> RawCase:
    """Read every file of ``case`` once and check that all shapes and geometries (affines) agree.

    With ``labels``, the label file must hold only those values (the check shared by preprocessing,
    finetuning and evaluation).

    Raises:
        ImageReadError: a file is missing, unreadable, or contains NaN voxels; a label has values that
            are not whole numbers or do not fit int16.
        LabelValueError: the label holds values outside ``labels`` (names the file and the values).
        DataError: the case has problems found when it was listed (e.g. a duplicate case id), or
            channels or label differ in shape or affine (the message names the files).
    """
    if case.problems:
        raise DataError("; ".join(case.problems))
    images = {channel: read_image(path) for channel, path in case.images.items()}
    if not images:
        raise DataError(f"case {case.case_id}: no image channels")
    first_channel, first = next(iter(images.items()))
    for channel, volume in images.items():
        if volume.shape != first.shape:
            raise DataError(
                f"case {case.case_id}: {channel} has shape {volume.shape} but {first_channel} has "
                f"{first.shape} ({volume.path})"
            )
        _check_geometry(case, channel, volume, first_channel, first)
    label = read_image(case.label) if case.label is not None else None
    if label is not None:
        _check_label_values(label)
        if label.shape != first.shape:
            raise DataError(
                f"case {case.case_id}: label shape {label.shape} differs from image shape {first.shape} ({label.path})"
            )
        _check_geometry(case, "label", label, first_channel, first)
        if labels is not None:
            check_label_values(case.case_id, label, labels)
    return RawCase(images, label)


def _check_label_values(label: Volume) -> None:
    """ImageReadError when a label's values are not class numbers that int16 holds exactly."""
    array = label.array
    path = label.path if label.path is not None else "<label>"
    if array.dtype.kind == "f":
        error = np.abs(array - np.rint(array))
        worst = int(np.argmax(error))
        if error.flat[worst] > LABEL_ROUNDING_TOLERANCE:
            value = float(array.flat[worst])
            raise ImageReadError(path, f"label has non-integer values (e.g. {value:g}), expected whole class numbers")
    low, high = array.min(), array.max()
    if low < _INT16.min or high > _INT16.max:
        raise ImageReadError(
            path,
            f"label values range from {low:g} to {high:g}, beyond the int16 range ({_INT16.min}..{_INT16.max}) "
            "labels are stored in",
        )


def _check_geometry(case: Case, name: str, volume: Volume, first_name: str, first: Volume) -> None:
    """DataError when ``volume`` lies elsewhere in space than ``first`` (affines differ beyond the tolerance)."""
    difference = float(np.max(np.abs(volume.affine - first.affine)))
    if difference > AFFINE_TOLERANCE_MM:
        raise DataError(
            f"case {case.case_id}: {name} and {first_name} have different geometry (affines differ by up to "
            f"{difference:.3g} mm): {volume.path} vs {first.path}"
        )


def load_case_arrays(
    case: Case,
    *,
    spacing: Sequence[float] | None,
    intensity: IntensityConfig | Mapping[str, IntensityConfig],
    zoom: Sequence[float] | None = None,
    labels: LabelSet | None = None,
) -> CaseArrays:
    """Read, resample (to ``spacing`` mm, None = keep) and normalise a case.

    ``intensity`` is one config for all channels or a mapping channel -> config. ``zoom`` scales the
    output grid further per axis (e.g. ``(0.75, 0.75, 1)``, the thesis' in-plane zoom for LiTS/LUNA).
    ``labels`` is passed on to :func:`read_case` (the allowed label values).
    """
    raw = read_case(case, labels)
    return arrays_from_raw(case, raw, spacing=spacing, intensity=intensity, zoom=zoom)


def target_spacing(
    spacing: Sequence[float], requested: Sequence[float] | None, zoom: Sequence[float] | None
) -> tuple[float, float, float]:
    """The grid spacing after resampling to ``requested`` (None = native) and zooming by ``zoom``."""
    base = [float(v) for v in (requested if requested is not None else spacing)]
    factors = [float(v) for v in zoom] if zoom is not None else [1.0, 1.0, 1.0]
    out = [b / f for b, f in zip(base, factors, strict=True)]
    return out[0], out[1], out[2]


def arrays_from_raw(
    case: Case,
    raw: RawCase,
    *,
    spacing: Sequence[float] | None,
    intensity: IntensityConfig | Mapping[str, IntensityConfig],
    zoom: Sequence[float] | None = None,
) -> CaseArrays:
    """:func:`load_case_arrays` on volumes already read with :func:`read_case`."""
    reference = next(iter(raw.images.values()))
    source_spacing = reference.spacing
    target = target_spacing(source_spacing, spacing, zoom)
    maps: dict[str, IntensityMap] = {}
    image: np.ndarray | None = None
    for index, (channel, volume) in enumerate(raw.images.items()):
        config = intensity if isinstance(intensity, IntensityConfig) else intensity.get(channel)
        if config is None:
            raise DataError(f"case {case.case_id}: no intensity config for channel {channel!r}")
        # One C-ordered float32 copy up front (NIfTI arrays are Fortran-ordered); all later steps keep it.
        data = np.ascontiguousarray(volume.array, dtype=np.float32)
        fitted = fit_intensity(data, config)
        maps[channel] = fitted
        resampled = resample_array(data, source_spacing, target, "linear")
        if image is None:
            image = np.empty((len(raw.images), *resampled.shape), dtype=np.float32)
        fitted(resampled, out=image[index])
    if image is None:
        raise DataError(f"case {case.case_id}: no image channels")
    label = None
    if raw.label is not None:
        resampled = resample_array(raw.label.array, source_spacing, target, "nearest")
        if resampled.dtype.kind == "f":  # whole numbers within the tolerance (read_case checked)
            resampled = np.rint(resampled)
        label = np.ascontiguousarray(resampled, dtype=np.int16)
    affine = scaled_affine(reference.affine, source_spacing, target)
    return CaseArrays(image, label, reference, affine, maps)


def to_reference(array: np.ndarray, arrays: CaseArrays, mode: Mode = "nearest") -> np.ndarray:
    """Map an ``(X, Y, Z)`` or ``(C, X, Y, Z)`` array on the processed grid back onto the reference grid."""
    return resample_array(array, arrays.spacing, arrays.reference.spacing, mode, shape=arrays.reference.shape)
