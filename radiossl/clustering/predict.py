"""``kmeans_predict``: pixel-level targets — every voxel of every crop assigned to fixed centroids.

The centroids never change while predicting (the thesis ran one Lloyd update per batch, and ignored
``--centroids``). The extractor, upsampler, their options and the feature transform default to those
recorded in the centroids' JSON; the feature dimension must match the centroids.

The targets are their own artefact, the folder ``<PROC>/targets/<tag>/`` (:mod:`radiossl.data.targets`);
the preprocessing stage's files (``manifest.csv``, ``preprocess.json``, ``arrays/``) are never
touched. For each pair-array file ``arrays/<group_id>.npy`` (N pairs) the cluster ids of both crops
are written to ``targets/<tag>/<group_id>.npy``, uint8 (uint16 when K > 255) of shape
``(N, 2, H, W, D)``, atomically. Groups whose target file already exists are skipped (resume), so an
interrupted run is continued by running the same command again. Groups run in parallel on
``runtime.workers`` threads. Shard ``I/N`` predicts only its share of the groups
(:mod:`radiossl.utils.fragments`). Once every group of the whole run has its target file, the set is
described in ``targets/<tag>/targets.json`` (which marks it complete) — by the shard that finds them
all (the last to finish), or by ``merge_only`` — and a montage is written to
``<PROC>/kmeans/predict_<tag>.png``. Opening the folder joins the set to the samples.

Example:
    >>> # from radiossl.clustering import KMeansPredictConfig, kmeans_predict
    >>> # cfg = KMeansPredictConfig(data={"root": "p"}, centroids="p/kmeans/k10_filterbank_bilinear.npy")
    >>> # kmeans_predict(cfg).tag  -> 'k10-filterbank-bilinear'
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiossl.clustering.config import FeatureConfig, KMeansPredictConfig
from radiossl.clustering.faiss_kmeans import CentroidAssigner, faiss_module
from radiossl.clustering.fit import (
    METADATA_FORMAT,
    MONTAGE_PAIRS,
    PAIRS,
    assign_pairs,
    build_feature_pipeline,
    metadata_path,
    open_dataset,
    pair_batch,
    pair_features,
    run_parallel,
    select_runtime_device,
)
from radiossl.clustering.legacy import legacy_assign_batch
from radiossl.clustering.montage import pair_captions, save_montage
from radiossl.clustering.sampling import FeatureTransform, select_records
from radiossl.config import deep_merge
from radiossl.data.targets import target_file
from radiossl.engine.progress import counting
from radiossl.errors import ConfigError, DataError, RadiosslError
from radiossl.utils.atomic import atomic_save_npy, write_json
from radiossl.utils.fragments import describe_missing, file_sha256, merge_advice, share
from radiossl.utils.settings_diff import settings_differences
from radiossl.utils.sharding import Shard

if TYPE_CHECKING:
    import torch

    from radiossl.data.processed import ProcessedDataset, SampleRecord
    from radiossl.features.base import FeaturePipeline


@dataclass
class KMeansPredictResult:
    """What :func:`kmeans_predict` did."""

    tag: str
    target_files: dict[str, str]
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    registered: bool = False
    shard: Shard | None = None
    missing: list[str] = field(default_factory=list)
    """Array files of the whole run without targets yet (a shard that did not register)."""
    cluster_counts: list[int] = field(default_factory=list)
    montage: Path | None = None
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return not self.failures


def target_file_for(array_file: str, tag: str) -> str:
    """``arrays/<group>.npy`` -> ``targets/<tag>/<group>.npy`` (relative paths)."""
    return target_file(array_file, tag)


def target_dtype(k: int) -> np.dtype:
    """uint8 for K <= 255 clusters, else uint16."""
    return np.dtype(np.uint8) if k <= 255 else np.dtype(np.uint16)


def load_centroids(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Centroids (float32 K x d) and their JSON metadata ({} when there is no JSON beside them)."""
    if not path.is_file():
        raise ConfigError(f"{path}: centroids file not found (run `radiossl kmeans fit` first)")
    try:
        centroids = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read centroids: {exc}") from exc
    if centroids.ndim != 2 or centroids.shape[0] < 2 or not np.isfinite(centroids).all():
        raise DataError(f"{path}: expected a finite K x d centroid array, got shape {centroids.shape}")
    meta: dict[str, Any] = {}
    meta_file = metadata_path(path)
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{meta_file}: cannot read: {exc}") from exc
        if meta.get("format") != METADATA_FORMAT:
            raise DataError(f"{meta_file}: not a radiossl kmeans record (format {meta.get('format')!r})")
        if int(meta.get("k", centroids.shape[0])) != centroids.shape[0]:
            raise DataError(f"{meta_file}: records k={meta.get('k')} but {path.name} has {centroids.shape[0]} rows")
    return centroids.astype(np.float32), meta


def resolve_features(config_features: FeatureConfig | None, meta: dict[str, Any], centroids: Path) -> FeatureConfig:
    """The recorded feature settings, overridden by the fields the user set explicitly.

    Naming another extractor (or upsampler) drops the recorded options of that plugin; options given
    for the recorded plugin are merged into the recorded ones (e.g. a new ``weights`` path).
    """
    recorded = meta.get("features")
    if recorded is None:
        if config_features is None:
            raise ConfigError(
                f"{centroids}: no {metadata_path(centroids).name} beside it to say which features the "
                "centroids use; pass --extractor and --upsampler"
            )
        return config_features
    base = {name: recorded[name] for name in FeatureConfig.model_fields if name in recorded}
    if config_features is None:
        return FeatureConfig.model_validate(base)
    given = config_features.model_dump(mode="json")
    explicit = config_features.model_fields_set
    for plugin in ("extractor", "upsampler"):
        options = f"{plugin}_options"
        if plugin in explicit and given[plugin] != base.get(plugin):
            base[plugin] = given[plugin]
            base[options] = given[options] if options in explicit else {}
        elif options in explicit:
            base[options] = deep_merge(base.get(options, {}), given[options])
    for name in ("batch_size", "slice_batch"):
        if name in explicit:
            base[name] = given[name]
    return FeatureConfig.model_validate(base)


def _existing_target_ok(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return tuple(array.shape) == shape and array.dtype == dtype


def _check_marker(
    marker: Path, fingerprint: dict[str, Any], features: FeatureConfig, overwrite: bool, tag: str
) -> None:
    """ConfigError when the targets ``tag`` were started with other centroids or features than ``fingerprint``.

    A feature setting added since the marker was written is no difference while it holds its default.
    """
    if marker.is_file() and not overwrite:
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
        recorded = previous.get("fingerprint") if isinstance(previous, dict) else None
        differences = settings_differences(recorded, fingerprint, {"features": features})
        if differences:
            raise ConfigError(
                f"{marker}: targets '{tag}' were started with other centroids or features "
                f"({'; '.join(differences[:3])}); pass --overwrite to recompute them, or --tag NAME for a new set"
            )


def kmeans_predict(
    config: KMeansPredictConfig,
    *,
    dataset: ProcessedDataset | None = None,
    shard: Shard | None = None,
    merge_only: bool = False,
) -> KMeansPredictResult:
    """Write and register cluster-id targets for every crop (see the module docstring).

    Per-group failures are collected in the result (nothing is registered then; rerun to resume).
    With ``shard`` only that share of the groups is predicted; the targets are registered by the
    shard that finds every group's target file written (the last to finish). ``merge_only`` predicts
    nothing and registers the targets, which must all exist.

    Raises:
        ConfigError: no centroids, unknown plugins, missing weights, dimension mismatch.
        DataError: unreadable folder, centroids or metadata; no crop pairs; ``merge_only`` with groups
            that have no targets yet.
    """
    start = time.perf_counter()
    faiss_module()
    if config.centroids is None:
        raise ConfigError("kmeans predict needs --centroids FILE (written by `radiossl kmeans fit`)")
    centroids_path = Path(config.centroids)
    centroids, meta = load_centroids(centroids_path)
    k, dim = centroids.shape
    features = resolve_features(config.features, meta, centroids_path)
    transform = FeatureTransform.from_json(meta.get("transform"))
    tag = config.tag or f"k{k}-{features.extractor}-{features.upsampler}"
    ds = dataset if dataset is not None else open_dataset(config.data.root)
    chosen = select_records(ds, config.data)
    target_file(chosen[0].file, tag)  # a tag that cannot name the targets folder: fail before any work
    wanted_files = list(dict.fromkeys(r.file for r in chosen))
    by_file: dict[str, list[SampleRecord]] = {f: [] for f in wanted_files}
    for record in ds.records(split=None):
        if record.file in by_file:
            by_file[record.file].append(record)
    mine = [] if merge_only else share(wanted_files, shard)
    first = ds.load_pair(chosen[0])
    in_channels, spatial = int(first.shape[1]), tuple(int(s) for s in first.shape[2:])
    shapes = {file: (max(r.index for r in by_file[file]) + 1, 2, *spatial) for file in wanted_files}
    device = select_runtime_device(config.runtime.device)
    pipeline = build_feature_pipeline(features, in_channels, device)
    if pipeline.feature_dim(in_channels) != dim:
        raise ConfigError(
            f"{centroids_path}: centroids are {dim}-dimensional but {features.extractor} gives "
            f"{pipeline.feature_dim(in_channels)} features for {in_channels}-channel crops"
        )
    if any(v is not None and v.shape[0] != dim for v in (transform.mean, transform.std, transform.weights)):
        raise DataError(f"{metadata_path(centroids_path)}: transform statistics do not match {dim}-dim centroids")
    dtype = target_dtype(k)
    assigner = CentroidAssigner(centroids)
    fingerprint: dict[str, Any] = {
        "centroids_sha256": file_sha256(centroids_path),
        "features": features.model_dump(mode="json", exclude={"batch_size", "slice_batch"}),
        "transform": transform.to_json(),
    }
    if config.legacy:  # other targets than the fixed assignment: a rerun must not mix the two
        fingerprint["legacy"] = True
    marker = ds.root / "kmeans" / f"predict-{tag}.json"
    _check_marker(marker, fingerprint, features, config.overwrite, tag)
    write_json(marker, {"tag": tag, "centroids": str(centroids_path), "fingerprint": fingerprint})

    result = KMeansPredictResult(tag=tag, target_files={}, shard=shard)
    counts = np.zeros(k, dtype=np.int64)
    batch_size = features.batch_size
    total = sum(len(by_file[file]) for file in mine)

    label = f"kmeans predict ({tag}, shard {shard})" if shard else f"kmeans predict ({tag})"
    with counting(label, total, PAIRS, config.progress) as advance:

        def work(file: str) -> tuple[str, str, np.ndarray | None, str | None]:
            records = sorted(by_file[file], key=lambda r: r.index)
            target = target_file_for(file, tag)
            shape = shapes[file]
            if not config.overwrite and _existing_target_ok(ds.root / target, shape, dtype):
                advance(len(records))
                return file, "skipped", None, None
            try:
                labels = np.zeros(shape, dtype=dtype)
                local = np.zeros(k, dtype=np.int64)
                for i in range(0, len(records), batch_size):
                    batch = records[i : i + batch_size]
                    pairs = pair_batch(ds, batch)
                    if pairs.shape[2:] != (in_channels, *spatial):
                        raise DataError(
                            f"{ds.root / file}: crops of shape {pairs.shape[2:]}, expected {(in_channels, *spatial)}"
                        )
                    if config.legacy:
                        ids = _legacy_assign_pairs(pipeline, pairs, device, transform, centroids, config.runtime.seed)
                    else:
                        ids = assign_pairs(pipeline, pairs, device, transform, assigner)
                    for record, pair_ids in zip(batch, ids, strict=True):
                        labels[record.index] = pair_ids.astype(dtype)
                        local += np.bincount(pair_ids.reshape(-1), minlength=k)
                    advance(len(batch))
                atomic_save_npy(ds.root / target, labels)
            except RadiosslError as exc:
                return file, "failed", None, str(exc)
            return file, "written", local, None

        outcomes = run_parallel(work, mine, config.runtime.workers)

    for file, status, local, error in outcomes:
        if status == "failed":
            result.failures[file] = str(error)
            continue
        result.target_files[file] = target_file_for(file, tag)
        (result.written if status == "written" else result.skipped).append(file)
        if local is not None:
            counts += local
    result.cluster_counts = [int(v) for v in counts]
    if result.success:  # the merge: register once every group of the whole run has its targets
        result.missing = [
            file
            for file in wanted_files
            if not _existing_target_ok(ds.root / target_file_for(file, tag), shapes[file], dtype)
        ]
        if result.missing and merge_only:
            where = describe_missing(result.missing, len(wanted_files), "groups")
            raise DataError(f"{ds.root}: targets {tag!r}: {where}; {merge_advice('radiossl kmeans predict')}")
    if result.success and not result.missing:
        files = _all_target_files(ds, tag, result.target_files)
        ds.register_targets(
            tag,
            files,
            {
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "k": int(k),
                "dtype": dtype.name,
                "centroids": str(centroids_path.resolve()),
                "centroids_sha256": fingerprint["centroids_sha256"],
                "metadata": str(metadata_path(centroids_path).resolve()) if meta else None,
                "extractor": features.extractor,
                "upsampler": features.upsampler,
                "features": features.model_dump(mode="json"),
                "feature_dim": int(dim),
                "transform": {
                    "standardize": transform.mean is not None,
                    "l2_normalize": transform.l2_normalize,
                },
                "cluster_counts_written": result.cluster_counts,
            },
        )
        result.registered = True
        if config.montage:
            result.montage = _predict_montage(ds, chosen, tag, dtype, k)
    result.seconds = time.perf_counter() - start
    return result


def _all_target_files(ds: ProcessedDataset, tag: str, done: dict[str, str]) -> dict[str, str]:
    """Target files of this run plus those of earlier runs of the same tag (other splits)."""
    files = dict(done)
    for record in ds.records(split=None):
        if record.file in files:
            continue
        target = target_file_for(record.file, tag)
        if (ds.root / target).is_file():
            files[record.file] = target
    return files


def _predict_montage(ds: ProcessedDataset, records: Sequence[SampleRecord], tag: str, dtype: np.dtype, k: int) -> Path:
    crops, labels = [], []
    shown = list(records[:MONTAGE_PAIRS])
    for record in shown:
        pair = ds.load_pair(record)
        targets = np.load(ds.root / target_file_for(record.file, tag), mmap_mode="r")[record.index]
        crops.extend([pair[0], pair[1]])
        labels.extend([np.asarray(targets[0]), np.asarray(targets[1])])
    names, row_labels = pair_captions(shown)
    title = f"k-means predict {tag} | k={k} | middle axial slices"
    path = ds.root / "kmeans" / f"predict_{tag}.png"
    return save_montage(path, crops, labels, k, title=title, names=names, row_labels=row_labels)


def _legacy_assign_pairs(
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
    if transform.mean is not None or transform.weights is not None or transform.l2_normalize:
        raise ConfigError(
            "legacy predict assigns raw features as the thesis did, but these centroids were fitted on "
            "transformed ones (standardize/channel weights/spherical); fit them with kmeans.legacy: true"
        )
    features = pair_features(pipeline, pairs, device)
    labels1, labels2 = legacy_assign_batch(features[0::2], features[1::2], centroids, seed)
    return np.stack([labels1, labels2], axis=1)
