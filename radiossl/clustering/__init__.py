"""K-means for pixel-level clustering targets: fit centroids once on the whole dataset, assign every voxel.

Example:
    >>> from radiossl.clustering import KMeansConfig
    >>> KMeansConfig().kmeans.k
    10
"""

from __future__ import annotations

import importlib
from typing import Any

from radiossl.clustering.config import (
    ClusterConfig,
    FeatureConfig,
    KMeansConfig,
    KMeansDataConfig,
    KMeansPredictConfig,
    PredictDataConfig,
    SamplingConfig,
    load_kmeans_config,
)

_LAZY = {
    "kmeans_fit": "radiossl.clustering.fit",
    "KMeansFitResult": "radiossl.clustering.fit",
    "kmeans_predict": "radiossl.clustering.predict",
    "KMeansPredictResult": "radiossl.clustering.predict",
}

__all__ = [
    "ClusterConfig",
    "FeatureConfig",
    "KMeansConfig",
    "KMeansDataConfig",
    "KMeansFitResult",
    "KMeansPredictConfig",
    "KMeansPredictResult",
    "PredictDataConfig",
    "SamplingConfig",
    "kmeans_fit",
    "kmeans_predict",
    "load_kmeans_config",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'radiossl.clustering' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
