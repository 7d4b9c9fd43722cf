"""Phantom data -> finetune (scratch and from a checkpoint) -> evaluate, on the CPU in seconds."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.downstream.config import load_task_config
from radiossl.downstream.evaluate import EvaluateResult, evaluate
from radiossl.downstream.finetune import FinetuneResult, finetune
from radiossl.errors import ConfigError
from radiossl.models import UNet3D, model_spec
from radiossl.runtime.cpu import CpuInfo


def tiny_flags(root: Path, out: Path, **top: object) -> dict[str, Any]:
    """Flags for a CPU finetune run that takes a few seconds (one sliding window per phantom volume)."""
    return {
        "data": {"root": str(root), "crop_size": [16, 16, 16], "ratio": 1.0, "workers": 0},
        "model": {"width": 0.125},
        "optim": {"epochs": 2, "batch_size": 2},
        "runtime": {"device": "cpu", "workers": 1},
        "logging": {"progress": False},
        "sliding_window": {"roi": [32, 32, 24]},
        "out": str(out),
        **top,
    }


@pytest.fixture(scope="module")
def scratch_run(brats_root: Path, tmp_path_factory: pytest.TempPathFactory) -> FinetuneResult:
    out = tmp_path_factory.mktemp("runs")
    flags = tiny_flags(brats_root, out)
    flags["logging"]["vis"] = True
    return finetune(load_task_config("finetune", "brats", flags=flags))


def test_finetune_from_scratch_writes_a_run(scratch_run: FinetuneResult) -> None:
    run = scratch_run.run_dir
    for name in ("config.yaml", "metrics.jsonl", "checkpoint_final.pt", "checkpoint_best.pt", "splits.json"):
        assert (run / name).is_file(), name
    assert scratch_run.epochs_completed == 2 and scratch_run.load_report is None
    assert scratch_run.best_metric is not None and 0.0 <= scratch_run.best_metric <= 1.0
    epochs = [r for r in scratch_run.history if r.get("type") == "epoch"]
    assert {"val_dice", "val_dice_wt", "val_dice_tc", "val_dice_et", "dice_loss", "bce"} <= set(epochs[-1])
    splits = json.loads((run / "splits.json").read_text())
    assert splits["val"] and splits["test"] and not set(splits["val"]) & set(splits["test"])
    pngs = sorted((run / "vis").glob("segmentation_e*.png"))
    assert len(pngs) == 2 and Image.open(pngs[0]).size[0] > 3 * 16
    state = torch.load(run / "checkpoint_best.pt", weights_only=True)
    assert state["model_spec"]["kwargs"]["in_channels"] == 4 and state["model_spec"]["kwargs"]["out_channels"] == 3


def run_evaluate(brats_root: Path, weights: Path, out: Path, **top: object) -> EvaluateResult:
    flags = {
        "data": {"root": str(brats_root)},
        "weights": str(weights),
        "out": str(out),
        "runtime": {"device": "cpu"},
        **top,
    }
    return evaluate(load_task_config("evaluate", "brats", flags=flags))


def test_evaluate_full_protocol(scratch_run: FinetuneResult, brats_root: Path, tmp_path: Path) -> None:
    result = run_evaluate(brats_root, scratch_run.best_checkpoint, tmp_path / "eval", save_predictions=True)
    test_ids = json.loads((scratch_run.run_dir / "splits.json").read_text())["test"]
    with result.metrics_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["case", "region", "dice", "hd95", "gt_voxels", "pred_voxels"]
    assert [(r["case"], r["region"]) for r in rows] == [(c, region) for c in test_ids for region in ("WT", "TC", "ET")]
    for row in rows:
        assert 0.0 <= float(row["dice"]) <= 1.0 and float(row["hd95"]) >= 0.0
    summary = json.loads(result.summary_json.read_text())
    assert summary["protocol"] == "full" and summary["cases"] == len(test_ids) and not summary["failures"]
    assert set(summary["regions"]) == {"WT", "TC", "ET"} and summary["regions"]["WT"]["n"] == len(test_ids)
    assert summary["config"]["sliding_window"]["overlap"] == 0.5
    for case_id, path in zip(test_ids, result.predictions, strict=True):
        source = next(brats_root.glob(f"*/{case_id}/{case_id}_t1.nii.gz"))
        written, reference = nib.load(path), nib.load(source)
        assert np.allclose(written.affine, reference.affine) and written.shape == reference.shape
        assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}
    table = result.table()
    assert list(table.columns) == ["region", "Dice", "HD95 (mm)", "cases"]
    assert [row[0] for row in table.rows] == ["WT", "TC", "ET", "mean"]
    assert all(row[-1] == str(len(test_ids)) for row in table.rows[:3])


@pytest.mark.parametrize(("native", "expected"), [(False, "none"), (True, "bf16")])
def test_evaluate_runs_bf16_only_on_a_cpu_with_native_bf16(
    scratch_run: FinetuneResult,
    brats_root: Path,
    tmp_path: Path,
    fake_cpu: Callable[..., CpuInfo],
    caplog: pytest.LogCaptureFixture,
    native: bool,
    expected: str,
) -> None:
    fake_cpu(bf16=native)
    runtime = {"device": "cpu", "amp": "bf16"}
    with caplog.at_level(logging.WARNING, logger="radiossl.runtime.precision"):
        result = run_evaluate(brats_root, scratch_run.best_checkpoint, tmp_path / "eval", runtime=runtime, max_cases=1)
    assert json.loads(result.summary_json.read_text())["amp"] == expected
    warnings = [r.getMessage() for r in caplog.records if r.name == "radiossl.runtime.precision"]
    assert len(warnings) == (0 if native else 1)
    assert all(w.startswith("runtime.amp=bf16 falls back to float32") for w in warnings)


def test_evaluate_thesis_crops(scratch_run: FinetuneResult, brats_root: Path, tmp_path: Path) -> None:
    result = run_evaluate(
        brats_root, scratch_run.best_checkpoint, tmp_path / "crops", protocol="thesis-crops", split="val"
    )
    assert result.rows and all(math.isnan(r["hd95"]) for r in result.rows)
    assert all(0.0 < r["dice"] < 1.0 for r in result.rows)  # soft Dice of an untrained net
    assert result.summary["protocol"] == "thesis-crops" and "thesis_loss" in result.summary


def test_finetune_from_a_checkpoint_with_encoder_transfer(brats_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(5)
    source = UNet3D(in_channels=1, out_channels=1, width=0.125, norm="batch", skip_connections=False)
    weights = tmp_path / "pretext.pt"
    torch.save({"format_version": 1, "model": source.state_dict(), "model_spec": model_spec(source)}, weights)
    flags = tiny_flags(brats_root, tmp_path / "runs", weights=str(weights), transfer="encoder", train="decoder")
    flags["optim"]["epochs"] = 1
    result = finetune(load_task_config("finetune", "brats", flags=flags))
    report = json.loads((result.run_dir / "load_report.json").read_text())
    assert report["transfer"] == "encoder" and report["adapted"] and report["matched"]
    assert all(key.startswith("down_tr") for key in report["matched"])
    final = torch.load(result.final_checkpoint, weights_only=True)["model"]
    key = "down_tr256.ops.0.conv1.weight"  # loaded, then frozen by train=decoder
    assert torch.equal(final[key], source.state_dict()[key])
    stem = source.state_dict()["down_tr64.ops.0.conv1.weight"]
    assert torch.allclose(final["down_tr64.ops.0.conv1.weight"], stem.repeat(1, 4, 1, 1, 1) / 4)


def test_cli_finetune_and_evaluate(brats_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    runs = tmp_path / "runs"
    args = [
        "finetune",
        "--task",
        "brats",
        "--data",
        str(brats_root),
        "--out",
        str(runs),
        "--epochs",
        "1",
        "--width",
        "0.125",
        "--batch-size",
        "2",
        "--ratio",
        "0.5",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        "data.crop_size=[16,16,16]",
        "--set",
        "sliding_window.roi=[32,32,24]",
        "--set",
        "logging.progress=false",
        "--set",
        "validation.every=2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = next(runs.iterdir())
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["train_subset"]) == round(0.5 * len(splits["train"])) or len(splits["train_subset"]) >= 1
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--task",
            "brats",
            "--data",
            str(brats_root),
            "--weights",
            str(run / "checkpoint_final.pt"),
            "--out",
            str(out),
            "--split",
            "val",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "metrics.csv").is_file() and (out / "summary.json").is_file()
    # --split train_subset: the ratio subset finetuning used, read from splits.json or recomputed without it
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "checkpoint_final.pt", alone / "checkpoint_final.pt")
    for weights, name in ((run / "checkpoint_final.pt", "subset"), (alone / "checkpoint_final.pt", "recomputed")):
        flags = ["--data", str(brats_root), "--weights", str(weights), "--out", str(tmp_path / name)]
        result = runner.invoke(app, ["evaluate", "--task", "brats", *flags, "--split", "train_subset"])
        assert result.exit_code == 0, result.output
        with (tmp_path / name / "metrics.csv").open() as handle:
            cases = list(dict.fromkeys(row["case"] for row in csv.DictReader(handle)))
        assert cases == splits["train_subset"] and len(cases) < len(splits["train"])
    bad = runner.invoke(app, ["finetune", "--task", "brats", "--data", str(brats_root), "--transfer", "bogus"])
    assert bad.exit_code == 2 and "transfer" in bad.output


def test_lits_finetune_and_evaluate(lits_root: Path, tmp_path: Path) -> None:
    flags = tiny_flags(lits_root, tmp_path / "runs")
    flags["optim"]["epochs"] = 1
    flags["task"] = {"tumour": True}
    result = finetune(load_task_config("finetune", "lits", flags=flags))
    splits = result.splits
    assert splits["test"] and splits["val"] and not set(splits["val"]) & set(splits["test"])
    evaluation = evaluate(
        load_task_config(
            "evaluate",
            "lits",
            flags={
                "data": {"root": str(lits_root)},
                "weights": str(result.final_checkpoint),
                "out": str(tmp_path / "e"),
                "save_predictions": True,
                "runtime": {"device": "cpu"},
            },
        )
    )
    assert {r["region"] for r in evaluation.rows} == {"liver", "tumour"}
    prediction = nib.load(evaluation.predictions[0])
    case = splits["test"][0]
    reference = nib.load(next(lits_root.glob(f"*/ct/{case}.nii")))
    assert prediction.shape == reference.shape and np.allclose(prediction.affine, reference.affine)


def test_validation_patience_is_another_name_for_optim_patience(brats_root: Path, tmp_path: Path) -> None:
    flags = tiny_flags(brats_root, tmp_path)
    flags["validation"] = {"patience": 2, "every": 1}
    config = load_task_config("finetune", "brats", flags=flags)
    assert config.optim.patience == 2 and "patience" not in config.validation.model_dump()
    same = load_task_config("finetune", "brats", overrides=["validation.patience=3", "optim.patience=3"])
    assert same.optim.patience == 3
    with pytest.raises(ConfigError, match=r"validation\.patience=2 and optim\.patience=5 disagree") as raised:
        load_task_config("finetune", "brats", overrides=["validation.patience=2", "optim.patience=5"])
    assert len(str(raised.value).splitlines()) == 1


def test_finetuning_stops_early_on_val_dice_and_a_resume_keeps_the_count(brats_root: Path, tmp_path: Path) -> None:
    # A learning rate too small to change a GroupNorm network: val_dice is the same after every epoch,
    # so every validation after the first is one without improvement.
    flags = tiny_flags(brats_root, tmp_path, validation={"patience": 2})
    flags["model"]["norm"] = "group"
    flags["optim"].update({"lr": 1e-12, "epochs": 2})
    first = finetune(load_task_config("finetune", "brats", flags=flags))
    assert not first.stopped_early and first.epochs_completed == 2
    assert torch.load(first.final_checkpoint, weights_only=True)["early_stopping"]["stale"] == 1
    flags["optim"]["epochs"] = 10
    resumed = finetune(load_task_config("finetune", "brats", flags=flags), resume=first.run_dir)
    assert resumed.stopped_early and resumed.epochs_completed == 3  # one more validation without improvement
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    log = (resumed.run_dir / "train.log").read_text()
    assert "stopping early after epoch 3/10 (val_dice has not improved" in log


def test_nnunet_task_from_dataset_json(nnunet_root: Path, tmp_path: Path) -> None:
    flags = tiny_flags(nnunet_root, tmp_path / "runs")
    flags["optim"]["epochs"] = 1
    flags["sliding_window"] = {"roi": [24, 24, 16]}
    result = finetune(load_task_config("finetune", "nnunet", flags=flags))
    spec = torch.load(result.final_checkpoint, weights_only=True)["model_spec"]["kwargs"]
    assert (spec["in_channels"], spec["out_channels"]) == (2, 2)  # FLAIR + T1ce -> edema, tumor
    evaluation = evaluate(
        load_task_config(
            "evaluate",
            "nnunet",
            flags={
                "data": {"root": str(nnunet_root)},
                "weights": str(result.final_checkpoint),
                "out": str(tmp_path / "e"),
                "split": "all",
                "max_cases": 2,
                "runtime": {"device": "cpu"},
            },
        )
    )
    assert [r["region"] for r in evaluation.rows] == ["edema", "tumor"] * 2


def test_cli_finetune_console_shows_headline_metrics_and_the_load_report_per_block(
    brats_root: Path, tmp_path: Path
) -> None:
    """Piped output: plain lines, the match report one row per block (every tensor with --verbose)."""
    source = UNet3D(in_channels=1, out_channels=1, width=0.125, norm="batch", skip_connections=False)
    weights = tmp_path / "pretext.pt"
    torch.save({"format_version": 1, "model": source.state_dict(), "model_spec": model_spec(source)}, weights)
    base = ["finetune", "--task", "brats", "--data", str(brats_root), "--weights", str(weights), "--epochs", "2"]
    base += ["--width", "0.125", "--batch-size", "2", "--device", "cpu", "--workers", "0"]
    base += ["--set", "data.crop_size=[16,16,16]", "--set", "sliding_window.roi=[32,32,24]"]
    blocks = ("down_tr64", "down_tr128", "down_tr256", "down_tr512", "up_tr256", "up_tr128", "up_tr64", "out_tr")
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "quiet")], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b" not in out
    rows = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in blocks]
    assert rows == list(blocks)  # one row per block: the BatchNorm statistics are counted, not listed
    assert "running_mean" not in out and "BN stats" in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("finetune brats epoch ")]
    assert len(epoch_lines) == 2 and "val_dice" in epoch_lines[-1] and "loss" in epoch_lines[-1]
    assert "dice_loss" not in out and "bce" not in out and "val_dice_wt" not in out  # metrics.jsonl only
    assert "finetune brats: 2 epochs, finished in" in out and "best checkpoint_best.pt (val_dice" in out
    run = next((tmp_path / "quiet").iterdir())
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"dice_loss", "bce", "val_dice_wt"} <= set(last)
    assert "dice_loss" in (run / "train.log").read_text() and "BN stats" in (run / "train.log").read_text()
    verbose = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "verbose"), "--verbose"], terminal_width=200)
    assert verbose.exit_code == 0, verbose.output
    report = json.loads((next((tmp_path / "verbose").iterdir()) / "load_report.json").read_text())
    for key in report["matched"] + report["unexpected"] + report["skipped"]:
        assert key in verbose.output
    assert verbose.output.count("down_tr64.ops.0.bn1.running_mean") == 1 and "dice_loss" in verbose.output
