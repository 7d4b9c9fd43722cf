"""LUNA16 adapter: ``<root>/subset0..subset9/<seriesuid>.mhd`` (+ ``.raw``), unlabelled chest CT.

Splits follow the thesis and PCRLv2: subsets 0–6 are used for pretraining (``train``), subsets 7–9
are held out (``val``); there is no test split. The case id is the series UID.

Example:
    >>> LUNA16().default_splits(Path("."), [Case("1.2.3", {"ct": Path("a.mhd")}, None, "subset8")]).val
    ['1.2.3']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from radiossl.data.datasets.base import Case, DatasetAdapter, check_unique, require_dir
from radiossl.data.splits import Splits
from radiossl.errors import DataError

TRAIN_SUBSETS: range = range(0, 7)
_SUBSET = re.compile(r"^subset(\d+)$")


class LUNA16(DatasetAdapter):
    """LUNA16 CT scans in their ten ``subsetK`` folders (see the module docstring)."""

    name: ClassVar[str] = "luna16"
    modality: ClassVar[str] = "ct"
    labelled: ClassVar[bool] = False

    def channel_names(self, root: Path) -> tuple[str, ...]:
        return ("ct",)

    def label_values(self, root: Path) -> dict[str, int]:
        return {}

    def list_cases(self, root: Path) -> list[Case]:
        root = require_dir(root, "LUNA16")
        subsets = sorted(d for d in root.iterdir() if d.is_dir() and _SUBSET.match(d.name))
        if not subsets:
            raise DataError(f"{root}: no subset<K> folders found (expected subset0/<seriesuid>.mhd, ...)")
        cases = [
            Case(path.name[: -len(".mhd")], {"ct": path}, None, folder.name)
            for folder in subsets
            for path in sorted(folder.glob("*.mhd"))
            if path.is_file()
        ]
        if not cases:
            raise DataError(f"{root}: the subset folders contain no .mhd files")
        return check_unique(cases, root)

    def case_problems(self, case: Case) -> list[str]:
        problems = super().case_problems(case)
        header = case.images["ct"]
        if header.is_file():
            data_file = _element_data_file(header)
            if data_file is not None and not (header.parent / data_file).is_file():
                problems.append(f"case {case.case_id}: missing data file {data_file} next to {header.name}")
        return problems

    def default_splits(self, root: Path, cases: list[Case]) -> Splits:
        train: list[str] = []
        held_out: list[str] = []
        for case in cases:
            match = _SUBSET.match(case.group or "")
            (train if match and int(match.group(1)) in TRAIN_SUBSETS else held_out).append(case.case_id)
        return Splits(train, held_out, [], source="subsets 0-6 train, 7-9 held out (val)")


def _element_data_file(header: Path) -> str | None:
    """The separate data file a MetaImage header points to (None for inline or list data)."""
    with open(header, "rb") as handle:
        text = handle.read(1 << 14).decode("latin-1")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "ElementDataFile":
            value = value.strip()
            return None if value.upper() in {"LOCAL", "LIST"} or "%" in value else value
    return None
