"""``radiossl sweep report`` on a sweep folder whose cells are written by hand (no training)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import wilcoxon
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.sweep.plan import Cell
from radiossl.sweep.report import write_report
from radiossl.utils.atomic import write_json

REGIONS = ("WT", "TC", "ET")
CASES = ("case_a", "case_b", "case_c", "case_d", "case_e", "case_f")
runner = CliRunner()


def _dice(cell: Cell, case: int, region: int) -> float:
    """A made-up score: better with more labels, better pretrained, varying by case, region and seed."""
    base = 0.3 + 0.4 * cell.ratio + (0.05 if cell.method == "alpha" else 0.0)
    return round(base + 0.02 * case - 0.03 * region + 0.01 * cell.seed, 6)


def _fake_sweep(folder: Path, *, leave_out: tuple[str, ...] = (), fail: tuple[str, ...] = ()) -> list[Cell]:
    cells = [
        Cell(method, ratio, seed, "none" if method == "scratch" else "encoder", "all")
        for ratio in (0.1, 1.0)
        for seed in (1, 2)
        for method in ("alpha", "scratch")
    ]
    write_json(
        folder / "sweep.json",
        {
            "format": "radiossl-sweep",
            "task": "brats",
            "split": "test",
            "protocol": "full",
            "seeds": [1, 2],
            "cells": [c.as_dict() for c in cells],
        },
    )
    for cell in cells:
        cell_dir = folder / "cells" / cell.id
        cell_dir.mkdir(parents=True)
        if cell.id in fail:
            write_json(cell_dir / "failed.json", {"status": "failed", "error": "CUDA out of memory"})
        if cell.id in leave_out or cell.id in fail:
            continue
        lines = ["case,region,dice,hd95,gt_voxels,pred_voxels"]
        lines += [
            f"{case},{region},{_dice(cell, i, r)},{2.0 + i},10,10"
            for i, case in enumerate(CASES)
            for r, region in enumerate(REGIONS)
        ]
        (cell_dir / "evaluate").mkdir()
        (cell_dir / "evaluate" / "metrics.csv").write_text("\n".join(lines) + "\n")
        write_json(
            cell_dir / "cell.json", {"status": "ok", "cell": cell.as_dict(), "metrics_csv": "evaluate/metrics.csv"}
        )
    return cells


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_writes_every_output_with_the_right_numbers(tmp_path: Path) -> None:
    cells = _fake_sweep(tmp_path)
    report = write_report(tmp_path, resamples=2000)
    assert report.complete and len(report.done) == 8
    per_case = _rows(tmp_path / "sweep.csv")
    assert len(per_case) == len(cells) * len(CASES) * len(REGIONS)
    assert per_case[0]["cell"] == "alpha-r010-s1-encoder-all" and per_case[0]["method"] == "alpha"
    summary = {(r["method"], float(r["ratio"]), r["region"]): r for r in _rows(tmp_path / "summary.csv")}
    assert len(summary) == 2 * 2 * 4  # methods x ratios x (3 regions + mean)
    alpha = [c for c in cells if c.method == "alpha" and c.ratio == 0.1]
    scratch = [c for c in cells if c.method == "scratch" and c.ratio == 0.1]
    wt = summary[("alpha", 0.1, "WT")]
    expected = [_dice(c, i, 0) for c in alpha for i in range(len(CASES))]
    assert float(wt["dice_mean"]) == pytest.approx(np.mean(expected), abs=1e-6)
    assert float(wt["dice_std"]) == pytest.approx(np.std(expected), abs=1e-6)
    assert float(wt["dice_seed_std"]) == pytest.approx(0.005, abs=1e-6)  # seeds differ by 0.01
    assert float(wt["ci_low"]) < float(wt["dice_mean"]) < float(wt["ci_high"])
    assert (wt["n_seeds"], wt["n_cases"], wt["n"], wt["cells"]) == ("2", "6", "12", "2/2")
    # Paired by case (each case's Dice averaged over the seeds) against scratch at the same ratio.
    mine = [np.mean([_dice(c, i, 0) for c in alpha]) for i in range(len(CASES))]
    theirs = [np.mean([_dice(c, i, 0) for c in scratch]) for i in range(len(CASES))]
    assert float(wt["p_vs_scratch"]) == pytest.approx(wilcoxon(mine, theirs).pvalue, abs=1e-6)
    assert float(wt["delta_vs_scratch"]) == pytest.approx(0.05, abs=1e-6)
    assert summary[("scratch", 0.1, "WT")]["p_vs_scratch"] == ""
    mean_row = summary[("alpha", 1.0, "mean")]
    regions_mean = np.mean([float(summary[("alpha", 1.0, r)]["dice_mean"]) for r in REGIONS])
    assert float(mean_row["dice_mean"]) == pytest.approx(regions_mean, abs=1e-6)
    assert float(mean_row["hd95_mean"]) == pytest.approx(np.mean([2.0 + i for i in range(len(CASES))]))


def test_table_follows_the_thesis_layout(tmp_path: Path) -> None:
    _fake_sweep(tmp_path)
    table = write_report(tmp_path, resamples=200).table_md.read_text()
    assert "## 10 % of the training cases labelled" in table and "## 100 % of the training cases labelled" in table
    assert "| pretraining | mean Dice | WT | TC | ET | seeds |" in table
    rows = [line for line in table.splitlines() if line.startswith("| scratch") or line.startswith("| alpha")]
    assert rows[0].startswith("| scratch |") and rows[1].startswith("| alpha (encoder, train all) |")
    assert "| pretraining | 10 % | 100 % |" in table and "8 of 8 cells done" in table
    # Every case is 0.05 better than scratch: six pairs all one way give p = 2 / 2**6 < 0.05.
    assert "†" in rows[1] and "†" not in rows[0]


def test_the_figure_has_a_panel_per_region_and_visible_lines(tmp_path: Path) -> None:
    from radiossl.utils.figures import CHART_SIZE, palette

    _fake_sweep(tmp_path)
    png = write_report(tmp_path, resamples=200).figure_png
    assert png is not None
    image = np.asarray(Image.open(png).convert("RGB"))
    width, height = CHART_SIZE
    assert image.shape[1] >= 4 * width and image.shape[0] >= height  # 4 panels in a row: mean, WT, TC, ET
    pixels = image.reshape(-1, 3)
    for colour in palette(2):  # each method's line colour is drawn
        assert (pixels == colour).all(axis=1).sum() > 200
    assert len(np.unique(pixels, axis=0)) > 50


def test_report_lists_what_is_missing_and_works_on_what_is_done(tmp_path: Path) -> None:
    _fake_sweep(tmp_path, leave_out=("alpha-r100-s2-encoder-all",), fail=("scratch-r010-s2",))
    result = runner.invoke(app, ["sweep", "report", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "6 of 8 cells done" in result.output
    assert "scratch-r010-s2: failed: CUDA out of memory" in result.output
    assert "alpha-r100-s2-encoder-all: not run yet, or interrupted" in result.output
    summary = {(r["method"], float(r["ratio"]), r["region"]): r for r in _rows(tmp_path / "summary.csv")}
    assert summary[("scratch", 0.1, "WT")]["cells"] == "1/1" and summary[("alpha", 1.0, "WT")]["n_seeds"] == "1"
    table = (tmp_path / "table.md").read_text()
    assert "## Not done yet (2 of 8 cells)" in table and "`scratch-r010-s2`: failed: CUDA out of memory" in table
    assert (tmp_path / "label_efficiency.png").is_file()


def test_report_of_a_folder_that_is_no_sweep_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", "report", str(tmp_path)])
    assert result.exit_code == 1 and "not a sweep folder (no sweep.json" in result.output
    (tmp_path / "sweep.json").write_text(json.dumps({"format": "something else"}))
    result = runner.invoke(app, ["sweep", "report", str(tmp_path)])
    assert result.exit_code == 1 and "not the description of a radiossl sweep" in result.output


def test_an_unreadable_cell_is_listed_and_the_others_are_reported(tmp_path: Path) -> None:
    _fake_sweep(tmp_path)
    (tmp_path / "cells" / "alpha-r010-s1-encoder-all" / "evaluate" / "metrics.csv").unlink()
    report = write_report(tmp_path, resamples=100)
    assert list(report.not_done) == ["alpha-r010-s1-encoder-all"] and len(report.done) == 7
    assert "metrics.csv: cannot be read" in report.not_done["alpha-r010-s1-encoder-all"]
    assert not math.isnan(report.summary[0]["dice_mean"])
