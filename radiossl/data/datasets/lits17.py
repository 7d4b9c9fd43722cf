"""LiTS-2017 adapter: CT volumes ``volume-<N>`` with liver/tumour segmentations ``segmentation-<N>``.

Two layouts are accepted:

* the thesis layout ``<root>/{train,val[,test]}/ct/volume-<N>.nii`` with
  ``<root>/{train,val[,test]}/seg/segmentation-<N>.nii[.gz]`` — the split follows the folders
  (``radiossl lits-layout`` creates it from a download);
* a flat download: ``volume-<N>`` and ``segmentation-<N>`` files anywhere under ``<root>`` (e.g. in
  ``Training Batch 1/`` and ``Training Batch 2/``) — the split is the thesis rule, validation =
  volumes 28–47, training = the others.

Segmentations may be ``.nii`` or ``.nii.gz`` (spec §8 item 29). Labels: 0 background, 1 liver,
2 tumour. There is no labelled LiTS test split by default (the thesis evaluated on the validation
folder); put cases in a ``test/`` folder to have one.

Example:
    >>> LiTS17().label_values(Path("."))
    {'background': 0, 'liver': 1, 'tumour': 2}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from radiossl.data.datasets.base import Case, DatasetAdapter, check_unique, require_dir
from radiossl.data.splits import Splits
from radiossl.errors import DataError
from radiossl.io import is_image_path, strip_image_extension

FOLDERS: tuple[str, ...] = ("train", "val", "test")
THESIS_VAL: range = range(28, 48)
VOLUME_PATTERN = re.compile(r"^volume-(\d+)$")
SEGMENTATION_PATTERN = re.compile(r"^segmentation-(\d+)$")


class LiTS17(DatasetAdapter):
    """The LiTS-2017 training data, in the thesis folder layout or as downloaded (module docstring)."""

    name: ClassVar[str] = "lits17"
    modality: ClassVar[str] = "ct"

    def channel_names(self, root: Path) -> tuple[str, ...]:
        return ("ct",)

    def label_values(self, root: Path) -> dict[str, int]:
        return {"background": 0, "liver": 1, "tumour": 2}

    @staticmethod
    def has_folder_layout(root: Path) -> bool:
        """True for the thesis layout (``train/ct`` or ``val/ct`` folders)."""
        return any((Path(root) / folder / "ct").is_dir() for folder in FOLDERS)

    def list_cases(self, root: Path) -> list[Case]:
        root = require_dir(root, "LiTS")
        if self.has_folder_layout(root):
            cases = []
            for folder in FOLDERS:
                ct_dir = root / folder / "ct"
                if not ct_dir.is_dir():
                    continue
                labels = numbered_files(root / folder / "seg", SEGMENTATION_PATTERN, recursive=False)
                for number, path in numbered_files(ct_dir, VOLUME_PATTERN, recursive=False).items():
                    cases.append(Case(f"volume-{number}", {"ct": path}, labels.get(number), folder))
        else:
            labels = numbered_files(root, SEGMENTATION_PATTERN, recursive=True)
            cases = [
                Case(f"volume-{number}", {"ct": path}, labels.get(number), None)
                for number, path in numbered_files(root, VOLUME_PATTERN, recursive=True).items()
            ]
        if not cases:
            raise DataError(f"{root}: no LiTS volumes found (expected train/ct/volume-<N>.nii or volume-<N>.nii)")
        return check_unique(cases, root)

    def default_splits(self, root: Path, cases: list[Case]) -> Splits:
        if all(case.group in FOLDERS for case in cases):
            lists = [[c.case_id for c in cases if c.group == folder] for folder in FOLDERS]
            return Splits(train=lists[0], val=lists[1], test=lists[2], source="folders train/val/test")
        val = [c.case_id for c in cases if case_number(c.case_id) in THESIS_VAL]
        train = [c.case_id for c in cases if case_number(c.case_id) not in THESIS_VAL]
        return Splits(train, val, [], source="thesis rule: val = volumes 28-47")


def case_number(case_id: str) -> int:
    """The number ``N`` of ``volume-N``."""
    return int(case_id.rsplit("-", 1)[-1])


def numbered_files(folder: Path, pattern: re.Pattern[str], recursive: bool) -> dict[int, Path]:
    """Image files in ``folder`` whose name (without extension) matches ``pattern``, by number."""
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(paths):
        if not path.is_file() or not is_image_path(path):
            continue
        match = pattern.match(strip_image_extension(path))
        if match:
            found.setdefault(int(match.group(1)), path)
    return found
