"""The ``pcrlv2`` view: a global crop pair (resized to 64 x 64 x 32) plus local crops (16³) per pair.

Spec §2.4 / baselines B3. Defaults: candidate sizes (96,96,64) (96,96,96) (112,112,64) (64,64,32)
(with ``pcrlv2.z_align`` their 32-slice variants), border 70, 70, 15, 1 mm spacing, 16 pairs per
volume; the view's own settings are the ``pcrlv2`` section (:class:`PCRLv2Options`).

The global pair is drawn exactly like the clustering pairs (with the PCRLv2 candidate sizes and
borders). Then ``local_count`` local boxes are drawn from the same random stream: a corner uniform
in ``[max(lo - margin, 0), min(hi + margin, dim) - 1]`` per axis, where ``[lo, hi)`` is the union of
the two global boxes, and a size from the local size list; a local box is cut off at the volume
border and resized to ``local_size``. Unlike the original, MRI is normalised as the dataset says,
not pushed through a CT window (§8 item 11).

Example:
    >>> import numpy as np
    >>> vol = np.random.default_rng(0).random((1, 48, 48, 24), dtype=np.float32)
    >>> settings = PairSettings(sizes=((32, 32, 16),), crop_size=(16, 16, 8))
    >>> local = LocalSettings(count=2, size=(8, 8, 8), sizes=((8, 8, 8), (16, 16, 16)))
    >>> out = sample_pcrlv2(vol, "c", 1, 2, settings, local, thresholds=[0.5])
    >>> tuple(out.globals.shape), tuple(out.locals.shape), out.local_boxes.shape
    ((2, 2, 1, 16, 16, 8), (2, 2, 1, 8, 8, 8), (2, 2, 6))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from radiossl.config import Section
from radiossl.data.preprocess.boxes import ForegroundScorer, crop_resize
from radiossl.utils.seeding import rng_for
from radiossl.views.base import View, ViewDataset, ViewDefaults, ViewSamples, box_tensor
from radiossl.views.cluster import PairSettings, pair_settings, sample_pair_boxes, uses_scorer

if TYPE_CHECKING:
    from radiossl.data.view_contract import Plan

Size3 = tuple[int, int, int]
LOCALS_SUFFIX = ".local"
"""Local crops of group ``G`` are stored in ``arrays/G.local.npy``."""


class PCRLv2Options(Section):
    """Local crops of the PCRLv2 view."""

    local_count: int = Field(default=6, ge=1, description="Local crops per pair.")
    local_size: Size3 = Field(default=(16, 16, 16), description="Output size of each local crop.")
    local_sizes: list[Size3] = Field(
        default_factory=lambda: [(32, 32, 16), (16, 16, 16), (32, 32, 32), (8, 8, 8)],
        description="Candidate local crop sizes.",
    )
    local_margin: int = Field(default=3, ge=0, description="Margin around the union of the two global boxes.")
    z_align: bool = Field(default=False, description="Crop 2 reuses crop 1's z start (PCRLv2's z-aligned variant).")


@dataclass(frozen=True)
class LocalSettings:
    """Local crops: how many per pair, their output size, candidate sizes and margin."""

    count: int = 6
    size: Size3 = (16, 16, 16)
    sizes: tuple[Size3, ...] = ((32, 32, 16), (16, 16, 16), (32, 32, 32), (8, 8, 8))
    margin: int = 3


@dataclass(frozen=True)
class PCRLv2Samples:
    """``globals`` ``(N, 2, C, *crop)``, ``locals`` ``(N, L, C, *local)`` and their boxes."""

    globals: torch.Tensor
    locals: torch.Tensor
    boxes: np.ndarray
    local_boxes: np.ndarray


def draw_local_boxes(
    rng: np.random.Generator, a: np.ndarray, b: np.ndarray, shape: Sequence[int], local: LocalSettings
) -> np.ndarray:
    """``local.count`` local boxes around the union of the global boxes ``a`` and ``b``."""
    dims = np.asarray(shape, dtype=np.int64)
    low = np.maximum(np.minimum(a[0::2], b[0::2]) - local.margin, 0)
    high = np.minimum(np.maximum(a[1::2], b[1::2]) + local.margin, dims)
    start = rng.integers(low, np.maximum(high, low + 1), size=(local.count, 3))
    size = np.asarray(local.sizes, dtype=np.int64)[rng.integers(0, len(local.sizes), size=local.count)]
    boxes = np.empty((local.count, 6), dtype=np.int64)
    boxes[:, 0::2] = start
    boxes[:, 1::2] = np.minimum(start + size, dims)
    return boxes


def sample_pcrlv2(
    volume: np.ndarray,
    group_id: str,
    seed: int,
    count: int,
    settings: PairSettings,
    local: LocalSettings,
    thresholds: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> PCRLv2Samples:
    """``count`` PCRLv2 samples from ``volume`` ``(C, X, Y, Z)``.

    Sample ``i`` draws from ``rng_for(seed, group_id, i)``.
    """
    scorer = ForegroundScorer(volume, thresholds, settings.look_ahead) if uses_scorer(settings) else None
    shape = volume.shape[1:]
    boxes = np.empty((count, 2, 6), dtype=np.int64)
    local_boxes = np.empty((count, local.count, 6), dtype=np.int64)
    for index in range(count):
        rng = rng_for(seed, group_id, index)
        a, b = sample_pair_boxes(rng, shape, settings, scorer)
        boxes[index, 0], boxes[index, 1] = a, b
        local_boxes[index] = draw_local_boxes(rng, a, b, shape, local)
    globals_ = crop_resize(volume, boxes.reshape(-1, 6), settings.crop_size, settings.resize_mode, dtype)
    locals_ = crop_resize(volume, local_boxes.reshape(-1, 6), local.size, settings.resize_mode, dtype)
    return PCRLv2Samples(
        globals_.reshape(count, 2, *globals_.shape[1:]),
        locals_.reshape(count, local.count, *locals_.shape[1:]),
        boxes,
        local_boxes,
    )


# --------------------------------------------------------------------------------------------------
# Training dataset


class PCRLv2Sample(NamedTuple):
    """Global crops ``(C, 64, 64, 32)``, local crops ``(L, C, 16, 16, 16)``, boxes ``(6,)``."""

    global1: Tensor
    global2: Tensor
    locals: Tensor
    box1: Tensor
    box2: Tensor
    index: Tensor  # type: ignore[assignment]  # the contract's field name shadows tuple.index


class PCRLv2ViewDataset(ViewDataset[PCRLv2Sample]):
    """Global pairs and local crops of the PCRLv2 view."""

    views = ("pcrlv2",)

    def __getitem__(self, index: int) -> PCRLv2Sample:
        record = self.records[index]
        pair = torch.from_numpy(self.data.load_pair(record))
        local = torch.from_numpy(self.data.load_crops(record, LOCALS_SUFFIX))
        sample = PCRLv2Sample(
            pair[0],
            pair[1],
            local,
            box_tensor(record.box1),
            box_tensor(record.box2),
            torch.tensor(index, dtype=torch.int64),
        )
        return self._finish(sample, index)


# --------------------------------------------------------------------------------------------------
# The view

_Z_ALIGNED_SIZES: tuple[Size3, ...] = ((96, 96, 32), (96, 96, 32), (112, 112, 32), (64, 64, 32))


class PCRLv2View(View):
    """PCRLv2's global crop pair plus local crops around it."""

    name = "pcrlv2"
    summary = "Global crop pairs plus local crops (PCRLv2)."
    options_class = PCRLv2Options
    defaults = ViewDefaults(((96, 96, 64), (96, 96, 96), (112, 112, 64), (64, 64, 32)), (70, 70, 15), False, 16)
    crop_pairs = True
    dataset_class = PCRLv2ViewDataset
    options: PCRLv2Options

    def candidate_sizes(self, crop_size: Size3) -> tuple[Size3, ...]:
        return _Z_ALIGNED_SIZES if self.options.z_align else super().candidate_sizes(crop_size)

    def sample(
        self, volume: np.ndarray, group_id: str, plan: Plan, thresholds: Sequence[float], dtype: torch.dtype
    ) -> ViewSamples:
        o = self.options
        local = LocalSettings(o.local_count, o.local_size, tuple(o.local_sizes), o.local_margin)
        settings = pair_settings(plan, z_align=o.z_align)
        views = sample_pcrlv2(volume, group_id, plan.seed, plan.pairs, settings, local, thresholds, dtype)
        return ViewSamples(views.globals, views.boxes, extra_crops={LOCALS_SUFFIX: views.locals})
