"""K-means as the thesis ran it (spec §4.2-4.3, §8 items 5-6), kept to reproduce its pixel-level targets.

``kmeans.legacy: true`` (``radiossl kmeans fit``) and ``legacy: true`` (``radiossl kmeans predict``).

* **fit** — the thesis called ``faiss.Kmeans.train`` afresh on every batch (crop 1 and crop 2 features
  of ``b`` pairs), so the centroids it saved are those of the *last* batch alone, fitted with faiss'
  defaults: random initialisation, 25 iterations, one run, and a random subsample of ``256 x K``
  points. Because every call restarted, fitting only the last batch gives the same centroids, so
  :func:`legacy_fit_centroids` does exactly that. Which pairs form the last batch: the thesis' loader
  was shuffled; radiossl takes the last ``features.batch_size`` pairs of a seeded permutation of the
  samples (:func:`last_batch`).
* **predict** — per batch, the thesis ran one Lloyd update of the *loaded* centroids on (a subsample
  of) that batch's crop-1 features and assigned both crops to the updated centroids
  (:func:`legacy_assign_batch`), so the ids of a voxel depend on the batch it was predicted in.

Rows are fed to faiss in the thesis' order: ``(b, d, h, w)`` per crop (every axial slice was an image),
crop 1 before crop 2. faiss' own ``Kmeans.train`` is not called (it fails when SimpleITK is imported
after faiss, see :func:`radiossl.clustering.faiss_kmeans._float_vector_to_numpy`); the same
``Clustering`` object with the same parameters is trained instead.

Example:
    >>> import torch
    >>> features = torch.arange(2 * 3 * 4 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 4, 2)
    >>> thesis_rows(features).shape
    torch.Size([64, 3])
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from radiossl.clustering.faiss_kmeans import _float_vector_to_numpy, faiss_module, resolve_gpu
from radiossl.errors import ConfigError, DataError
from radiossl.utils.atomic import atomic_save_npy, write_json
from radiossl.utils.seeding import rng_for

if TYPE_CHECKING:
    from radiossl.clustering.config import KMeansConfig
    from radiossl.clustering.fit import KMeansFitResult, _FitInputs
    from radiossl.clustering.sampling import FeatureTransform
    from radiossl.features.base import FeaturePipeline

T = TypeVar("T")

LEGACY_STREAM = "kmeans-legacy-batches"
THESIS_NITER = 25
"""faiss' default iteration count, which the thesis' fit used."""
THESIS_MAX_POINTS_PER_CENTROID = 256
"""faiss' default subsampling cap (256·K points per call), which the thesis kept."""
METADATA_FORMAT = "radiossl-kmeans"  # the same record format as radiossl.clustering.fit writes


def thesis_rows(features: torch.Tensor) -> torch.Tensor:
    """Per-crop features ``(B, d, H, W, D)`` as rows ``(B·D·H·W, d)`` in the thesis' ``(b, d, h, w)`` order."""
    if features.dim() != 5:
        raise ValueError(f"features must be (B, d, H, W, D), got shape {tuple(features.shape)}")
    return features.permute(0, 4, 2, 3, 1).reshape(-1, features.shape[1])


def last_batch(items: Sequence[T], batch_size: int, seed: int) -> list[T]:
    """The last batch of a seeded shuffle of ``items`` in batches of ``batch_size`` (it may be smaller)."""
    if not items:
        raise DataError("k-means legacy fit: no samples")
    order = rng_for(seed, LEGACY_STREAM).permutation(len(items))
    start = (len(items) - 1) // batch_size * batch_size
    return [items[int(i)] for i in order[start:]]


def _train(x: np.ndarray, k: int, seed: int, niter: int, gpu: bool, init: np.ndarray | None) -> tuple[Any, Any]:
    """``(faiss.Clustering, index)`` trained on ``x`` as ``faiss.Kmeans(d, k, seed=seed, niter=niter).train``."""
    faiss = faiss_module()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < k:
        raise DataError(f"k-means legacy: {x.shape[0]} points cannot make {k} clusters")
    kmeans = faiss.Kmeans(x.shape[1], k, seed=seed, niter=niter, verbose=False, gpu=resolve_gpu(gpu))
    clustering = faiss.Clustering(x.shape[1], k, kmeans.cp)
    if init is not None:
        for value in np.ascontiguousarray(init, dtype=np.float32).ravel():
            clustering.centroids.push_back(float(value))
    clustering.train(x, kmeans.index)
    return clustering, kmeans.index


def legacy_fit_centroids(
    features1: torch.Tensor, features2: torch.Tensor, k: int, seed: int, niter: int = THESIS_NITER, gpu: bool = False
) -> np.ndarray:
    """Centroids ``(K, d)`` float32 of the thesis' last ``kmeans.train`` call on one batch.

    ``features1`` / ``features2``: crop 1 / crop 2 features of the batch's pairs, ``(B, d, H, W, D)``.
    """
    x = torch.cat([thesis_rows(features1), thesis_rows(features2)]).float().cpu().numpy()
    clustering, _ = _train(x, k, seed, niter, gpu, None)
    return _float_vector_to_numpy(faiss_module(), clustering.centroids, k * x.shape[1]).reshape(k, x.shape[1])


def legacy_assign_batch(
    features1: torch.Tensor, features2: torch.Tensor, centroids: np.ndarray, seed: int, gpu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids ``(B, H, W, D)`` int64 of both crops of one batch, as the thesis' predict script gave them.

    One Lloyd update of ``centroids`` on the batch's crop-1 rows (faiss ``niter=1``, its subsample of at
    most ``256·K`` points), then every voxel of crop 1 and crop 2 goes to its nearest updated centroid.
    """
    k = int(centroids.shape[0])
    rows1 = thesis_rows(features1).float().cpu().numpy()
    rows2 = thesis_rows(features2).float().cpu().numpy()
    _, index = _train(rows1, k, seed, 1, gpu, centroids)
    batch, _, height, width, depth = features1.shape
    labels = []
    for rows in (rows1, rows2):
        _, ids = index.search(np.ascontiguousarray(rows), 1)
        labels.append(ids[:, 0].astype(np.int64).reshape(batch, depth, height, width).transpose(0, 2, 3, 1))
    return labels[0], labels[1]


# --------------------------------------------------------------------------------------------------
# The `kmeans fit` / `kmeans predict` paths (called by radiossl.clustering.fit and .predict)


def legacy_fit(config: KMeansConfig, inputs: _FitInputs, out: Path, start: float) -> KMeansFitResult:
    """``kmeans fit`` with ``kmeans.legacy``: fit the last batch of a seeded shuffle as the thesis did.

    Writes the centroids, their JSON (``kmeans.legacy: true``, the sample ids of the batch, an
    identity feature transform) and the montage, like the regular fit.
    """
    from radiossl.clustering.fit import _fit_montage, _version, metadata_path, pair_batch, pair_features
    from radiossl.clustering.sampling import FeatureTransform

    km, seed = config.kmeans, config.runtime.seed
    batch = last_batch(inputs.records, config.features.batch_size, seed)
    pairs = pair_batch(inputs.ds, batch)
    features = pair_features(inputs.pipeline, pairs, inputs.device)  # crop 1, crop 2 of each pair in turn
    fit_start = time.perf_counter()
    centroids = legacy_fit_centroids(features[0::2], features[1::2], km.k, seed, km.niter, km.gpu)
    fit_seconds = time.perf_counter() - fit_start
    points = 2 * len(batch) * int(np.prod(inputs.crop_shape))
    atomic_save_npy(out, centroids)
    transform = FeatureTransform(None, None, False, None)
    montage = None
    if config.montage:
        montage = _fit_montage(
            out.with_suffix(".png"), inputs.ds, inputs.records, inputs.pipeline, inputs.device, transform, centroids
        )
    seconds = time.perf_counter() - start
    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "format_version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "radiossl_version": _version(),
        "centroids": out.name,
        "k": km.k,
        "feature_dim": inputs.dim,
        "extractor": config.features.extractor,
        "upsampler": config.features.upsampler,
        "features": {
            **config.features.model_dump(mode="json"),
            "resolved": inputs.pipeline.describe(),
            "in_channels": inputs.in_channels,
            "crop_shape": list(inputs.crop_shape),
        },
        "data": {
            "root": str(inputs.ds.root),
            "split": config.data.split,
            "view": config.data.view,
            "samples": len(inputs.records),
            "crops": 2 * len(inputs.records),
        },
        "sampling": {"legacy_last_batch": [r.sample_id for r in batch], "points": points},
        "kmeans": {
            "legacy": True,
            "k": km.k,
            "niter": km.niter,
            "seed": seed,
            "init": "random",
            "max_points_per_centroid_used": THESIS_MAX_POINTS_PER_CENTROID,
            "gpu_used": resolve_gpu(km.gpu),
            "faiss_version": str(faiss_module().__version__),
        },
        "transform": transform.to_json(),
        "results": {"fit_seconds": fit_seconds, "total_seconds": seconds},
        "montage": montage.name if montage else None,
        "config": config.model_dump(mode="json"),
    }
    write_json(metadata_path(out), meta)
    from radiossl.clustering.fit import KMeansFitResult

    return KMeansFitResult(
        centroids=out,
        metadata=metadata_path(out),
        montage=montage,
        k=km.k,
        feature_dim=inputs.dim,
        n_points=points,
        n_crops=2 * len(batch),
        used_gpu=bool(meta["kmeans"]["gpu_used"]),
        seconds=seconds,
        total_groups=len(inputs.groups),
    )


def legacy_assign_pairs(
    pipeline: FeaturePipeline,
    pairs: np.ndarray,
    device: torch.device,
    transform: FeatureTransform,
    centroids: np.ndarray,
    seed: int,
) -> np.ndarray:
    """``kmeans predict`` with ``legacy``: cluster ids ``(len, 2, H, W, D)`` of a pair batch (one thesis batch).

    Raises ConfigError for centroids fitted with a feature transform (the thesis clustered raw features).
    """
    from radiossl.clustering.fit import pair_features

    if transform.mean is not None or transform.weights is not None or transform.l2_normalize:
        raise ConfigError(
            "legacy predict assigns raw features as the thesis did, but these centroids were fitted on "
            "transformed ones (standardize/channel weights/spherical); fit them with kmeans.legacy: true"
        )
    features = pair_features(pipeline, pairs, device)
    labels1, labels2 = legacy_assign_batch(features[0::2], features[1::2], centroids, seed)
    return np.stack([labels1, labels2], axis=1)
