"""Configuration of ``radiossl kmeans fit`` and ``radiossl kmeans predict``.

Both commands share the ``data``, ``features`` and ``runtime`` sections; ``fit`` adds ``sampling``
and ``kmeans``, ``predict`` adds ``centroids``, ``tag`` and ``overwrite``. Layers as everywhere:
defaults < ``--config FILE`` < ``--set a.b=v`` < explicit flags.

Example:
    >>> cfg = load_kmeans_config(KMeansConfig, overrides=["kmeans.k=5"], flags={"data": {"root": "proc"}})
    >>> (cfg.kmeans.k, cfg.features.extractor, cfg.features.upsampler)
    (5, 'filterbank', 'bilinear')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field

from radiossl.config import RuntimeConfig, Section, load_config_file_into

T = TypeVar("T", bound=Section)


class KMeansDataConfig(Section):
    """Which preprocessed samples are used."""

    root: Path | None = Field(None, description="Preprocessed folder (output of `radiossl preprocess`).")
    split: str | None = Field("train", description="Split to use; null = every split.")
    view: str | None = Field("cluster", description="View of the samples (cluster or pcrlv2); null = any pair view.")
    max_samples: int | None = Field(None, ge=1, description="Use only the first N samples (quick tries).")


class PredictDataConfig(KMeansDataConfig):
    """Which preprocessed samples get targets (default: every split)."""

    split: str | None = Field(None, description="Split to label; null = every split.")


class FeatureConfig(Section):
    """Feature extractor and upsampler (plugins) and their options."""

    extractor: str = Field("filterbank", description="Feature extractor plugin (radiossl plugins list).")
    upsampler: str = Field("bilinear", description="Upsampler plugin.")
    extractor_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the extractor (e.g. weights: PATH for dino-*)."
    )
    upsampler_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the upsampler (e.g. radius, sigma_range for jbu)."
    )
    batch_size: int = Field(1, ge=1, description="Crop pairs per forward pass.")
    slice_batch: int = Field(16, ge=1, description="Axial slices per forward pass of a 2-D extractor.")


class SamplingConfig(Section):
    """How the fit sample is drawn: a seeded set of voxels from every crop of the dataset."""

    voxels_per_crop: int = Field(256, ge=1, description="Voxels drawn from each crop.")
    max_points: int = Field(
        2_000_000, ge=1, description="Cap on the sample size; voxels_per_crop shrinks to respect it."
    )
    foreground: bool = Field(False, description="Draw voxels preferentially where the image is bright.")
    foreground_threshold: float = Field(0.05, ge=0.0, le=1.0, description="Foreground = any channel above this.")
    foreground_fraction: float = Field(
        0.9, ge=0.0, le=1.0, description="Share of each crop's voxels drawn from its foreground."
    )


class ClusterConfig(Section):
    """faiss K-means parameters."""

    k: int = Field(10, ge=2, le=65535, description="Number of clusters.")
    niter: int = Field(25, ge=1, description="Lloyd iterations.")
    nredo: int = Field(1, ge=1, description="Restarts; the best objective is kept.")
    spherical: bool = Field(False, description="Cosine K-means: features and centroids L2-normalised.")
    init: Literal["random", "kmeans++"] = Field(
        "kmeans++",
        description="Centroid initialisation: k-means++ or random points (faiss' default, thesis).",
    )
    gpu: bool = Field(False, description="Use faiss-gpu when installed and a GPU is visible (else CPU + warning).")
    max_points_per_centroid: int | None = Field(
        None, ge=1, description="faiss subsampling cap; null = large enough to train on the whole sample."
    )
    standardize: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Z-score each feature channel with the sample's mean/std (auto: extractor default).",
    )
    channel_weights: bool = Field(
        True, description="Scale channels by the extractor's weights after standardising (filterbank)."
    )
    verbose: bool = Field(False, description="Print faiss' iteration log.")
    legacy: bool = Field(
        False,
        description="Fit as the thesis did (spec §8 item 5): only the last batch of features.batch_size pairs "
        "of a seeded shuffle, faiss defaults (random init, 256 points per centroid, one run), raw "
        "features; sampling, init, nredo, spherical, standardize and max_points_per_centroid are not used.",
    )


class KMeansConfig(Section):
    """``radiossl kmeans fit``: sample features across the dataset, fit centroids once."""

    data: KMeansDataConfig = Field(default_factory=KMeansDataConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    kmeans: ClusterConfig = Field(default_factory=ClusterConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    out: Path | None = Field(None, description="Centroids file (.npy); null = <PROC>/kmeans/k<K>_<ext>_<ups>.npy.")
    montage: bool = Field(True, description="Write a PNG montage of inputs and cluster maps.")
    progress: bool = Field(True, description="Report progress (a bar on a terminal, plain lines elsewhere).")


class KMeansPredictConfig(Section):
    """``radiossl kmeans predict``: assign every voxel of every crop to fixed centroids."""

    data: PredictDataConfig = Field(default_factory=PredictDataConfig)
    centroids: Path | None = Field(None, description="Centroids .npy written by `kmeans fit` (its .json beside it).")
    features: FeatureConfig | None = Field(
        None, description="Extractor/upsampler; null = the ones recorded with the centroids."
    )
    tag: str | None = Field(None, description="Target tag; null = k<K>-<extractor>-<upsampler>.")
    overwrite: bool = Field(False, description="Recompute target files that already exist.")
    legacy: bool = Field(
        False,
        description="Predict as the thesis did (spec §8 item 6): per batch of features.batch_size pairs, one "
        "Lloyd update of the centroids on crop 1's features, then both crops assigned to the updated ones.",
    )
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    montage: bool = Field(True, description="Write a PNG montage of inputs and cluster maps.")
    progress: bool = Field(True, description="Report progress (a bar on a terminal, plain lines elsewhere).")


def load_kmeans_config(
    config_class: type[T],
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> T:
    """Resolve a kmeans config: defaults < file < ``--set`` overrides < explicit flags."""
    return load_config_file_into(config_class, file, overrides, flags=flags)
