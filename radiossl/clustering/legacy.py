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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from radiossl.clustering.faiss_kmeans import _float_vector_to_numpy, faiss_module, resolve_gpu
from radiossl.errors import DataError
from radiossl.utils.seeding import rng_for

if TYPE_CHECKING:
    pass

T = TypeVar("T")

LEGACY_STREAM = "kmeans-legacy-batches"
THESIS_NITER = 25
"""faiss' default iteration count, which the thesis' fit used."""
THESIS_MAX_POINTS_PER_CENTROID = 256
"""faiss' default subsampling cap (256·K points per call), which the thesis kept."""


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
