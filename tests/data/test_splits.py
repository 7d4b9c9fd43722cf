"""Splits: JSON round trip, validation, nested seeded ratio subsets, proportional splits."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.data.splits import Splits, load_splits, proportional_split, ratio_subset, save_splits
from radiossl.errors import DataError

THESIS_RATIOS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 1.0)


def test_round_trip_and_assignment(tmp_path: Path) -> None:
    splits = Splits(["a", "b"], ["c"], ["d"], source="test")
    save_splits(tmp_path / "splits.json", splits)
    loaded = load_splits(tmp_path / "splits.json")
    assert loaded == splits
    assert loaded.split_of("c") == "val"
    assert loaded.split_of("zzz") == "unused"
    assert loaded.restrict(["a", "d"]).as_dict() == {
        "train": ["a"],
        "val": [],
        "test": ["d"],
        "source": "test",
    }


def test_overlap_is_rejected() -> None:
    with pytest.raises(DataError, match="both the train and test"):
        Splits(["a"], [], ["a"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "JSON object"),
        ('{"train": "a"}', "list of case ids"),
        ('{"folds": []}', "unknown keys"),
        ("{not json", "cannot read"),
    ],
)
def test_bad_split_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "splits.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_splits(path)


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_splits(tmp_path / "nope.json")


def test_thesis_counts() -> None:
    ids = [f"Brats18_{i:03d}" for i in range(199)]
    assert len(ratio_subset(ids, 0.4, seed=1)) == 79  # int(199 * 0.4), as in the thesis
    assert len(ratio_subset(ids, 0.01, seed=1)) == 1
    assert ratio_subset(ids, 1.0, seed=1) == sorted(ids)
    assert ratio_subset(["b", "a", "c"], 0.67, seed=0, order="given") == ["a", "b"]


@settings(max_examples=40, deadline=None)
@given(
    ids=st.sets(st.text(alphabet="abcdefghij0123456789_", min_size=1, max_size=8), min_size=1, max_size=60),
    seed=st.integers(0, 2**31),
)
def test_ratio_subsets_are_nested_deterministic_and_order_free(ids: set[str], seed: int) -> None:
    ordered = sorted(ids)
    subsets = [ratio_subset(ordered, r, seed) for r in THESIS_RATIOS]
    for small, large in itertools.pairwise(subsets):
        assert set(small) <= set(large)
    for ratio, subset in zip(THESIS_RATIOS, subsets, strict=True):
        assert len(subset) == max(1, int(len(ordered) * ratio + 1e-9))
    assert subsets == [ratio_subset(list(reversed(ordered)), r, seed) for r in THESIS_RATIOS]


def test_ratio_subset_depends_on_seed_and_is_stable_when_cases_are_added() -> None:
    ids = [f"p{i}" for i in range(50)]
    assert ratio_subset(ids, 0.2, seed=1) != ratio_subset(ids, 0.2, seed=2)
    grown = ratio_subset([*ids, *(f"q{i}" for i in range(50))], 0.2, seed=1)
    # a case's key does not depend on the others: the old cases kept after adding 50 new ones are
    # exactly the best-ranked old cases
    kept = set(grown) & set(ids)
    assert kept
    assert kept == set(ratio_subset(ids, len(kept) / len(ids), seed=1))


def test_ratio_subset_rejects_bad_input() -> None:
    with pytest.raises(DataError):
        ratio_subset(["a"], 0.0, seed=0)
    with pytest.raises(DataError, match="not unique"):
        ratio_subset(["a", "a"], 0.5, seed=0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 1000))
def test_proportional_split_partitions_all_cases(n: int, seed: int) -> None:
    ids = [f"c{i}" for i in range(n)]
    split = proportional_split(ids, (199, 43, 35), seed, source="rule")
    assert sorted(split.train + split.val + split.test) == sorted(ids)
    if n >= 3:
        assert split.val and split.test
    if n == 277:
        assert (len(split.train), len(split.val), len(split.test)) == (199, 43, 35)
    assert split == proportional_split(list(reversed(ids)), (199, 43, 35), seed, source="rule")


def test_saved_file_is_plain_json(tmp_path: Path) -> None:
    save_splits(tmp_path / "s.json", Splits(["x"], [], []))
    assert json.loads((tmp_path / "s.json").read_text())["train"] == ["x"]
