"""The epoch summary line: NaN (not measured this epoch) is left out of the console, kept in metrics.jsonl."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from rich.console import Console

from radiossl.engine.logging import RunLogger


def test_epoch_line_leaves_out_unmeasured_metrics(tmp_path: Path) -> None:
    buffer = io.StringIO()
    log = RunLogger(tmp_path, enabled=True, progress=False, console=Console(file=buffer, width=200))
    record = {"type": "epoch", "epoch": 3, "step": 30, "loss": 0.25, "val_dice": math.nan, "time": 1.0}
    log.end_epoch(record)
    log.log_line(record)
    log.close()
    printed = buffer.getvalue()
    assert "loss 0.25" in printed and "epoch 3" in printed
    assert "val_dice" not in printed and "nan" not in printed
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["val_dice"] == "nan"
