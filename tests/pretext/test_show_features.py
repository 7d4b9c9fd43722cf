"""``radiossl checkpoint show-features``: PCA colours of encoder features beside the input, for any backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.config import ModelConfig
from radiossl.data.phantoms import synthesize
from radiossl.models.checkpoint import FORMAT_VERSION, save_checkpoint
from radiossl.models.factory import model_spec
from radiossl.models.network import build_network
from radiossl.pretext.show_features import fit_to_stride, pca_colours, show_features

pytest.importorskip("PIL")


def _checkpoint(path: Path, model: nn.Module, name: str = "models-genesis") -> Path:
    torch.manual_seed(0)
    save_checkpoint(
        path,
        {
            "format_version": FORMAT_VERSION,
            "kind": "pretrain",
            "name": name,
            "model": model.state_dict(),
            "model_spec": model_spec(model),
            "epoch": 1,
        },
    )
    return path


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lits")
    synthesize("lits", root, cases=2, shape=(64, 64, 64))
    return root


def _feature_colours(png: Path, figure_width: int) -> int:
    """Distinct colours in the middle third of the picture (the PCA panels of the first row)."""
    image = np.asarray(Image.open(png).convert("RGB"))
    middle = image[:, figure_width // 3 : 2 * figure_width // 3].reshape(-1, 3)
    return len(np.unique(middle, axis=0))


@pytest.mark.parametrize(("backbone", "width"), [("unet3d", 0.125), ("resenc-l", 0.125)])
def test_the_picture_shows_three_slices_with_varied_feature_colours(
    raw: Path, tmp_path: Path, backbone: str, width: float
) -> None:
    torch.manual_seed(0)
    model = build_network(ModelConfig(name=backbone, width=width, norm="instance"), in_channels=1, out_channels=1)
    ckpt = _checkpoint(tmp_path / "c.pt", model)
    out = tmp_path / "features.png"

    result = show_features(ckpt, raw, out, stage=-2)

    image = Image.open(out)
    assert image.format == "PNG" and image.width >= 300 and image.height >= 400  # 3 rows of 2 panels
    assert result.clusters == 0 and result.stage == result.stages - 2
    assert _feature_colours(out, image.width) > 50


def test_a_cluster_method_adds_the_argmax_cluster_map(raw: Path, tmp_path: Path) -> None:
    model = build_network(ModelConfig(width=0.125, norm="instance"), in_channels=1, out_channels=5)
    ckpt = _checkpoint(tmp_path / "c.pt", model, name="pixel-cluster")
    plain = show_features(_checkpoint(tmp_path / "g.pt", model), raw, tmp_path / "plain.png")

    result = show_features(ckpt, raw, tmp_path / "clusters.png")

    assert result.clusters == 5 and plain.clusters == 0
    assert Image.open(tmp_path / "clusters.png").width > Image.open(tmp_path / "plain.png").width  # a third panel


def test_a_preprocessed_folder_shows_its_first_sample(tmp_path: Path) -> None:
    from radiossl.data.preprocess import PreprocessConfig, preprocess

    raw = tmp_path / "raw"
    synthesize("lits", raw, cases=2, shape=(48, 48, 32))
    proc = tmp_path / "proc"
    settings = PreprocessConfig(
        dataset="lits17",
        data=raw,
        out=proc,
        view="genesis",
        crop_size=(32, 32, 16),
        pairs=2,
        rejection={"max_foreground": None, "max_background": None},
        workers=0,
        progress=False,
    )
    assert preprocess(settings).failed == 0
    model = build_network(ModelConfig(width=0.125), in_channels=1, out_channels=1)
    result = show_features(_checkpoint(tmp_path / "c.pt", model), proc, tmp_path / "p.png")
    assert result.case and (tmp_path / "p.png").is_file()


def test_a_bad_path_is_one_line_and_exit_code_2(raw: Path, tmp_path: Path) -> None:
    model = build_network(ModelConfig(width=0.125), in_channels=1, out_channels=1)
    ckpt = _checkpoint(tmp_path / "c.pt", model)
    runner = CliRunner()
    for args in (
        [str(tmp_path / "missing.pt"), "--data", str(raw)],
        [str(ckpt), "--data", str(tmp_path / "nowhere")],
        [str(ckpt), "--data", str(tmp_path)],  # a folder, but no dataset
    ):
        result = runner.invoke(app, ["checkpoint", "show-features", *args, "--out", str(tmp_path / "x.png")])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: ")
    assert not (tmp_path / "x.png").exists()
    ok = runner.invoke(
        app, ["checkpoint", "show-features", str(ckpt), "--data", str(raw), "--out", str(tmp_path / "y.png")]
    )
    assert ok.exit_code == 0 and "wrote" in ok.output


def test_pca_colours_follow_the_feature_structure_and_crops_fit_the_stride() -> None:
    features = torch.zeros(4, 2, 2, 2)
    features[0, :1] = 5.0  # one half differs from the other along one channel
    rgb, explained = pca_colours(features, (4, 4, 4))
    assert rgb.shape == (4, 4, 4, 3) and explained[0] == pytest.approx(1.0)
    assert rgb[0, 0, 0, 0] != rgb[3, 0, 0, 0]  # the halves get different reds
    fitted = fit_to_stride(np.ones((1, 70, 20, 33), np.float32), (8, 8, 8), 64)
    assert fitted.shape == (1, 64, 16, 32)
    assert fit_to_stride(np.ones((1, 4, 8, 8), np.float32), (8, 8, 8), 64).shape == (1, 8, 8, 8)


def test_patch_cluster_scores_lie_on_the_bottleneck_grid_in_patch_order() -> None:
    from radiossl.models.patch_cluster_net import PatchClusterNet
    from radiossl.pretext.patch_cluster import PatchCluster

    net = PatchClusterNet(k=4, width=0.125).eval()
    x = torch.randn(1, 1, 16, 16, 24)
    scores = PatchCluster.cluster_scores(net, x)
    _, logits = net(x)
    assert scores is not None and scores.shape == (1, 4, 2, 2, 3)
    assert torch.equal(scores[0, :, 1, 0, 2], logits[0, 1 * 6 + 0 * 3 + 2])  # (x, y, z) row-major patches
