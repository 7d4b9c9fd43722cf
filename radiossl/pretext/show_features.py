"""``radiossl checkpoint show-features``: a picture of what an encoder's features separate.

The encoder's features of one volume (``encode(x)[stage]``, the bottleneck by default, through the
backbone interface, so any backbone works) are reduced to their first three principal components
(PCA over the feature cells), mapped to red, green and blue, and upsampled trilinearly to the input.
Each of three orthogonal central slices (one row each) shows the input beside that colour map and,
for a method that assigns clusters (:meth:`radiossl.pretext.base.PretextMethod.cluster_scores`), the
argmax cluster map. Similar colours mean similar features; a uniform colour means the encoder does
not tell those voxels apart.

The volume is the first training sample of a preprocessed folder or the first case (``case``) of a
raw dataset (any registered dataset layout; ``dataset`` names it, else the first layout that lists
cases there; each channel normalised as preprocessing does by default: the CT window, or min-max for
MRI; not resampled), then centre-cropped to a multiple of the backbone's total stride
(at most ``max_size`` voxels per axis).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radiossl.errors import ConfigError, DataError
from radiossl.utils.figures import (
    Figure,
    Panel,
    Row,
    cluster_legend,
    colorize_labels,
    figure_title,
    save_figure,
    to_rgb_uint8,
)

PLANES = (("axial", 2), ("coronal", 1), ("sagittal", 0))
"""Row title and the axis each slice is taken across (the array is indexed x, y, z)."""


@dataclass(frozen=True)
class FeatureVolume:
    """The input volume ``(C, X, Y, Z)`` float32 and where it came from."""

    array: np.ndarray
    case: str
    source: Path


@dataclass(frozen=True)
class FeatureMaps:
    """What :func:`show_features` draws: the input, its PCA colours ``(X, Y, Z, 3)`` uint8, clusters ``(X, Y, Z)``."""

    volume: np.ndarray
    colours: np.ndarray
    clusters: np.ndarray | None
    k: int
    explained: tuple[float, ...]


def load_volume(data: Path, case: str | None = None, dataset: str | None = None) -> FeatureVolume:
    """The volume to show: a preprocessed folder's first training sample or a raw dataset's case ``case``."""
    from radiossl.data.processed import has_preprocess_record

    data = Path(data)
    if not data.is_dir():
        raise DataError(f"{data}: no such folder (give a raw dataset or a preprocessed folder)")
    if has_preprocess_record(data):
        return _processed_sample(data, case)
    return _raw_case(data, case, dataset)


def _processed_sample(root: Path, case: str | None) -> FeatureVolume:
    from radiossl.data.processed import ProcessedDataset

    processed = ProcessedDataset.open(root)
    records = processed.records("train") or processed.records(None)
    if case is not None:
        records = [r for r in records if case in (r.case_id, r.sample_id)]
    if not records:
        raise DataError(f"{root}: no sample" + (f" of case {case!r}" if case else ""))
    record = records[0]
    array = processed.load_crops(record)
    while array.ndim > 4:  # pairs, local crops...: the first crop
        array = array[0]
    if array.ndim == 3:
        array = array[None]
    return FeatureVolume(np.ascontiguousarray(array, dtype=np.float32), record.case_id, root)


def _raw_case(root: Path, case: str | None, dataset: str | None) -> FeatureVolume:
    from radiossl import registry
    from radiossl.data.datasets.base import GROUP, get_adapter
    from radiossl.data.normalise import default_intensity, normalise
    from radiossl.errors import RadiosslError
    from radiossl.io import read_image

    names = [dataset] if dataset else registry.names(GROUP)
    cases: list[Any] = []
    adapter: Any = None
    for name in names:
        try:
            adapter = get_adapter(name)
            cases = adapter.list_cases(root)
        except RadiosslError:
            if dataset:
                raise
            continue
        if cases:
            break
    if not cases:
        raise DataError(f"{root}: neither a preprocessed folder (no preprocess.json) nor a raw dataset radiossl reads")
    chosen = [c for c in cases if case is None or c.case_id == case]
    if not chosen:
        raise DataError(f"{root}: no case {case!r} (first cases: {', '.join(c.case_id for c in cases[:5])})")
    picked = chosen[0]
    modalities = adapter.channel_modalities(root)
    channels = []
    for channel, path in picked.images.items():
        image = read_image(path, np.float32).array
        intensity = default_intensity(modalities.get(channel, adapter.modality))
        channels.append(normalise(image, intensity))
    return FeatureVolume(np.stack(channels).astype(np.float32), picked.case_id, root)


def fit_to_stride(array: np.ndarray, stride: tuple[int, int, int], max_size: int) -> np.ndarray:
    """Centre-crop (or zero-pad) ``(C, X, Y, Z)`` so every axis is a multiple of ``stride``, at most ``max_size``."""
    out = array
    for axis, step in enumerate(stride, start=1):
        size = out.shape[axis]
        limit = max(step, (max_size // step) * step)
        target = min(limit, max(step, (size // step) * step))
        if size < target:
            pad = [(0, 0)] * out.ndim
            pad[axis] = ((target - size) // 2, target - size - (target - size) // 2)
            out = np.pad(out, pad)
        else:
            start = (size - target) // 2
            out = np.take(out, range(start, start + target), axis=axis)
    return np.ascontiguousarray(out)


def pca_colours(features: torch.Tensor, size: tuple[int, int, int]) -> tuple[np.ndarray, tuple[float, ...]]:
    """``(X, Y, Z, 3)`` uint8: the first three principal components of ``[C, x, y, z]`` features, upsampled.

    The components are fitted on the feature cells and then upsampled (projection and trilinear
    interpolation commute); each is stretched between its 1st and 99th percentile. Also returns the
    fraction of the variance each component explains.
    """
    channels = features.shape[0]
    cells = features.reshape(channels, -1).T.double()
    centred = cells - cells.mean(dim=0, keepdim=True)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:3]
    variance = singular.pow(2)
    explained = tuple(float(v) for v in (variance[:3] / variance.sum().clamp_min(1e-12)))
    projected = (centred @ components.T).float()
    if projected.shape[1] < 3:
        projected = F.pad(projected, (0, 3 - projected.shape[1]))
    grid = projected.T.reshape(1, 3, *features.shape[1:])
    upsampled = F.interpolate(grid, size=size, mode="trilinear", align_corners=False)[0]
    rgb = np.empty((*size, 3), dtype=np.uint8)
    for index in range(3):
        values = upsampled[index].numpy()
        low, high = np.percentile(values, [1.0, 99.0])
        scaled = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
        rgb[..., index] = np.round(scaled * 255).astype(np.uint8)
    return rgb, explained


def compute_maps(model: torch.nn.Module, volume: np.ndarray, stage: int, method: Any = None) -> FeatureMaps:
    """PCA colours of encoder stage ``stage`` (index into ``encode``'s list) and the cluster map, if any."""
    from radiossl.models.factory import unwrap_model

    net: Any = unwrap_model(model)
    if not callable(getattr(net, "encode", None)):
        raise ConfigError(f"{type(net).__name__} has no encoder (backbone interface encode()) to show")
    x = torch.from_numpy(volume)[None]
    size = (int(volume.shape[1]), int(volume.shape[2]), int(volume.shape[3]))
    net.eval()
    with torch.no_grad():
        stages = net.encode(x)
        if not -len(stages) <= stage < len(stages):
            raise ConfigError(f"--stage {stage}: the encoder has {len(stages)} stages (0..{len(stages) - 1}, or -1)")
        colours, explained = pca_colours(stages[stage][0].float(), size)
        scores = method.cluster_scores(net, x) if method is not None else None
    clusters, k = None, 0
    if scores is not None:
        k = int(scores.shape[1])
        upsampled = F.interpolate(scores.float(), size=size, mode="nearest")
        clusters = upsampled[0].argmax(dim=0).numpy()
    return FeatureMaps(volume, colours, clusters, k, explained)


def _slice(array: np.ndarray, axis: int) -> np.ndarray:
    return np.take(array, array.shape[axis] // 2, axis=axis)


def feature_figure(maps: FeatureMaps, title: str, stage_label: str) -> Figure:
    """Three rows (axial, coronal, sagittal central slices): input, PCA colours, clusters."""
    rows = []
    variance = ", ".join(f"{100 * v:.0f}%" for v in maps.explained)
    for plane, axis in PLANES:
        panels = [
            Panel("input", to_rgb_uint8(_slice(maps.volume[0], axis))),
            Panel(f"{stage_label} PCA ({variance})", _slice(maps.colours, axis)),
        ]
        if maps.clusters is not None:
            panels.append(Panel("argmax cluster", colorize_labels(_slice(maps.clusters, axis), maps.k), exact=True))
        rows.append(Row(plane, panels))
    legend = cluster_legend(maps.k) if maps.clusters is not None and maps.k <= 64 else []
    return Figure(title, rows, legend, "clusters" if legend else "")


@dataclass(frozen=True)
class ShowFeaturesResult:
    """What :func:`show_features` wrote and showed."""

    out: Path
    case: str
    stage: int
    stages: int
    clusters: int


def show_features(
    checkpoint: Path,
    data: Path,
    out: Path,
    case: str | None = None,
    dataset: str | None = None,
    stage: int = -1,
    max_size: int = 128,
) -> ShowFeaturesResult:
    """Draw the feature picture of ``checkpoint`` for one volume of ``data`` into the PNG ``out``.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable or describes no network.
        DataError: ``data`` holds no volume radiossl reads (or no case ``case``).
        ConfigError: ``stage`` is out of range or the network has no encoder.
    """
    from radiossl.models.backbone import total_stride
    from radiossl.models.checkpoint import read_checkpoint
    from radiossl.models.factory import unwrap_model
    from radiossl.models.loading import model_from_checkpoint

    raw = read_checkpoint(checkpoint)
    model, _ = model_from_checkpoint(raw)
    volume = load_volume(data, case, dataset)
    net: Any = unwrap_model(model)
    stem = net.state_dict().get(getattr(net, "stem_key", ""))
    in_channels = int(stem.shape[1]) if stem is not None else volume.array.shape[0]
    array = volume.array
    if array.shape[0] != in_channels:
        if array.shape[0] < in_channels:
            raise DataError(
                f"{volume.source}: case {volume.case} has {array.shape[0]} channels, the network takes {in_channels}"
            )
        array = array[:in_channels]
    stride = total_stride(net) if hasattr(net, "stage_strides") else (1, 1, 1)
    array = fit_to_stride(array, stride, max_size)
    maps = compute_maps(model, array, stage, _method_of(raw))
    stages = len(net.stage_channels) if hasattr(net, "stage_channels") else 0
    index = stage % stages if stages else stage
    label = "bottleneck" if stages and index == stages - 1 else f"stage {index}"
    title = figure_title(f"{Path(checkpoint).name} features", case=volume.case)
    save_figure(out, feature_figure(maps, title, label))
    return ShowFeaturesResult(Path(out), volume.case, index, stages, maps.k)


def _method_of(raw: Any) -> Any:
    """The pretext method class that trained a radiossl pretraining checkpoint (None otherwise or if unknown)."""
    from radiossl.errors import PluginError
    from radiossl.pretext.base import get_method

    meta = raw.meta
    if meta.get("kind") != "pretrain" or not isinstance(meta.get("name"), str):
        return None
    try:
        return get_method(meta["name"])
    except PluginError:
        return None
