"""Building blocks: voxel sampling, feature transform, faiss fit/assign, montage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radiossl.clustering.faiss_kmeans import CentroidAssigner, fit_kmeans, inertia
from radiossl.clustering.montage import montage_array, montage_figure, palette, save_montage
from radiossl.clustering.sampling import FeatureTransform, sample_voxels, voxels_per_crop
from radiossl.errors import DataError


def test_sample_voxels_is_seeded_distinct_and_foreground_aware() -> None:
    crop = np.zeros((2, 10, 10, 4), np.float32)
    crop[1, :3] = 0.9  # 120 bright voxels in the second channel
    a = sample_voxels(crop, 50, np.random.default_rng(3))
    b = sample_voxels(crop, 50, np.random.default_rng(3))
    assert np.array_equal(a, b) and len(np.unique(a)) == 50 and np.all(np.diff(a) > 0)
    fg = sample_voxels(crop, 50, np.random.default_rng(3), foreground=True, threshold=0.5, fraction=0.8)
    bright = crop.max(axis=0).reshape(-1)[fg] > 0.5
    assert len(fg) == 50 and bright.sum() == 40
    most = sample_voxels(crop, 390, np.random.default_rng(0), foreground=True, threshold=0.5, fraction=0.1)
    assert len(np.unique(most)) == 390  # background too small: topped up from the foreground
    assert voxels_per_crop(256, 1000, 10, 400) == 100 and voxels_per_crop(256, 10**6, 10, 100) == 100


def test_feature_transform_roundtrip() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4)).astype(np.float32)
    x[:, 3] = 1.0  # a constant channel must not divide by zero
    transform = FeatureTransform.fit(x, standardize=True, l2_normalize=False)
    y = transform.apply_numpy(x.copy())
    assert np.allclose(y[:, :3].mean(0), 0, atol=1e-4) and np.allclose(y[:, :3].std(0), 1, atol=1e-3)
    assert np.isfinite(y).all()
    again = FeatureTransform.from_json(transform.to_json())
    assert np.allclose(again.apply_torch(torch.from_numpy(x)).numpy(), y, atol=1e-5)
    weighted = FeatureTransform.fit(x, standardize=True, l2_normalize=False, weights=[1.0, 0.5, 0.0, 1.0])
    z = weighted.apply_numpy(x.copy())
    assert np.allclose(z[:, 1], 0.5 * y[:, 1], atol=1e-5) and np.all(z[:, 2] == 0)
    assert np.allclose(FeatureTransform.from_json(weighted.to_json()).apply_numpy(x.copy()), z)
    with pytest.raises(DataError, match="3 channel weights"):
        FeatureTransform.fit(x, standardize=True, l2_normalize=False, weights=[1.0, 1.0, 1.0])
    sphere = FeatureTransform.fit(x, standardize=False, l2_normalize=True)
    assert np.allclose(np.linalg.norm(sphere.apply_numpy(x.copy()), axis=1), 1.0)
    # the caller's array is left alone unless it asks for the transform in place
    before = x.copy()
    assert np.allclose(transform.apply_numpy(x), y) and np.array_equal(x, before)
    inside = x.copy()
    assert transform.apply_numpy(inside, in_place=True) is inside and np.allclose(inside, y)


def test_fit_uses_all_points_and_assignment_is_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, size=(400, 3)) for c in (-3.0, 0.0, 3.0)]).astype(np.float32)
    fit = fit_kmeans(x, k=3, seed=5)
    assert fit.max_points_per_centroid * 3 >= len(x) and int(fit.sizes.sum()) == len(x)
    assert sorted(fit.sizes.tolist()) == [400, 400, 400]
    assert fit.inertia == pytest.approx(inertia(x, fit.centroids), rel=1e-6)
    probe = rng.normal(0, 3, size=(777, 3)).astype(np.float32)
    brute = ((probe[:, None] - fit.centroids[None]) ** 2).sum(-1).argmin(1)
    assigner = CentroidAssigner(fit.centroids)
    assert np.array_equal(assigner.assign_numpy(probe), brute)
    assert np.array_equal(assigner.assign_torch(torch.from_numpy(probe)).numpy(), brute)
    assert np.array_equal(fit_kmeans(x, k=3, seed=5).centroids, fit.centroids)


def test_fit_rejects_bad_samples() -> None:
    with pytest.raises(DataError, match="cannot make 5 clusters"):
        fit_kmeans(np.zeros((3, 2), np.float32), k=5)
    bad = np.ones((20, 2), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fit_kmeans(bad, k=2)
    with pytest.raises(DataError, match="do not match"):
        CentroidAssigner(np.zeros((2, 3), np.float32)).assign_numpy(np.zeros((4, 2), np.float32))


def test_montage(tmp_path: Path) -> None:
    colours = palette(30)
    assert colours.shape == (30, 3) and len({tuple(c) for c in colours[:20]}) == 20
    crops = [np.random.rand(1, 16, 12, 4).astype(np.float32) for _ in range(3)]
    labels = [(c[0] * 4).astype(np.uint8) for c in crops]
    image = montage_array(crops, labels, k=4)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    path = save_montage(tmp_path / "m.png", crops, labels, k=4)
    with Image.open(path) as png:
        assert png.size == (image.shape[1], image.shape[0])
    with pytest.raises(ValueError, match="as many label maps"):
        montage_array(crops, labels[:2], k=4)


def test_montage_is_titled_names_its_crops_and_has_a_legend_of_the_clusters() -> None:
    from radiossl.utils.figures import MIN_PANEL, layout

    crops = [np.random.rand(1, 32, 32, 16).astype(np.float32) for _ in range(4)]
    labels = [(c[0] * 5).astype(np.uint8) for c in crops]
    names = ["view 1", "view 2"] * 2
    figure = montage_figure(crops, labels, k=5, title="k-means fit k5", names=names, row_labels=["case a", "case b"])
    assert figure.title == "k-means fit k5"
    assert [row.label for row in figure.rows] == ["case a", "case b"]
    assert [p.title for p in figure.rows[0].panels] == [
        "view 1",
        "clusters",
        "overlay",
        "view 2",
        "clusters",
        "overlay",
    ]
    assert [entry.name for entry, _ in layout(figure).legend_entries] == ["0", "1", "2", "3", "4"]
    image = montage_array(crops, labels, k=5, names=names)
    assert image.shape[0] > 2 * MIN_PANEL and image.shape[1] >= 6 * MIN_PANEL  # 32-voxel slices at 6x
    where = layout(montage_figure(crops, labels, k=5, names=names))
    left, top, right, bottom = where.panel_boxes[0][1]
    assert {tuple(c) for c in image[top:bottom, left:right].reshape(-1, 3)} <= {tuple(c) for c in palette(5)}
    with pytest.raises(ValueError, match="crop names"):
        montage_figure(crops, labels, k=5, names=["one"])
