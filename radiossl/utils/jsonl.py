"""Reading JSON-lines files that a crash may have cut short (``metrics.jsonl``, ``probes.jsonl``).

Writers append one ``json.dumps`` object per line, so an interrupted run can leave a last line that
is not valid JSON; readers skip such lines, and anything that is not a JSON object.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
    >>> _ = path.write_text('{"step": 1}\\n[2]\\n{"step": 2', encoding="utf-8")
    >>> read_jsonl(path)
    [{'step': 1}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of ``path``, one per line, in order; ``[]`` when the file does not exist."""
    target = Path(path)
    if not target.is_file():
        return []
    records: list[dict[str, Any]] = []
    for line in target.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(record, dict):
            records.append(record)
    return records
