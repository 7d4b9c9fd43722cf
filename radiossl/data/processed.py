"""The preprocessed folder written by ``radiossl preprocess``: the one module that reads and writes it.

``preprocess.json`` is read and written only through :func:`read_preprocess_record` /
:func:`write_preprocess_record` (typed accessors: :class:`PreprocessRecord`), the manifest only
through :func:`write_manifest` / :func:`rows_to_csv` and :class:`ProcessedDataset`, with one error
policy: a :class:`~radiossl.errors.DataError` whose one line names the file and the problem. The
k-means targets are their own artefact (:mod:`radiossl.data.targets`), joined to the samples when
the folder is opened; nothing rewrites the manifest after preprocessing.

Folder layout::

    PROC/
      preprocess.json        parameters, resolved defaults, sources, per-case status, package version
      splits.json            the split used (case ids per split)
      manifest.csv           one row per sample (merged from cases/*.csv), sorted
      cases/<group_id>.csv   per-group fragment, written last: the "done" marker used for resuming
      status/<case_id>.json  per-case outcome (ok/failed + reason + source files)
      arrays/<group_id>.npy  float16 (or uint8 = value * 255), memory-mappable, in the view's shape:
                               cluster (N, 2, C, H, W, D); pcrlv2 the same + <group_id>.local.npy
                               (N, L, C, 16, 16, 16); genesis (N, C, H, W, D); a plugin view its own
      targets/<tag>/         k-means targets (``kmeans predict``; see radiossl.data.targets)

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from radiossl.data.targets import TargetSet, read_target_sets, write_target_set
from radiossl.data.view_contract import is_crop_pair_view
from radiossl.errors import DataError
from radiossl.utils.atomic import atomic_write_path, write_json

FORMAT = "radiossl-preprocessed"
FORMAT_VERSION = 1
RECORD_FILE = "preprocess.json"
MANIFEST_FILE = "manifest.csv"
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
"""Manifest columns of folders written before target sets had their own folder (read, never written)."""
Box = tuple[int, int, int, int, int, int]
Size3 = tuple[int, int, int]


@dataclass(frozen=True)
class SourceFile:
    """A raw file a case was read from, as recorded when it was preprocessed (size and mtime None if unknown)."""

    path: Path
    size: int | None
    mtime: float | None


@dataclass(frozen=True)
class ProcessedCase:
    """A case of the folder that has samples in it: its id, split, sample count and recorded source files."""

    case_id: str
    split: str
    samples: int
    sources: tuple[SourceFile, ...]


@dataclass(frozen=True)
class PreprocessRecord:
    """``preprocess.json`` of a folder: how it was made, with typed accessors over the stored JSON."""

    path: Path
    data: Mapping[str, Any]

    @property
    def dataset(self) -> str:
        """The dataset adapter the folder was made with (``brats18``...; empty when not recorded)."""
        value = self.data.get("dataset")
        return value if isinstance(value, str) else ""

    @property
    def view(self) -> str:
        """The view the folder holds (a registered view name; empty when not recorded)."""
        value = self.data.get("view")
        return value if isinstance(value, str) else ""

    @property
    def channels(self) -> tuple[str, ...]:
        """The image channels of the dataset, in order."""
        value = self.data.get("channels")
        return tuple(str(c) for c in value) if isinstance(value, list) else ()

    @property
    def modality(self) -> str | None:
        """The dataset's modality (``mri``, ``ct``...), None when not recorded."""
        value = self.data.get("modality")
        return value if isinstance(value, str) else None

    @property
    def raw_root(self) -> str | None:
        """The raw dataset folder the samples were cut from."""
        value = self.data.get("raw_root")
        return value if isinstance(value, str) else None

    @property
    def settings(self) -> Mapping[str, Any]:
        """The preprocess config as given (without execution fields such as workers or shard)."""
        return self._section("settings")

    @property
    def resolved(self) -> Mapping[str, Any]:
        """Every default filled in: the values the samples were actually made with."""
        return self._section("resolved")

    @property
    def crop_size(self) -> Size3 | None:
        """The size of the stored crops (resolved, else as set), None when not recorded (hand-made folder)."""
        for values in (self.resolved, self.settings):
            size = values.get("crop_size")
            if isinstance(size, list | tuple) and len(size) == 3 and all(isinstance(v, int) for v in size):
                return (int(size[0]), int(size[1]), int(size[2]))
        return None

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """The voxel spacing the volumes were resampled to in mm, None for native spacing or not recorded."""
        value = self.resolved.get("spacing")
        if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value):
            return (float(value[0]), float(value[1]), float(value[2]))
        return None

    @property
    def split_counts(self) -> dict[str, int]:
        """Cases per split (``train``, ``val``, ``test``) of the split the folder was made with."""
        counts = self._section("splits").get("counts")
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}

    @property
    def splits_file(self) -> Path:
        """The folder's ``splits.json`` (the case ids of every split)."""
        name = self._section("splits").get("file")
        return self.path.parent / (name if isinstance(name, str) else "splits.json")

    @property
    def cases(self) -> Mapping[str, Any]:
        """Per-case status (``ok``/``failed``/``pending``, samples, sources) after the last merge."""
        return self._section("cases")

    def processed_cases(self) -> list[ProcessedCase]:
        """The cases with samples in the folder (what pretraining on it sees), with their source files.

        Sources come from each case's status (``status/<case_id>.json``, merged into the record);
        a folder written before sources were recorded gives cases with no sources.
        """
        found = []
        for case_id, entry in self.cases.items():
            if not isinstance(entry, dict) or entry.get("status") != "ok" or not entry.get("samples"):
                continue
            sources = []
            for item in entry.get("sources") or []:
                if isinstance(item, dict) and isinstance(item.get("path"), str):
                    size, mtime = item.get("size"), item.get("mtime")
                    sources.append(
                        SourceFile(
                            Path(item["path"]),
                            int(size) if isinstance(size, int) else None,
                            float(mtime) if isinstance(mtime, int | float) else None,
                        )
                    )
            split = entry.get("split")
            samples = entry.get("samples")
            found.append(
                ProcessedCase(
                    str(case_id),
                    split if isinstance(split, str) else "",
                    int(samples) if isinstance(samples, int) else 0,
                    tuple(sources),
                )
            )
        return found

    def _section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}


def has_preprocess_record(root: str | Path) -> bool:
    """Whether ``root`` holds a ``preprocess.json`` (readable or not)."""
    return (Path(root) / RECORD_FILE).is_file()


def read_preprocess_record(root: str | Path) -> PreprocessRecord:
    """``root/preprocess.json``; DataError (one line naming the file) when missing, unreadable or foreign."""
    root = Path(root)
    path = root / RECORD_FILE
    if not path.is_file():
        raise DataError(f"{root}: not a preprocessed folder (no {RECORD_FILE}); run `radiossl preprocess`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: not a radiossl preprocessing record (format {found!r}, expected {FORMAT!r})")
    return PreprocessRecord(path, data)


def write_preprocess_record(root: str | Path, data: Mapping[str, Any]) -> PreprocessRecord:
    """Write ``root/preprocess.json`` atomically (``format`` and ``format_version`` are set here)."""
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **dict(data)}
    path = Path(root) / RECORD_FILE
    write_json(path, record)
    return PreprocessRecord(path, record)


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
        return self.array_file(".local")

    def array_file(self, suffix: str = "") -> str:
        """The sample's array file with ``suffix`` (``arrays/<group><suffix>.npy``; ``""``: ``file`` itself)."""
        return self.file[: -len(".npy")] + suffix + ".npy" if suffix else self.file

    def to_row(self) -> dict[str, str]:
        """The manifest row (strings; targets are not manifest columns)."""
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


def rows_to_csv(rows: Iterable[Mapping[str, str]]) -> str:
    """CSV text with the manifest columns and a header row (a manifest fragment, ``cases/<group>.csv``)."""
    buffer = io.StringIO()
    write_row = manifest_writer(buffer)
    for row in rows:
        write_row(row)
    return buffer.getvalue()


def write_manifest(root: str | Path, rows: Iterable[Mapping[str, str]]) -> int:
    """Write ``root/manifest.csv`` atomically from ``rows`` (streamed: one row in memory at a time); the row count."""
    count = 0
    with atomic_write_path(Path(root) / MANIFEST_FILE) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        write_row = manifest_writer(handle)
        for row in rows:
            write_row(row)
            count += 1
    return count


def manifest_writer(handle: TextIO) -> Callable[[Mapping[str, str]], None]:
    """Write the manifest header to ``handle`` and return a function writing one row (for streamed merges)."""
    columns = list(MANIFEST_COLUMNS)
    writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()

    def write_row(row: Mapping[str, str]) -> None:
        writer.writerow({c: row.get(c, "") for c in columns})

    return write_row


class ProcessedDataset:
    """A preprocessed folder: its record, sample records (targets joined), and memory-mapped arrays."""

    def __init__(
        self,
        root: Path,
        params: dict[str, Any],
        records: list[SampleRecord],
        tags: list[str],
        target_sets: dict[str, TargetSet] | None = None,
    ) -> None:
        self.root = Path(root)
        self.params = params
        self.record = PreprocessRecord(self.root / RECORD_FILE, params)
        self._manifest_records = records
        self._manifest_tags = tags
        self._join(dict(target_sets or {}))
        self._arrays: dict[str, np.ndarray] = {}

    def _join(self, sets: dict[str, TargetSet]) -> None:
        self._sets = sets
        self._records = _join_targets(self._manifest_records, sets)
        self._tags = sorted({*self._manifest_tags, *sets})

    @classmethod
    def open(cls, root: str | Path) -> ProcessedDataset:
        """Open ``root`` and join its target sets; DataError if it is not a (finished) preprocessed folder."""
        root = Path(root)
        record = read_preprocess_record(root)
        manifest = root / MANIFEST_FILE
        if not manifest.is_file():
            raise DataError(
                f"{root}: no {MANIFEST_FILE} yet (preprocessing unfinished?); rerun `radiossl preprocess` "
                "with the same arguments, or add --merge-only to merge what exists"
            )
        records, legacy_tags = _read_manifest(manifest)  # target columns: folders of older releases
        return cls(root, dict(record.data), records, legacy_tags, read_target_sets(root))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memory maps are reopened in each worker process
        return state

    @property
    def view(self) -> str:
        """The view the folder holds (``cluster``, ``pcrlv2``, ``genesis`` or a plugin's)."""
        return self.record.view

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

    def load_array(self, record: SampleRecord, suffix: str = "") -> np.ndarray:
        """Sample ``record.index`` of ``arrays/<group><suffix>.npy`` exactly as stored (labels, codes)."""
        file = record.array_file(suffix)
        array = self._array(file)
        if not 0 <= record.index < array.shape[0]:
            raise DataError(f"{self.root / file}: sample index {record.index} out of range (N = {array.shape[0]})")
        return np.asarray(array[record.index])

    def load_crops(self, record: SampleRecord, suffix: str = "") -> np.ndarray:
        """The crops of ``record`` in ``arrays/<group><suffix>.npy`` as float32 (uint8 storage decoded)."""
        item = self.load_array(record, suffix)
        if item.dtype == np.uint8:
            return item.astype(np.float32) * np.float32(1.0 / 255.0)
        return item.astype(np.float32)

    def load_pair(self, record: SampleRecord) -> np.ndarray:
        """The two crops of a crop-pair sample (cluster, PCRLv2 globals...): float32 ``(2, C, H, W, D)``."""
        if not is_crop_pair_view(record.view):
            raise DataError(f"sample {record.sample_id} ({record.view} view) is not a crop pair; use load_crops")
        return self.load_crops(record)

    def load_locals(self, record: SampleRecord) -> np.ndarray:
        """The local crops of a PCRLv2 sample: float32 ``(L, C, 16, 16, 16)``."""
        if record.locals_file not in self._arrays and not (self.root / record.locals_file).is_file():
            raise DataError(f"sample {record.sample_id} ({record.view} view) has no local crops")
        return self.load_crops(record, ".local")

    def load_cube(self, record: SampleRecord) -> np.ndarray:
        """A single-crop sample such as a ModelsGenesis cube: float32 ``(C, H, W, D)``."""
        if is_crop_pair_view(record.view):
            raise DataError(f"sample {record.sample_id} is a {record.view} pair; use load_pair")
        return self.load_crops(record)

    def target_tags(self) -> list[str]:
        """Tags of the cluster-id target sets of the folder."""
        return list(self._tags)

    def target_set(self, tag: str) -> TargetSet:
        """The description of the target set ``tag`` (DataError when the folder has no such set)."""
        found = self._sets.get(tag)
        if found is None:
            available = ", ".join(self._tags) or "none"
            raise DataError(f"{self.root}: no description of targets {tag!r} (available: {available})")
        return found

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
        """Describe the target set ``tag`` (``targets/<tag>/targets.json``) and join it to the samples.

        ``files`` maps a sample array file to its target file (both relative to the folder); samples
        whose array is not in ``files`` have no targets of this tag. The manifest is not touched.
        """
        write_target_set(self.root, tag, files, meta)
        # Join every set on disk now, not only those seen at open time: another process (or another
        # ProcessedDataset) may have written sets since.
        self._join(read_target_sets(self.root))
        self._arrays = {k: v for k, v in self._arrays.items() if k not in set(files.values())}


def _join_targets(records: list[SampleRecord], sets: Mapping[str, TargetSet]) -> list[SampleRecord]:
    """``records`` with the target file of every set that covers their array added to ``targets``."""
    if not sets:
        return records
    joined = []
    for record in records:
        kept = {tag: file for tag, file in record.targets.items() if tag not in sets}  # old manifest columns
        found = {tag: s.files[record.file] for tag, s in sets.items() if record.file in s.files}
        joined.append(replace(record, targets={**kept, **found}))
    return joined


def _read_manifest(manifest: Path) -> tuple[list[SampleRecord], list[str]]:
    """The records of ``manifest.csv`` and its target tags (header order)."""
    rows = read_rows(manifest)
    with open(manifest, encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    tags = [c[len(TARGET_PREFIX) :] for c in header if c.startswith(TARGET_PREFIX)]
    return [record_from_row(r, str(manifest)) for r in rows], tags
