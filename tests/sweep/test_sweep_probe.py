"""``radiossl sweep --mode probe``: every cell a frozen-encoder probe, evaluated and reported like finetuning."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from radiossl.cli import app

runner = CliRunner()
TINY = [
    "--task",
    "brats",
    "--width",
    "0.125",
    "--batch-size",
    "2",
    "--device",
    "cpu",
    "--workers",
    "0",
    "--set",
    "data.crop_size=[16,16,16]",
    "--set",
    "logging.progress=false",
]


def test_a_probe_sweep_finishes_and_its_report_marks_the_mode(
    brats_root: Path, checkpoints: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", *TINY, "--data", str(brats_root), "--out", str(out), "--mode", "probe"]
    args += ["--weights", str(checkpoints[0]), "--weights", "scratch", "--ratios", "1.0", "--seeds", "1"]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    cells = {path.parent.name for path in (out / "cells").glob("*/cell.json")}
    assert cells == {"alpha-r100-s1-encoder-all-probe", "scratch-r100-s1-probe"}
    cell = out / "cells" / "alpha-r100-s1-encoder-all-probe"
    record = json.loads((cell / "cell.json").read_text())
    assert record["probe"] == "probe" and (cell / "probe" / "checkpoint_best.pt").is_file()
    assert "mode: probe" in (cell / "probe" / "config.yaml").read_text()
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {row["mode"] for row in rows} == {"probe"}
    assert {row["method"] for row in rows} == {"alpha", "scratch"}
    table = (out / "table.md").read_text()
    assert "frozen-encoder probe" in table.splitlines()[0] and "| alpha (encoder, probe) |" in table
    assert (out / "label_efficiency.png").is_file()


def test_a_probe_sweep_refuses_train_modes(brats_root: Path, checkpoints: list[Path], tmp_path: Path) -> None:
    args = ["sweep", *TINY, "--data", str(brats_root), "--out", str(tmp_path), "--mode", "probe", "--train", "last"]
    result = runner.invoke(app, [*args, "--weights", str(checkpoints[0])])
    assert result.exit_code == 2 and "does not apply to mode probe" in result.output
