"""radiossl's legacy paths reproduce numbers computed by the original thesis code on small fixed inputs.

The numbers in ``pinned/original_numbers.npz`` were produced once by running the original radioSSL code
(commit 27df5f9) outside this repository; ``pinned/README.md`` says exactly how. Every comparison is an
equality to float tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from radiossl.views.cluster import PairSample

PINNED = np.load(Path(__file__).parent / "pinned" / "original_numbers.npz")
BOX1 = torch.from_numpy(PINNED["box1"])
BOX2 = torch.from_numpy(PINNED["box2"])


def _views(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """View 1 filled with 0, view 2 with 1: the stand-in networks pick their fixed outputs by that value."""
    return torch.zeros(2, 1, *shape), torch.ones(2, 1, *shape)


def test_sinkhorn_and_the_scrambled_reshape_match_the_original() -> None:
    from radiossl.losses.sinkhorn import scrambled_reshape, sinkhorn_knopp

    cos = torch.from_numpy(PINNED["sinkhorn_cos"])  # K x B·N, as the original takes it
    q = sinkhorn_knopp(cos.T, epsilon=0.05, iterations=3)
    np.testing.assert_allclose(q.numpy(), PINNED["sinkhorn_out"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scrambled_reshape(q, 2, 8).numpy(), PINNED["sinkhorn_scrambled"], rtol=1e-5, atol=1e-7)


def test_patch_cluster_legacy_step_matches_the_original() -> None:
    from radiossl.models.patch_cluster_net import PatchClusterNet
    from radiossl.pretext.base import load_pretrain_config
    from radiossl.pretext.patch_cluster import PatchCluster

    emb = torch.from_numpy(PINNED["patch_emb"])  # views x B x N x E

    class FixedEmbeddings(PatchClusterNet):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
            e = emb[int(x.flatten()[0])]
            return e, self.prototypes(e)

    net = FixedEmbeddings(k=5, width=0.125, proj_dim=6)
    with torch.no_grad():
        net.prototypes.weight.copy_(torch.from_numpy(PINNED["patch_prototypes"]))
    cfg = load_pretrain_config("patch-cluster", overrides=["method.k=5", "method.proj_dim=6", "method.legacy=true"])
    view1, view2 = _views((32, 32, 32))
    batch = PairSample(view1, view2, BOX1, BOX2, torch.zeros(0), torch.zeros(0), torch.arange(2))
    out = PatchCluster(cfg)._forward(net, batch, None, distributed=False)
    assert float(out.loss.detach()) == pytest.approx(float(PINNED["patch_loss"]), rel=1e-5)


class FixedLogits(nn.Module):
    """The pixel-level network's raw logits per view (radiossl applies the thesis' sigmoid itself)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(PINNED["pixel_logits"])[int(x.flatten()[0])]


@pytest.mark.parametrize("loss", ["ce", "swav"])
def test_pixel_cluster_legacy_step_matches_the_original(loss: str) -> None:
    from radiossl.pretext.base import load_pretrain_config
    from radiossl.pretext.pixel_cluster import PixelCluster

    cfg = load_pretrain_config("pixel-cluster", overrides=["method.k=4", f"method.loss={loss}", "method.legacy=true"])
    targets = torch.from_numpy(PINNED["pixel_targets"].astype(np.int64))
    view1, view2 = _views((8, 8, 4))
    batch = PairSample(view1, view2, BOX1, BOX2, targets[0], targets[1], torch.arange(2))
    out = PixelCluster(cfg)._forward(FixedLogits(), batch)
    assert float(out.loss) == pytest.approx(float(PINNED[f"pixel_loss_{loss}"]), rel=1e-5)


def test_double_sigmoid_bce_dice_matches_the_original() -> None:
    from radiossl.downstream.losses import DiceBCELoss

    logits = torch.from_numpy(PINNED["seg_logits"])
    target = torch.from_numpy(PINNED["seg_target"]).float()
    loss = DiceBCELoss(bce_weight=0.2, reduction="sum", legacy_double_sigmoid=True)
    assert float(loss(logits, target)) == pytest.approx(float(PINNED["brats_loss"]), rel=1e-6)
    assert float(loss(logits[:, :1], target[:, :1])) == pytest.approx(float(PINNED["lits_loss"]), rel=1e-6)


# ---------------------------------------------------------------------------------------------- k-means

BATCHES, PAIRS, DIM, CROP, K, SEED = 3, 2, 384, (8, 8, 6), 2, 3


def fixture_features(nb: int, bp: int, dim: int, h: int, w: int, d: int) -> np.ndarray:
    """``(nb, 2, bp, dim, h, w, d)`` float32 from integer arithmetic only (the same as the original was fed)."""
    n = np.arange(nb * 2 * bp * h * w * d * dim, dtype=np.int64).reshape(nb, 2, bp, h, w, d, dim)
    which = ((n // dim) * 7919 % 104729) % 3
    centre = ((which * 31 + (n % dim) * 17) % 13).astype(np.float32) / np.float32(4)
    noise = ((n * 2654435761) % 1000003).astype(np.float32) / np.float32(1000003) - np.float32(0.5)
    return np.ascontiguousarray(np.moveaxis(centre + np.float32(2) * noise, -1, 3))


@pytest.fixture(scope="module")
def kmeans_features() -> np.ndarray:
    return fixture_features(BATCHES, PAIRS, DIM, *CROP)


def test_legacy_kmeans_fit_keeps_the_last_batch_like_the_original(kmeans_features: np.ndarray) -> None:
    from radiossl.clustering.legacy import legacy_fit_centroids

    last = torch.from_numpy(kmeans_features[-1])  # the original's loader gave the batches in this order
    centroids = legacy_fit_centroids(last[0], last[1], K, SEED)
    np.testing.assert_allclose(centroids, PINNED["kmeans_fit_centroids"], rtol=1e-5, atol=1e-5)
    first = torch.from_numpy(kmeans_features[0])
    assert not np.allclose(legacy_fit_centroids(first[0], first[1], K, SEED), centroids, atol=1e-3)


def test_legacy_kmeans_predict_updates_the_centroids_per_batch_like_the_original(
    kmeans_features: np.ndarray,
) -> None:
    from radiossl.clustering.legacy import legacy_assign_batch

    expected = PINNED["kmeans_predict_labels"]  # batch x pair x crop x H x W x D
    for batch in range(BATCHES):
        features = torch.from_numpy(kmeans_features[batch])
        labels1, labels2 = legacy_assign_batch(features[0], features[1], PINNED["kmeans_fit_centroids"], SEED)
        np.testing.assert_array_equal(labels1, expected[batch, :, 0])
        np.testing.assert_array_equal(labels2, expected[batch, :, 1])


# ---------------------------------------------------------------------------------------------- rejection


def rejection_volume() -> np.ndarray:
    """The 48x48x70 volume of the pinned run: a periodic pattern, a dim and a bright corner."""
    x, y, z = np.meshgrid(np.arange(48), np.arange(48), np.arange(70), indexing="ij")
    volume = ((x * 3 + y * 5 + z * 11) % 17) / 16.0
    volume[:24, :24] = 0.1
    volume[24:, 24:] = 0.9
    return volume


def nearest_resize(window: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The nearest-neighbour resize the original was run with (index ``floor(i * in / out)``)."""
    index = [np.arange(n) * s // n for n, s in zip(shape, window.shape, strict=True)]
    return window[np.ix_(*index)]


def test_thesis_rejection_rule_reproduces_the_original_decisions() -> None:
    from radiossl.data.preprocess.boxes import iou3d
    from radiossl.data.preprocess.thesis_rejection import bright_score_sum, thesis_rejects

    volume = rejection_volume()
    sizes = [(24, 24, 8), (20, 20, 8), (16, 16, 8)]
    crop, threshold, bg_max = (16, 16, 8), 0.425, 0.85
    sums: list[float] = []
    accepted: list[Any] = []
    for size1, size2, *corners in PINNED["rejection_candidates"].tolist():
        boxes = []
        for size, corner in ((sizes[size1], corners[:3]), (sizes[size2], corners[3:])):
            boxes.append([value for c, n in zip(corner, size, strict=True) for value in (c, c + n)])
        if float(iou3d(np.array([boxes[0]]), np.array([boxes[1]]))[0]) <= 0.3:
            continue
        windows = []
        for box in boxes:
            window = volume[box[0] : box[1], box[2] : box[3], box[4] : box[5] + 3]
            windows.append(nearest_resize(window, (crop[0], crop[1], crop[2] + 3))[None])
        score1 = bright_score_sum(windows[0], [threshold], crop[2])
        score2 = bright_score_sum(windows[1], [threshold], crop[2])
        voxels = int(np.prod([boxes[0][1] - boxes[0][0], boxes[0][3] - boxes[0][2], boxes[0][5] - boxes[0][4]]))
        sums.extend([score1] if score1 > bg_max * voxels else [score1, score2])  # the original stopped at crop 1
        if not thesis_rejects(score1, score2, voxels, bg_max):
            accepted = boxes
            break
    np.testing.assert_allclose(sums, PINNED["rejection_score_sums"], rtol=0, atol=1e-9)
    assert accepted == PINNED["rejection_accepted"].tolist()


# ---------------------------------------------------------------------------------------------- LiTS crop


def test_lits_thesis_grid_crop_matches_the_original_finetune_crop(tmp_path: Path) -> None:
    import SimpleITK as sitk

    from radiossl.downstream.crops import centre_crop
    from radiossl.downstream.tasks.lits import LiTSConfig, LiTSTask

    x, y, z = np.meshgrid(np.arange(41), np.arange(38), np.arange(13), indexing="ij")
    ct = (((x * 7 + y * 13 + z * 29) % 2300) - 1150).astype(np.int16)  # beyond the [-1000, 1000] window
    seg = ((x // 5 + y // 4 + z) % 3).astype(np.uint8)
    for folder, array, name in (("ct", ct, "volume-0.nii"), ("seg", seg, "segmentation-0.nii.gz")):
        (tmp_path / "train" / folder).mkdir(parents=True, exist_ok=True)
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))  # sitk arrays are (z, y, x)
        image.SetSpacing((0.7, 0.8, 2.5))
        sitk.WriteImage(image, str(tmp_path / "train" / folder / name))
    task = LiTSTask(LiTSConfig(grid="thesis", spacing=None, zoom=None), tmp_path)
    arrays = task.load(task.list_cases()[0])
    crop = (8, 6, 4)
    image = task.normalise_crop(centre_crop(arrays.image, crop))
    liver = task.region_targets(centre_crop(arrays.label, crop))[0]
    np.testing.assert_allclose(image[0], PINNED["lits_image"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(liver, PINNED["lits_label"])
