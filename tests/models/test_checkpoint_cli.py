"""``radiossl checkpoint inspect|export-encoder`` on a tiny Typer app."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from radiossl.commands.checkpoint import register
from radiossl.models import UNet3D, model_spec, read_checkpoint
from radiossl.models.checkpoint import FORMAT_VERSION

TINY = 0.125


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()

    @application.callback()
    def main() -> None:
        """Test root."""

    register(application)
    return application


@pytest.fixture
def pcrlv2_file(tmp_path: Path, options: Callable[..., argparse.Namespace]) -> Path:
    """A file in the PCRLv2 release layout: ``{'opt': Namespace, 'state_dict', 'optimizer', 'epoch'}``."""
    model = UNet3D(width=TINY, skip_connections=False, pretrain_heads=True)
    path = tmp_path / "pcrlv2.pt"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    torch.save(
        {
            "opt": options(["--lr", "0.002", "--epochs", "240"]),
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": 240,
        },
        path,
    )
    return path


def test_inspect_radiossl_checkpoint(app: typer.Typer, tmp_path: Path) -> None:
    model = UNet3D(in_channels=4, out_channels=3, width=TINY, norm="group")
    path = tmp_path / "checkpoint_best.pt"
    torch.save(
        {
            "format_version": FORMAT_VERSION,
            "model": model.state_dict(),
            "model_spec": model_spec(model),
            "config": {"optim": {"lr": 0.001}},
            "epoch": 7,
        },
        path,
    )
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "family: radiossl" in result.output and "epoch: 7" in result.output
    assert "model spec (stored)" in result.output and '"in_channels": 4' in result.output
    assert "down_tr64" in result.output and "out_tr" in result.output
    n_params = sum(p.numel() for p in model.parameters())
    assert f"parameters ≈ {n_params:,}" in result.output


def test_inspect_json_of_genesis_file(app: typer.Typer, tmp_path: Path) -> None:
    model = UNet3D(width=TINY, norm="genesis")
    path = tmp_path / "Genesis_Chest_CT.pt"
    torch.save(
        {
            "epoch": 3,
            "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "optimizer_state_dict": torch.optim.SGD(model.parameters(), lr=1.0).state_dict(),
        },
        path,
    )
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["family"] == "models-genesis" and info["wrapper_prefixes"] == ["module."]
    assert info["tensors"] == 106 and info["model_spec_source"] == "inferred"
    assert info["model_spec"]["kwargs"]["norm"] == "genesis"
    assert info["prefixes"]["down_tr64"]["tensors"] == 14
    assert info["meta"]["optimizer"]["lr"] == 1.0 and info["meta"]["epoch"] == 3


@pytest.mark.parametrize("flags", [[], ["--allow-unsafe-pickle"]])
def test_inspect_pcrlv2_without_the_unsafe_flag(app: typer.Typer, pcrlv2_file: Path, flags: list[str]) -> None:
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(pcrlv2_file), *flags], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "family: pcrlv2" in result.output and "training arguments" in result.output
    assert '"lr": 0.002' in result.output and '"epochs": 240' in result.output
    assert '"momentum": 0.9' in result.output and "epoch: 240" in result.output


def test_inspect_refuses_a_code_running_pickle_by_name(
    app: typer.Typer, tmp_path: Path, code_running_object: tuple[object, Path]
) -> None:
    payload, marker = code_running_object
    path = tmp_path / "pcrlv2_luna_pretask_1.0_240.pt"
    state = UNet3D(width=TINY, skip_connections=False, pretrain_heads=True).state_dict()
    torch.save({"opt": argparse.Namespace(lr=0.002), "state_dict": state, "payload": payload}, path)
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(path)], terminal_width=400)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(f"error: {path}: holds pickled")
    assert f"({os.system.__module__}.system)" in result.output and "--allow-unsafe-pickle" in result.output
    assert not marker.exists()


def test_export_encoder_command(app: typer.Typer, pcrlv2_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "encoder.pt"
    result = CliRunner().invoke(app, ["checkpoint", "export-encoder", str(pcrlv2_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "56 encoder tensors" in result.output
    raw = read_checkpoint(out)
    assert raw.family == "radiossl-encoder" and raw.meta["source"]["family"] == "pcrlv2"


def test_missing_file_is_a_one_line_error(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(tmp_path / "nope.pt")])
    assert result.exit_code == 2 and "nope.pt: file not found" in result.output


def test_inspect_summarises_per_block_and_lists_every_tensor_with_verbose(app: typer.Typer, tmp_path: Path) -> None:
    model = UNet3D(width=TINY, norm="batch")
    path = tmp_path / "unet_bn.pt"
    torch.save(model.state_dict(), path)
    blocks = ("down_tr64", "down_tr128", "down_tr256", "down_tr512", "up_tr256", "up_tr128", "up_tr64", "out_tr")
    runner = CliRunner()
    result = runner.invoke(app, ["checkpoint", "inspect", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = [line.strip("│ ").split() for line in result.output.splitlines() if line.startswith("│")]
    assert [row[0] for row in rows] == list(blocks)  # one row per block, not one per tensor
    counts = {row[0]: row[-1] for row in rows}  # BatchNorm running statistics, counted per block
    assert counts["down_tr64"] == "6" and counts["out_tr"] == "0"
    assert "running_mean" not in result.output
    verbose = runner.invoke(app, ["checkpoint", "inspect", str(path), "--verbose"], terminal_width=200)
    assert verbose.exit_code == 0, verbose.output
    for key in model.state_dict():
        assert f"{key} " in verbose.output, key
    assert re.search(r"down_tr64\.ops\.0\.conv1\.weight\s+│ \[8, 1, 3, 3, 3\]\s+│ float32", verbose.output)
    info = json.loads(runner.invoke(app, ["checkpoint", "inspect", str(path), "--json", "--verbose"]).output)
    assert len(info["keys"]) == len(model.state_dict()) and info["prefixes"]["down_tr64"]["running_statistics"] == 6
