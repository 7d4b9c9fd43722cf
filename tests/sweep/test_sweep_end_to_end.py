"""``radiossl sweep`` on phantoms on the CPU: real finetune + evaluate cells, shards, resume, kill -9 of a cell."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radiossl.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
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
    "runtime.deterministic=true",
    "--set",
    "logging.progress=false",
]


def _sweep(root: Path, out: Path, weights: list[str], *more: str) -> list[str]:
    args = ["sweep", *TINY, "--data", str(root), "--out", str(out)]
    for entry in weights:
        args += ["--weights", entry]
    return [*args, *more]


def _done(out: Path) -> set[str]:
    return {path.parent.name for path in (out / "cells").glob("*/cell.json")}


def test_shards_together_are_the_whole_sweep_and_a_rerun_skips_done_cells(
    brats_root: Path, checkpoints: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    grid = _sweep(brats_root, out, [str(checkpoints[0]), "scratch"], "--ratios", "1.0", "--seeds", "1", "--epochs", "1")
    first = runner.invoke(app, [*grid, "--shard", "1/2"])
    assert first.exit_code == 0, first.output
    assert _done(out) == {"alpha-r100-s1-encoder-all"} and not (out / "summary.csv").exists()
    assert "1 of 2 cells not done yet" in first.output
    second = runner.invoke(app, [*grid, "--shard", "2/2"])
    assert second.exit_code == 0, second.output
    assert _done(out) == {"alpha-r100-s1-encoder-all", "scratch-r100-s1"}
    for name in ("sweep.csv", "summary.csv", "table.md", "label_efficiency.png"):
        assert (out / name).is_file(), name
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3  # cells x test cases x regions
    # Each cell is an ordinary finetune run and evaluate folder, recording the labelled cases it trained on.
    cell = out / "cells" / "scratch-r100-s1"
    assert (cell / "finetune" / "checkpoint_best.pt").is_file() and (cell / "evaluate" / "summary.json").is_file()
    logs = {path: path.read_text() for path in (out / "cells").glob("*/cell.log")}
    again = runner.invoke(app, grid)
    assert again.exit_code == 0, again.output
    assert "2 of 2 cell(s) done already" in again.output
    assert {path: path.read_text() for path in logs} == logs  # no cell ran again
    other = runner.invoke(app, [*grid, "--lr", "0.5"])
    assert other.exit_code == 2 and "holds results of other settings" in other.output


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the cell process through /proc")
def test_a_cell_killed_mid_run_is_recorded_and_resumed_by_the_next_run(brats_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    grid = _sweep(brats_root, out, ["scratch"], "--ratios", "0.5", "--seeds", "1", "--epochs", "6")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    sweep = subprocess.Popen([sys.executable, "-m", "radiossl", *grid], env=env, stdout=subprocess.PIPE, text=True)
    run_dir = out / "cells" / "scratch-r050-s1" / "finetune"
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoint_latest.pt").is_file():
        assert sweep.poll() is None and time.monotonic() < deadline, "the cell ended before its first checkpoint"
        time.sleep(0.02)
    (cell_process,) = _children(sweep.pid)
    os.kill(cell_process, signal.SIGKILL)
    output, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, output
    assert not (run_dir / "checkpoint_final.pt").is_file(), "killed too late to test a resume"
    assert "the cell process was killed (SIGKILL)" in output
    assert "killed (SIGKILL)" in (run_dir.parent / "failed.json").read_text()
    report = runner.invoke(app, ["sweep", "report", str(out)])
    assert report.exit_code == 1 and "failed: the cell process was killed" in report.output

    rerun = runner.invoke(app, grid)
    assert rerun.exit_code == 0, rerun.output
    assert "scratch-r050-s1 (resuming)" in rerun.output
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert (run_dir / "checkpoint_final.pt").is_file() and not (run_dir.parent / "failed.json").exists()
    assert (out / "table.md").is_file() and "1 of 1 cells done" in (out / "table.md").read_text()


@pytest.mark.slow
def test_the_done_means_grid_two_checkpoints_and_scratch_three_ratios_two_seeds(
    brats_root: Path, checkpoints: list[Path], tmp_path: Path
) -> None:
    from PIL import Image

    out = tmp_path / "grid"
    weights = [*(str(path) for path in checkpoints), "scratch"]
    grid = _sweep(brats_root, out, weights, "--ratios", "0.25,0.5,1.0", "--seeds", "2", "--epochs", "1")
    for shard in ("1/3", "2/3", "3/3"):
        result = runner.invoke(app, [*grid, "--shard", shard])
        assert result.exit_code == 0, result.output
    assert len(_done(out)) == 3 * 3 * 2
    table = (out / "table.md").read_text()
    assert "18 of 18 cells done" in table and "| beta (encoder, train all) |" in table
    with open(out / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert len(summary) == 3 * 3 * 4
    assert all(row["p_vs_scratch"] for row in summary if row["method"] != "scratch")
    image = Image.open(out / "label_efficiency.png")
    assert image.width > 1000 and image.height > 250
    # Which shard ran a cell does not change it: the same cells of an unsharded sweep give the same scores.
    alone = tmp_path / "alone"
    subset = _sweep(brats_root, alone, weights, "--ratios", "0.5", "--seeds", "1", "--epochs", "1")
    assert runner.invoke(app, subset).exit_code == 0
    for cell in _done(alone):
        metrics = Path("cells") / cell / "evaluate" / "metrics.csv"
        assert (alone / metrics).read_text() == (out / metrics).read_text(), cell
