"""The k-means targets artefact of a preprocessed folder: one folder per target set, named by its tag.

Layout (written by ``radiossl kmeans predict``, never touching the preprocessing stage's files)::

    PROC/targets/<tag>/
      <group_id>.npy   uint8 (uint16 when K > 255) (N, 2, H, W, D): the cluster ids of both crops of
                       every sample of arrays/<group_id>.npy
      targets.json     how the targets were made (k, centroids, features...) and ``files``: which
                       target file belongs to which sample array; written last, so it marks the set
                       as complete

:class:`radiossl.data.processed.ProcessedDataset` joins every complete set to the samples when the
folder is opened. Folders written before target sets had their own folder (targets in
``arrays/<group_id>.targets-<tag>.npy``, described by ``targets/<tag>.json`` and listed in a
``target_<tag>`` manifest column) are read too: their ``targets/<tag>.json`` names the files the
same way. A set of the new layout wins over an old one of the same tag.

Example:
    >>> target_file("arrays/case01_t1.npy", "k10-filterbank-bilinear")
    'targets/k10-filterbank-bilinear/case01_t1.npy'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from radiossl.errors import DataError
from radiossl.utils.atomic import write_json

TARGETS_DIR = "targets"
TARGETS_JSON = "targets.json"
FORMAT = "radiossl-targets"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TargetSet:
    """One complete target set: its tag, description and ``{sample array file: target file}``."""

    tag: str
    path: Path
    """Its JSON (``targets/<tag>/targets.json``, or ``targets/<tag>.json`` in an old folder)."""
    meta: Mapping[str, Any]
    files: Mapping[str, str]
    """Sample array file -> target file, both relative to the preprocessed folder."""

    @property
    def k(self) -> int | None:
        """The number of clusters (None when the description records none)."""
        k = self.meta.get("k")
        return k if isinstance(k, int) and not isinstance(k, bool) else None

    @property
    def legacy(self) -> bool:
        """True for a set of the old layout (arrays next to the samples, JSON in ``targets/``)."""
        return self.path.name != TARGETS_JSON


def check_tag(tag: str) -> str:
    """``tag`` if it can name a folder (letters, digits, ``_``, ``.``, ``-``), else DataError."""
    if not _TAG.match(tag):
        raise DataError(f"target tag {tag!r}: use letters, digits, '_', '.' or '-' (starting with a letter or digit)")
    return tag


def target_file(array_file: str, tag: str) -> str:
    """The target file of the sample array ``array_file`` (relative to the folder, POSIX separators)."""
    return str(PurePosixPath(TARGETS_DIR) / check_tag(tag) / PurePosixPath(array_file).name)


def set_folder(root: Path, tag: str) -> Path:
    """``root/targets/<tag>``: the folder of one target set."""
    return Path(root) / TARGETS_DIR / check_tag(tag)


def write_target_set(root: Path, tag: str, files: Mapping[str, str], meta: Mapping[str, Any]) -> TargetSet:
    """Describe the target set ``tag`` (its arrays must be written already): ``targets/<tag>/targets.json``."""
    path = set_folder(root, tag) / TARGETS_JSON
    record = {**dict(meta), "format": FORMAT, "tag": tag, "files": dict(files)}
    write_json(path, record)
    return TargetSet(tag, path, record, dict(files))


def read_target_sets(root: Path) -> dict[str, TargetSet]:
    """Every complete target set of the folder ``root`` by tag (old-layout sets included).

    Raises:
        DataError: a description that cannot be read, naming its file.
    """
    folder = Path(root) / TARGETS_DIR
    sets: dict[str, TargetSet] = {}
    if not folder.is_dir():
        return sets
    for path in sorted(folder.glob("*.json")):  # old layout: targets/<tag>.json
        if not path.name.startswith(".tmp-"):
            sets[path.stem] = _read(path, path.stem)
    for path in sorted(folder.glob(f"*/{TARGETS_JSON}")):
        sets[path.parent.name] = _read(path, path.parent.name)
    return dict(sorted(sets.items()))


def _read(path: Path, tag: str) -> TargetSet:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path}: cannot read the targets description ({exc}); rerun `radiossl kmeans predict`"
        ) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise DataError(f"{path}: not a targets description (no 'files' mapping); rerun `radiossl kmeans predict`")
    return TargetSet(tag, path, data, {str(k): str(v) for k, v in files.items()})
