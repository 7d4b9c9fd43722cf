"""Fragments of a sharded run: the shares, the done markers, and the record that refuses mixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiossl.errors import ConfigError, DataError
from radiossl.utils.fragments import Fragments, describe_missing, share
from radiossl.utils.sharding import Shard


def _fragments(tmp_path: Path, suffix: str = ".json") -> Fragments:
    return Fragments(tmp_path / "parts", suffix, tmp_path / "parts" / "record.json")


def test_the_shares_of_all_shards_are_the_whole_run_and_unsharded_is_everything() -> None:
    items = [f"case{i}" for i in range(7)]
    assert share(items, None) == items
    parts = [share(items, Shard(i, 3)) for i in (1, 2, 3)]
    assert sorted(item for part in parts for item in part) == items and parts[0] == ["case0", "case3", "case6"]


def test_missing_lists_items_without_a_fragment_in_order_and_ignores_temporaries(tmp_path: Path) -> None:
    parts = _fragments(tmp_path, ".npy")
    parts.save_npy("b", np.arange(3, dtype=np.float32))
    (parts.folder / ".tmp-c.npy.x").write_bytes(b"half")  # an interrupted write is not a fragment
    assert parts.missing(["a", "b", "c"]) == ["a", "c"]
    assert np.array_equal(parts.load_npy("b"), np.arange(3))
    assert describe_missing(["a", "c"], 3, "groups") == "2 of 3 groups not done yet (a, c)"
    many = [f"g{i}" for i in range(7)]
    assert describe_missing(many, 9, "groups").endswith("(g0, g1, g2, g3, g4, …)")


def test_claim_refuses_other_settings_naming_the_difference(tmp_path: Path) -> None:
    parts = _fragments(tmp_path)
    parts.claim({"seed": 1, "sampling": {"voxels": 64}}, advice="use another folder")
    parts.claim({"seed": 1, "sampling": {"voxels": 64}}, advice="use another folder")  # the same: fine
    parts.write_json("a", {"ok": True})
    with pytest.raises(ConfigError, match=r"other settings \(sampling\.voxels: 64 -> 32\); use another folder$"):
        parts.claim({"seed": 1, "sampling": {"voxels": 32}}, advice="use another folder")
    assert parts.has("a")


def test_claim_with_replace_deletes_the_old_fragments(tmp_path: Path) -> None:
    parts = _fragments(tmp_path)
    parts.claim({"weights": "a"}, advice="-")
    parts.write_json("a", {"ok": True})
    (parts.folder / "notes.txt").write_text("not a fragment")
    parts.claim({"weights": "b"}, advice="-", replace=True)
    assert parts.missing(["a"]) == ["a"] and (parts.folder / "notes.txt").is_file()
    parts.claim({"weights": "b"}, advice="-")  # recorded


def test_unreadable_fragments_and_records_name_the_file(tmp_path: Path) -> None:
    parts = _fragments(tmp_path)
    parts.folder.mkdir()
    parts.path("a").write_text("{not json")
    with pytest.raises(DataError, match=r"a\.json: cannot read this fragment .*rerun its shard"):
        parts.read_json("a")
    parts.record.write_text("{")
    with pytest.raises(DataError, match=r"record\.json: unreadable"):
        parts.claim({"x": 1}, advice="-")
