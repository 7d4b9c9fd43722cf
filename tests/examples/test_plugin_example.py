"""The example plugin is a separate distribution; CI installs it before running the tests."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from radiossl import registry
from radiossl.cli import app
from radiossl.pretext.base import get_method, load_pretrain_config

runner = CliRunner()


def test_plugin_is_discovered_through_its_entry_point() -> None:
    assert "rotation-3d" in registry.names("radiossl.pretext")
    info = next(row for row in registry.list_plugins(load=True) if row.name == "rotation-3d")
    assert info.distribution == "radiossl-rotation"
    assert info.error is None
    assert get_method("rotation-3d").config_class.__name__ == "RotationConfig"


def test_plugins_list_shows_the_example() -> None:
    result = runner.invoke(app, ["plugins", "list"], terminal_width=250)
    assert result.exit_code == 0
    assert "rotation-3d" in result.output
    assert "radiossl-rotation" in result.output


def test_plugin_config_through_the_cli(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["config", "show", "--method", "rotation-3d"])
    assert shown.exit_code == 0, shown.output
    assert "rotations: 4" in shown.output
    assert "lr: 0.01" in shown.output  # the plugin's default_settings layer
    good = tmp_path / "rot.yaml"
    good.write_text("method:\n  name: rotation-3d\n  rotations: 2\n")
    assert runner.invoke(app, ["config", "validate", str(good)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  name: rotation-3d\n  rotations: 9\n")
    result = runner.invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "method.rotations" in result.output


def test_plugin_config_precedence() -> None:
    cfg = load_pretrain_config("rotation-3d", overrides=["optim.lr=0.5"], flags={"optim": {"epochs": 2}})
    assert cfg.method.rotations == 4
    assert cfg.optim.lr == 0.5
    assert cfg.optim.epochs == 2
    assert cfg.optim.batch_size == 8


def test_plugin_trains_through_radiossl_pretrain(tmp_path: Path) -> None:
    import torch

    from radiossl.data.phantoms import synthesize

    raw = tmp_path / "raw"
    synthesize("brats", raw, cases=2, shape=(40, 40, 24), seed=3)
    proc = tmp_path / "proc"
    prep = runner.invoke(
        app,
        [
            "preprocess",
            "--dataset",
            "brats18",
            "--data",
            str(raw),
            "--out",
            str(proc),
            "--pairs",
            "2",
            "--set",
            "crop_size=[16,16,8]",
            "--set",
            "candidate_sizes=[[16,16,8],[24,24,8]]",
        ],
    )
    assert prep.exit_code == 0, prep.output
    result = runner.invoke(
        app,
        [
            "pretrain",
            "--method",
            "rotation-3d",
            "--data",
            str(proc),
            "--out",
            str(tmp_path / "runs"),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--set",
            "model.width=0.125",
            "--set",
            "data.workers=0",
            "--set",
            "data.crop_size=[16,16,8]",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    checkpoint = torch.load(run_dir / "checkpoint_final.pt", weights_only=True)
    assert checkpoint["model_spec"]["class"] == "RotationNet"
    assert any(key.startswith("rotation_classifier.") for key in checkpoint["model"])
    assert (run_dir / "config.yaml").read_text().count("rotation-3d") >= 1
