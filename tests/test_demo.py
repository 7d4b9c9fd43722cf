"""`radiossl demo` runs the whole pipeline end to end (tiny settings) and reports Dice for both runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from radiossl.cli import app


def test_demo_end_to_end_and_resumable(tmp_path: Path) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text(
        "cases: 6\nshape: [48, 48, 32]\npairs: 2\nwidth: 0.125\npretrain_epochs: 1\nfinetune_epochs: 2\n"
        "validate_every: 2\n"
    )
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--config", str(config), "--device", "cpu"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    if result.exc_info is not None and result.exit_code != 0:
        import traceback

        traceback.print_exception(*result.exc_info)
    assert result.exit_code == 0, result.output
    assert "Dice on held-out phantom cases" in result.output
    assert "demo finished in" in result.output and "torch kernels" in result.output  # names the CPU it timed
    for label in ("scratch", "pixel-cluster"):
        assert label in result.output
        summary = json.loads((out / "evaluation" / label / "summary.json").read_text())
        assert set(summary["regions"]) == {"WT", "TC", "ET"}
        assert any((out / "evaluation" / label / "predictions").glob("*.nii.gz"))
    assert (out / "proc" / "manifest.csv").is_file()
    assert list((out / "proc" / "kmeans").glob("*.png"))
    # A second run reuses every finished stage instead of starting over.
    again = CliRunner().invoke(app, args, terminal_width=200)
    assert again.exit_code == 0, again.output
    assert "nothing to train" in again.output
