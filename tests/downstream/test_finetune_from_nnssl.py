"""``radiossl finetune --weights checkpoint_final.pth`` from an nnssl checkpoint, then ``radiossl evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("dynamic_network_architectures")

from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

from radiossl.cli import app
from radiossl.downstream.config import load_task_config
from radiossl.downstream.evaluate import evaluate
from radiossl.downstream.finetune import finetune
from radiossl.errors import ConfigError

# nnU-Net (z, y, x) order, as nnssl writes it; total stride in radiossl order (4, 4, 2).
ARCH: dict[str, Any] = {
    "n_stages": 3,
    "features_per_stage": [4, 8, 16],
    "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[3, 3, 3]] * 3,
    "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
    "n_blocks_per_stage": [1, 1, 1],
    "n_conv_per_stage_decoder": [1, 1],
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.modules.activation.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}


def write_nnssl_checkpoint(path: Path, arch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A one-channel nnssl checkpoint (the library's class, saved as nnssl's trainers save it); its weights."""
    torch.manual_seed(3)
    operators = {"conv_op": torch.nn.Conv3d, "norm_op": torch.nn.InstanceNorm3d, "nonlin": torch.nn.LeakyReLU}
    network = ResidualEncoderUNet(input_channels=1, num_classes=2, **{**arch, **operators})
    plan = {
        "architecture_plans": {
            "arch_class_name": "ResidualEncoderUNet",
            "arch_kwargs": arch,
            "arch_kwargs_requiring_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "pretrain_plan": {"configurations": {"onemmiso": {"spacing": [1, 1, 1], "patch_size": [16, 32, 32]}}},
        "pretrain_num_input_channels": 1,
        "recommended_downstream_patchsize": [16, 32, 32],
        "key_to_encoder": "encoder.stages",
        "key_to_stem": "encoder.stem",
        "keys_to_in_proj": ["encoder.stem.convs.0.conv", "encoder.stem.convs.0.all_modules.0"],
        "key_to_lpe": None,
    }
    torch.save({"network_weights": network.state_dict(), "nnssl_adaptation_plan": plan, "citations": []}, path)
    return network.state_dict()


@pytest.fixture
def nnssl_weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path / "checkpoint_final.pth"
    return path, write_nnssl_checkpoint(path, ARCH)


def _flags(root: Path, out: Path, weights: Path, crop: list[int]) -> dict[str, Any]:
    return {
        "data": {"root": str(root), "crop_size": crop, "ratio": 1.0, "workers": 0},
        "optim": {"epochs": 1, "batch_size": 2},
        "runtime": {"device": "cpu", "workers": 1},
        "logging": {"progress": False},
        "sliding_window": {"roi": [32, 32, 24]},
        "weights": str(weights),
        "out": str(out),
    }


def test_finetune_builds_the_plan_network_and_evaluate_reads_it_back(
    brats_root: Path, tmp_path: Path, nnssl_weights: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    weights, pretrained = nnssl_weights
    config = load_task_config("finetune", "brats", flags=_flags(brats_root, tmp_path / "runs", weights, [16, 16, 16]))
    result = finetune(config)
    report = json.loads((result.run_dir / "load_report.json").read_text())
    assert report["family"] == "nnssl" and report["transfer"] == "encoder"
    assert {a["key"] for a in report["adapted"]} == {
        "encoder.stem.convs.0.conv.weight",
        "encoder.stem.convs.0.all_modules.0.weight",
    }
    assert report["matched"] and not report["missing"] and not report["shape_mismatched"]
    checkpoint = torch.load(result.final_checkpoint, weights_only=True)
    spec = checkpoint["model_spec"]
    assert spec["class"] == "ResidualEncoderUNet"
    assert (spec["kwargs"]["input_channels"], spec["kwargs"]["num_classes"]) == (4, 3)  # BraTS: 4 MRI, 3 regions
    assert spec["kwargs"]["strides"] == [[1, 1, 1], [2, 2, 1], [2, 2, 2]]
    adapted = report["adapted"][0]
    assert (adapted["checkpoint_shape"], adapted["model_shape"]) == ([4, 1, 3, 3, 3], [4, 4, 3, 3, 3])
    assert len(report["matched"]) + 2 == len([k for k in pretrained if k.startswith("encoder.")])
    evaluated = evaluate(
        load_task_config(
            "evaluate",
            "brats",
            flags={
                "data": {"root": str(brats_root)},
                "weights": str(result.best_checkpoint),
                "out": str(tmp_path / "e"),
            },
        )
    )
    assert (evaluated.out_dir / "metrics.csv").is_file()


def test_a_crop_that_does_not_fit_the_network_is_a_config_error_naming_the_field(
    brats_root: Path, tmp_path: Path
) -> None:
    deeper = {  # five stages: total stride (16, 16, 8) in radiossl order
        **ARCH,
        "n_stages": 5,
        "features_per_stage": [2, 2, 2, 2, 2],
        "kernel_sizes": [[3, 3, 3]] * 5,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
        "n_blocks_per_stage": [1] * 5,
        "n_conv_per_stage_decoder": [1] * 4,
    }
    weights = tmp_path / "deeper.pth"
    write_nnssl_checkpoint(weights, deeper)
    config = load_task_config("finetune", "brats", flags=_flags(brats_root, tmp_path / "runs", weights, [24, 16, 16]))
    with pytest.raises(ConfigError, match=r"data.crop_size: \[24, 16, 16\].*total stride \[16, 16, 8\]"):
        finetune(config)


def test_cli_prints_the_load_report_for_an_nnssl_checkpoint(
    brats_root: Path, tmp_path: Path, nnssl_weights: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    weights, _ = nnssl_weights
    args = ["finetune", "--task", "brats", "--data", str(brats_root), "--weights", str(weights), "--epochs", "1"]
    args += ["--out", str(tmp_path / "runs"), "--device", "cpu", "--set", "data.crop_size=[16,16,16]"]
    args += ["--set", "sliding_window.roi=[32,32,24]", "--set", "optim.batch_size=2", "--set", "data.workers=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "nnssl checkpoint; building its ResidualEncoderUNet" in result.output
    assert "[nnssl]: 2 adapted, 0 missing" in result.output
