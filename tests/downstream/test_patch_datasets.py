"""Patch sampling: foreground-aware centres, padding, augmentation, determinism per (seed, epoch, index)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytest

from radiossl.data.datasets import Case
from radiossl.data.loading import CaseArrays
from radiossl.downstream.config import AugmentConfig, SamplingConfig
from radiossl.downstream.datasets import CaseCache, CaseIndexDataset, PatchDataset, augment_patch, cut_patch
from radiossl.downstream.tasks.base import Region, SegmentationTask, TaskConfig
from radiossl.io import Volume


class MemoryConfig(TaskConfig):
    name: Literal["memory"] = "memory"


class MemoryTask(SegmentationTask):
    """Cases held in memory: a 2-channel image and a label with one small blob of label 2."""

    name: ClassVar[str] = "memory"
    config_class: ClassVar[type[TaskConfig]] = MemoryConfig

    def regions(self) -> list[Region]:
        return [Region("any", (1, 2), 1), Region("blob", (2,), 2)]

    def load(self, case: Case) -> CaseArrays:
        index = int(case.case_id[-1])
        shape = (40, 30, 12) if index else (10, 30, 6)  # case 0 is smaller than the patch on two axes
        image = np.stack([np.full(shape, float(index + c), np.float32) for c in range(2)])
        label = np.zeros(shape, np.int16)
        label[-3:, -3:, -2:] = 2
        return CaseArrays(image, label, Volume(label.astype(np.float32), np.eye(4)))


@pytest.fixture
def cache() -> CaseCache:
    cases = [Case(f"case{i}", {"x": Path("unused")}, None) for i in range(3)]
    cache = CaseCache(MemoryTask(MemoryConfig()), cases, seed=0, threads=2)
    cache.preload()
    return cache


def test_cache_keeps_arrays_and_foreground(cache: CaseCache) -> None:
    item = cache.get(1)
    assert item.image.dtype == np.float32 and item.label.dtype == np.int16
    assert [len(points) for points in item.foreground] == [18, 18]
    assert cache.nbytes() > 0 and cache.case_ids == ["case0", "case1", "case2"]


def test_foreground_fraction_one_always_hits_the_blob(cache: CaseCache) -> None:
    no_aug = AugmentConfig(enabled=False)
    always = PatchDataset(cache, (16, 16, 8), SamplingConfig(foreground_fraction=1.0, patches_per_case=4), no_aug)
    never = PatchDataset(cache, (16, 16, 8), SamplingConfig(foreground_fraction=0.0, patches_per_case=4), no_aug)
    assert len(always) == 12
    hits = [always.sample(i)[1][1].any() for i in range(len(always))]
    assert all(hits)
    misses = [never.sample(i)[1][1].any() for i in range(1, len(never), 3)]  # the large case only
    assert not all(misses)


def test_small_volume_is_padded_with_the_channel_minimum(cache: CaseCache) -> None:
    image, label = cut_patch(cache.get(0), [0, 0, 0], (16, 16, 8))
    assert image.shape == (2, 16, 16, 8) and label.shape == (16, 16, 8)
    assert float(image[1, 12, 0, 0]) == 1.0 and int(label[12, 0, 0]) == 0


def test_epochs_and_indices_are_deterministic(cache: CaseCache) -> None:
    data = PatchDataset(cache, (16, 16, 8), SamplingConfig(), AugmentConfig(), seed=3)
    first = data[1]
    again = data[1]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again, strict=True))
    data.set_epoch(1)
    assert first[0].dtype.is_floating_point and first[1].shape == (2, 16, 16, 8)
    changed = any(
        not np.array_equal(
            data[i][0].numpy(),
            PatchDataset(cache, (16, 16, 8), SamplingConfig(), AugmentConfig(), seed=3)[i][0].numpy(),
        )
        for i in range(len(data))
    )
    assert changed
    with pytest.raises(IndexError):
        data[len(data)]


def test_augmentation_flips_image_and_target_together() -> None:
    rng = np.random.default_rng(0)
    image = np.arange(2 * 4 * 3 * 2, dtype=np.float32).reshape(2, 4, 3, 2)
    target = (image[:1] % 5 == 0).astype(np.uint8)
    settings = AugmentConfig(flip_prob=1.0, intensity_prob=0.0)
    flipped, flipped_target = augment_patch(image, target, settings, rng)
    assert np.array_equal(flipped, image[:, ::-1, ::-1, ::-1])
    assert np.array_equal(flipped_target, target[:, ::-1, ::-1, ::-1])
    scaled, _ = augment_patch(image, target, AugmentConfig(flip_prob=0.0, intensity_prob=1.0), rng)
    ratio = scaled[0] - image[0]
    assert not np.allclose(ratio, 0) and np.abs(scaled[0] - image[0]).max() <= 0.1 * image[0].max() + 0.1 + 1e-5


def test_case_index_dataset(cache: CaseCache) -> None:
    indices = CaseIndexDataset(cache, limit=2)
    assert len(indices) == 2 and [int(indices[i]) for i in range(2)] == [0, 1]
