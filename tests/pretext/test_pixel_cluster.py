"""Pixel-level clustering: losses on fabricated pairs, thesis legacy mode, target checks, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError, DataError
from radiossl.losses.legacy_ce import legacy_ce
from radiossl.models import UNet3D
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.pixel_cluster import PixelCluster
from radiossl.views.cluster import PairSample

CROP = (16, 16, 8)
K = 4
TINY = ["model.width=0.125", f"method.k={K}", "runtime.device=cpu"]


def make_batch(batch: int = 2, seed: int = 0, same_views: bool = False) -> PairSample:
    """Random crops, overlapping boxes and random cluster-id targets."""
    g = torch.Generator().manual_seed(seed)
    box1 = torch.tensor([[4, 44, 6, 46, 2, 22]] * batch)
    box2 = box1 if same_views else torch.tensor([[12, 60, 0, 36, 5, 29]] * batch)
    view1 = torch.rand(batch, 1, *CROP, generator=g)
    target1 = torch.randint(0, K, (batch, *CROP), generator=g)
    return PairSample(
        view1=view1,
        view2=view1.clone() if same_views else torch.rand(batch, 1, *CROP, generator=g),
        box1=box1,
        box2=box2,
        target1=target1,
        target2=target1.clone() if same_views else torch.randint(0, K, (batch, *CROP), generator=g),
        index=torch.arange(batch),
    )


def context() -> StepContext:
    return StepContext(epoch=0, total_epochs=2, step=0, device=torch.device("cpu"))


def method(*overrides: str) -> PixelCluster:
    return PixelCluster(load_pretrain_config("pixel-cluster", overrides=[*TINY, *overrides]))


def build(m: PixelCluster, seed: int = 0) -> UNet3D:
    torch.manual_seed(seed)
    net = m.build_model()
    assert isinstance(net, UNet3D) and net.out_channels == K
    return net


VARIANTS = [
    ["method.loss=swav"],
    ["method.loss=ce"],
    ["method.loss=swav", "method.legacy=true"],
    ["method.loss=ce", "method.legacy=true"],
    ["method.loss=swav", "method.align_mode=trilinear"],
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_training_step_gives_a_finite_float32_loss_with_gradients(overrides: list[str]) -> None:
    m = method(*overrides)
    net = build(m)
    out = m.training_step(net, make_batch(), context())
    assert out.loss.dtype == torch.float32 and out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("down_tr64.ops.0.conv1.weight", "out_tr.final_conv.weight"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert {"pred_clusters_used", "target_cluster_entropy", "target_agreement"} <= set(out.metrics)
    assert out.metrics["target_clusters_used"] == K


@pytest.mark.parametrize("loss", ["swav", "ce"])
def test_loss_decreases_on_a_fixed_batch(loss: str) -> None:
    m = method(f"method.loss={loss}")
    net = build(m)
    batch = make_batch(seed=2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(5):
        out = m.training_step(net, batch, context())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert min(losses[-2:]) < losses[0]


def test_fixed_loss_is_per_voxel_cross_entropy_over_the_cluster_axis() -> None:
    m = method("method.loss=ce")
    net = build(m)
    batch = make_batch()
    loss = m.training_step(net, batch, context()).loss
    expected = F.cross_entropy(net(batch.view1), batch.target1)
    torch.testing.assert_close(loss, expected)
    # swav on two identical views with identical boxes is the same single-view loss
    same = make_batch(same_views=True)
    net.eval()
    swav = method("method.loss=swav").training_step(net, same, context()).loss
    ce = m.training_step(net, same, context()).loss
    torch.testing.assert_close(swav, ce)


def test_legacy_reproduces_the_thesis_formula() -> None:
    m = method("method.loss=ce", "method.legacy=true")
    net = build(m)
    batch = make_batch()
    loss = m.training_step(net, batch, context()).loss
    probs = torch.softmax(torch.sigmoid(net(batch.view1)), dim=2)  # sigmoid, then softmax over H
    onehot = F.one_hot(batch.target1, K).permute(0, 4, 1, 2, 3).float()
    torch.testing.assert_close(loss, legacy_ce(onehot, probs))
    # what differs from the fix: the legacy "probabilities" are normalised over H, not over the clusters
    torch.testing.assert_close(probs.sum(2), torch.ones_like(probs.sum(2)))
    assert not torch.allclose(probs.sum(1), torch.ones_like(probs.sum(1)))


@pytest.mark.parametrize("legacy", ["false", "true"])
def test_saturated_logits_give_no_nan(legacy: str) -> None:
    m = method(f"method.legacy={legacy}")
    net = build(m)
    with torch.no_grad():
        net.out_tr.final_conv.weight.mul_(1e6)  # softmax probabilities underflow to exactly 0
    out = m.training_step(net, make_batch(), context())
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_batches_without_targets_are_an_error() -> None:
    batch = make_batch()._replace(target1=torch.zeros(0, dtype=torch.int64), target2=torch.zeros(0, dtype=torch.int64))
    m = method()
    with pytest.raises(DataError, match="no targets"):
        m.training_step(build(m), batch, context())
    assert m.visualise(build(m), batch, context()) == {}


def test_defaults_are_the_thesis_settings() -> None:
    cfg = load_pretrain_config("pixel-cluster")
    assert (cfg.method.k, cfg.method.loss, cfg.method.targets, cfg.method.legacy) == (10, "swav", None, False)
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.batch_size, cfg.optim.epochs) == (
        "sgd",
        4e-3,
        8,
        240,
    )
    assert cfg.data.crop_size == (128, 128, 32)
    assert PixelCluster(cfg).run_name_parts() == ["k10", "swav"]
    with pytest.raises(ConfigError, match="nearest"):
        load_pretrain_config("pixel-cluster", overrides=["method.legacy=true", "method.align_mode=trilinear"])


def test_visualise_and_validate() -> None:
    m = method()
    net = build(m)
    image = m.visualise(net, make_batch(), context())["clusters"]
    assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[0] >= 3 * CROP[0]
    metrics = m.validate(net, [make_batch(), make_batch(seed=1)], context())  # type: ignore[arg-type]
    assert {"val_loss", "val_target_agreement", "val_pred_cluster_entropy"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


class _Cases:
    def case_id(self, index: int) -> str:
        return f"case-{index}"


def test_the_clusters_picture_is_titled_upscaled_and_has_a_legend_of_k_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    from radiossl.utils import figures
    from radiossl.utils.figures import MIN_PANEL, Figure, layout, palette

    drawn: list[Figure] = []
    render = figures.render

    def capture(figure: Figure) -> np.ndarray:
        drawn.append(figure)
        return render(figure)

    monkeypatch.setattr(figures, "render", capture)
    m = method()
    net = build(m)
    batch = make_batch()._replace(index=torch.tensor([3, 5]))
    vis_context = StepContext(
        epoch=2, total_epochs=6, step=0, device=torch.device("cpu"), extra={"train_set": _Cases()}
    )
    image = m.visualise(net, batch, vis_context)["clusters"]

    (figure,) = drawn
    assert figure.title == "pixel-cluster clusters | case case-3 | epoch 3/6"
    assert [row.label for row in figure.rows] == ["view 1", "view 2"]
    z = CROP[2] // 2
    assert [p.title for p in figure.rows[0].panels] == [
        f"input (z={z})",
        "target clusters",
        "predicted clusters",
        "prediction over input",
    ]
    assert [entry.name for entry in figure.legend] == [str(i) for i in range(K)]
    where = layout(figure)
    allowed = {tuple(c) for c in palette(K)}
    for r in range(2):
        for p in (1, 2):  # target and predicted clusters keep exact palette colours
            left, top, right, bottom = where.panel_boxes[r][p]
            assert min(right - left, bottom - top) >= MIN_PANEL
            assert {tuple(c) for c in image[top:bottom, left:right].reshape(-1, 3)} <= allowed
    assert image.shape[0] > 2 * MIN_PANEL and image.shape[1] >= 4 * MIN_PANEL


# ------------------------------------------------------------------------------------------------
# targets in a preprocessed folder, and end to end


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess

    base = tmp_path_factory.mktemp("pixel_cluster_e2e")
    synthesize("brats", base / "raw", cases=3, shape=(64, 64, 40), seed=0)
    result = preprocess(
        PreprocessConfig(
            dataset="brats18",
            data=base / "raw",
            out=base / "proc",
            view="cluster",
            crop_size=CROP,
            candidate_sizes=[(32, 32, 16), (48, 48, 24)],
            pairs=2,
            workers=0,
            progress=False,
        )
    )
    assert result.failed == 0
    return base / "proc"


def register_fake_targets(root: Path, tag: str, k: int, splits: tuple[str, ...] = ("train",)) -> None:
    """Valid target files (intensity quantised into k bins) for the pairs of ``splits``."""
    from radiossl.data.processed import ProcessedDataset

    data = ProcessedDataset.open(root)
    files: dict[str, str] = {}
    for file in sorted({r.file for r in data.records(split=None) if r.split in splits}):
        pairs = np.load(root / file)  # (N, 2, C, H, W, D)
        ids = np.clip((pairs[:, :, 0].astype(np.float32) * k).astype(np.int64), 0, k - 1).astype(np.uint8)
        target = file.replace(".npy", f".targets-{tag}.npy")
        np.save(root / target, ids)
        files[file] = target
    data.register_targets(tag, files, {"k": k, "extractor": "fake-intensity-bins"})


def test_target_tag_resolution(processed: Path, tmp_path: Path) -> None:
    processed = Path(shutil.copytree(processed, tmp_path / "proc"))  # this test adds target sets
    base = [*TINY, f"data.root={processed}"]
    with pytest.raises(ConfigError, match="kmeans predict"):
        PixelCluster(load_pretrain_config("pixel-cluster", overrides=base)).build_datasets()
    register_fake_targets(processed, "bins", K)
    register_fake_targets(processed, "bins8", 8)
    with pytest.raises(ConfigError, match="several target sets"):
        PixelCluster(load_pretrain_config("pixel-cluster", overrides=base)).build_datasets()
    with pytest.raises(ConfigError, match=r"method\.k=8"):
        PixelCluster(load_pretrain_config("pixel-cluster", overrides=[*base, "method.targets=bins8"])).build_datasets()
    with pytest.raises(ConfigError, match="no targets tagged 'nope'"):
        PixelCluster(load_pretrain_config("pixel-cluster", overrides=[*base, "method.targets=nope"])).build_datasets()
    train, val = PixelCluster(
        load_pretrain_config("pixel-cluster", overrides=[*base, "method.targets=bins"])
    ).build_datasets()
    assert val is None  # targets only for the training split
    sample = train[0]
    assert sample.target1.shape == CROP and int(sample.target1.max()) < K


def test_pretrain_end_to_end(processed: Path, tmp_path: Path) -> None:
    from radiossl.pretext.pretrain import pretrain

    processed = Path(shutil.copytree(processed, tmp_path / "proc"))
    register_fake_targets(processed, "bins_all", K, splits=("train", "val"))
    cfg = load_pretrain_config(
        "pixel-cluster",
        overrides=[
            *TINY,
            f"data.root={processed}",
            f"out={tmp_path / 'runs'}",
            "method.targets=bins_all",
            f"data.crop_size={list(CROP)}",
            "data.workers=0",
            "optim.epochs=1",
            "optim.batch_size=4",
            "logging.progress=false",
            "logging.vis=true",
        ],
    )
    result = pretrain(cfg)
    assert result.final_checkpoint.is_file()
    assert f"-k{K}-swav-" in result.run_dir.name
    assert list((result.run_dir / "vis").glob("clusters_e0001.png"))
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("target_agreement" in line for line in lines)
    assert any("val_loss" in line for line in lines)
