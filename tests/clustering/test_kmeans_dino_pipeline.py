"""kmeans fit -> predict -> pretrain pixel-cluster with the DINO ViT-S/16 extractor given a weights file.

The weights file is written by the test (official DINO key names, random values): no download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.data.processed import ProcessedDataset
from radiossl.features.vit import VisionTransformer

runner = CliRunner()


def test_dino_targets_train_pixel_cluster(make_proc: Callable[..., Path], tmp_path: Path) -> None:
    proc = make_proc(groups=2, pairs=2, shape=(32, 32, 8))
    torch.manual_seed(0)
    weights = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(VisionTransformer(patch_size=16, embed_dim=384, depth=12, num_heads=6).state_dict(), weights)
    common = ["--extractor", "dino-vits16", "--weights", str(weights), "--upsampler", "bilinear", "--device", "cpu"]
    fit = runner.invoke(app, ["kmeans", "fit", "--data", str(proc), "--k", "3", *common], terminal_width=200)
    assert fit.exit_code == 0, fit.output
    (centroids,) = (proc / "kmeans").glob("k3_dino-vits16_bilinear.npy")
    predict = runner.invoke(
        app, ["kmeans", "predict", "--data", str(proc), "--centroids", str(centroids), *common], terminal_width=200
    )
    assert predict.exit_code == 0, predict.output
    dataset = ProcessedDataset.open(proc)
    assert dataset.target_tags() == ["k3-dino-vits16-bilinear"]
    pretrain = runner.invoke(
        app,
        [
            "pretrain",
            "--method",
            "pixel-cluster",
            "--data",
            str(proc),
            "--out",
            str(tmp_path / "runs"),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--device",
            "cpu",
            "--set",
            "model.width=0.125",
            "--set",
            "method.k=3",
            "--set",
            "data.crop_size=[32,32,8]",
            "--set",
            "data.workers=0",
        ],
        terminal_width=200,
    )
    assert pretrain.exit_code == 0, pretrain.output
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoint_final.pt").is_file()
