from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radiossl.utils.atomic import atomic_save_npy, atomic_write_path, atomic_write_text, write_json


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_write_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_npy_and_json(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    atomic_save_npy(tmp_path / "a.npy", array)
    assert np.array_equal(np.load(tmp_path / "a.npy"), array)
    write_json(tmp_path / "d" / "x.json", {"p": tmp_path, "n": np.int64(3), "a": np.ones(2)})
    data = json.loads((tmp_path / "d" / "x.json").read_text())
    assert data == {"p": str(tmp_path), "n": 3, "a": [1.0, 1.0]}
