from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from radiossl.cli import app

runner = CliRunner()


def test_help_lists_every_stage() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("synth", "preprocess", "kmeans", "pretrain", "finetune", "evaluate", "plugins", "config"):
        assert command in result.output


def test_help_is_fast_and_does_not_import_torch() -> None:
    code = (
        "import sys, time; t=time.perf_counter(); "
        "from radiossl.cli import app; import radiossl; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 1.0
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "radiossl", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - start < 3.0  # includes interpreter start-up


def test_plugins_list_shows_groups() -> None:
    result = runner.invoke(app, ["plugins", "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("patch-cluster", "brats18", "filterbank", "bilinear", "brats"):
        assert name in result.output


def test_config_show_and_schema() -> None:
    shown = runner.invoke(app, ["config", "show", "--method", "patch-cluster"])
    assert shown.exit_code == 0, shown.output
    assert "name: patch-cluster" in shown.output
    schema = runner.invoke(app, ["config", "schema", "--method", "patch-cluster"])
    assert schema.exit_code == 0
    assert "method" in json.loads(schema.output)["properties"]


def test_config_show_task_uses_the_datasets_input_channels(tmp_path: Path) -> None:
    # finetuning sets model.in_channels to the dataset's channel count; show what will be used
    brats = runner.invoke(app, ["config", "show", "--task", "brats"])
    assert brats.exit_code == 0, brats.output
    assert "  in_channels: 4\n" in brats.stdout
    lits = runner.invoke(app, ["config", "show", "--task", "lits"])
    assert "  in_channels: 1\n" in lits.stdout
    nnunet = runner.invoke(app, ["config", "show", "--task", "nnunet"])
    assert nnunet.exit_code == 0 and "pass --data RAW_DIR" in nnunet.stderr
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2", "1": "ADC"}, "labels": {}}))
    with_data = runner.invoke(app, ["config", "show", "--task", "nnunet", "--data", str(tmp_path)])
    assert with_data.exit_code == 0, with_data.output
    assert "  in_channels: 2\n" in with_data.stdout
    assert "in_channels" not in runner.invoke(app, ["config", "show", "--task", "brats", "--stage", "evaluate"]).stdout


def test_config_validate_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("method:\n  name: patch-cluster\noptim:\n  epochs: 3\n")
    assert runner.invoke(app, ["config", "validate", str(good)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  name: patch-cluster\noptim:\n  epoch: 3\n")
    result = runner.invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "optim.epoch" in result.output
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("method:\n  name: no-such\n")
    assert runner.invoke(app, ["config", "validate", str(unknown)]).exit_code == 2


def test_unknown_method_is_a_usage_error() -> None:
    result = runner.invoke(app, ["config", "show", "--method", "nope"])
    assert result.exit_code == 2
    assert "available" in result.output
