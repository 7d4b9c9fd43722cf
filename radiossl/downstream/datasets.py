"""Torch datasets for finetuning: cached cases, random training patches, validation case indices.

* :class:`CaseCache` loads each case once (image float32 ``(C, X, Y, Z)``, label int16
  ``(X, Y, Z)``), keeps it in memory, and remembers where each region's foreground voxels are.
  Fill it in the main process (:meth:`CaseCache.preload`) before the DataLoader starts its workers,
  so that forked workers share the arrays instead of loading them again. A case that cannot be
  used (unreadable file, label values outside the task's label set, duplicate case id, ...) is
  left out by :meth:`CaseCache.preload` and listed in :attr:`CaseCache.left_out` with its error.
* :class:`PatchDataset` cuts ``crop_size`` patches: with probability ``foreground_fraction`` centred
  on a foreground voxel of a region chosen uniformly among the regions present in the case (so that
  small regions such as enhancing tumour are seen), otherwise anywhere. Volumes smaller than the
  patch are padded with each channel's minimum (label 0). Then random flips per axis and a light
  per-channel intensity scale/shift (and optional noise). Item = :class:`Patch`
  ``(image, target, index)`` with image float32 ``(C, *crop)``, target uint8 region masks
  ``(R, *crop)`` and the patch index (:meth:`PatchDataset.case_id` names its case).
* :class:`CaseIndexDataset` yields case indices; validation runs sliding-window inference on the
  cached whole volumes in the task, so no volume of varying size goes through a collate function.

Randomness comes from :func:`radiossl.utils.seeding.rng_for` keyed by seed, epoch and item index
(call :meth:`PatchDataset.set_epoch`), so it does not depend on the number of workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from radiossl.errors import DataError, RadiosslError
from radiossl.utils.seeding import rng_for

if TYPE_CHECKING:
    from radiossl.data.datasets import Case
    from radiossl.downstream.config import AugmentConfig, SamplingConfig
    from radiossl.downstream.tasks.base import SegmentationTask
    from radiossl.io import Volume

log = logging.getLogger(__name__)

MAX_FOREGROUND_POINTS = 10_000
"""Foreground voxel positions kept per case and region for patch sampling (a seeded subsample)."""


@dataclass
class CachedCase:
    """One case held in memory."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    foreground: list[np.ndarray]
    """Per region: int32 ``(N, 3)`` positions of (a subsample of) its voxels; empty when absent."""
    reference: Volume
    channel_min: np.ndarray


@dataclass(frozen=True)
class LeftOutCase:
    """A case :meth:`CaseCache.preload` could not load, and why."""

    case_id: str
    error: str


class CaseCache:
    """Cases of one split loaded once through the task (see the module docstring).

    Args:
        task: the segmentation task (loading, normalisation, regions).
        cases: the cases, in dataset order.
        seed: seeds the foreground subsample.
        threads: cases loaded in parallel by :meth:`preload`.
    """

    def __init__(self, task: SegmentationTask, cases: Sequence[Case], seed: int = 0, threads: int = 1) -> None:
        self.task = task
        self.cases = list(cases)
        self.seed = seed
        self.threads = max(1, threads)
        self._items: dict[int, CachedCase] = {}
        self.left_out: list[LeftOutCase] = []

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def case_ids(self) -> list[str]:
        """Ids of the cases, in order."""
        return [case.case_id for case in self.cases]

    def _load(self, index: int) -> CachedCase:
        case = self.cases[index]
        arrays = self.task.load(case)
        if arrays.label is None:
            raise DataError(f"case {case.case_id}: has no label file, cannot be used for finetuning")
        image = np.ascontiguousarray(arrays.image, dtype=np.float32)
        label = np.ascontiguousarray(arrays.label, dtype=np.int16)
        if image.shape[1:] != label.shape:
            raise DataError(f"case {case.case_id}: image grid {image.shape[1:]} differs from label grid {label.shape}")
        targets = self.task.region_targets(label)
        rng = rng_for(self.seed, "foreground", case.case_id)
        foreground = []
        for mask in targets:
            points = np.argwhere(mask).astype(np.int32)
            if len(points) > MAX_FOREGROUND_POINTS:
                points = points[np.sort(rng.choice(len(points), MAX_FOREGROUND_POINTS, replace=False))]
            foreground.append(points)
        channel_min = image.reshape(image.shape[0], -1).min(axis=1)
        return CachedCase(case.case_id, image, label, foreground, arrays.reference, channel_min)

    def get(self, index: int) -> CachedCase:
        """The cached case ``index`` (loaded on first access)."""
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = self._load(index)
        return item

    def _try_load(self, index: int) -> CachedCase | LeftOutCase:
        try:
            return self._load(index)
        except RadiosslError as exc:
            return LeftOutCase(self.cases[index].case_id, str(exc))

    def preload(self) -> None:
        """Load every case now (in ``threads`` threads); leave out the cases that fail.

        A case that raises a :class:`~radiossl.errors.RadiosslError` while loading is removed from
        the cache (indices shift to the remaining cases) and appended to :attr:`left_out`.
        """
        missing = [i for i in range(len(self.cases)) if i not in self._items]
        if not missing:
            return
        if self.threads == 1 or len(missing) == 1:
            loaded = [self._try_load(index) for index in missing]
        else:
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                loaded = list(pool.map(self._try_load, missing))
        for index, item in zip(missing, loaded, strict=True):
            if isinstance(item, CachedCase):
                self._items[index] = item
            else:
                self.left_out.append(item)
        if len(self._items) < len(self.cases):
            kept = sorted(self._items)
            self.cases = [self.cases[i] for i in kept]
            self._items = {new: self._items[old] for new, old in enumerate(kept)}

    def nbytes(self) -> int:
        """Memory held by the loaded arrays."""
        return sum(item.image.nbytes + item.label.nbytes for item in self._items.values())


def patch_start(
    shape: Sequence[int],
    crop: Sequence[int],
    rng: np.random.Generator,
    centre: Sequence[int] | None = None,
) -> list[int]:
    """Start corner of a ``crop`` inside ``shape``: random, or around ``centre`` (kept inside the volume).

    Axes shorter than the crop start at 0 (the patch is padded).
    """
    starts = []
    for axis, (size, window) in enumerate(zip(shape, crop, strict=True)):
        room = size - window
        if room <= 0:
            starts.append(0)
        elif centre is None:
            starts.append(int(rng.integers(0, room + 1)))
        else:
            starts.append(int(np.clip(int(centre[axis]) - window // 2, 0, room)))
    return starts


def cut_patch(item: CachedCase, start: Sequence[int], crop: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Image ``(C, *crop)`` and label ``(*crop)`` at ``start``, padded where the volume is smaller."""
    box = tuple(slice(s, s + c) for s, c in zip(start, crop, strict=True))
    image = item.image[(slice(None), *box)]
    label = item.label[box]
    if image.shape[1:] == tuple(crop):
        return image.copy(), label.copy()
    padded = np.empty((image.shape[0], *crop), dtype=np.float32)
    padded[:] = item.channel_min.reshape(-1, 1, 1, 1)
    padded_label = np.zeros(tuple(crop), dtype=np.int16)
    inner = tuple(slice(0, n) for n in label.shape)
    padded[(slice(None), *inner)] = image
    padded_label[inner] = label
    return padded, padded_label


def augment_patch(
    image: np.ndarray, target: np.ndarray, settings: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips (image and target alike) and per-channel intensity scale/shift/noise (image only)."""
    if not settings.enabled:
        return image, target
    for axis in range(1, image.ndim):
        if rng.random() < settings.flip_prob:
            image = np.flip(image, axis)
            target = np.flip(target, axis)
    image = np.array(image, dtype=np.float32, order="C")  # a copy: the caller's array is left alone
    target = np.ascontiguousarray(target)
    for channel in range(image.shape[0]):
        if rng.random() < settings.intensity_prob:
            scale = rng.uniform(1.0 - settings.intensity_scale, 1.0 + settings.intensity_scale)
            shift = rng.uniform(-settings.intensity_shift, settings.intensity_shift)
            image[channel] = image[channel] * np.float32(scale) + np.float32(shift)
    if settings.noise_std > 0 and rng.random() < settings.intensity_prob:
        image += rng.normal(0.0, settings.noise_std, size=image.shape).astype(np.float32)
    return image, target


class Patch(NamedTuple):
    """A training patch: image ``(C, X, Y, Z)``, region targets ``(R, X, Y, Z)`` and the patch index."""

    image: torch.Tensor
    target: torch.Tensor
    index: torch.Tensor  # type: ignore[assignment]  # the field name shadows tuple.index, as in the view datasets


class PatchDataset(Dataset[Patch]):
    """Random training patches from a :class:`CaseCache` (see the module docstring)."""

    def __init__(
        self,
        cache: CaseCache,
        crop_size: Sequence[int],
        sampling: SamplingConfig,
        augment: AugmentConfig,
        seed: int = 0,
    ) -> None:
        if len(cache) == 0:
            raise DataError("no training cases (check the split and data.ratio)")
        self.cache = cache
        self.crop = tuple(int(c) for c in crop_size)
        self.sampling = sampling
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the patches of ``epoch`` (called by the engine at the start of each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cache) * self.sampling.patches_per_case

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image and region-target patch ``index`` of the current epoch, as NumPy arrays."""
        if not 0 <= index < len(self):
            raise IndexError(f"patch index {index} out of range for {len(self)} patches")
        item = self.cache.get(index % len(self.cache))
        rng = rng_for(self.seed, "patch", self.epoch, index)
        present = [points for points in item.foreground if len(points)]
        centre = None
        if present and rng.random() < self.sampling.foreground_fraction:
            points = present[int(rng.integers(len(present)))]
            centre = points[int(rng.integers(len(points)))]
        start = patch_start(item.label.shape, self.crop, rng, centre)
        image, label = cut_patch(item, start, self.crop)
        image = self.cache.task.normalise_crop(image)
        target = self.cache.task.region_targets(label)
        return augment_patch(image, target, self.augment, rng)

    def case_id(self, index: int) -> str:
        """The case patch ``index`` is cut from."""
        if not 0 <= index < len(self):
            raise IndexError(f"patch index {index} out of range for {len(self)} patches")
        return self.cache.cases[index % len(self.cache)].case_id

    def __getitem__(self, index: int) -> Patch:
        image, target = self.sample(index)
        return Patch(torch.from_numpy(image), torch.from_numpy(target), torch.tensor(index, dtype=torch.int64))


class CaseIndexDataset(Dataset[torch.Tensor]):
    """Yields case indices ``0 .. n-1`` (int64 scalars) of a :class:`CaseCache`."""

    def __init__(self, cache: CaseCache, limit: int | None = None) -> None:
        self.cache = cache
        self.count = len(cache) if limit is None else min(limit, len(cache))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.count:
            raise IndexError(f"case index {index} out of range for {self.count} cases")
        return torch.tensor(index, dtype=torch.int64)
