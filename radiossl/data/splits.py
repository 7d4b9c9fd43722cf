"""Train/validation/test splits by case (patient), and nested label-ratio subsets.

A :class:`Splits` lists case ids; it is written next to every preprocessed folder as ``splits.json``
and read back with :func:`load_splits`. Label-ratio subsets (1 %, 5 %, ..., 100 % of the training
cases) come from :func:`ratio_subset`: every case gets a pseudo-random key from the seed and its own
id, and a subset keeps the cases with the smallest keys. Subsets are therefore *nested*
(``ratio_subset(ids, 0.1, s)`` is contained in ``ratio_subset(ids, 0.4, s)``), chosen by patient,
independent of file-system order, and stable when unrelated cases are added.

Example:
    >>> ids = [f"case{i:03d}" for i in range(100)]
    >>> small, large = ratio_subset(ids, 0.05, seed=1), ratio_subset(ids, 0.4, seed=1)
    >>> len(small), len(large), set(small) <= set(large)
    (5, 40, True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from radiossl.errors import DataError
from radiossl.utils.atomic import write_json
from radiossl.utils.seeding import rng_for

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
UNUSED = "unused"  # the split column value of a case that is in no list


@dataclass
class Splits:
    """Case ids per split; ``source`` says where the split came from (for ``splits.json``)."""

    train: list[str]
    val: list[str]
    test: list[str]
    source: str = "custom"

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name in SPLIT_NAMES:
            for case_id in getattr(self, name):
                if case_id in seen:
                    raise DataError(f"case {case_id!r} is in both the {seen[case_id]} and {name} splits")
                seen[case_id] = name

    def split_of(self, case_id: str) -> str:
        """``"train"``, ``"val"``, ``"test"``, or ``"unused"`` when the case is in no list."""
        return self.assignment().get(case_id, UNUSED)

    def assignment(self) -> dict[str, str]:
        """Mapping case id -> split name for every listed case."""
        return {case_id: name for name in SPLIT_NAMES for case_id in getattr(self, name)}

    def restrict(self, case_ids: Iterable[str]) -> Splits:
        """The same split keeping only ``case_ids`` (e.g. the cases present on disk)."""
        keep = set(case_ids)
        train, val, test = ([c for c in getattr(self, name) if c in keep] for name in SPLIT_NAMES)
        return Splits(train=train, val=val, test=test, source=self.source)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping ``{"train": [...], "val": [...], "test": [...], "source": ...}``."""
        return {**{name: list(getattr(self, name)) for name in SPLIT_NAMES}, "source": self.source}


def save_splits(path: str | Path, splits: Splits) -> None:
    """Write ``splits`` as JSON (atomically)."""
    write_json(path, splits.as_dict())


def load_splits(path: str | Path) -> Splits:
    """Read a ``splits.json`` written by :func:`save_splits` (or any JSON with train/val/test lists)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read split file: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: a split file must be a JSON object with train/val/test lists")
    lists: list[list[str]] = []
    for name in SPLIT_NAMES:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise DataError(f"{path}: {name!r} must be a list of case ids")
        lists.append(value)
    unknown = set(data) - {*SPLIT_NAMES, "source"}
    if unknown:
        raise DataError(f"{path}: unknown keys {sorted(unknown)} (expected train, val, test, source)")
    try:
        return Splits(train=lists[0], val=lists[1], test=lists[2], source=str(data.get("source", "custom")))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def _key(seed: int, salt: str, case_id: str) -> float:
    return float(rng_for(seed, salt, case_id).random())


def ratio_subset(
    case_ids: Sequence[str], ratio: float, seed: int, *, order: Literal["seeded", "given"] = "seeded"
) -> list[str]:
    """The cases of a label-ratio subset, sorted by id.

    ``floor(len(case_ids) * ratio)`` cases are kept (at least one when ``ratio > 0``), e.g. 79 of 199
    at ratio 0.4 as in the thesis. ``order="seeded"`` ranks cases by a key drawn from ``seed`` and the
    case id (nested, order-independent); ``order="given"`` keeps the first cases in the order given
    (the thesis behaviour on its list files).

    Example:
        >>> ratio_subset(["a", "b", "c", "d"], 0.5, seed=0, order="given")
        ['a', 'b']
    """
    if not 0.0 < ratio <= 1.0:
        raise DataError(f"ratio must be in (0, 1], got {ratio}")
    unique = list(dict.fromkeys(case_ids))
    if len(unique) != len(case_ids):
        raise DataError("ratio_subset: case ids are not unique")
    if not unique:
        return []
    count = max(1, math.floor(len(unique) * ratio + 1e-9))
    ranked = unique if order == "given" else sorted(unique, key=lambda c: (_key(seed, "ratio", c), c))
    return sorted(ranked[:count])


def proportional_split(
    case_ids: Sequence[str],
    fractions: tuple[float, float, float],
    seed: int,
    source: str,
) -> Splits:
    """A seeded train/val/test split of ``case_ids`` in the given proportions.

    Counts are rounded; validation and test get at least one case each when there are at least two
    (resp. three) cases, so tiny datasets still have every split. Cases are ranked by a key drawn from
    ``seed`` and the case id, so the split does not depend on listing order.

    Example:
        >>> s = proportional_split([f"p{i}" for i in range(10)], (0.7, 0.1, 0.2), seed=0, source="rule")
        >>> len(s.train), len(s.val), len(s.test)
        (7, 1, 2)
    """
    total = sum(fractions)
    if total <= 0 or min(fractions) < 0:
        raise DataError(f"split fractions must be non-negative with a positive sum, got {fractions}")
    ids = sorted(set(case_ids))
    n = len(ids)
    n_val = round(n * fractions[1] / total)
    n_test = round(n * fractions[2] / total)
    if fractions[1] > 0 and n >= 2:
        n_val = max(1, n_val)
    if fractions[2] > 0 and n >= 3:
        n_test = max(1, n_test)
    n_val = min(n_val, n)
    n_test = min(n_test, n - n_val)
    ranked = sorted(ids, key=lambda c: (_key(seed, "split", c), c))
    val = sorted(ranked[:n_val])
    test = sorted(ranked[n_val : n_val + n_test])
    train = sorted(ranked[n_val + n_test :])
    return Splits(train, val, test, source=source)


def training_subset(splits: Splits, ratio: float, seed: int, order: Literal["seeded", "given"] = "seeded") -> list[str]:
    """The ``ratio`` subset of the training cases (by patient): nested and seeded, or the first ones (given)."""
    if ratio >= 1.0:
        return list(splits.train)
    return list(ratio_subset(splits.train, ratio, seed, order=order))
