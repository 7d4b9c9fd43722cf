"""faiss K-means: fit once on a whole sample, and assign to fixed centroids.

:func:`fit_kmeans` wraps ``faiss.Kmeans`` with ``max_points_per_centroid`` raised so that faiss
trains on the whole sample instead of silently subsampling ``256·K`` points (the thesis' fit kept
2,560 points of its last batch). :class:`CentroidAssigner` assigns vectors to *fixed* centroids
with a flat (exact) L2 index built from them — no centroid is ever updated while predicting.

GPU: ``gpu=True`` uses faiss-gpu when it is installed and sees a GPU; otherwise a warning is issued
and the CPU is used. For vectors that already live on a CUDA/MPS device, the assigner performs the
same exact flat search with torch on that device instead of copying them to the host.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    >>> fit = fit_kmeans(x, k=3, seed=1)
    >>> fit.centroids.shape, int(fit.sizes.sum())
    ((3, 4), 500)
    >>> labels = CentroidAssigner(fit.centroids).assign_numpy(x)
    >>> bool((labels == fit.labels).all())
    True
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from radiossl.errors import DataError

ASSIGN_CHUNK = 1 << 18
"""Vectors searched per call (bounds the distance matrix held in memory)."""


def faiss_module() -> Any:
    """Import faiss (DataError with an install hint if missing)."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise DataError("faiss is not installed; pip install faiss-cpu (or faiss-gpu)") from exc
    return faiss


def gpus_available() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu)."""
    faiss = faiss_module()
    getter = getattr(faiss, "get_num_gpus", None)
    return int(getter()) if callable(getter) else 0


def resolve_gpu(requested: bool) -> bool:
    """Whether to use faiss-gpu; warns and falls back to the CPU when asked for but unavailable."""
    if not requested:
        return False
    if gpus_available() > 0:
        return True
    warnings.warn(
        "kmeans.gpu: faiss-gpu is not installed or sees no GPU; fitting on the CPU "
        "(pip install radiossl[gpu] for faiss-gpu)",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


@dataclass
class KMeansFit:
    """Result of :func:`fit_kmeans`."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    sizes: np.ndarray
    objective: list[float] = field(default_factory=list)
    used_gpu: bool = False
    max_points_per_centroid: int = 0
    seconds: float = 0.0


def fit_kmeans(
    x: np.ndarray,
    k: int,
    niter: int = 25,
    nredo: int = 1,
    spherical: bool = False,
    seed: int = 1,
    gpu: bool = False,
    max_points_per_centroid: int | None = None,
    init: Literal["random", "kmeans++"] = "kmeans++",
    verbose: bool = False,
) -> KMeansFit:
    """K-means on ``x`` (``n x d``; converted to contiguous float32) with faiss.

    ``max_points_per_centroid=None`` trains on all ``n`` points. ``init="kmeans++"`` (default) needs
    faiss >= 1.13 (older versions warn and fall back to faiss' random init). For ``spherical`` the caller should
    pass L2-normalised vectors (faiss normalises only the centroids). ``inertia`` is the sum of
    squared L2 distances of the points to their nearest final centroid.
    """
    faiss = faiss_module()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"k-means input must be n x d, got shape {x.shape}")
    n, d = x.shape
    if n < k:
        raise DataError(f"k-means: {n} sample points cannot make {k} clusters; sample more voxels")
    if not np.isfinite(x).all():
        raise DataError("k-means: the feature sample contains NaN or infinite values")
    use_gpu = resolve_gpu(gpu)
    cap = max_points_per_centroid if max_points_per_centroid is not None else math.ceil(n / k) + 1
    options: dict[str, Any] = {
        "niter": niter,
        "nredo": nredo,
        "spherical": spherical,
        "seed": seed,
        "verbose": verbose,
        "max_points_per_centroid": cap,
        "min_points_per_centroid": 1,
    }
    if init == "kmeans++":
        method = getattr(faiss, "ClusteringInitMethod_KMEANS_PLUS_PLUS", None)
        if method is None:
            warnings.warn(
                f"kmeans.init: faiss {faiss.__version__} has no k-means++ initialisation; using random",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            options["init_method"] = method
    start = time.perf_counter()
    kmeans = faiss.Kmeans(d, k, gpu=use_gpu, **options)  # builds the parameters and the (GPU) index
    clustering = faiss.Clustering(d, k, kmeans.cp)
    clustering.train(x, kmeans.index)
    centroids = _float_vector_to_numpy(faiss, clustering.centroids, k * d).reshape(k, d)
    stats = clustering.iteration_stats
    objective = [float(stats.at(i).obj) for i in range(stats.size())]
    seconds = time.perf_counter() - start
    labels, distances = CentroidAssigner(centroids).search_numpy(x)
    return KMeansFit(
        centroids=centroids,
        labels=labels,
        inertia=float(distances.astype(np.float64).sum()),
        sizes=np.bincount(labels, minlength=k),
        objective=objective,
        used_gpu=use_gpu,
        max_points_per_centroid=cap,
        seconds=seconds,
    )


def _float_vector_to_numpy(faiss: Any, vector: Any, size: int) -> np.ndarray:
    """A faiss ``std::vector<float>`` as a NumPy array.

    faiss' own ``Kmeans.train`` converts with ``vector_float_to_array``, which asserts on the proxy
    class name. SWIG shares its type table between extension modules, so when SimpleITK (also SWIG)
    is imported after faiss, the vector comes back as SimpleITK's proxy class and that assertion fails.
    Iterating works with either proxy.
    """
    try:
        return np.asarray(faiss.vector_float_to_array(vector), dtype=np.float32)
    except AssertionError:
        return np.fromiter(vector, dtype=np.float32, count=size)


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared L2 distances of ``x`` to the nearest of ``centroids``."""
    _, distances = CentroidAssigner(centroids).search_numpy(x)
    return float(distances.astype(np.float64).sum())


class CentroidAssigner:
    """Nearest-centroid assignment against fixed centroids (exact flat L2 search).

    On the CPU (and for NumPy input) a ``faiss.IndexFlatL2`` holding the centroids is searched; for
    torch tensors on an accelerator the same search is done with torch on the device.
    """

    def __init__(self, centroids: np.ndarray) -> None:
        faiss = faiss_module()
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if self.centroids.ndim != 2:
            raise DataError(f"centroids must be K x d, got shape {self.centroids.shape}")
        self.k, self.dim = self.centroids.shape
        self.index = faiss.IndexFlatL2(self.dim)
        self.index.add(self.centroids)
        self._device_centroids: dict[str, Any] = {}

    def search_numpy(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (int64) and squared distances (float32) for ``n x d`` vectors."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(f"features of shape {x.shape} do not match {self.dim}-dim centroids")
        labels = np.empty(x.shape[0], dtype=np.int64)
        distances = np.empty(x.shape[0], dtype=np.float32)
        for start in range(0, x.shape[0], ASSIGN_CHUNK):
            part = x[start : start + ASSIGN_CHUNK]
            dist, idx = self.index.search(part, 1)
            labels[start : start + part.shape[0]] = idx[:, 0]
            distances[start : start + part.shape[0]] = np.maximum(dist[:, 0], 0.0)
        return labels, distances

    def assign_numpy(self, x: np.ndarray) -> np.ndarray:
        """Nearest-centroid labels (int64) of ``n x d`` vectors."""
        return self.search_numpy(x)[0]

    def assign_torch(self, x: Any) -> Any:
        """Nearest-centroid labels (int64 tensor on ``x``'s device) of an ``n x d`` tensor."""
        import torch

        if x.dim() != 2 or x.shape[1] != self.dim:
            raise DataError(f"features of shape {tuple(x.shape)} do not match {self.dim}-dim centroids")
        if x.device.type == "cpu":
            labels = self.assign_numpy(x.detach().float().contiguous().numpy())
            return torch.from_numpy(labels)
        key = str(x.device)
        c = self._device_centroids.get(key)
        if c is None:
            c = torch.as_tensor(self.centroids, device=x.device)
            self._device_centroids[key] = c
        c_sq = (c * c).sum(dim=1)
        out = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
        for start in range(0, x.shape[0], ASSIGN_CHUNK):
            part = x[start : start + ASSIGN_CHUNK].float()
            # |x - c|² = |x|² - 2 x·c + |c|²; |x|² is the same for every centroid of a row.
            out[start : start + part.shape[0]] = (c_sq - 2.0 * part @ c.T).argmin(dim=1)
        return out
