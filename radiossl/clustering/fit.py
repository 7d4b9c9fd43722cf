"""``kmeans_fit``: centroids for pixel-level clustering targets, fitted once on the whole dataset.

Steps: stream the preprocessed crop pairs, compute per-voxel features (extractor + upsampler), keep
a seeded sample of voxels from *every* crop, optionally z-score the channels, and train faiss K-means
once on the whole sample. This fixes the thesis script, which re-ran K-means on each batch and kept
the centroids of the last batch only (2,560 points for K = 10).

Sharded (``--shard I/N``), each process computes the sample rows of its share of the sample groups
(pair-array files) and writes them to ``<stem>.sample/<group_id>.npy``; the last shard to finish (or
``--merge-only``) loads them in the unsharded order and fits. Which voxels are drawn depends only on
the seed, the sample id and the crop, so the sample, and the centroids, do not depend on the shards;
memory is bounded by the sample (``sampling.max_points``), not by the dataset.

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
import contextlib
import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from radiossl.clustering.config import FeatureConfig, KMeansConfig
from radiossl.clustering.faiss_kmeans import CentroidAssigner, faiss_module, fit_kmeans, resolve_gpu
from radiossl.clustering.legacy import THESIS_MAX_POINTS_PER_CENTROID, last_batch, legacy_fit_centroids
from radiossl.clustering.montage import pair_captions, save_montage
from radiossl.clustering.sampling import (
    SAMPLE_STREAM,
    FeatureTransform,
    sample_voxels,
    select_records,
    voxels_per_crop,
)
from radiossl.engine.progress import counting
from radiossl.errors import ConfigError, DataError
from radiossl.features.base import FeaturePipeline, build_pipeline
from radiossl.utils.atomic import atomic_save_npy, write_json
from radiossl.utils.fragments import Fragments, describe_missing, fingerprint, merge_advice, share
from radiossl.utils.seeding import rng_for
from radiossl.utils.settings_diff import settings_differences
from radiossl.utils.sharding import Shard

if TYPE_CHECKING:
    from radiossl.data.processed import ProcessedDataset, SampleRecord

T = TypeVar("T")
METADATA_FORMAT = "radiossl-kmeans"
SAMPLE_FORMAT = "radiossl-kmeans-sample"
MONTAGE_PAIRS = 4
PAIRS = "crop pairs"
"""What the progress of a fit or a prediction counts."""


@dataclass
class KMeansFitResult:
    """What :func:`kmeans_fit` wrote and found (``fitted`` false: a shard that only wrote its sample)."""

    centroids: Path
    metadata: Path
    montage: Path | None
    k: int
    feature_dim: int
    n_points: int
    n_crops: int
    inertia: float = math.nan
    cluster_sizes: list[int] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    used_gpu: bool = False
    seconds: float = 0.0
    fitted: bool = True
    shard: Shard | None = None
    sampled_groups: int = 0
    """Sample groups whose fragment this (sharded) run computed."""
    total_groups: int = 0
    missing_groups: list[str] = field(default_factory=list)
    """Sample groups without a fragment yet (a shard that did not fit)."""


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
    from radiossl.runtime.device import select_device

    return select_device(name)


# --------------------------------------------------------------------------------------------------
# Fit


@dataclass
class _FitInputs:
    """What every path of the fit needs: the crops, the feature pipeline and the sample's layout."""

    ds: ProcessedDataset
    records: list[SampleRecord]
    groups: dict[str, list[SampleRecord]]
    """The records of each sample group (a pair-array file), in the order of the sample's rows."""
    in_channels: int
    crop_shape: tuple[int, ...]
    device: torch.device
    pipeline: FeaturePipeline
    dim: int
    per_crop: int
    identity: dict[str, Any]
    """What the sample is: the same for any shard count, recorded beside the sample fragments."""

    def rows(self, group: str) -> int:
        """Rows of ``group`` in the sample (two crops per pair, ``per_crop`` voxels each)."""
        return 2 * len(self.groups[group]) * self.per_crop


def kmeans_fit(
    config: KMeansConfig,
    *,
    dataset: ProcessedDataset | None = None,
    shard: Shard | None = None,
    merge_only: bool = False,
) -> KMeansFitResult:
    """Fit K-means centroids on a seeded voxel sample of the whole dataset (see the module docstring).

    Unsharded, the sample is computed in memory and fitted. With ``shard`` this process computes the
    sample rows of its share of the sample groups and writes them as fragments to
    ``<centroids stem>.sample/<group_id>.npy`` (a rerun skips groups that have one); the shard that
    finds every group's fragment written (the last to finish) fits. ``merge_only`` computes nothing
    and fits on the fragments, which must all exist. Which voxels are drawn does not depend on the
    shard, so the centroids equal those of the unsharded fit.

    Raises:
        ConfigError: no folder, unknown plugin, missing weights, bad options, sample fragments of
            other settings.
        DataError: unreadable folder or arrays, no crop pairs, too few points for K, ``merge_only``
            with groups not sampled yet.
    """
    start = time.perf_counter()
    faiss_module()
    inputs = _prepare(config, dataset)
    out = centroids_path(config, inputs.ds)
    if config.kmeans.legacy:
        if shard is not None or merge_only:
            raise ConfigError("kmeans.legacy fits one batch, as the thesis did: run it unsharded")
        return _legacy_fit(config, inputs, out, start)
    if shard is None and not merge_only:
        return _fit_and_write(config, inputs, _sample_in_memory(config, inputs), out, start)
    fragments = sample_fragments(out)
    fragments.claim(
        inputs.identity,
        advice=f"delete {fragments.folder} to sample again, or choose another --out",
        models={"features": config.features, "sampling": config.sampling},
    )
    computed = [] if merge_only else _sample_share(config, inputs, fragments, shard)
    with fragments.lock():  # one fit at a time; a shard that waited here finds the fit done
        missing = fragments.missing(inputs.groups)
        if missing:
            where = describe_missing(missing, len(inputs.groups), "sample groups")
            if merge_only:
                raise DataError(f"{fragments.folder}: {where}; {merge_advice('radiossl kmeans fit')}")
            return _partial_result(config, inputs, out, shard, computed, missing, start)
        previous = None if merge_only else _fitted_before(config, inputs, out)
        if previous is not None:
            return previous
        sample = _load_sample(inputs, fragments)
        result = _fit_and_write(config, inputs, sample, out, start)
    result.shard, result.sampled_groups = shard, len(computed)
    return result


def centroids_path(config: KMeansConfig, ds: ProcessedDataset) -> Path:
    """The centroids file: ``config.out`` (``.npy`` added when missing), else under ``<PROC>/kmeans/``."""
    stem = default_stem(config.kmeans.k, config.features.extractor, config.features.upsampler)
    out = Path(config.out) if config.out is not None else ds.root / "kmeans" / f"{stem}.npy"
    return out if out.suffix == ".npy" else out.with_name(out.name + ".npy")


def sample_fragments(centroids: Path) -> Fragments:
    """The per-group sample fragments of a sharded fit: ``<stem>.sample/<group_id>.npy`` + ``sample.json``."""
    folder = centroids.with_suffix(".sample")
    return Fragments(folder, ".npy", folder / "sample.json")


def _prepare(config: KMeansConfig, dataset: ProcessedDataset | None) -> _FitInputs:
    ds = dataset if dataset is not None else open_dataset(config.data.root)
    records = select_records(ds, config.data)
    first = ds.load_pair(records[0])
    in_channels, crop_shape = int(first.shape[1]), tuple(int(s) for s in first.shape[2:])
    device = select_runtime_device(config.runtime.device)
    pipeline = build_feature_pipeline(config.features, in_channels, device)
    dim = pipeline.feature_dim(in_channels)
    smp = config.sampling
    per_crop = voxels_per_crop(smp.voxels_per_crop, smp.max_points, 2 * len(records), int(np.prod(crop_shape)))
    groups: dict[str, list[SampleRecord]] = {}
    for record in records:  # manifest order keeps a group's records together
        groups.setdefault(record.group_id, []).append(record)
    ids = "\n".join(r.sample_id for r in records).encode("utf-8")
    identity = {
        "format": SAMPLE_FORMAT,
        "data": str(ds.root.resolve()),
        "samples": len(records),
        "samples_sha256": hashlib.sha256(ids).hexdigest(),
        "groups": len(groups),
        "features": config.features.model_dump(mode="json", exclude={"batch_size", "slice_batch"}),
        "in_channels": in_channels,
        "crop_shape": list(crop_shape),
        "feature_dim": dim,
        "sampling": smp.model_dump(mode="json"),
        "voxels_per_crop_used": per_crop,
        "seed": config.runtime.seed,
    }
    return _FitInputs(ds, records, groups, in_channels, crop_shape, device, pipeline, dim, per_crop, identity)


def _sample_group(
    config: KMeansConfig, inputs: _FitInputs, group: str, into: np.ndarray, advance: Callable[[int], None]
) -> None:
    """Write the sample rows of ``group`` (its crops in record order, ``per_crop`` rows each) into ``into``."""
    records, ds, smp = inputs.groups[group], inputs.ds, config.sampling
    per_crop, batch_size = inputs.per_crop, config.features.batch_size
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        pairs = pair_batch(ds, batch)
        if pairs.shape[2:] != (inputs.in_channels, *inputs.crop_shape):
            raise DataError(
                f"{ds.root}: sample {batch[0].sample_id} has shape {pairs.shape[2:]}, "
                f"expected {(inputs.in_channels, *inputs.crop_shape)} like the first sample"
            )
        features = pair_features(inputs.pipeline, pairs, inputs.device)
        for j, record in enumerate(batch):
            for crop in (0, 1):
                rng = rng_for(config.runtime.seed, SAMPLE_STREAM, record.sample_id, crop)
                idx = sample_voxels(
                    pairs[j, crop],
                    per_crop,
                    rng,
                    smp.foreground,
                    smp.foreground_threshold,
                    smp.foreground_fraction,
                )
                rows = voxel_rows(features[2 * j + crop])[torch.from_numpy(idx).to(inputs.device)]
                row = (2 * (start + j) + crop) * per_crop
                into[row : row + per_crop] = rows.float().cpu().numpy()
        advance(len(batch))


def _sample_in_memory(config: KMeansConfig, inputs: _FitInputs) -> np.ndarray:
    """The whole sample, computed in this process (unsharded fit)."""
    sample = np.empty((sum(inputs.rows(g) for g in inputs.groups), inputs.dim), dtype=np.float32)
    offsets, row = {}, 0
    for group in inputs.groups:
        offsets[group], row = row, row + inputs.rows(group)

    with counting("kmeans fit: features", len(inputs.records), PAIRS, config.progress) as advance:

        def work(group: str) -> None:
            _sample_group(config, inputs, group, sample[offsets[group] : offsets[group] + inputs.rows(group)], advance)

        run_parallel(work, list(inputs.groups), config.runtime.workers)
    return sample


def _sample_share(config: KMeansConfig, inputs: _FitInputs, fragments: Fragments, shard: Shard | None) -> list[str]:
    """Write the sample fragment of every group of this shard that has none; returns those groups."""
    todo = fragments.missing(share(list(inputs.groups), shard))
    total = sum(len(inputs.groups[g]) for g in todo)
    label = f"kmeans fit: features (shard {shard})" if shard else "kmeans fit: features"
    with counting(label, total, PAIRS, config.progress) as advance:

        def work(group: str) -> None:
            rows = np.empty((inputs.rows(group), inputs.dim), dtype=np.float32)  # one group at a time per worker
            _sample_group(config, inputs, group, rows, advance)
            fragments.save_npy(group, rows)

        run_parallel(work, todo, config.runtime.workers)
    return todo


def _load_sample(inputs: _FitInputs, fragments: Fragments) -> np.ndarray:
    """The whole sample from the fragments, in the unsharded row order (memory: the sample, once)."""
    sample = np.empty((sum(inputs.rows(g) for g in inputs.groups), inputs.dim), dtype=np.float32)
    row = 0
    for group in inputs.groups:
        part = fragments.load_npy(group)
        expected = (inputs.rows(group), inputs.dim)
        if part.shape != expected or part.dtype != np.float32:
            raise DataError(
                f"{fragments.path(group)}: sample fragment of shape {part.shape} ({part.dtype}), expected "
                f"{expected} float32; delete it and rerun its shard"
            )
        sample[row : row + expected[0]] = part
        row += expected[0]
    return sample


def _partial_result(
    config: KMeansConfig,
    inputs: _FitInputs,
    out: Path,
    shard: Shard | None,
    computed: list[str],
    missing: list[str],
    start: float,
) -> KMeansFitResult:
    """The result of a shard that sampled its groups while others are still missing (nothing fitted)."""
    return KMeansFitResult(
        centroids=out,
        metadata=metadata_path(out),
        montage=None,
        k=config.kmeans.k,
        feature_dim=inputs.dim,
        n_points=sum(inputs.rows(g) for g in inputs.groups),
        n_crops=2 * len(inputs.records),
        fitted=False,
        shard=shard,
        sampled_groups=len(computed),
        total_groups=len(inputs.groups),
        missing_groups=missing,
        seconds=time.perf_counter() - start,
    )


def _fitted_before(config: KMeansConfig, inputs: _FitInputs, out: Path) -> KMeansFitResult | None:
    """The result written by another shard that fitted this sample with these settings, if any."""
    meta_file = metadata_path(out)
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same = (
        isinstance(meta, dict)
        and meta.get("sample_fingerprint") in _sample_fingerprints(inputs, out)
        and isinstance(meta.get("config"), dict)
        and not settings_differences(meta["config"], config.model_dump(mode="json"), {"": config})
        and out.is_file()
    )
    if not same:
        return None
    results = meta["results"]
    montage = out.with_suffix(".png") if meta.get("montage") else None
    return KMeansFitResult(
        centroids=out,
        metadata=meta_file,
        montage=montage,
        k=int(meta["k"]),
        feature_dim=int(meta["feature_dim"]),
        n_points=int(meta["sampling"]["points"]),
        n_crops=int(meta["data"]["crops"]),
        inertia=float(results["inertia"]),
        cluster_sizes=[int(v) for v in results["cluster_sizes"]],
        objective=[float(v) for v in results["objective"]],
        used_gpu=bool(meta["kmeans"]["gpu_used"]),
        total_groups=len(inputs.groups),
        seconds=float(results["total_seconds"]),
    )


def _sample_fingerprints(inputs: _FitInputs, out: Path) -> set[str]:
    """Fingerprints of this sample: of its identity now, and of the one recorded in its folder.

    The recorded one differs when the folder was sampled by a release that recorded fewer settings
    (the claim accepted it: the settings it lacks hold their defaults).
    """
    prints = {fingerprint(inputs.identity)}
    with contextlib.suppress(OSError, json.JSONDecodeError):  # no record: only the identity's
        prints.add(fingerprint(json.loads(sample_fragments(out).record.read_text(encoding="utf-8"))))
    return prints


def _fit_and_write(
    config: KMeansConfig, inputs: _FitInputs, sample: np.ndarray, out: Path, start: float
) -> KMeansFitResult:
    """Transform and fit ``sample`` (consumed), write the centroids, their JSON and the montage."""
    ds, records, pipeline, dim, seed = inputs.ds, inputs.records, inputs.pipeline, inputs.dim, config.runtime.seed
    in_channels, smp, km = inputs.in_channels, config.sampling, config.kmeans
    n_crops = 2 * len(records)
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

    atomic_save_npy(out, fit.centroids)
    montage = None
    if config.montage:
        montage = _fit_montage(out.with_suffix(".png"), ds, records, pipeline, inputs.device, transform, fit.centroids)
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
            "crop_shape": list(inputs.crop_shape),
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
            "voxels_per_crop_used": inputs.per_crop,
            "points": int(sample.shape[0]),
        },
        "sample_fingerprint": fingerprint(inputs.identity),
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
        total_groups=len(inputs.groups),
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


def _legacy_fit(config: KMeansConfig, inputs: _FitInputs, out: Path, start: float) -> KMeansFitResult:
    """``kmeans fit`` with ``kmeans.legacy``: fit the last batch of a seeded shuffle as the thesis did.

    Writes the centroids, their JSON (``kmeans.legacy: true``, the sample ids of the batch, an
    identity feature transform) and the montage, like the regular fit.
    """
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
