"""kmeans fit: whole-dataset sample, determinism per seed, outputs and their metadata."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from radiossl.clustering import KMeansConfig, kmeans_fit
from radiossl.data.processed import ProcessedDataset
from radiossl.errors import ConfigError, DataError


def _config(root: Path, **sections: dict) -> KMeansConfig:
    base: dict = {
        "data": {"root": str(root)},
        "kmeans": {"k": 3, "niter": 10},
        "sampling": {"voxels_per_crop": 64},
        "runtime": {"device": "cpu", "workers": 0, "seed": 7},
        "progress": False,
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return KMeansConfig.model_validate(base)


def test_fit_writes_centroids_json_and_montage(proc: Path) -> None:
    result = kmeans_fit(_config(proc))
    assert result.centroids == proc / "kmeans" / "k3_filterbank_bilinear.npy"
    centroids = np.load(result.centroids)
    assert centroids.dtype == np.float32 and centroids.shape == (3, 19)
    meta = json.loads(result.metadata.read_text())
    assert meta["extractor"] == "filterbank" and meta["upsampler"] == "bilinear"
    assert meta["feature_dim"] == 19 and meta["k"] == 3
    # 2 train groups x 3 pairs x 2 crops x 64 voxels, all used by faiss (no 256*K subsampling)
    assert meta["sampling"]["points"] == result.n_points == 2 * 3 * 2 * 64
    assert meta["kmeans"]["max_points_per_centroid_used"] * 3 >= result.n_points
    assert sum(meta["results"]["cluster_sizes"]) == result.n_points
    assert meta["results"]["inertia"] == pytest.approx(result.inertia) and result.inertia > 0
    assert meta["transform"]["standardize"] is True and len(meta["transform"]["mean"]) == 19
    assert meta["transform"]["weights"][:3] == pytest.approx([1.0, 1.0, 0.3])  # filterbank channel weights
    assert meta["config"]["kmeans"]["niter"] == 10 and meta["kmeans"]["seed"] == 7
    assert result.montage is not None and result.montage.read_bytes()[:4] == b"\x89PNG"


def test_fit_is_deterministic_per_seed_and_independent_of_workers(proc: Path, tmp_path: Path) -> None:
    a = kmeans_fit(_config(proc, out=str(tmp_path / "a.npy"), montage=False))
    b = kmeans_fit(
        _config(
            proc,
            out=str(tmp_path / "b.npy"),
            montage=False,
            runtime={"workers": 2},
            features={"batch_size": 2},
        )
    )
    c = kmeans_fit(_config(proc, out=str(tmp_path / "c.npy"), montage=False, runtime={"seed": 8}))
    assert np.array_equal(np.load(a.centroids), np.load(b.centroids))
    assert a.inertia == b.inertia
    assert not np.array_equal(np.load(a.centroids), np.load(c.centroids))


def test_fit_sample_covers_every_crop_and_respects_max_points(proc: Path) -> None:
    result = kmeans_fit(
        _config(proc, sampling={"voxels_per_crop": 500, "max_points": 600}, montage=False, data={"split": None})
    )
    meta = json.loads(result.metadata.read_text())
    assert result.n_crops == 18  # 3 groups x 3 pairs x 2 crops: every crop contributes
    assert meta["sampling"]["voxels_per_crop_used"] == 600 // 18
    assert result.n_points == 18 * (600 // 18)


def test_fit_foreground_sampling_and_options(proc: Path) -> None:
    result = kmeans_fit(
        _config(
            proc,
            sampling={"foreground": True, "foreground_threshold": 0.3, "foreground_fraction": 1.0},
            kmeans={"spherical": True, "standardize": "off"},
            montage=False,
        )
    )
    meta = json.loads(result.metadata.read_text())
    assert meta["transform"]["standardize"] is False and meta["transform"]["l2_normalize"] is True
    norms = np.linalg.norm(np.load(result.centroids), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)


def test_fit_gpu_request_falls_back_with_warning(proc: Path) -> None:
    from radiossl.clustering.faiss_kmeans import gpus_available

    if gpus_available():
        pytest.skip("faiss sees a GPU here")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = kmeans_fit(_config(proc, kmeans={"gpu": True}, montage=False))
    assert not result.used_gpu
    assert any("faiss-gpu" in str(w.message) for w in caught)


def test_fit_errors(proc: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--data"):
        kmeans_fit(KMeansConfig(progress=False))
    with pytest.raises(DataError, match="not a preprocessed folder"):
        kmeans_fit(_config(tmp_path / "missing"))
    with pytest.raises(DataError, match="no crop pairs"):
        kmeans_fit(_config(proc, data={"split": "test"}))
    with pytest.raises(DataError, match="cannot make 300 clusters"):
        kmeans_fit(_config(proc, kmeans={"k": 300}, sampling={"voxels_per_crop": 2}))
    with pytest.raises(ConfigError, match=r"dino_deitsmall16_pretrain\.pth"):
        kmeans_fit(_config(proc, features={"extractor": "dino-vits16"}))


def test_fit_accepts_an_open_dataset(proc: Path) -> None:
    dataset = ProcessedDataset.open(proc)
    result = kmeans_fit(_config(proc, data={"root": None, "max_samples": 2}, montage=False), dataset=dataset)
    assert result.n_crops == 4
