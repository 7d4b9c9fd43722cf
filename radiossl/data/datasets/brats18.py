"""BraTS-2018 adapter: ``<root>/{HGG,LGG}/<PID>/<PID>_{t1,t2,flair,t1ce,seg}.nii.gz``.

Volumes are 240 x 240 x 155 at 1 mm, skull-stripped MRI with four modalities; labels are
0 background, 1 necrotic/non-enhancing core, 2 oedema, 4 enhancing tumour. A root without
``HGG``/``LGG`` folders may hold the patient folders directly (e.g. the BraTS validation release).

Splits: the thesis lists (199/43/35 patients, shipped in :mod:`radiossl.data.split_lists`) when the
dataset contains any of their patients — listed patients that are absent are dropped, present
patients that are not listed are left unused, as in the thesis (with a warning naming them; a split
file includes them). A dataset with none of those patients (e.g. phantoms) is split by a seeded rule
in the same 199 : 43 : 35 proportions.

Example:
    >>> BraTS18().channel_names(Path("."))
    ('t1', 't2', 'flair', 't1ce')
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

from radiossl.data.datasets.base import Case, DatasetAdapter, check_unique, require_dir
from radiossl.data.labels import LabelSet
from radiossl.data.split_lists import read_list
from radiossl.data.splits import UNUSED, Splits, proportional_split
from radiossl.errors import DataError
from radiossl.io import is_image_path, strip_image_extension

CHANNELS: tuple[str, ...] = ("t1", "t2", "flair", "t1ce")
GRADES: tuple[str, ...] = ("HGG", "LGG")
THESIS_PROPORTIONS: tuple[float, float, float] = (199.0, 43.0, 35.0)


class BraTS18(DatasetAdapter):
    """The BraTS-2018 training layout (see the module docstring)."""

    name: ClassVar[str] = "brats18"
    modality: ClassVar[str] = "mri"

    def channel_names(self, root: Path) -> tuple[str, ...]:
        return CHANNELS

    def label_values(self, root: Path) -> dict[str, int]:
        return {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4}

    def label_set(self, root: Path) -> LabelSet:
        hint = "BraTS 2023 and later label enhancing tumour 3 instead of 4"
        return LabelSet(frozenset(self.label_values(root).values()), "BraTS-2018 labels", hints={3: hint})

    def _patient_dirs(self, root: Path) -> list[tuple[Path, str | None]]:
        graded = [root / grade for grade in GRADES if (root / grade).is_dir()]
        if graded:
            return [(d, folder.name) for folder in graded for d in sorted(folder.iterdir()) if d.is_dir()]
        return [(d, None) for d in sorted(root.iterdir()) if d.is_dir() and _image_files(d)]

    def list_cases(self, root: Path) -> list[Case]:
        root = require_dir(root, "BraTS")
        cases = []
        for folder, grade in self._patient_dirs(root):
            found = _image_files(folder)
            images = {c: found.get(c, folder / f"{folder.name}_{c}.nii.gz") for c in CHANNELS}
            cases.append(Case(folder.name, images, found.get("seg"), grade))
        if not cases:
            raise DataError(f"{root}: no BraTS patient folders found (expected HGG/<PID>/<PID>_flair.nii.gz, ...)")
        return check_unique(cases, root)

    def extra_files(self, root: Path, cases: list[Case]) -> list[str]:
        problems = []
        for case in cases:
            folder = next(iter(case.images.values())).parent
            used = {p.name for p in case.files}
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.name not in used and not path.name.startswith("."):
                    problems.append(f"case {case.case_id}: unexpected file {path.name}")
        return problems

    def default_splits(self, root: Path, cases: list[Case]) -> Splits:
        present = [case.case_id for case in cases]
        lists = [
            [entry.split("/")[-1] for entry in read_list(f"brats_{name}.txt")] for name in ("train", "valid", "test")
        ]
        if set(present) & {pid for names in lists for pid in names}:
            thesis = Splits(train=lists[0], val=lists[1], test=lists[2], source="thesis lists (199/43/35 patients)")
            _warn_unlisted(root, [pid for pid in present if thesis.split_of(pid) == UNUSED])
            return thesis.restrict(present)
        source = "seeded rule, thesis proportions 199:43:35 (no thesis patient present)"
        return proportional_split(present, THESIS_PROPORTIONS, seed=0, source=source)


def _warn_unlisted(root: Path, unlisted: list[str]) -> None:
    """Warn (once per call) that patients outside the thesis lists are in no split."""
    if not unlisted:
        return
    shown = ", ".join(unlisted[:3]) + (", ..." if len(unlisted) > 3 else "")
    warnings.warn(
        f"{root}: {len(unlisted)} patient(s) not in the thesis split lists are left unused ({shown}); "
        "to include them pass your own split file (preprocess: --set splits_file=FILE; "
        "finetune: --set task.splits=FILE)",
        UserWarning,
        stacklevel=3,
    )


def _image_files(folder: Path) -> dict[str, Path]:
    """``{"t1": path, ..., "seg": path}`` for files named ``<folder>_<key>.<image extension>``."""
    found: dict[str, Path] = {}
    prefix = folder.name + "_"
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_image_path(path):
            stem = strip_image_extension(path)
            if stem.startswith(prefix):
                found.setdefault(stem[len(prefix) :].lower(), path)
    return found
