"""nnssl pretraining collections: a ``pretrain_data.json`` listing datasets, subjects, sessions and images.

The layout of MIC-DKFZ/nnssl (and of the OpenMind collection), read as it is, without conversion::

    {"collection_index": 745, "collection_name": "Dataset745_OpenMind",
     "datasets": {"<dataset key>": {"dataset_index": ..., "name": ..., "dataset_info": {...},
       "subjects": {"<subject key>": {"subject_id": ..., "subject_info": {...},
         "sessions": {"<session key>": {"session_id": ..., "session_info": {...},
           "images": [{"name": "sub-01_T1w.nii.gz", "image_path": "...", "modality": "T1w",
                       "image_info": {...}, "associated_masks": {"anatomy_mask": ..., ...}}]}}}}}}}

radiossl reads ``datasets`` → ``subjects`` → ``sessions`` → ``images``, and of each image its
``image_path`` (required), ``name`` and ``modality`` (optional); everything else (indices, names, the
``*_info`` objects, ``associated_masks``) is allowed and ignored. Each image is one unlabelled case
with one channel, ``image``. Its case id is ``<dataset>__<subject>__<session>__<image name without
extension>`` (dictionary keys, made file-system safe; over-long ids are shortened with a hash).

Image paths: ``$VAR/rest`` takes ``VAR`` from the environment (nnssl's convention, e.g.
``$nnssl_raw/...``), absolute paths are used as given, other relative paths are relative to the
folder holding ``pretrain_data.json`` (or to the adapter option ``image_root``). No image file is
opened while listing: a missing file is reported when its case is processed, and the other cases go on.

Modality: an image's ``modality`` (or a ``modality`` key of its ``image_info``, or else the last
``_`` part of its file name, the BIDS suffix such as ``T1w``) decides CT (``CT``) or MRI (everything
else). A collection is preprocessed as one modality (option ``modality``: ``auto`` = CT when every
image is CT, else MRI); images of the other modality are reported per case.

Splits: by subject (all sessions and images of a subject land in the same split), seeded, 95 % train
and 5 % validation; no test split (this is pretraining data).

Example:
    >>> case_id_of("ds000001", "sub-01", "ses 1", "sub-01_ses-1_T1w.nii.gz")
    'ds000001__sub-01__ses-1__sub-01_ses-1_T1w'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from radiossl.data.datasets.base import Case, DatasetAdapter, require_dir
from radiossl.data.labels import LabelSet
from radiossl.data.splits import Splits, proportional_split
from radiossl.errors import ConfigError, DataError
from radiossl.io import strip_image_extension

PRETRAIN_JSON = "pretrain_data.json"
CHANNEL = "image"
SPLIT_FRACTIONS: tuple[float, float, float] = (0.95, 0.05, 0.0)
SEPARATOR = "__"
MAX_ID_LENGTH = 120
"""Longer case ids are cut and get a hash of the full id (file names stay far below 255 bytes)."""

Modality = Literal["auto", "mri", "ct"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UNDERSCORES = re.compile(r"_{2,}")


@dataclass(frozen=True)
class CollectionImage:
    """What radiossl reads of one image entry of ``pretrain_data.json``."""

    dataset: str
    subject: str
    session: str
    name: str
    image_path: str
    modality: str
    where: str
    """The entry's position in the JSON, e.g. ``datasets.ds1.subjects.sub-01.sessions.ses-1.images[0]``."""

    @property
    def kind(self) -> str:
        """``"ct"`` or ``"mri"``."""
        return "ct" if self.modality.strip().upper() == "CT" else "mri"

    @property
    def case_id(self) -> str:
        """The case id (see :func:`case_id_of`)."""
        return case_id_of(self.dataset, self.subject, self.session, self.name)

    @property
    def subject_key(self) -> str:
        """The subject, unambiguously across datasets (splits keep a subject's images together)."""
        return json.dumps([self.dataset, self.subject])


def case_id_of(dataset: str, subject: str, session: str, image_name: str) -> str:
    """``<dataset>__<subject>__<session>__<image stem>``, file-system safe and unique per image entry.

    Each part keeps letters, digits, ``.``, ``-`` and single ``_``; other characters become ``-``, so
    ``__`` only ever separates the parts. Ids over :data:`MAX_ID_LENGTH` characters are cut and end
    with a hash of the unshortened parts.
    """
    stem = strip_image_extension(image_name) if image_name else image_name
    parts = [_safe_part(p) for p in (dataset, subject, session, stem)]
    case_id = SEPARATOR.join(parts)
    if len(case_id) <= MAX_ID_LENGTH:
        return case_id
    digest = hashlib.sha1("\0".join((dataset, subject, session, image_name)).encode("utf-8")).hexdigest()[:12]
    return f"{case_id[: MAX_ID_LENGTH - 13].rstrip('_')}-{digest}"


def _safe_part(text: str) -> str:
    part = _UNDERSCORES.sub("_", _UNSAFE.sub("-", text)).strip("_").lstrip(".-")
    return part or "x"


def image_modality(entry: Mapping[str, Any], file_name: str) -> str:
    """The modality of an image entry: ``modality``, ``image_info``'s ``modality``, else the file's BIDS suffix."""
    info = entry.get("image_info")
    candidates = [entry.get("modality")]
    if isinstance(info, Mapping):
        candidates += [value for key, value in info.items() if str(key).lower() == "modality"]
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip()
    stem = strip_image_extension(file_name)
    return stem.rsplit("_", 1)[-1] if stem else ""


def read_collection(path: Path) -> dict[str, Any]:
    """The parsed ``pretrain_data.json`` (DataError naming the file when it is missing or not an object)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (an nnssl collection needs {PRETRAIN_JSON})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: must hold a JSON object with 'datasets'")
    return data


def walk_images(data: Mapping[str, Any], path: Path) -> Iterator[CollectionImage]:
    """Every image entry of a parsed collection, in file order.

    Raises:
        DataError: a structural error, naming ``path`` and the JSON position and key (a level that
            is missing or of the wrong type, an image without ``image_path``).
    """

    def mapping(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = parent.get(key)
        if not isinstance(value, Mapping):
            found = "missing" if key not in parent else f"a {type(value).__name__}, not an object"
            raise DataError(f"{path}: {where}{'.' if where else ''}{key} is {found}")
        return value

    datasets = mapping(data, "datasets", "")
    for dataset_key, dataset in datasets.items():
        at_dataset = f"datasets.{dataset_key}"
        if not isinstance(dataset, Mapping):
            raise DataError(f"{path}: {at_dataset} is a {type(dataset).__name__}, not an object")
        for subject_key, subject in mapping(dataset, "subjects", at_dataset).items():
            at_subject = f"{at_dataset}.subjects.{subject_key}"
            if not isinstance(subject, Mapping):
                raise DataError(f"{path}: {at_subject} is a {type(subject).__name__}, not an object")
            for session_key, session in mapping(subject, "sessions", at_subject).items():
                at_session = f"{at_subject}.sessions.{session_key}"
                if not isinstance(session, Mapping):
                    raise DataError(f"{path}: {at_session} is a {type(session).__name__}, not an object")
                images = session.get("images")
                if not isinstance(images, list):
                    found = "missing" if "images" not in session else f"a {type(images).__name__}, not a list"
                    raise DataError(f"{path}: {at_session}.images is {found}")
                for index, image in enumerate(images):
                    where = f"{at_session}.images[{index}]"
                    yield _image_entry(image, path, where, dataset_key, subject_key, session_key)


def _image_entry(image: Any, path: Path, where: str, dataset: str, subject: str, session: str) -> CollectionImage:
    if not isinstance(image, Mapping):
        raise DataError(f"{path}: {where} is a {type(image).__name__}, not an object")
    image_path = image.get("image_path")
    if not isinstance(image_path, str) or not image_path.strip():
        found = "missing" if "image_path" not in image else f"{image_path!r}, not a path"
        raise DataError(f"{path}: {where}.image_path is {found}")
    name = image.get("name")
    if not isinstance(name, str) or not name.strip():
        name = Path(image_path).name
    return CollectionImage(
        dataset=str(dataset),
        subject=str(subject),
        session=str(session),
        name=name,
        image_path=image_path,
        modality=image_modality(image, name),
        where=where,
    )


def resolve_image_path(text: str, base: Path, environ: Mapping[str, str]) -> tuple[Path, str | None]:
    """The file an ``image_path`` names, and a problem when it cannot be resolved (an unset ``$VAR``)."""
    if text.startswith("$"):
        variable, _, rest = text[1:].partition("/")
        value = environ.get(variable, "")
        if not value:
            return Path(text), f"image path {text}: environment variable {variable} is not set"
        return Path(value).expanduser() / rest, None
    given = Path(text).expanduser()
    return (given if given.is_absolute() else base / given), None


@dataclass(frozen=True)
class _Index:
    """A parsed collection and what one pass over it found (cached per file version)."""

    file: Path
    stamp: tuple[int, int]
    data: dict[str, Any]
    duplicates: frozenset[str]
    kinds: frozenset[str]
    count: int


class NnSSL(DatasetAdapter):
    """An nnssl ``pretrain_data.json`` collection (see the module docstring).

    Args:
        image_root: folder that relative image paths are relative to (default: the JSON's folder).
        modality: ``auto`` (CT when every image is CT, else MRI), ``mri`` or ``ct``: the images
            preprocessed; images of the other modality are reported per case.
    """

    name: ClassVar[str] = "nnssl"
    modality: ClassVar[str] = "mri"
    labelled: ClassVar[bool] = False

    def __init__(self, image_root: str | Path | None = None, modality: Modality = "auto") -> None:
        if modality not in ("auto", "mri", "ct"):
            raise ConfigError(f"dataset_options.modality {modality!r}: choose auto, mri or ct")
        self.image_root = Path(image_root).expanduser() if image_root is not None else None
        self.chosen_modality = modality
        self._index: _Index | None = None

    def json_file(self, root: Path) -> Path:
        """``root/pretrain_data.json``, or that of ``root``'s only sub-folder that has one; ``root`` may be the file."""
        root = Path(root)
        if root.is_file() and root.suffix == ".json":
            return root
        root = require_dir(root, "nnssl collection")
        if (root / PRETRAIN_JSON).is_file():
            return root / PRETRAIN_JSON
        inner = sorted(d for d in root.iterdir() if d.is_dir() and (d / PRETRAIN_JSON).is_file())
        if len(inner) == 1:
            return inner[0] / PRETRAIN_JSON
        if inner:
            raise DataError(f"{root}: holds several nnssl collections ({', '.join(d.name for d in inner)}); pass one")
        raise DataError(f"{root / PRETRAIN_JSON}: not found (an nnssl collection needs {PRETRAIN_JSON})")

    def index(self, root: Path) -> _Index:
        """The parsed collection, checked in one pass (structure, duplicate ids, modalities); cached."""
        file = self.json_file(root).resolve()
        stat = file.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._index is not None and self._index.file == file and self._index.stamp == stamp:
            return self._index
        data = read_collection(file)
        counts: Counter[str] = Counter()
        kinds: set[str] = set()
        for image in walk_images(data, file):
            counts[image.case_id] += 1
            kinds.add(image.kind)
        if not counts:
            raise DataError(f"{file}: lists no images (datasets -> subjects -> sessions -> images)")
        duplicates = frozenset(case_id for case_id, n in counts.items() if n > 1)
        self._index = _Index(file, stamp, data, duplicates, frozenset(kinds), sum(counts.values()))
        return self._index

    def collection_modality(self, root: Path) -> str:
        """``"ct"`` or ``"mri"``: the modality this collection is preprocessed as."""
        if self.chosen_modality != "auto":
            return self.chosen_modality
        return "ct" if self.index(root).kinds == {"ct"} else "mri"

    def channel_names(self, root: Path) -> tuple[str, ...]:
        return (CHANNEL,)

    def channel_modalities(self, root: Path) -> dict[str, str]:
        return {CHANNEL: self.collection_modality(root)}

    def label_values(self, root: Path) -> dict[str, int]:
        return {}

    def label_set(self, root: Path) -> LabelSet:
        return LabelSet(frozenset({0}), "nnssl collections are unlabelled")

    def iter_cases(self, root: Path) -> Iterator[Case]:
        """One case per image entry, in the file's order; no image file is touched.

        Per case this builds one small :class:`Case` (its id, one path, its subject) and drops it
        once the caller moves on; the parsed JSON is the only thing held for the whole walk.
        """
        index = self.index(root)
        base = self.image_root if self.image_root is not None else index.file.parent
        wanted = self.collection_modality(root)
        environ = dict(os.environ)
        for image in walk_images(index.data, index.file):
            case_id = image.case_id
            path, problem = resolve_image_path(image.image_path, base, environ)
            problems = [f"case {case_id}: {problem} ({image.where})"] if problem else []
            if case_id in index.duplicates:
                problems.append(
                    f"case {case_id}: several images of {index.file.name} give this case id ({image.where} is one); "
                    "every copy is skipped; give the images distinct names"
                )
            if image.kind != wanted:
                problems.append(
                    f"case {case_id}: a {image.modality} image in a collection preprocessed as {wanted.upper()}; "
                    f"preprocess it separately with --set dataset_options.modality={image.kind}"
                )
            yield Case(case_id, {CHANNEL: path}, None, image.subject_key, tuple(problems))

    def list_cases(self, root: Path) -> list[Case]:
        """Every case, in the order of ``pretrain_data.json`` (not sorted: see :meth:`iter_cases`)."""
        return list(self.iter_cases(root))

    def default_splits(self, root: Path, cases: Iterable[Case]) -> Splits:
        """Subjects split 95 / 5 into train / val (seeded), every image following its subject."""
        by_subject: dict[str, list[str]] = {}
        seen: set[str] = set()
        for case in cases:
            if case.case_id not in seen:  # a repeated id (reported with the case) is split once
                seen.add(case.case_id)
                by_subject.setdefault(case.group or case.case_id, []).append(case.case_id)
        source = "seeded rule: subjects 95/5 train/val"
        subjects = proportional_split(list(by_subject), SPLIT_FRACTIONS, seed=0, source=source)
        train, val = ([c for s in names for c in by_subject[s]] for names in (subjects.train, subjects.val))
        return Splits(sorted(train), sorted(val), [], source=source)

    def default_splits_of(self, root: Path) -> Splits:
        return self.default_splits(root, self.iter_cases(root))
