"""Label sets: the voxel values a dataset's or task's label files may hold, and the check against them.

A :class:`LabelSet` is declared by every dataset adapter (:meth:`DatasetAdapter.label_set`) and every
segmentation task (:meth:`SegmentationTask.label_set`). :func:`radiossl.data.loading.read_case` checks
a case's label file against it as soon as the file is read, so preprocessing (``check_labels``),
finetuning and evaluation all run the same check: a label holding any other value raises
:class:`LabelValueError`, which names the file and the unexpected values, and the case is reported
and left out like any other unreadable case.

Example:
    >>> import numpy as np
    >>> from radiossl.io import Volume
    >>> brats = LabelSet(frozenset({0, 1, 2, 4}), "BraTS labels", hints={3: "set task.et_label=3"})
    >>> label = Volume(np.array([[[0, 1, 3, 7]]], np.uint8), np.eye(4), "seg.nii.gz")
    >>> try:
    ...     check_label_values("c1", label, brats)
    ... except LabelValueError as error:
    ...     print(error.unexpected)
    ...     print(str(error).split(" (allowed")[0])
    {3: 1, 7: 1}
    case c1: seg.nii.gz: unexpected label values 3 (1 voxel), 7 (1 voxel)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radiossl.errors import DataError
from radiossl.io import Volume

#: Integer label maps whose value range is at most this wide are counted with one ``bincount`` pass
#: (linear time) instead of ``np.unique`` (a sort).
BINCOUNT_RANGE = 1 << 16


@dataclass(frozen=True)
class LabelSet:
    """The voxel values a label file may hold.

    Attributes:
        values: the allowed values (background 0 included).
        source: what declares them, for messages (e.g. ``"BraTS labels with task.et_label=4"``).
        hints: advice shown when a given unexpected value is found (e.g. 3 in BraTS-2018 data).
        advice: advice shown whenever unexpected values are found.
    """

    values: frozenset[int]
    source: str
    hints: Mapping[int, str] = field(default_factory=dict)
    advice: str = ""

    def describe(self) -> str:
        """``"{0, 1, 2, 4}"``: the allowed values, sorted."""
        return "{" + ", ".join(str(v) for v in sorted(self.values)) + "}"


class LabelValueError(DataError):
    """A label file holds values outside its task's or dataset's label set.

    ``path`` is the label file; ``unexpected`` maps each unexpected value to its voxel count.
    """

    def __init__(self, message: str, path: Path | None, unexpected: dict[float, int]) -> None:
        super().__init__(message)
        self.path = path
        self.unexpected = unexpected


def value_counts(array: np.ndarray) -> dict[float, int]:
    """Every value of ``array`` with its voxel count (ints for integer arrays, floats otherwise)."""
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0:
        return {}
    if flat.dtype.kind in "iub":
        low, high = int(flat.min()), int(flat.max())
        if high - low < BINCOUNT_RANGE:
            counts = np.bincount(flat.astype(np.int64) - low, minlength=high - low + 1)
            return {low + int(i): int(counts[i]) for i in np.flatnonzero(counts)}
    values, counts = np.unique(flat, return_counts=True)
    return {v.item(): int(n) for v, n in zip(values, counts, strict=True)}


def check_label_values(case_id: str, label: Volume, allowed: LabelSet) -> None:
    """Raise :class:`LabelValueError` when ``label`` holds a value that ``allowed`` does not list.

    The message names the case, the file, the allowed set, each unexpected value with its voxel count
    (non-integer values count as unexpected), and the hints and advice of ``allowed``.
    """
    unexpected = {
        value: count
        for value, count in value_counts(label.array).items()
        if not (float(value).is_integer() and int(value) in allowed.values)
    }
    if not unexpected:
        return
    found = ", ".join(f"{_format_value(v)} ({n} voxel{'s' if n != 1 else ''})" for v, n in unexpected.items())
    where = label.path if label.path is not None else "the label"
    advice = [allowed.hints[int(v)] for v in unexpected if float(v).is_integer() and int(v) in allowed.hints]
    if allowed.advice:
        advice.append(allowed.advice)
    message = f"case {case_id}: {where}: unexpected label values {found}"
    message += f" (allowed: {allowed.describe()}, the {allowed.source})"
    if advice:
        message += "; " + "; ".join(dict.fromkeys(advice))
    raise LabelValueError(message, label.path, unexpected)


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
