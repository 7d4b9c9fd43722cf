"""The overlap check of a sweep: did a checkpoint's pretraining data hold the sweep's evaluation cases?

For every compared checkpoint that records its pretraining data folder (a radiossl pretraining
checkpoint's resolved config has ``data.root``), :func:`check_sweep_overlap` runs
:func:`radiossl.downstream.overlap.check_overlap` against the sweep's task and seeds and writes
``SWEEP/overlap.json`` (hash cache: ``SWEEP/overlap.hashes.json``); scratch, foreign checkpoints
and folders that are gone are listed as skipped, with why. :func:`overlap_markdown` gives the section
``table.md`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radiossl.errors import DataError
from radiossl.sweep.plan import Method, seeds_of
from radiossl.utils.atomic import write_json

OVERLAP_JSON = "overlap.json"
OVERLAP_CACHE = "overlap.hashes.json"
FORMAT = "radiossl-sweep-overlap"


def pretraining_data_of(path: Path) -> tuple[Path | None, str]:
    """The pretraining data folder a checkpoint records, or None and why it records none."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # foreign or unsafe-pickled files record no pretraining data radiossl can read
        return None, "not a radiossl pretraining checkpoint (no record of its pretraining data)"
    if not isinstance(payload, dict) or payload.get("kind") != "pretrain":
        return None, "not a radiossl pretraining checkpoint (no record of its pretraining data)"
    config = payload.get("config")
    data = config.get("data") if isinstance(config, dict) else None
    root = data.get("root") if isinstance(data, dict) else None
    if not isinstance(root, str) or not root:
        return None, "its config records no pretraining data folder (data.root)"
    return Path(root), ""


def check_sweep_overlap(config: Any, methods: Sequence[Method], out: Path) -> list[dict[str, Any]]:
    """Check each checkpoint against the sweep's evaluation cases; writes ``overlap.json`` and returns its entries."""
    from radiossl.downstream.overlap import check_overlap
    from radiossl.downstream.tasks.base import get_task_class

    task = get_task_class(config.task.name)(config.task, config.data.root)
    entries: list[dict[str, Any]] = []
    for method in methods:
        entry: dict[str, Any] = {
            "method": method.name,
            "weights": None if method.weights is None else str(method.weights),
        }
        root, why = (
            (None, "scratch: trained from random weights")
            if method.weights is None
            else pretraining_data_of(method.weights)
        )
        if root is None:
            entries.append({**entry, "status": "skipped", "reason": why})
            continue
        try:
            result = check_overlap(root, task, seeds=seeds_of(config), cache=out / OVERLAP_CACHE)
        except DataError as exc:
            entries.append({**entry, "status": "skipped", "reason": str(exc).splitlines()[0]})
            continue
        status = "overlap" if result.found else "clean"
        entries.append({**entry, "status": status, "summary": result.summary_line(), "report": result.as_dict()})
    write_json(out / OVERLAP_JSON, {"format": FORMAT, "task": config.task.name, "checkpoints": entries})
    return entries


def overlap_markdown(sweep_dir: Path) -> list[str]:
    """The ``table.md`` section of ``overlap.json`` (no lines when the sweep has none)."""
    path = Path(sweep_dir) / OVERLAP_JSON
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("checkpoints") or []
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        return ["", "## Pretraining data vs evaluation cases", "", f"`{OVERLAP_JSON}` cannot be read ({exc})."]
    lines = ["", "## Pretraining data vs evaluation cases", ""]
    lines += ["Checked by case id and by a hash of the image voxels (`radiossl check-overlap`; details in "]
    lines[-1] += f"`{OVERLAP_JSON}`)."
    lines.append("")
    for entry in entries:
        status, name = entry.get("status"), entry.get("method")
        if status == "skipped":
            lines.append(f"- {name}: not checked: {entry.get('reason')}")
            continue
        report = entry.get("report") or {}
        text = f"- {name}: {'**OVERLAP**: ' if status == 'overlap' else ''}{entry.get('summary')}"
        cases = [m.get("case_id") for m in report.get("matches", [])]
        if cases:
            text += f": {', '.join(str(c) for c in cases[:10])}{' ...' if len(cases) > 10 else ''}"
        lines.append(text)
        lines += [f"  - note: {note}" for note in report.get("notes", [])]
    return lines
