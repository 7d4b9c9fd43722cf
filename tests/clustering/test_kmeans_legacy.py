"""kmeans fit/predict with ``legacy: true``: the thesis' last-batch fit and per-batch updated predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radiossl.clustering import KMeansConfig, KMeansPredictConfig, kmeans_fit, kmeans_predict
from radiossl.clustering.fit import pair_batch, pair_features
from radiossl.clustering.legacy import last_batch, legacy_assign_batch, legacy_fit_centroids
from radiossl.clustering.predict import target_file_for
from radiossl.clustering.sampling import select_records
from radiossl.data.processed import ProcessedDataset
from radiossl.errors import ConfigError
from radiossl.features import build_pipeline

COMMON = {"runtime": {"device": "cpu", "workers": 0}, "progress": False, "montage": False}


def test_legacy_fit_is_the_fit_of_the_last_seeded_batch(proc: Path) -> None:
    config = KMeansConfig.model_validate(
        {"data": {"root": str(proc)}, "kmeans": {"k": 3, "legacy": True}, "features": {"batch_size": 2}, **COMMON}
    )
    result = kmeans_fit(config)
    ds = ProcessedDataset.open(proc)
    records = select_records(ds, config.data)
    batch = last_batch(records, 2, config.runtime.seed)
    meta = json.loads(result.metadata.read_text())
    assert meta["sampling"]["legacy_last_batch"] == [r.sample_id for r in batch]
    assert meta["kmeans"]["legacy"] is True and meta["transform"]["standardize"] is False
    pipeline = build_pipeline("filterbank", "bilinear", in_channels=1)
    features = pair_features(pipeline, pair_batch(ds, batch), torch.device("cpu"))
    expected = legacy_fit_centroids(features[0::2], features[1::2], 3, config.runtime.seed)
    np.testing.assert_allclose(np.load(result.centroids), expected, rtol=1e-6)
    with pytest.raises(ConfigError, match="unsharded"):
        kmeans_fit(config, merge_only=True)


def test_legacy_predict_writes_the_per_batch_updated_assignment(proc: Path) -> None:
    fit = KMeansConfig.model_validate(
        {"data": {"root": str(proc)}, "kmeans": {"k": 3, "legacy": True}, "features": {"batch_size": 2}, **COMMON}
    )
    centroids = kmeans_fit(fit).centroids
    config = KMeansPredictConfig.model_validate(
        {"data": {"root": str(proc)}, "centroids": str(centroids), "legacy": True, "tag": "thesis", **COMMON}
    )
    result = kmeans_predict(config)
    assert result.success and result.registered
    ds = ProcessedDataset.open(proc)
    file = next(iter(result.target_files))
    records = sorted(
        (r for r in ds.records(split=None) if r.file == file and r.view == "cluster"), key=lambda r: r.index
    )
    batch = records[:2]  # the first batch of that file (features.batch_size pairs)
    pipeline = build_pipeline("filterbank", "bilinear", in_channels=1)
    features = pair_features(pipeline, pair_batch(ds, batch), torch.device("cpu"))
    labels1, labels2 = legacy_assign_batch(features[0::2], features[1::2], np.load(centroids), fit.runtime.seed)
    written = np.load(ds.root / target_file_for(file, "thesis"))
    np.testing.assert_array_equal(written[[r.index for r in batch], 0], labels1)
    np.testing.assert_array_equal(written[[r.index for r in batch], 1], labels2)


def test_legacy_predict_refuses_centroids_of_transformed_features(proc: Path) -> None:
    fit = KMeansConfig.model_validate(
        {
            "data": {"root": str(proc)},
            "kmeans": {"k": 3, "standardize": "on"},
            "sampling": {"voxels_per_crop": 32},
            **COMMON,
        }
    )
    centroids = kmeans_fit(fit).centroids
    config = KMeansPredictConfig.model_validate(
        {"data": {"root": str(proc)}, "centroids": str(centroids), "legacy": True, **COMMON}
    )
    result = kmeans_predict(config)
    assert not result.success and "kmeans.legacy: true" in next(iter(result.failures.values()))
