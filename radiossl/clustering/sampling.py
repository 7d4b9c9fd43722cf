"""Seeded voxel sampling for the K-means fit, and the per-channel feature transform.

Every crop of the dataset contributes the same number of voxels, drawn from a random stream that
depends only on the seed, the sample id and the crop (``rng_for(seed, "kmeans-sample", sample_id,
crop)``), so the sample does not depend on batch size, worker count or processing order. With
``foreground`` a share of each crop's voxels is drawn where any channel exceeds a threshold, so that
large empty backgrounds do not dominate the clusters.

Example:
    >>> import numpy as np
    >>> crop = np.zeros((1, 8, 8, 4), np.float32); crop[0, :2] = 1.0
    >>> idx = sample_voxels(crop, 10, np.random.default_rng(0), foreground=True, threshold=0.5, fraction=1.0)
    >>> bool((crop[0].reshape(-1)[idx] == 1.0).all()), len(idx)
    (True, 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from radiossl.data.view_contract import is_crop_pair_view, view_names
from radiossl.errors import DataError

if TYPE_CHECKING:
    from radiossl.clustering.config import KMeansDataConfig
    from radiossl.data.processed import ProcessedDataset, SampleRecord

SAMPLE_STREAM = "kmeans-sample"


def select_records(dataset: ProcessedDataset, data: KMeansDataConfig) -> list[SampleRecord]:
    """The crop-pair samples of ``data.split`` / ``data.view`` (manifest order); DataError if none.

    A sample is a crop pair when its view plugin says so (``View.crop_pairs``).
    """
    pair_views = {view: is_crop_pair_view(view) for view in {r.view for r in dataset.records(split=None)}}
    records = [r for r in dataset.records(split=data.split, view=data.view) if pair_views[r.view]]
    if data.max_samples is not None:
        records = records[: data.max_samples]
    if not records:
        present = ", ".join(sorted(pair_views)) or "none"
        usable = ", ".join(v for v in view_names() if is_crop_pair_view(v))
        raise DataError(
            f"{dataset.root}: no crop pairs with split={data.split!r} and view={data.view!r} "
            f"(views present: {present}); kmeans needs a view of crop pairs ({usable})"
        )
    return records


def voxels_per_crop(requested: int, max_points: int, n_crops: int, crop_voxels: int) -> int:
    """Voxels drawn per crop: ``requested``, reduced so the sample stays under ``max_points``."""
    return max(1, min(requested, max_points // max(1, n_crops), crop_voxels))


def _draw(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    count = min(count, pool.size)
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return rng.choice(pool, size=count, replace=False).astype(np.int64)


def sample_voxels(
    crop: np.ndarray,
    count: int,
    rng: np.random.Generator,
    foreground: bool = False,
    threshold: float = 0.05,
    fraction: float = 0.9,
) -> np.ndarray:
    """``count`` distinct flat voxel indices (sorted) of a ``(C, H, W, D)`` crop.

    With ``foreground``, ``round(fraction·count)`` come from voxels where any channel exceeds
    ``threshold`` (fewer if the crop has fewer), the rest from the other voxels.
    """
    n_voxels = int(np.prod(crop.shape[1:]))
    count = min(count, n_voxels)
    if not foreground:
        return np.sort(rng.choice(n_voxels, size=count, replace=False).astype(np.int64))
    mask = (crop > threshold).any(axis=0).reshape(-1)
    fg, bg = np.flatnonzero(mask), np.flatnonzero(~mask)
    picked_fg = _draw(rng, fg, round(fraction * count))
    picked_bg = _draw(rng, bg, count - picked_fg.size)
    picked = np.concatenate([picked_fg, picked_bg])
    if picked.size < count:  # too little background: top up from the remaining foreground
        rest = np.setdiff1d(fg, picked_fg, assume_unique=True)
        picked = np.concatenate([picked, _draw(rng, rest, count - picked.size)])
    return np.sort(picked)


@dataclass
class FeatureTransform:
    """Per-channel z-scoring (optional), per-channel weights (optional), then L2 normalisation
    (optional, spherical K-means).

    Centroids live in the transformed space; the same transform is applied at prediction time.
    """

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    l2_normalize: bool = False
    weights: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        sample: np.ndarray,
        standardize: bool,
        l2_normalize: bool,
        weights: list[float] | np.ndarray | None = None,
    ) -> FeatureTransform:
        """Statistics from ``sample`` (``n x d``), computed in float64; ``weights`` scale the channels."""
        w = None if weights is None else np.asarray(weights, dtype=np.float32).reshape(-1)
        if w is not None and w.shape[0] != sample.shape[1]:
            raise DataError(f"{w.shape[0]} channel weights for {sample.shape[1]} feature channels")
        if not standardize:
            return cls(None, None, l2_normalize, w)
        mean = sample.mean(axis=0, dtype=np.float64)
        std = sample.std(axis=0, dtype=np.float64)
        std = np.where(std > 1e-8, std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32), l2_normalize, w)

    def apply_numpy(self, x: np.ndarray, in_place: bool = False) -> np.ndarray:
        """Transform ``n x d`` features into a new float32 array (into ``x`` itself with ``in_place=True``
        when ``x`` is a float32 array, to spare a copy of a large sample)."""
        x = np.asarray(x, dtype=np.float32) if in_place else np.array(x, dtype=np.float32)
        if self.mean is not None and self.std is not None:
            x -= self.mean
            x /= self.std
        if self.weights is not None:
            x *= self.weights
        if self.l2_normalize:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x /= np.maximum(norms, 1e-12)
        return x

    def apply_torch(self, x: Any) -> Any:
        """Transform an ``n x d`` torch tensor on its device."""
        import torch

        if self.mean is not None and self.std is not None:
            mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
            std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype)
            x = (x - mean) / std
        if self.weights is not None:
            x = x * torch.as_tensor(self.weights, device=x.device, dtype=x.dtype)
        if self.l2_normalize:
            x = torch.nn.functional.normalize(x, dim=1, eps=1e-12)
        return x

    def to_json(self) -> dict[str, Any]:
        return {
            "standardize": self.mean is not None,
            "mean": None if self.mean is None else [float(v) for v in self.mean],
            "std": None if self.std is None else [float(v) for v in self.std],
            "weights": None if self.weights is None else [float(v) for v in self.weights],
            "l2_normalize": self.l2_normalize,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FeatureTransform:
        if not data:
            return cls()
        mean, std, weights = data.get("mean"), data.get("std"), data.get("weights")
        return cls(
            None if mean is None else np.asarray(mean, dtype=np.float32),
            None if std is None else np.asarray(std, dtype=np.float32),
            bool(data.get("l2_normalize", False)),
            None if weights is None else np.asarray(weights, dtype=np.float32),
        )
