"""nnU-Net raw-format adapter: ``dataset.json``, ``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``.

Reads both dataset.json versions: v2 (``channel_names`` + ``labels`` name -> value + ``file_ending``)
and v1 / Medical Segmentation Decathlon (``modality`` + ``labels`` value -> name). Channel ``XXXX`` of
a case is the file ``<case>_XXXX<file_ending>``; channel names come from dataset.json (lower-cased,
made file-system safe). A channel called ``CT`` is normalised as CT, all others as MRI.

``root`` may be the dataset folder itself or a folder holding exactly one dataset folder (e.g.
``Dataset901_Phantom/``). Splits: when held-out cases with labels exist (``imagesTs`` + ``labelsTs``)
they are the test split and ``imagesTr`` is split 80 / 20 into train / val; otherwise ``imagesTr`` is
split 70 / 10 / 20 into train / val / test. Both splits are seeded and by case id. Unlabelled
``imagesTs`` cases are listed (group ``"Ts"``) but in no split. Pass your own split file to use
another split (e.g. nnU-Net's ``splits_final.json`` folds converted to train/val lists).

Example:
    >>> sanitise_channel_names({"0": "T2", "1": "ADC"})
    ('t2', 'adc')
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from radiossl.data.datasets.base import Case, DatasetAdapter, check_unique, require_dir
from radiossl.data.labels import LabelSet
from radiossl.data.splits import Splits, proportional_split
from radiossl.errors import DataError
from radiossl.io.formats import image_extension

SPLIT_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
SPLIT_FRACTIONS_WITH_TEST: tuple[float, float, float] = (0.8, 0.2, 0.0)
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


class NnUNetRaw(DatasetAdapter):
    """Any dataset in the nnU-Net raw format (see the module docstring)."""

    name: ClassVar[str] = "nnunet"
    modality: ClassVar[str] = "mri"  # per-channel modalities come from dataset.json

    def dataset_root(self, root: Path) -> Path:
        """The folder holding ``dataset.json``: ``root`` or its only sub-folder that has one."""
        root = require_dir(root, "nnU-Net dataset")
        if (root / "dataset.json").is_file():
            return root
        inner = sorted(d for d in root.iterdir() if d.is_dir() and (d / "dataset.json").is_file())
        if len(inner) == 1:
            return inner[0]
        if inner:
            names = ", ".join(d.name for d in inner)
            raise DataError(f"{root}: holds several nnU-Net datasets ({names}); pass one of them")
        raise DataError(f"{root / 'dataset.json'}: not found (an nnU-Net raw dataset needs dataset.json)")

    def dataset_json(self, root: Path) -> dict[str, Any]:
        """The parsed ``dataset.json`` (DataError names the file when it is missing or invalid)."""
        path = self.dataset_root(root) / "dataset.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: not found (an nnU-Net raw dataset needs dataset.json)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(data, dict):
            raise DataError(f"{path}: must hold a JSON object")
        if not isinstance(data.get("channel_names", data.get("modality")), dict):
            raise DataError(f"{path}: needs a 'channel_names' (or v1 'modality') mapping")
        return data

    def _raw_channels(self, root: Path) -> dict[str, str]:
        data = self.dataset_json(root)
        raw: dict[str, Any] = data.get("channel_names", data.get("modality")) or {}
        try:
            return {str(int(k)): str(v) for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))}
        except ValueError:
            raise DataError(f'{Path(root) / "dataset.json"}: channel keys must be integers ("0", "1", ...)') from None

    def channel_names(self, root: Path) -> tuple[str, ...]:
        return sanitise_channel_names(self._raw_channels(root))

    def channel_modalities(self, root: Path) -> dict[str, str]:
        raw = list(self._raw_channels(root).values())
        return {
            name: ("ct" if value.strip().upper() == "CT" else "mri")
            for name, value in zip(self.channel_names(root), raw, strict=True)
        }

    def label_values(self, root: Path) -> dict[str, int]:
        labels = self.dataset_json(root).get("labels", {})
        if not isinstance(labels, dict):
            raise DataError(f"{Path(root) / 'dataset.json'}: 'labels' must be a mapping")
        values: dict[str, int] = {}
        for key, value in labels.items():
            if isinstance(value, int):  # v2: name -> value (region lists are not voxel values)
                values[str(key)] = value
            elif isinstance(value, str) and str(key).lstrip("-").isdigit():  # v1: "value" -> name
                values[value] = int(key)
        return dict(sorted(values.items(), key=lambda kv: kv[1]))

    def label_set(self, root: Path) -> LabelSet:
        """Every value ``dataset.json`` ``labels`` names: plain values, members of region lists, ``ignore``."""
        labels = self.dataset_json(root).get("labels", {})
        path = self.dataset_root(root) / "dataset.json"
        if not isinstance(labels, dict):
            raise DataError(f"{path}: 'labels' must be a mapping")
        values: set[int] = set()
        for key, value in labels.items():
            if isinstance(value, str) and str(key).lstrip("-").isdigit():  # v1: "value" -> name
                values.add(int(key))
                continue
            members = value if isinstance(value, list) else [value]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in members):
                raise DataError(f"{path}: label {key!r} must be an integer or a list of integers, got {value!r}")
            values.update(members)
        return LabelSet(frozenset(values | {0}), f"labels of {path}")

    def _file_ending(self, root: Path) -> str | None:
        ending = self.dataset_json(root).get("file_ending")
        return str(ending) if ending else None

    def list_cases(self, root: Path) -> list[Case]:
        root = self.dataset_root(root)
        names = self.channel_names(root)
        ending = self._file_ending(root)
        cases = []
        for folder, labels_folder, group in (("imagesTr", "labelsTr", "Tr"), ("imagesTs", "labelsTs", "Ts")):
            found = _channel_files(root / folder, ending)
            for case_id in sorted(found):
                channels = found[case_id]
                ext = _ending_of(next(iter(channels.values())), ending)
                images = {
                    name: channels.get(i, root / folder / f"{case_id}_{i:04d}{ext}") for i, name in enumerate(names)
                }
                label = root / labels_folder / f"{case_id}{ext}"
                cases.append(Case(case_id, images, label if label.is_file() else None, group))
        if not cases:
            expected = f"<case>_0000{ending or '.nii.gz'}"
            raise DataError(f"{root}: no images found in imagesTr/ (expected {expected})")
        return check_unique(cases, root)

    def check(self, root: Path) -> list[str]:
        root = self.dataset_root(root)
        cases = self.list_cases(root)
        problems = [p for case in cases for p in self.case_problems(case)]
        problems += [
            f"case {c.case_id}: no label file in labelsTr/" for c in cases if c.group == "Tr" and c.label is None
        ]
        expected = self.dataset_json(root).get("numTraining")
        n_train = sum(1 for c in cases if c.group == "Tr")
        if isinstance(expected, int) and expected != n_train:
            problems.append(f"dataset.json: numTraining is {expected} but imagesTr holds {n_train} cases")
        n_channels = len(self.channel_names(root))
        for folder in ("imagesTr", "imagesTs"):
            for case_id, channels in _channel_files(root / folder, self._file_ending(root)).items():
                extra = sorted(i for i in channels if i >= n_channels)
                if extra:
                    problems.append(
                        f"case {case_id}: channel file(s) {extra} beyond the {n_channels} channels of dataset.json"
                    )
        return problems

    def default_splits(self, root: Path, cases: list[Case]) -> Splits:
        labelled = [case.case_id for case in cases if case.group == "Tr"]
        held_out = [case.case_id for case in cases if case.group == "Ts" and case.label is not None]
        if held_out:
            split = proportional_split(labelled, SPLIT_FRACTIONS_WITH_TEST, seed=0, source="")
            return Splits(
                split.train,
                split.val,
                held_out,
                source="seeded rule: imagesTr 80/20 train/val, labelled imagesTs = test",
            )
        return proportional_split(
            labelled, SPLIT_FRACTIONS, seed=0, source="seeded rule: imagesTr 70/10/20 train/val/test"
        )


def sanitise_channel_names(raw: dict[str, str]) -> tuple[str, ...]:
    """Lower-case, file-system-safe, unique channel names in channel-index order."""
    names: list[str] = []
    for index, value in raw.items():
        name = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or f"channel{index}"
        if name in names:
            name = f"{name}{index}"
        names.append(name)
    return tuple(names)


def _ending_of(path: Path, ending: str | None) -> str:
    """The file ending of ``path``: dataset.json's ``file_ending`` or its image extension (case kept)."""
    if ending and path.name.endswith(ending):
        return ending
    ext = image_extension(path)
    return path.name[-len(ext) :] if ext else path.suffix


def _channel_files(folder: Path, ending: str | None) -> dict[str, dict[int, Path]]:
    """``{case_id: {channel_index: path}}`` for ``<case>_<XXXX><ending>`` files in ``folder``."""
    found: dict[str, dict[int, Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if ending and not path.name.endswith(ending):
            continue
        if not ending and image_extension(path) is None:
            continue
        ext = _ending_of(path, ending)
        match = _CHANNEL_FILE.match(path.name[: -len(ext)])
        if match:
            found.setdefault(match.group("case"), {})[int(match.group("channel"))] = path
    return found
