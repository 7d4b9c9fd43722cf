"""Every built-in method and finetuning train on an nnU-Net backbone from the CLI (phantoms, CPU, tiny width)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("dynamic_network_architectures")

from radiossl.cli import app

CUBE = "[32,32,32]"
"""The smallest crop a stride-32 backbone (ResEnc-L) takes."""
BACKBONE = ["--set", "model.name=resenc-l", "--set", "model.width=0.125"]
QUIET = ["--set", "runtime.device=cpu", "--set", "logging.progress=false", "--set", "data.workers=0"]


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backbones") / "lits"
    invoke("synth", "lits", "--out", str(out), "--cases", "2", "--shape", "48", "48", "40", "--seed", "0")
    return out


VIEW_SETTINGS = {
    "cluster": ["--set", "candidate_sizes=[[32,32,32],[40,40,32]]"],
    "pcrlv2": ["--set", "candidate_sizes=[[32,32,32],[40,40,32]]"],
    "genesis": ["--set", "rejection.max_foreground=null", "--set", "rejection.max_background=null"],
}


def preprocessed(raw: Path, view: str) -> Path:
    """``raw`` preprocessed for ``view``, two 32³ samples per volume (made once per module).

    A 32³ crop is a single bottleneck voxel of ResEnc-L, so batch statistics need two samples per batch.
    """
    out = raw.parent / f"proc-{view}"
    if not out.exists():
        invoke(
            "preprocess", "--dataset", "lits17", "--data", str(raw), "--out", str(out), "--views", view,
            "--pairs", "2", "--workers", "0", "--set", f"crop_size={CUBE}", *VIEW_SETTINGS[view],
        )  # fmt: skip
    return out


def pretrain(method: str, data: Path, out: Path, *extra: str) -> dict[str, Any]:
    invoke(
        "pretrain", "--method", method, "--data", str(data), "--out", str(out), *BACKBONE, *QUIET,
        "--set", f"data.crop_size={CUBE}", "--set", "optim.epochs=1", "--set", "optim.batch_size=2", *extra,
    )  # fmt: skip
    (checkpoint,) = out.glob("*/checkpoint_final.pt")
    state: dict[str, Any] = torch.load(checkpoint, weights_only=True)
    return state


def encoder_keys(state: dict[str, Any]) -> set[str]:
    return {key for key in state["model"] if key.startswith("encoder.")}


def test_patch_cluster_on_resenc_l(raw: Path, tmp_path: Path) -> None:
    state = pretrain("patch-cluster", preprocessed(raw, "cluster"), tmp_path, "--set", "method.k=4")
    spec = state["model_spec"]
    assert spec["class"] == "PatchClusterNet" and spec["kwargs"]["backbone"]["class"] == "ResidualEncoderUNet"
    assert spec["kwargs"]["backbone"]["kwargs"]["features_per_stage"] == [4, 8, 16, 32, 40, 40]
    assert "encoder.stem.convs.0.conv.weight" in state["model"] and "prototypes.weight" in state["model"]
    assert not any(key.startswith("decoder.") for key in state["model"])  # the encoder only


def _load_register_fake_targets() -> Any:
    path = Path(__file__).with_name("test_pixel_cluster.py")
    spec = importlib.util.spec_from_file_location("_pixel_cluster_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.register_fake_targets


def test_pixel_cluster_on_resenc_l(raw: Path, tmp_path: Path) -> None:
    import shutil

    data = Path(shutil.copytree(preprocessed(raw, "cluster"), tmp_path / "proc"))
    _load_register_fake_targets()(data, "bins", 4)
    state = pretrain("pixel-cluster", data, tmp_path / "runs", "--set", "method.k=4", "--set", "method.targets=bins")
    assert state["model_spec"]["class"] == "ResidualEncoderUNet"
    assert state["model_spec"]["kwargs"]["num_classes"] == 4 and encoder_keys(state)


def test_pcrlv2_on_resenc_l_has_heads_on_every_decoder_stage(raw: Path, tmp_path: Path) -> None:
    state = pretrain("pcrlv2", preprocessed(raw, "pcrlv2"), tmp_path)
    spec = state["model_spec"]
    assert spec["class"] == "MultiScaleHeadNet" and spec["kwargs"]["backbone"]["class"] == "ResidualEncoderUNet"
    heads = {key.split(".")[1] for key in state["model"] if key.startswith("stage_heads.")}
    assert heads == {"0", "1", "2", "3", "4"}  # 6 stages -> 5 decoder stages
    lines = [json.loads(line) for line in (next(tmp_path.glob("*/metrics.jsonl"))).read_text().splitlines()]
    assert any("local" in line for line in lines)  # 16³ local views were resized to the backbone's 32³


def test_models_genesis_on_resenc_l(raw: Path, tmp_path: Path) -> None:
    state = pretrain("models-genesis", preprocessed(raw, "genesis"), tmp_path)
    assert state["model_spec"]["class"] == "ResidualEncoderUNet"
    assert state["model_spec"]["kwargs"]["norm_op"] == "radiossl.models.norms.ContBatchNorm3d"


def test_finetune_and_evaluate_on_resenc_l_from_a_resenc_l_pretraining(raw: Path, tmp_path: Path) -> None:
    pretrained = pretrain("models-genesis", preprocessed(raw, "genesis"), tmp_path / "pre")
    weights = next((tmp_path / "pre").glob("*/checkpoint_final.pt"))
    invoke(
        "finetune", "--task", "lits", "--data", str(raw), "--out", str(tmp_path / "ft"), "--weights", str(weights),
        *BACKBONE, *QUIET, "--set", "model.norm=genesis", "--set", "optim.epochs=1", "--set", "optim.batch_size=1",
        # one training case: 64x64x32 patches (padded) keep a 2x2x1 bottleneck for the batch statistics
        "--set", "data.crop_size=[64,64,32]", "--set", "sliding_window.roi=[64,64,32]",
    )  # fmt: skip
    run = next((tmp_path / "ft").glob("*/checkpoint_final.pt")).parent
    report = json.loads((run / "load_report.json").read_text())
    assert len(report["matched"]) == len(encoder_keys(pretrained)) and not report["shape_mismatched"]
    state = torch.load(run / "checkpoint_final.pt", weights_only=True)
    assert state["model_spec"]["class"] == "ResidualEncoderUNet"
    evaluated = tmp_path / "eval"  # the network is rebuilt from the checkpoint's spec, windows as trained
    invoke("evaluate", "--task", "lits", "--data", str(raw), "--weights", str(run / "checkpoint_final.pt"),
           "--out", str(evaluated), "--split", "train", *QUIET[:2])  # fmt: skip
    assert (evaluated / "summary.json").is_file()


def test_a_crop_the_backbone_cannot_take_is_refused_before_training(raw: Path, tmp_path: Path) -> None:
    flat = tmp_path / "proc-flat"  # crops of 32x32x16: half of ResEnc-L's total stride along z
    invoke(
        "preprocess", "--dataset", "lits17", "--data", str(raw), "--out", str(flat), "--views", "genesis",
        "--pairs", "1", "--workers", "0", "--set", "crop_size=[32,32,16]", *VIEW_SETTINGS["genesis"],
    )  # fmt: skip
    expected = "multiple of the resenc-l backbone's total stride [32, 32, 32], got [32, 32, 16]"
    pretrain_run = CliRunner().invoke(
        app,
        ["pretrain", "--method", "models-genesis", "--data", str(flat), "--out", str(tmp_path / "runs"),
         *BACKBONE, *QUIET, "--set", "data.crop_size=[32,32,16]", "--set", "optim.epochs=1"],
    )  # fmt: skip
    assert pretrain_run.exit_code == 2 and f"data.crop_size: every size must be a {expected}" in pretrain_run.output
    assert not list((tmp_path / "runs").glob("*/checkpoint_*.pt"))
    finetune_run = CliRunner().invoke(
        app,
        ["finetune", "--task", "lits", "--data", str(raw), "--out", str(tmp_path / "ft"), *BACKBONE, *QUIET,
         "--set", "data.crop_size=[64,64,32]", "--set", "sliding_window.roi=[32,32,16]"],
    )  # fmt: skip
    assert finetune_run.exit_code == 2 and f"sliding_window.roi: every size must be a {expected}" in finetune_run.output
    assert not (tmp_path / "ft").exists() or not list((tmp_path / "ft").glob("*/checkpoint_*.pt"))


# -- the methods of the comparison (mae, simclr, voco) on ResEnc-L -----------------------------------

TINY_HEAD = ["--set", "method.hidden_dim=16", "--set", "method.out_dim=8"]
VOCO_WIDE = ["--set", "method.crops=2", "--set", "data.crop_size=[64,32,32]", "--set", "method.grid=[2,1,1]"]
NEW_METHODS = {
    # method: (view, overrides). A 32³ crop is one bottleneck voxel: batch norm (2 samples) normalises it,
    # instance norm (the methods' default) cannot.
    "mae": ("genesis", ["--set", "model.norm=batch"]),
    "simclr": ("cluster", ["--set", "model.norm=batch", *TINY_HEAD]),
    "voco": ("wide-genesis", ["--set", "model.norm=batch", *TINY_HEAD, *VOCO_WIDE]),
}


@pytest.fixture(scope="module")
def wide_genesis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Genesis cubes of 64x32x32: VoCo's two base crops of 32³ each (the smallest ResEnc-L input)."""
    base = tmp_path_factory.mktemp("wide")
    invoke("synth", "lits", "--out", str(base / "raw"), "--cases", "2", "--shape", "72", "40", "40", "--seed", "0")
    invoke(
        "preprocess", "--dataset", "lits17", "--data", str(base / "raw"), "--out", str(base / "proc"),
        "--views", "genesis", "--pairs", "2", "--workers", "0", "--set", "crop_size=[64,32,32]",
        *VIEW_SETTINGS["genesis"],
    )  # fmt: skip
    return base / "proc"


def new_method_run(method: str, raw: Path, wide: Path, out: Path) -> dict[str, Any]:
    view, extra = NEW_METHODS[method]
    data = wide if view == "wide-genesis" else preprocessed(raw, view)
    return pretrain(method, data, out, *extra)


@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_mae_simclr_voco_train_on_resenc_l(method: str, raw: Path, wide_genesis: Path, tmp_path: Path) -> None:
    from radiossl.models import build_model

    state = new_method_run(method, raw, wide_genesis, tmp_path)
    spec, weights = state["model_spec"], state["model"]
    lines = [json.loads(line) for line in next(tmp_path.glob("*/metrics.jsonl")).read_text().splitlines()]
    assert any(math.isfinite(line.get("loss", math.nan)) for line in lines)
    assert encoder_keys(state) and "encoder.stem.convs.0.conv.weight" in weights
    if method == "mae":  # the whole U-Net, described as nnU-Net's own network
        assert spec["class"] == "ResidualEncoderUNet" and spec["kwargs"]["num_classes"] == 1
        assert any(key.startswith("decoder.stages.") for key in weights)
    else:  # the encoder and the projection head on its pooled stages
        assert spec["class"] == "ContrastiveEncoder" and spec["kwargs"]["backbone"]["class"] == "ResidualEncoderUNet"
        assert not any(key.startswith("decoder.") for key in weights)
        first_head_layer = weights["projection_head.layers.0.weight"]
        assert first_head_layer.shape[1] == (40 if method == "simclr" else 4 + 8 + 16 + 32 + 40 + 40)
    build_model(spec).load_state_dict(weights)


@pytest.mark.parametrize("method", ["mae", "simclr"])
def test_mae_and_simclr_runs_on_resenc_l_export_to_nnssl(method: str, raw: Path, tmp_path: Path) -> None:
    new_method_run(method, raw, raw, tmp_path / "runs")
    run = next((tmp_path / "runs").glob("*/checkpoint_final.pt")).parent
    out = tmp_path / "nnssl"
    result = invoke("checkpoint", "export-nnssl", str(run), "--out", str(out))
    assert "ResidualEncoderUNet" in result.output
    exported = torch.load(out / "checkpoint_final.pth", weights_only=True)
    assert exported["nnssl_adaptation_plan"]["architecture_plans"]["arch_class_name"].endswith("ResidualEncoderUNet")
    assert exported["trainer_name"] == f"radiossl:{method}"
    assert "encoder.stem.convs.0.conv.weight" in exported["network_weights"]


def test_an_mae_run_on_unet3d_is_refused_by_export_nnssl_in_one_line(raw: Path, tmp_path: Path) -> None:
    invoke(
        "pretrain", "--method", "mae", "--data", str(preprocessed(raw, "genesis")), "--out", str(tmp_path / "runs"),
        *QUIET, "--set", "model.width=0.125", "--set", f"data.crop_size={CUBE}", "--set", "optim.epochs=1",
        "--set", "optim.batch_size=2",
    )  # fmt: skip
    run = next((tmp_path / "runs").glob("*/checkpoint_final.pt")).parent
    result = CliRunner().invoke(app, ["checkpoint", "export-nnssl", str(run), "--out", str(tmp_path / "nnssl")])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "a UNet3D network cannot be exported to nnssl" in result.output


def test_finetune_on_resenc_l_from_an_mae_run(raw: Path, tmp_path: Path) -> None:
    pretrained = new_method_run("mae", raw, raw, tmp_path / "pre")
    weights = next((tmp_path / "pre").glob("*/checkpoint_final.pt"))
    invoke(
        "finetune", "--task", "lits", "--data", str(raw), "--out", str(tmp_path / "ft"), "--weights", str(weights),
        *BACKBONE, *QUIET, "--set", "model.norm=batch", "--set", "optim.epochs=1", "--set", "optim.batch_size=1",
        "--set", "data.crop_size=[64,64,32]", "--set", "sliding_window.roi=[64,64,32]",
    )  # fmt: skip
    run = next((tmp_path / "ft").glob("*/checkpoint_final.pt")).parent
    report = json.loads((run / "load_report.json").read_text())
    assert len(report["matched"]) == len(encoder_keys(pretrained)) and not report["shape_mismatched"]
