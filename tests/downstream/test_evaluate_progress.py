"""evaluate reports one line per case through the progress interface; the CLI draws its summary table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.downstream.config import load_task_config
from radiossl.downstream.evaluate import evaluate
from radiossl.engine.progress import PlainProgress, reporting_to
from radiossl.models import UNet3D, model_spec


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = UNet3D(in_channels=4, out_channels=3, width=0.125, norm="group")
    path = tmp_path_factory.mktemp("weights") / "net.pt"
    torch.save({"format_version": 1, "model": net.state_dict(), "model_spec": model_spec(net)}, path)
    return path


def test_one_plain_line_per_case_reaches_the_current_reporter(
    brats_root: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "brats"
    shutil.copytree(brats_root, root)
    image = next(root.glob("LGG/Brats18_PHANTOM_001_1/*_t1.nii.gz"))
    image.write_bytes(image.read_bytes()[:100])  # truncated: this case fails
    flags = {
        "data": {"root": str(root), "crop_size": [32, 32, 24]},
        "weights": str(weights),
        "out": str(tmp_path / "eval"),
        "split": "all",
        "max_cases": 3,
        "runtime": {"device": "cpu"},
    }
    lines: list[str] = []
    with reporting_to(PlainProgress(write=lines.append)):
        result = evaluate(load_task_config("evaluate", "brats", flags=flags))
    assert capsys.readouterr().out == ""  # everything went to the installed reporter
    cases = [line for line in lines if line.startswith("[")]
    assert [line.split(" ", 2)[:2] for line in cases] == [
        ["[1/3]", "Brats18_PHANTOM_000_1:"],
        ["[2/3]", "Brats18_PHANTOM_001_1:"],
        ["[3/3]", "Brats18_PHANTOM_002_1:"],
    ]
    assert cases[0].split(": ", 1)[1].startswith("WT ") and ", TC " in cases[0]
    assert cases[1].startswith("[2/3] Brats18_PHANTOM_001_1: failed: ")  # plain text, no console markup
    assert "[red]" not in "\n".join(lines) and "\x1b" not in "\n".join(lines)
    assert [failure["case"] for failure in result.failures] == ["Brats18_PHANTOM_001_1"]
    table = result.table()
    assert [row[0] for row in table.rows] == ["WT", "TC", "ET", "mean"]
    assert table.lines()[0] == "brats · all · full"


def test_the_cli_prints_the_case_lines_then_the_table(brats_root: Path, weights: Path, tmp_path: Path) -> None:
    args = ["evaluate", "--task", "brats", "--data", str(brats_root), "--weights", str(weights), "--split", "all"]
    args += ["--out", str(tmp_path / "eval"), "--device", "cpu", "--set", "data.crop_size=[32,32,24]"]
    result = CliRunner().invoke(app, [*args, "--set", "max_cases=2"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("[1/2] Brats18_PHANTOM_000_1: WT ") and lines[1].startswith("[2/2] ")
    assert "brats · all · full" in result.output
    header = next(line for line in lines if "region" in line)
    assert "Dice" in header and "HD95 (mm)" in header and "cases" in header
    assert any(line.startswith("metrics: ") for line in lines) and "\x1b" not in result.output
