"""``radiossl probe``: a frozen encoder with a trained linear head, on the finetune engine, on the CPU in seconds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.downstream.config import load_task_config
from radiossl.downstream.probe import RANDOM_ENCODER_WARNING, ProbeTask, probe
from radiossl.models import UNet3D, model_spec
from radiossl.models.probe_net import ProbeNet

runner = CliRunner()


def _tiny(root: Path, out: Path, crop: int = 16) -> list[str]:
    return [
        "--task",
        "brats",
        "--data",
        str(root),
        "--out",
        str(out),
        "--width",
        "0.125",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        f"data.crop_size=[{crop},{crop},{crop}]",
        "--set",
        "sliding_window.roi=[32,32,32]",
        "--set",
        "logging.progress=false",
    ]


def _evaluate(root: Path, weights: Path, out: Path) -> list[str]:
    return ["evaluate", "--task", "brats", "--data", str(root), "--weights", str(weights), "--out", str(out)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A width-0.125 U-Net "pretraining" checkpoint with non-trivial BatchNorm statistics."""
    torch.manual_seed(3)
    net = UNet3D(in_channels=1, out_channels=1, width=0.125, norm="batch", skip_connections=False)
    net.train()
    with torch.no_grad():
        net(torch.randn(2, 1, 16, 16, 16) * 2 + 1)  # moves the running statistics off their initial values
    path = tmp_path_factory.mktemp("pretrained") / "checkpoint_final.pt"
    torch.save(
        {"format_version": 1, "kind": "pretrain", "model": net.state_dict(), "model_spec": model_spec(net)}, path
    )
    return path, {k: v.clone() for k, v in net.state_dict().items()}


def test_only_the_head_receives_gradients_and_the_encoder_stays_in_eval_mode() -> None:
    net = ProbeNet(UNet3D(width=0.125, norm="batch"), out_channels=3)
    net.train()
    assert all(not m.training for name, m in net.named_modules() if name.startswith("down_tr"))
    assert all(m.training for m in net.probe_head.modules())
    net(torch.randn(2, 1, 16, 16, 16)).square().mean().backward()
    grads = {name: p.grad is not None for name, p in net.named_parameters()}
    assert grads and all(has == name.startswith("probe_head.") for name, has in grads.items())
    assert sum(has for has in grads.values()) == 8  # a weight and a bias per stage, 4 stages


def test_probe_leaves_the_encoder_bit_identical(
    brats_root: Path, tmp_path: Path, pretrained: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    weights, source = pretrained
    flags = {
        "data": {"root": str(brats_root), "crop_size": [16, 16, 16], "ratio": 1.0, "workers": 0},
        "model": {"width": 0.125, "norm": "batch"},
        "optim": {"epochs": 2, "batch_size": 2, "weight_decay": 0.1},
        "runtime": {"device": "cpu", "workers": 1},
        "logging": {"progress": False},
        "sliding_window": {"roi": [32, 32, 24]},
        "weights": str(weights),
        "out": str(tmp_path),
    }
    config = load_task_config("finetune", "brats", flags=flags)
    result = probe(config)
    saved = torch.load(result.final_checkpoint, weights_only=True)
    assert saved["kind"] == "probe" and saved["model_spec"]["class"] == "ProbeNet"
    state = saved["model"]
    loaded = ProbeTask(config).build_model()  # the network as probing started: pretrained encoder, fresh head
    trainable = {name for name, p in loaded.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("probe_head.") for name in trainable)  # all the optimiser gets
    before = loaded.state_dict()
    encoder = [key for key in before if key.startswith("down_tr")]
    assert len(encoder) == len([k for k in source if k.startswith("down_tr")])
    assert all(torch.equal(state[key], before[key]) for key in encoder)  # weights and BN statistics
    stem = "down_tr64.ops.0.conv1.weight"  # adapted from 1 to the 4 BraTS channels; the rest as pretrained
    assert all(torch.equal(state[key], source[key]) for key in encoder if key != stem)
    assert not any(key.startswith(("up_tr", "out_tr")) for key in state)
    head = [key for key in state if key.startswith("probe_head.")]
    assert head and any(not torch.equal(state[key], before[key]) for key in head)
    report = json.loads((result.run_dir / "load_report.json").read_text())
    assert report["matched"] and all(key.startswith("down_tr") for key in report["matched"])


def test_cli_probe_warns_without_weights_resumes_and_evaluate_reads_it(brats_root: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = runner.invoke(app, ["probe", *_tiny(brats_root, runs), "--epochs", "1"])
    assert first.exit_code == 0, first.output
    assert first.output.count(RANDOM_ENCODER_WARNING) == 1
    run = next(runs.iterdir())
    assert run.name.startswith("probe-brats-") and (run / "config.yaml").is_file()
    assert "mode: probe" in (run / "config.yaml").read_text()
    more = runner.invoke(
        app, ["probe", *_tiny(brats_root, runs), "--epochs", "1", "--resume", str(run), "--extend-epochs", "1"]
    )
    assert more.exit_code == 0, more.output
    assert torch.load(run / "checkpoint_final.pt", weights_only=True)["epoch"] == 2
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()][-2:] == [1, 2]
    out = tmp_path / "eval"
    evaluated = runner.invoke(app, _evaluate(brats_root, run / "checkpoint_best.pt", out))
    assert evaluated.exit_code == 0, evaluated.output
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {row["region"] for row in rows} == {"WT", "TC", "ET"}


def test_probe_of_a_resenc_backbone(brats_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("dynamic_network_architectures")
    runs = tmp_path / "runs"
    args = ["probe", *_tiny(brats_root, runs, crop=32), "--epochs", "1", "--set", "model.name=resenc-l"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = next(runs.iterdir())
    spec = torch.load(run / "checkpoint_final.pt", weights_only=True)["model_spec"]
    assert spec["class"] == "ProbeNet" and spec["kwargs"]["backbone"]["class"] == "ResidualEncoderUNet"
    assert "on 6 stages" in result.output
    out = tmp_path / "eval"
    evaluated = runner.invoke(app, _evaluate(brats_root, run / "checkpoint_final.pt", out))
    assert evaluated.exit_code == 0, evaluated.output
    assert (out / "summary.json").is_file()


def test_a_probe_rejects_a_train_setting(brats_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["probe", *_tiny(brats_root, tmp_path), "--set", "train=decoder"])
    assert result.exit_code == 2 and "does not apply to mode=probe" in result.output
