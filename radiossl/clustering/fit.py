"""``kmeans_fit``: centroids for pixel-level clustering targets, fitted once on the whole dataset.

Steps: stream the preprocessed crop pairs, compute per-voxel features (extractor + upsampler), keep
a seeded sample of voxels from *every* crop, optionally z-score the channels, and train faiss K-means
once on the whole sample. This fixes the thesis script, which re-ran K-means on each batch and kept
the centroids of the last batch only (2,560 points for K = 10).

Outputs (default ``<PROC>/kmeans/k<K>_<extractor>_<upsampler>``):

* ``.npy``  float32 ``K x d`` centroids (in the transformed feature space, see ``transform``);
* ``.json`` every parameter, the feature transform, inertia, per-iteration objective, cluster sizes,
  extractor/upsampler names and options, and the feature dimension;
* ``.png``  a montage of a few crops and their cluster maps.

Example:
    >>> # from radiossl.clustering import KMeansConfig, kmeans_fit
    >>> # result = kmeans_fit(KMeansConfig(data={"root": "proc"}, kmeans={"k": 10}))
    >>> # result.centroids, result.inertia
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from radiossl.clustering.config import FeatureConfig, KMeansConfig
from radiossl.clustering.faiss_kmeans import CentroidAssigner, faiss_module, fit_kmeans
from radiossl.clustering.montage import pair_captions, save_montage
from radiossl.clustering.sampling import (
    SAMPLE_STREAM,
    FeatureTransform,
    sample_voxels,
    select_records,
    voxels_per_crop,
)
from radiossl.errors import ConfigError, DataError
from radiossl.features.base import FeaturePipeline, build_pipeline
from radiossl.utils.atomic import atomic_save_npy, write_json
from radiossl.utils.seeding import rng_for

if TYPE_CHECKING:
    from radiossl.data.processed import ProcessedDataset, SampleRecord

T = TypeVar("T")
METADATA_FORMAT = "radiossl-kmeans"
MONTAGE_PAIRS = 4


@dataclass
class KMeansFitResult:
    """What :func:`kmeans_fit` wrote and found."""

    centroids: Path
    metadata: Path
    montage: Path | None
    k: int
    feature_dim: int
    n_points: int
    n_crops: int
    inertia: float
    cluster_sizes: list[int]
    objective: list[float] = field(default_factory=list)
    used_gpu: bool = False
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------------
# Plumbing shared with predict


def open_dataset(root: Path | None) -> ProcessedDataset:
    """Open a preprocessed folder (ConfigError when no folder was given)."""
    if root is None:
        raise ConfigError("kmeans needs the preprocessed folder: --data PROC (or data.root)")
    from radiossl.data.processed import ProcessedDataset

    return ProcessedDataset.open(Path(root))


def build_feature_pipeline(features: FeatureConfig, in_channels: int, device: torch.device) -> FeaturePipeline:
    """The extractor + upsampler of ``features`` on ``device``."""
    pipeline = build_pipeline(
        features.extractor,
        features.upsampler,
        features.extractor_options,
        features.upsampler_options,
        in_channels=in_channels,
        slice_batch=features.slice_batch,
    )
    return pipeline.to(device)


def pair_batch(dataset: ProcessedDataset, records: Sequence[SampleRecord]) -> np.ndarray:
    """Crop pairs of ``records`` as one float32 array ``(len, 2, C, H, W, D)`` (DataError on mixed shapes)."""
    pairs = [dataset.load_pair(r) for r in records]
    shapes = {p.shape for p in pairs}
    if len(shapes) != 1:
        listing = ", ".join(f"{r.sample_id}: {p.shape}" for r, p in zip(records, pairs, strict=True))
        raise DataError(
            f"{dataset.root}: crop pairs of different shapes ({listing}); kmeans needs one crop size per folder"
        )
    pair = pairs[0]
    if pair.ndim != 5 or pair.shape[0] != 2:
        raise DataError(f"{dataset.root}: sample {records[0].sample_id} is not a crop pair (shape {pair.shape})")
    return np.stack(pairs)


def pair_features(pipeline: FeaturePipeline, pairs: np.ndarray, device: torch.device) -> torch.Tensor:
    """Features ``(len*2, d, H, W, D)`` of a pair batch (crop 1 and crop 2 of each pair in turn)."""
    crops = torch.from_numpy(np.ascontiguousarray(pairs.reshape(-1, *pairs.shape[2:]))).to(device)
    return pipeline(crops)


def voxel_rows(features: torch.Tensor) -> torch.Tensor:
    """``(d, H, W, D)`` -> ``(H*W*D, d)`` in (h, w, d) row-major voxel order."""
    return features.reshape(features.shape[0], -1).T


@contextmanager
def progress_bar(enabled: bool, description: str, total: int, console: Any = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar (or nothing); yields ``advance(n)``, callable from worker threads."""
    if not enabled:

        def ignore(n: int = 1) -> None:
            return None

        yield ignore
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


def run_parallel(work: Callable[[T], Any], items: Sequence[T], workers: int) -> list[Any]:
    """``work(item)`` for every item, on ``workers`` threads (torch and faiss release the GIL); in order."""
    if workers <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def default_stem(k: int, extractor: str, upsampler: str) -> str:
    """``k<K>_<extractor>_<upsampler>`` (file stem of the default centroids file)."""
    return f"k{k}_{extractor}_{upsampler}"


def metadata_path(centroids: Path) -> Path:
    """The JSON that describes a centroids file (same stem)."""
    return centroids.with_suffix(".json")


def select_runtime_device(name: str) -> torch.device:
    """The torch device for ``runtime.device`` (auto: CUDA, then MPS, then CPU)."""
    from radiossl.engine.device import select_device

    return select_device(name)


# --------------------------------------------------------------------------------------------------
# Fit


def kmeans_fit(
    config: KMeansConfig, *, dataset: ProcessedDataset | None = None, console: Any = None
) -> KMeansFitResult:
    """Fit K-means centroids on a seeded voxel sample of the whole dataset (see the module docstring).

    Raises:
        ConfigError: no folder, unknown plugin, missing weights, bad options.
        DataError: unreadable folder or arrays, no crop pairs, too few points for K.
    """
    start = time.perf_counter()
    faiss_module()
    ds = dataset if dataset is not None else open_dataset(config.data.root)
    records = select_records(ds, config.data)
    first = ds.load_pair(records[0])
    in_channels, crop_shape = int(first.shape[1]), tuple(int(s) for s in first.shape[2:])
    device = select_runtime_device(config.runtime.device)
    pipeline = build_feature_pipeline(config.features, in_channels, device)
    dim = pipeline.feature_dim(in_channels)
    seed = config.runtime.seed
    smp = config.sampling
    n_crops = 2 * len(records)
    per_crop = voxels_per_crop(smp.voxels_per_crop, smp.max_points, n_crops, int(np.prod(crop_shape)))
    sample = np.empty((n_crops * per_crop, dim), dtype=np.float32)
    position = {r.sample_id: i for i, r in enumerate(records)}
    batch_size = config.features.batch_size
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]

    with progress_bar(config.progress, "kmeans fit: features", len(records), console) as advance:

        def work(batch: list[SampleRecord]) -> None:
            pairs = pair_batch(ds, batch)
            if pairs.shape[2:] != (in_channels, *crop_shape):
                raise DataError(
                    f"{ds.root}: sample {batch[0].sample_id} has shape {pairs.shape[2:]}, "
                    f"expected {(in_channels, *crop_shape)} like the first sample"
                )
            features = pair_features(pipeline, pairs, device)
            for j, record in enumerate(batch):
                for crop in (0, 1):
                    rng = rng_for(seed, SAMPLE_STREAM, record.sample_id, crop)
                    idx = sample_voxels(
                        pairs[j, crop],
                        per_crop,
                        rng,
                        smp.foreground,
                        smp.foreground_threshold,
                        smp.foreground_fraction,
                    )
                    rows = voxel_rows(features[2 * j + crop])[torch.from_numpy(idx).to(device)]
                    row = (2 * position[record.sample_id] + crop) * per_crop
                    sample[row : row + per_crop] = rows.float().cpu().numpy()
            advance(len(batch))

        run_parallel(work, batches, config.runtime.workers)

    km = config.kmeans
    standardize = {"on": True, "off": False}.get(km.standardize, pipeline.extractor.standardize_default)
    weights = pipeline.extractor.channel_weights(in_channels) if km.channel_weights else None
    transform = FeatureTransform.fit(sample, standardize, km.spherical, weights)
    sample = transform.apply_numpy(sample, in_place=True)  # the sample is ours; spare a copy
    fit = fit_kmeans(
        sample,
        km.k,
        km.niter,
        km.nredo,
        km.spherical,
        seed,
        km.gpu,
        km.max_points_per_centroid,
        km.init,
        km.verbose,
    )

    stem = default_stem(km.k, config.features.extractor, config.features.upsampler)
    out = Path(config.out) if config.out is not None else ds.root / "kmeans" / f"{stem}.npy"
    if out.suffix != ".npy":
        out = out.with_name(out.name + ".npy")
    atomic_save_npy(out, fit.centroids)
    montage = None
    if config.montage:
        montage = _fit_montage(out.with_suffix(".png"), ds, records, pipeline, device, transform, fit.centroids)
    seconds = time.perf_counter() - start
    meta = {
        "format": METADATA_FORMAT,
        "format_version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "radiossl_version": _version(),
        "centroids": out.name,
        "k": km.k,
        "feature_dim": dim,
        "extractor": config.features.extractor,
        "upsampler": config.features.upsampler,
        "features": {
            **config.features.model_dump(mode="json"),
            "resolved": pipeline.describe(),
            "in_channels": in_channels,
            "crop_shape": list(crop_shape),
        },
        "data": {
            "root": str(ds.root),
            "split": config.data.split,
            "view": config.data.view,
            "samples": len(records),
            "crops": n_crops,
        },
        "sampling": {
            **smp.model_dump(mode="json"),
            "voxels_per_crop_used": per_crop,
            "points": int(sample.shape[0]),
        },
        "kmeans": {
            **km.model_dump(mode="json"),
            "seed": seed,
            "gpu_used": fit.used_gpu,
            "max_points_per_centroid_used": fit.max_points_per_centroid,
            "faiss_version": str(faiss_module().__version__),
        },
        "transform": transform.to_json(),
        "results": {
            "inertia": fit.inertia,
            "inertia_per_point": fit.inertia / max(1, sample.shape[0]),
            "objective": fit.objective,
            "cluster_sizes": [int(v) for v in fit.sizes],
            "empty_clusters": int((fit.sizes == 0).sum()),
            "fit_seconds": fit.seconds,
            "total_seconds": seconds,
        },
        "montage": montage.name if montage else None,
        "config": config.model_dump(mode="json"),
    }
    meta_file = metadata_path(out)
    write_json(meta_file, meta)
    return KMeansFitResult(
        centroids=out,
        metadata=meta_file,
        montage=montage,
        k=km.k,
        feature_dim=dim,
        n_points=int(sample.shape[0]),
        n_crops=n_crops,
        inertia=fit.inertia,
        cluster_sizes=[int(v) for v in fit.sizes],
        objective=fit.objective,
        used_gpu=fit.used_gpu,
        seconds=seconds,
    )


def assign_pairs(
    pipeline: FeaturePipeline,
    pairs: np.ndarray,
    device: torch.device,
    transform: FeatureTransform,
    assigner: CentroidAssigner,
) -> np.ndarray:
    """Cluster ids ``(len, 2, H, W, D)`` (int64) of every voxel of a pair batch."""
    features = pair_features(pipeline, pairs, device)
    spatial = pairs.shape[3:]
    labels = []
    for crop_features in features:
        rows = transform.apply_torch(voxel_rows(crop_features).float())
        labels.append(assigner.assign_torch(rows).cpu().numpy().reshape(spatial))
    return np.stack(labels).reshape(pairs.shape[0], 2, *spatial)


def _fit_montage(
    path: Path,
    ds: ProcessedDataset,
    records: Sequence[SampleRecord],
    pipeline: FeaturePipeline,
    device: torch.device,
    transform: FeatureTransform,
    centroids: np.ndarray,
) -> Path:
    chosen = list(records[:MONTAGE_PAIRS])
    assigner = CentroidAssigner(centroids)
    crops, labels = [], []
    for record in chosen:
        pairs = pair_batch(ds, [record])
        ids = assign_pairs(pipeline, pairs, device, transform, assigner)
        crops.extend([pairs[0, 0], pairs[0, 1]])
        labels.extend([ids[0, 0], ids[0, 1]])
    k = centroids.shape[0]
    names, row_labels = pair_captions(chosen)
    title = f"k-means fit {path.stem} | k={k} | middle axial slices"
    return save_montage(path, crops, labels, k, title=title, names=names, row_labels=row_labels)


def _version() -> str:
    import radiossl

    return str(radiossl.__version__)
