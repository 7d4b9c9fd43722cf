"""Reading (and annotating) a preprocessed folder written by ``radiossl preprocess``.

Folder layout::

    PROC/
      preprocess.json        parameters, resolved defaults, sources, per-case status, package version
      splits.json            the split used (case ids per split)
      manifest.csv           one row per sample (merged from cases/*.csv), sorted
      cases/<group_id>.csv   per-group fragment, written last: the "done" marker used for resuming
      status/<case_id>.json  per-case outcome (ok/failed + reason + source files)
      arrays/<group_id>.npy  float16 (or uint8 = value * 255), memory-mappable
                               cluster (N, 2, C, H, W, D); pcrlv2 the same + <group_id>.local.npy
                               (N, L, C, 16, 16, 16); genesis (N, C, H, W, D)
      arrays/<group_id>.targets-<tag>.npy   uint8 (N, 2, H, W, D) cluster ids (kmeans predict)
      targets/<tag>.json     how the targets were made, and which target file belongs to which array

Arrays are opened with ``np.load(..., mmap_mode="r")`` once per file and process.

Example:
    >>> import tempfile
    >>> try:
    ...     ProcessedDataset.open(tempfile.mkdtemp())
    ... except DataError as exc:
    ...     print("not a preprocessed folder" in str(exc))
    True
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from radiossl.errors import DataError
from radiossl.utils.atomic import atomic_write_text, write_json
from radiossl.utils.locking import folder_lock

FORMAT = "radiossl-preprocessed"
FORMAT_VERSION = 1
BOX_COLUMNS: tuple[str, ...] = tuple(f"{p}_{a}{e}" for p in "ab" for a in "xyz" for e in "12")
MANIFEST_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "case_id",
    "group_id",
    "split",
    "view",
    "file",
    "index",
    "channels",
    *BOX_COLUMNS,
)
TARGET_PREFIX = "target_"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Box = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class SampleRecord:
    """One row of ``manifest.csv``: where a sample's arrays are and which boxes it was cut from."""

    sample_id: str
    case_id: str
    group_id: str
    split: str
    view: str
    file: str
    index: int
    channels: int
    box1: Box
    box2: Box
    targets: dict[str, str] = field(default_factory=dict)

    @property
    def locals_file(self) -> str:
        """The PCRLv2 local-crop array file (relative to the folder)."""
        return self.file[: -len(".npy")] + ".local.npy"

    def to_row(self) -> dict[str, str]:
        """The manifest row (strings), target columns included."""
        row = {
            "sample_id": self.sample_id,
            "case_id": self.case_id,
            "group_id": self.group_id,
            "split": self.split,
            "view": self.view,
            "file": self.file,
            "index": str(self.index),
            "channels": str(self.channels),
        }
        row.update({name: str(v) for name, v in zip(BOX_COLUMNS, (*self.box1, *self.box2), strict=True)})
        row.update({TARGET_PREFIX + tag: value for tag, value in self.targets.items()})
        return row


def record_from_row(row: Mapping[str, str], where: str = "manifest.csv") -> SampleRecord:
    """Parse a manifest row (DataError naming the sample on a malformed row)."""
    try:
        boxes = [int(row[name]) for name in BOX_COLUMNS]
        return SampleRecord(
            sample_id=row["sample_id"],
            case_id=row["case_id"],
            group_id=row["group_id"],
            split=row["split"],
            view=row["view"],
            file=row["file"],
            index=int(row["index"]),
            channels=int(row["channels"]),
            box1=(boxes[0], boxes[1], boxes[2], boxes[3], boxes[4], boxes[5]),
            box2=(boxes[6], boxes[7], boxes[8], boxes[9], boxes[10], boxes[11]),
            targets={k[len(TARGET_PREFIX) :]: v for k, v in row.items() if k.startswith(TARGET_PREFIX) and v},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: malformed row {dict(row).get('sample_id', '?')!r}: {exc}") from None


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a manifest or fragment CSV as dicts (DataError when the header is wrong)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    return list(reader)


def rows_to_csv(rows: list[dict[str, str]], target_tags: list[str] | tuple[str, ...] = ()) -> str:
    """CSV text with the manifest columns (plus ``target_<tag>`` columns) and a header row."""
    buffer = io.StringIO()
    write_row = manifest_writer(buffer, target_tags)
    for row in rows:
        write_row(row)
    return buffer.getvalue()


def manifest_writer(
    handle: TextIO, target_tags: list[str] | tuple[str, ...] = ()
) -> Callable[[Mapping[str, str]], None]:
    """Write the manifest header to ``handle`` and return a function writing one row (for streamed merges)."""
    columns = [*MANIFEST_COLUMNS, *(TARGET_PREFIX + tag for tag in target_tags)]
    writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()

    def write_row(row: Mapping[str, str]) -> None:
        writer.writerow({c: row.get(c, "") for c in columns})

    return write_row


class ProcessedDataset:
    """A preprocessed folder: its parameters, sample records, and memory-mapped arrays."""

    def __init__(self, root: Path, params: dict[str, Any], records: list[SampleRecord], tags: list[str]) -> None:
        self.root = Path(root)
        self.params = params
        self._records = records
        self._tags = tags
        self._arrays: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, root: str | Path) -> ProcessedDataset:
        """Open ``root``; DataError if it is not a (finished) preprocessed folder."""
        root = Path(root)
        params_path, manifest = root / "preprocess.json", root / "manifest.csv"
        if not params_path.is_file():
            raise DataError(f"{root}: not a preprocessed folder (no preprocess.json); run `radiossl preprocess`")
        try:
            params = json.loads(params_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{params_path}: cannot read: {exc}") from exc
        if params.get("format") != FORMAT:
            raise DataError(f"{params_path}: not a radiossl preprocessing record (format {params.get('format')!r})")
        if not manifest.is_file():
            raise DataError(
                f"{root}: no manifest.csv yet (preprocessing unfinished?); rerun `radiossl preprocess` "
                "with the same arguments, or add --merge-only to merge what exists"
            )
        records, tags = _read_manifest(manifest)
        return cls(root, params, records, tags)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memory maps are reopened in each worker process
        return state

    @property
    def view(self) -> str:
        """The view the folder holds (``cluster``, ``pcrlv2`` or ``genesis``)."""
        return str(self.params.get("view", ""))

    def records(self, split: str | None = "train", view: str | None = None) -> list[SampleRecord]:
        """Samples of ``split`` (None = all) and ``view`` (None = any), in manifest order."""
        return [r for r in self._records if (split is None or r.split == split) and (view is None or r.view == view)]

    def _array(self, file: str) -> np.ndarray:
        array = self._arrays.get(file)
        if array is None:
            path = self.root / file
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise DataError(f"{path}: array file listed in manifest.csv is missing") from None
            except (OSError, ValueError) as exc:
                raise DataError(f"{path}: cannot read array: {exc}") from exc
            self._arrays[file] = array
        return array

    def _values(self, file: str, index: int) -> np.ndarray:
        array = self._array(file)
        if not 0 <= index < array.shape[0]:
            raise DataError(f"{self.root / file}: sample index {index} out of range (N = {array.shape[0]})")
        item = np.asarray(array[index])
        if item.dtype == np.uint8:
            return item.astype(np.float32) * np.float32(1.0 / 255.0)
        return item.astype(np.float32)

    def load_pair(self, record: SampleRecord) -> np.ndarray:
        """The two crops of a cluster/PCRLv2 sample: float32 ``(2, C, H, W, D)``."""
        if record.view == "genesis":
            raise DataError(f"sample {record.sample_id} is a ModelsGenesis cube; use load_cube")
        return self._values(record.file, record.index)

    def load_locals(self, record: SampleRecord) -> np.ndarray:
        """The local crops of a PCRLv2 sample: float32 ``(L, C, 16, 16, 16)``."""
        if record.view != "pcrlv2":
            raise DataError(f"sample {record.sample_id} ({record.view} view) has no local crops")
        return self._values(record.locals_file, record.index)

    def load_cube(self, record: SampleRecord) -> np.ndarray:
        """A ModelsGenesis cube: float32 ``(C, H, W, D)``."""
        if record.view != "genesis":
            raise DataError(f"sample {record.sample_id} is a {record.view} pair; use load_pair")
        return self._values(record.file, record.index)

    def target_tags(self) -> list[str]:
        """Tags of the cluster-id targets registered in the manifest."""
        return list(self._tags)

    def load_targets(self, record: SampleRecord, tag: str) -> np.ndarray:
        """Cluster ids of both crops: int64 ``(2, H, W, D)``."""
        file = record.targets.get(tag)
        if not file:
            available = ", ".join(self._tags) or "none"
            raise DataError(f"sample {record.sample_id} has no targets {tag!r} (available: {available})")
        array = self._array(file)
        if not 0 <= record.index < array.shape[0]:
            raise DataError(f"{self.root / file}: sample index {record.index} out of range")
        return np.asarray(array[record.index]).astype(np.int64)

    def register_targets(self, tag: str, files: Mapping[str, str], meta: Mapping[str, Any]) -> None:
        """Add (or replace) the ``target_<tag>`` manifest column and write ``targets/<tag>.json``.

        ``files`` maps a pair-array file to its target file (both relative to the folder); samples
        whose array is not in ``files`` get an empty entry.
        """
        if not _TAG.match(tag):
            raise DataError(f"target tag {tag!r}: use letters, digits, '_', '.' or '-'")
        with folder_lock(self.root):
            write_json(self.root / "targets" / f"{tag}.json", {**dict(meta), "tag": tag, "files": dict(files)})
            # Start from the manifest as it is now, not as it was at open time: another process (or
            # another ProcessedDataset) may have registered targets since.
            current, current_tags = _read_manifest(self.root / "manifest.csv")
            updated = []
            for record in current:
                targets = {k: v for k, v in record.targets.items() if k != tag}
                if record.file in files:
                    targets[tag] = files[record.file]
                updated.append(replace(record, targets=targets))
            tags = sorted({*current_tags, tag})
            atomic_write_text(self.root / "manifest.csv", rows_to_csv([r.to_row() for r in updated], tags))
        self._records, self._tags = updated, tags
        self._arrays = {k: v for k, v in self._arrays.items() if k not in set(files.values())}


def stored_crop_size(params: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The crop size a folder was preprocessed with (from ``preprocess.json``), None when not recorded."""
    for section in ("resolved", "settings"):
        values = params.get(section)
        size = values.get("crop_size") if isinstance(values, Mapping) else None
        if isinstance(size, list | tuple) and all(isinstance(v, int) for v in size):
            return tuple(size)
    return None


def preprocessed_crop_size(root: str | Path) -> tuple[int, ...] | None:
    """The crop size recorded in ``root/preprocess.json``, None when the folder records none.

    Pretraining trains on the stored crops as they are (no resizing), so this, not ``data.crop_size``,
    is the network input size of a pretraining run.
    """
    params_path = Path(root) / "preprocess.json"
    if not params_path.is_file():
        return None
    try:
        params = json.loads(params_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{params_path}: cannot read: {exc}") from exc
    return stored_crop_size(params) if isinstance(params, dict) else None


def _read_manifest(manifest: Path) -> tuple[list[SampleRecord], list[str]]:
    """The records of ``manifest.csv`` and its target tags (header order)."""
    rows = read_rows(manifest)
    with open(manifest, encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    tags = [c[len(TARGET_PREFIX) :] for c in header if c.startswith(TARGET_PREFIX)]
    return [record_from_row(r, str(manifest)) for r in rows], tags


def target_files(root: Path) -> dict[str, dict[str, str]]:
    """``{tag: {array file: target file}}`` from ``targets/*.json`` (to keep columns on re-merges)."""
    out: dict[str, dict[str, str]] = {}
    folder = root / "targets"
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        files = data.get("files") if isinstance(data, dict) else None
        if isinstance(files, dict):
            out[path.stem] = {str(k): str(v) for k, v in files.items()}
    return out
