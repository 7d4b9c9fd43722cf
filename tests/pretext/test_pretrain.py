"""``radiossl.pretrain`` and ``radiossl pretrain``: registry lookup, view check, CLI flags."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from engine_task import RandomVolumes, TinyNet
from torch import nn
from typer.testing import CliRunner

from radiossl import registry
from radiossl.cli import app
from radiossl.config import MethodConfig
from radiossl.data.processed import FORMAT
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.errors import DataError
from radiossl.pretext.base import PretextMethod, load_pretrain_config
from radiossl.pretext.pretrain import pretrain


class TinyRegressionConfig(MethodConfig):
    name: Literal["tiny-regression"] = "tiny-regression"
    scale: float = 2.0


class TinyRegression(PretextMethod):
    name = "tiny-regression"
    config_class = TinyRegressionConfig
    views = "genesis"

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"optim": {"lr": 0.01, "epochs": 2, "batch_size": 4}}

    def build_model(self) -> nn.Module:
        return TinyNet()

    def build_datasets(self) -> tuple[RandomVolumes, None]:
        return RandomVolumes(6), None

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        loss = (model(batch.image).float() - self.settings.scale * batch.image).pow(2).mean()
        return StepOutput(loss=loss)

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        return {"class": "TinyNet", "kwargs": {}}

    def run_name_parts(self) -> list[str]:
        return [f"s{self.settings.scale}"]


@pytest.fixture(autouse=True)
def tiny_method() -> Iterator[None]:
    registry.register("radiossl.pretext", TinyRegression.name, TinyRegression)
    yield
    registry.unregister("radiossl.pretext", TinyRegression.name)


def _proc(tmp_path: Path, view: str) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "preprocess.json").write_text(json.dumps({"format": FORMAT, "dataset": "phantom", "view": view}))
    return proc


QUIET = ["runtime.device=cpu", "data.workers=0", "logging.progress=false"]


def test_pretrain_trains_a_registered_method_and_writes_the_resolved_config(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "genesis")
    cfg = load_pretrain_config("tiny-regression", overrides=[*QUIET, f"data.root={proc}", f"out={tmp_path / 'r'}"])
    result = pretrain(cfg)
    assert result.run_dir.name.startswith("pretrain-tiny-regression-phantom-s2.0-w1.0-b4-e2-lr0.01-")
    assert "name: tiny-regression" in (result.run_dir / "config.yaml").read_text()
    assert torch.load(result.final_checkpoint, weights_only=True)["config"]["method"]["scale"] == 2.0


def test_pretrain_records_the_size_of_the_stored_crops(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "genesis")
    params = json.loads((proc / "preprocess.json").read_text())
    (proc / "preprocess.json").write_text(json.dumps({**params, "settings": {"crop_size": [8, 8, 8]}}))
    overrides = [*QUIET, f"data.root={proc}", f"out={tmp_path / 'r'}", "data.crop_size=[64,64,32]"]
    with pytest.warns(UserWarning, match=r"data.crop_size is \[64,64,32\] but .*proc holds crops of \[8,8,8\]"):
        result = pretrain(load_pretrain_config("tiny-regression", overrides=overrides))
    saved = torch.load(result.final_checkpoint, weights_only=True)["config"]["data"]["crop_size"]
    assert list(saved) == [8, 8, 8]
    assert "- 8" in (result.run_dir / "config.yaml").read_text()


def test_pretrain_refuses_a_folder_preprocessed_for_another_view(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "cluster")
    cfg = load_pretrain_config("tiny-regression", overrides=[*QUIET, f"data.root={proc}"])
    with pytest.raises(
        DataError,
        match=r"proc: preprocessed with the 'cluster' view but method 'tiny-regression' "
        r"trains on the 'genesis' view; run `radiossl preprocess \.\.\. --views genesis`",
    ) as err:
        pretrain(cfg)
    assert "\n" not in str(err.value)


def test_pretrain_accepts_any_view_a_method_declares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = _proc(tmp_path, "cluster")
    monkeypatch.setattr(TinyRegression, "views", ("genesis", "cluster"))
    cfg = load_pretrain_config("tiny-regression", overrides=[*QUIET, f"data.root={proc}", f"out={tmp_path / 'r'}"])
    assert pretrain(cfg).final_checkpoint.is_file()
    monkeypatch.setattr(TinyRegression, "views", ("genesis", "pcrlv2"))
    with pytest.raises(DataError, match=r"trains on the 'genesis' or 'pcrlv2' view"):
        pretrain(cfg)


def test_pretrain_refuses_a_folder_that_was_not_preprocessed(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    cfg = load_pretrain_config("tiny-regression", overrides=[*QUIET, f"data.root={tmp_path / 'raw'}"])
    with pytest.raises(DataError, match=r"raw: not a preprocessed folder \(no preprocess\.json\)"):
        pretrain(cfg)


def test_pretrain_needs_an_existing_data_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data"):
        pretrain(load_pretrain_config("tiny-regression"))
    with pytest.raises(DataError, match="nowhere: data folder not found"):
        pretrain(load_pretrain_config("tiny-regression", overrides=[f"data.root={tmp_path / 'nowhere'}"]))


def test_cli_flags_override_set_and_file(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "genesis")
    config_file = tmp_path / "c.yaml"
    config_file.write_text("optim:\n  epochs: 5\n  lr: 0.5\nmethod:\n  name: tiny-regression\n  scale: 3.0\n")
    args = [
        "pretrain",
        "--data",
        str(proc),
        "--out",
        str(tmp_path / "runs"),
        "--config",
        str(config_file),
        "--set",
        "optim.lr=0.2",
        "--set",
        "logging.progress=false",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--seed",
        "5",
        "--amp",
        "bf16",
        "--width",
        "0.5",
        "--vis",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("pretrain-tiny-regression-phantom-s3.0-w0.5-b2-e1-lr0.2-")
    config = torch.load(run_dir / "checkpoint_final.pt", weights_only=True)["config"]
    assert config["runtime"] == {**config["runtime"], "seed": 5, "amp": "bf16", "device": "cpu"}
    assert config["logging"]["vis"] is True and config["data"]["workers"] == 0

    again = CliRunner().invoke(app, [*args, "--resume", "auto"])
    assert again.exit_code == 0, again.output
    assert len(list((tmp_path / "runs").iterdir())) == 1  # continued the same folder

    nothing = CliRunner().invoke(app, [*args, "--extend-epochs", "1"])  # without --resume
    assert nothing.exit_code == 2 and "--resume" in nothing.output
    longer = CliRunner().invoke(app, [*args, "--resume", "auto", "--extend-epochs", "1"])
    assert longer.exit_code == 0, longer.output
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the same folder, one epoch more
    assert torch.load(run_dir / "checkpoint_final.pt", weights_only=True)["epoch"] == 2


def test_cli_reports_bad_input_with_exit_codes(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "cluster")
    result = CliRunner().invoke(app, ["pretrain", "--method", "tiny-regression", "--data", str(proc)])
    assert result.exit_code == 1 and "preprocessed with the 'cluster' view" in result.output
    unknown = CliRunner().invoke(app, ["pretrain", "--method", "no-such-method", "--data", str(proc)])
    assert unknown.exit_code == 2 and "no-such-method" in unknown.output
