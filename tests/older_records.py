"""Records as an older release wrote them: for the tests that resume folders made before a setting existed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def without(record: dict[str, Any], *paths: str) -> dict[str, Any]:
    """``record`` without the keys at ``paths`` (dotted, e.g. ``optim.lr``); changed in place and returned."""
    for path in paths:
        *parents, last = path.split(".")
        node = record
        for parent in parents:
            node = node[parent]
        del node[last]
    return record


def rewrite(file: Path, section: str, drop: tuple[str, ...] = (), **add: Any) -> None:
    """Rewrite the JSON ``file``: without the keys ``drop`` of ``record[section]``, with the keys ``add`` there."""
    record = json.loads(file.read_text())
    without(record[section], *drop)
    record[section].update(add)
    file.write_text(json.dumps(record))
