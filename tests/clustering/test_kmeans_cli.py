"""``radiossl kmeans fit`` / ``predict`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.processed import ProcessedDataset

runner = CliRunner()


def test_fit_then_predict(proc: Path, tmp_path: Path) -> None:
    config = tmp_path / "kmeans.yaml"
    config.write_text("kmeans:\n  niter: 5\nsampling:\n  voxels_per_crop: 32\nprogress: false\n", encoding="utf-8")
    fit = runner.invoke(
        app,
        [
            "kmeans",
            "fit",
            "--data",
            str(proc),
            "--k",
            "3",
            "--upsampler",
            "jbu",
            "--config",
            str(config),
            "--set",
            "features.upsampler_options.radius=1",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--workers",
            "0",
        ],
        terminal_width=200,
    )
    assert fit.exit_code == 0, fit.output
    centroids = proc / "kmeans" / "k3_filterbank_jbu.npy"
    meta = json.loads(centroids.with_suffix(".json").read_text())
    assert meta["kmeans"]["niter"] == 5 and meta["kmeans"]["seed"] == 3
    assert meta["features"]["upsampler_options"] == {"radius": 1}
    predict = runner.invoke(
        app,
        [
            "kmeans",
            "predict",
            "--data",
            str(proc),
            "--centroids",
            str(centroids),
            "--split",
            "train",
            "--set",
            "progress=false",
            "--workers",
            "2",
        ],
        terminal_width=200,
    )
    assert predict.exit_code == 0, predict.output
    dataset = ProcessedDataset.open(proc)
    assert dataset.target_tags() == ["k3-filterbank-jbu"]
    train = dataset.records("train")
    assert all(r.targets.get("k3-filterbank-jbu") for r in train)
    assert not any(r.targets for r in dataset.records("val"))
    assert np.load(proc / train[0].targets["k3-filterbank-jbu"]).dtype == np.uint8


def test_usage_errors_exit_2(proc: Path) -> None:
    result = runner.invoke(app, ["kmeans", "fit", "--data", str(proc), "--extractor", "dino-vits16"])
    assert result.exit_code == 2
    assert "dino_deitsmall16_pretrain.pth" in result.output and "--weights" in result.output
    result = runner.invoke(app, ["kmeans", "predict", "--data", str(proc)])
    assert result.exit_code == 2 and "--centroids" in result.output
    result = runner.invoke(app, ["kmeans", "fit", "--data", str(proc), "--set", "kmeans.kk=3"])
    assert result.exit_code == 2 and "kmeans.kk" in result.output
