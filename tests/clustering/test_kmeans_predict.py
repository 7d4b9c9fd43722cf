"""kmeans predict: fixed-centroid assignment, target files, manifest registration, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from radiossl.clustering import KMeansConfig, KMeansPredictConfig, kmeans_fit, kmeans_predict
from radiossl.clustering.predict import target_dtype, target_file_for
from radiossl.data.processed import ProcessedDataset
from radiossl.errors import ConfigError
from radiossl.features import build_pipeline


def _fit(root: Path, k: int = 3, **extra: object) -> Path:
    config = KMeansConfig.model_validate(
        {
            "data": {"root": str(root)},
            "kmeans": {"k": k, "niter": 10},
            "sampling": {"voxels_per_crop": 64},
            "runtime": {"device": "cpu", "workers": 0},
            "progress": False,
            "montage": False,
            **extra,
        }
    )
    return kmeans_fit(config).centroids


def _predict(root: Path, centroids: Path, **extra: object):  # type: ignore[no-untyped-def]
    config = KMeansPredictConfig.model_validate(
        {
            "data": {"root": str(root)},
            "centroids": str(centroids),
            "runtime": {"device": "cpu", "workers": 2},
            "progress": False,
            **extra,
        }
    )
    return kmeans_predict(config)


def test_predict_writes_uint8_targets_and_registers_them(proc: Path) -> None:
    centroids = _fit(proc)
    before = {name: (proc / name).read_bytes() for name in ("manifest.csv", "preprocess.json")}
    result = _predict(proc, centroids)
    # the targets are their own artefact: the preprocessing stage's files are not rewritten
    assert {name: (proc / name).read_bytes() for name in before} == before
    tag = "k3-filterbank-bilinear"
    assert result.tag == tag and result.success and result.registered
    assert len(result.written) == 3 and not result.skipped  # every split by default
    dataset = ProcessedDataset.open(proc)
    assert tag in dataset.target_tags()
    for record in dataset.records(split=None):
        assert record.targets[tag] == target_file_for(record.file, tag)
        array = np.load(proc / record.targets[tag])
        assert array.dtype == np.uint8 and array.shape == (3, 2, 16, 16, 8)
        assert array.max() < 3
        assert dataset.load_targets(record, tag).shape == (2, 16, 16, 8)
    meta = json.loads((proc / "targets" / tag / "targets.json").read_text())
    assert meta["format"] == "radiossl-targets" and meta["tag"] == tag
    assert meta["files"] == {f"arrays/case0{g}_t1.npy": f"targets/{tag}/case0{g}_t1.npy" for g in range(3)}
    assert meta["k"] == 3 and meta["extractor"] == "filterbank" and meta["feature_dim"] == 19
    assert sum(result.cluster_counts) == 3 * 3 * 2 * 16 * 16 * 8
    assert result.montage is not None and result.montage.is_file()


def test_predict_uses_the_fixed_centroids(proc: Path) -> None:
    centroids_path = _fit(proc)
    _predict(proc, centroids_path, montage=False)
    centroids = np.load(centroids_path)
    meta = json.loads(centroids_path.with_suffix(".json").read_text())
    mean = np.asarray(meta["transform"]["mean"], np.float32)
    std = np.asarray(meta["transform"]["std"], np.float32)
    weights = np.asarray(meta["transform"]["weights"], np.float32)
    dataset = ProcessedDataset.open(proc)
    record = dataset.records(split="val")[1]
    pipeline = build_pipeline("filterbank", "bilinear")
    crops = torch.from_numpy(dataset.load_pair(record))
    features = pipeline(crops).numpy()  # (2, 19, H, W, D)
    rows = (features.reshape(2, 19, -1).transpose(0, 2, 1) - mean) / std * weights
    distances = ((rows[:, :, None, :] - centroids[None, None]) ** 2).sum(-1)
    expected = distances.argmin(-1).reshape(2, 16, 16, 8)
    targets = dataset.load_targets(record, "k3-filterbank-bilinear")
    assert (targets == expected).mean() > 0.999  # float ties aside, brute force agrees
    assert np.array_equal(np.load(centroids_path), centroids)  # never updated


def test_predict_resumes_and_honours_centroids(proc: Path, tmp_path: Path) -> None:
    centroids = _fit(proc)
    _predict(proc, centroids, montage=False)
    tag = "k3-filterbank-bilinear"
    files = sorted((proc / "targets" / tag).glob("*.npy"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[0].unlink()
    again = _predict(proc, centroids, montage=False)
    assert len(again.written) == 1 and len(again.skipped) == 2
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files[1:])
    assert again.registered

    other = _fit(proc, k=4, out=str(tmp_path / "elsewhere" / "four.npy"))
    four = _predict(proc, other, montage=False)
    assert four.tag == "k4-filterbank-bilinear"
    assert np.load(proc / four.target_files["arrays/case00_t1.npy"]).max() == 3
    assert set(ProcessedDataset.open(proc).target_tags()) == {tag, four.tag}


def test_targets_started_by_an_older_release_resume_while_new_feature_settings_are_at_their_defaults(
    proc: Path,
) -> None:
    centroids = _fit(proc)
    _predict(proc, centroids, montage=False)
    marker = proc / "kmeans" / "predict-k3-filterbank-bilinear.json"
    written = json.loads(marker.read_text())
    del written["fingerprint"]["features"]["extractor_options"]  # a feature setting added since
    marker.write_text(json.dumps(written))
    again = _predict(proc, centroids, montage=False)
    assert not again.written and len(again.skipped) == 3
    marker.write_text(json.dumps(written))
    with pytest.raises(ConfigError, match=r"or features \(features\.extractor_options: \(absent\) -> \{\"truncate\""):
        _predict(proc, centroids, montage=False, features={"extractor_options": {"truncate": 3.5}})


def test_predict_refuses_mismatches(proc: Path, tmp_path: Path) -> None:
    centroids = _fit(proc)
    with pytest.raises(ConfigError, match=r"19 features|dimensional"):
        _predict(proc, centroids, features={"extractor": "filterbank", "extractor_options": {"sigmas": [1.0]}})
    other = _fit(proc, out=str(tmp_path / "other.npy"), runtime={"device": "cpu", "workers": 0, "seed": 99})
    _predict(proc, centroids, montage=False)
    with pytest.raises(ConfigError, match="--overwrite"):
        _predict(proc, other, montage=False, tag="k3-filterbank-bilinear")
    redone = _predict(proc, other, montage=False, tag="k3-filterbank-bilinear", overwrite=True)
    assert len(redone.written) == 3
    with pytest.raises(ConfigError, match="centroids file not found"):
        _predict(proc, tmp_path / "nope.npy")


def test_predict_without_metadata_needs_features(proc: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.npy"
    np.save(bare, np.random.default_rng(0).normal(size=(2, 19)).astype(np.float32))
    with pytest.raises(ConfigError, match="--extractor"):
        _predict(proc, bare)
    result = _predict(proc, bare, features={"extractor": "filterbank", "upsampler": "bilinear"}, montage=False)
    assert result.tag == "k2-filterbank-bilinear" and result.registered


def test_target_naming_and_dtype() -> None:
    assert target_file_for("arrays/a_t1.npy", "k10-x-y") == "targets/k10-x-y/a_t1.npy"
    assert target_dtype(255) == np.uint8 and target_dtype(256) == np.uint16
    assert os.sep not in target_file_for("arrays/a.npy", "t").replace("/", "")
