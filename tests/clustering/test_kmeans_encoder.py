"""``radiossl kmeans fit --extractor encoder`` on a ResEnc-L patch-cluster checkpoint, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.processed import ProcessedDataset
from tests.features.encoder_checkpoints import pretrain_checkpoint

runner = CliRunner()


def test_fit_and_predict_on_resenc_l_features(proc: Path, tmp_path: Path) -> None:
    pytest.importorskip("dynamic_network_architectures")
    weights = pretrain_checkpoint(tmp_path / "checkpoint_final.pt", "patch-cluster", "resenc-l")
    common = ["--set", "progress=false", "--device", "cpu", "--workers", "0"]
    fit = runner.invoke(
        app,
        [
            "kmeans",
            "fit",
            "--data",
            str(proc),
            "--k",
            "3",
            "--extractor",
            "encoder",
            "--weights",
            str(weights),
            "--set",
            "features.extractor_options.level=-2",
            "--set",
            "kmeans.niter=3",
            "--set",
            "sampling.voxels_per_crop=32",
            *common,
        ],
        terminal_width=200,
    )
    assert fit.exit_code == 0, fit.output
    centroids = proc / "kmeans" / "k3_encoder_bilinear.npy"
    assert np.load(centroids).shape == (3, 40)  # stage 4 of ResEnc-L at width 0.125: 40 channels
    meta = json.loads(centroids.with_suffix(".json").read_text())
    assert meta["features"]["extractor_options"]["level"] == -2
    predict = runner.invoke(
        app,
        ["kmeans", "predict", "--data", str(proc), "--centroids", str(centroids), "--split", "train", *common],
        terminal_width=200,
    )
    assert predict.exit_code == 0, predict.output
    train = ProcessedDataset.open(proc).records("train")
    target = np.load(proc / train[0].targets["k3-encoder-bilinear"])
    assert target.dtype == np.uint8 and target.shape[-3:] == (16, 16, 8) and target.max() < 3


def test_a_bad_level_exits_2_with_one_line(proc: Path, tmp_path: Path) -> None:
    pytest.importorskip("dynamic_network_architectures")
    weights = pretrain_checkpoint(tmp_path / "checkpoint_final.pt", "patch-cluster", "resenc-l")
    args = ["kmeans", "fit", "--data", str(proc), "--extractor", "encoder", "--weights", str(weights)]
    level = ["--set", "features.extractor_options.level=6", "--set", "progress=false", "--device", "cpu"]
    result = runner.invoke(app, [*args, *level], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "0..5 or -6..-1" in result.output
