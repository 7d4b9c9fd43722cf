"""PCRLv2 views: a global crop pair (resized to 64 x 64 x 32) plus local crops (16³) per pair.

Spec §2.4 / baselines B3. The global pair is drawn exactly like the clustering pairs (with the
PCRLv2 candidate sizes and borders). Then ``local_count`` local boxes are drawn from the same random
stream: a corner uniform in ``[max(lo - margin, 0), min(hi + margin, dim) - 1]`` per axis, where
``[lo, hi)`` is the union of the two global boxes, and a size from the local size list; a local box is
cut off at the volume border and resized to ``local_size``. Unlike the original, MRI is normalised as
the dataset says, not pushed through a CT window (§8 item 11).

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

import numpy as np
import torch

from radiossl.data.preprocess.boxes import ForegroundScorer, crop_resize
from radiossl.data.preprocess.cluster_pairs import PairSettings, sample_pair_boxes, uses_scorer
from radiossl.utils.seeding import rng_for

Size3 = tuple[int, int, int]


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
