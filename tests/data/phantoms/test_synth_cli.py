"""``radiossl synth`` through Typer's test runner on a tiny app."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from radiossl.commands.synth import register


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:
        """Second command, so that Typer keeps `synth` as a sub-command name."""

    return app


def test_synth_writes_and_summarises(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "brats"
    args = ["synth", "brats", "--out", str(out), "--cases", "2", "--seed", "3", "--shape", "32", "32", "24"]
    result = CliRunner().invoke(app, [*args, "--preview"])
    assert result.exit_code == 0, result.output
    assert "HGG: 1" in result.output and "LGG: 1" in result.output
    assert (out / "preview.png").is_file()
    assert (out / "LGG" / "Brats18_PHANTOM_001_1" / "Brats18_PHANTOM_001_1_seg.nii.gz").is_file()


def test_synth_nnunet(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "nn"
    result = CliRunner().invoke(
        app, ["synth", "nnunet", "--out", str(out), "--cases", "1", "--shape", "32", "32", "24"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "Dataset901_Phantom" / "dataset.json").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["synth", "ct"],
        ["synth", "lits"],
        ["synth", "lits", "--cases", "0"],
        ["synth", "lits", "--shape", "8", "32", "32"],
        ["synth", "lits", "--shape", "32", "32"],
        ["synth", "lits", "--seed", "-4"],
    ],
)
def test_usage_errors_exit_2(app: typer.Typer, tmp_path: Path, args: list[str]) -> None:
    if args != ["synth", "lits"]:
        args = [*args, "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output


def test_non_empty_folder_exit_2(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    result = CliRunner().invoke(app, ["synth", "lits", "--out", str(tmp_path), "--shape", "32", "32", "16"])
    assert result.exit_code == 2
    assert "not empty" in result.output
