"""Crop-pair sampler of the clustering views (spec §2.3, with the §8 defects fixed).

For each pair: draw two box sizes from the candidate list and two corners, keep the pair when the
boxes' 3-D IoU exceeds the threshold and both boxes pass the rejection rule, otherwise draw again —
in vectorised batches of candidates, for at most ``max_attempts`` candidates, then give up with a
:class:`~.boxes.SamplingError`. The accepted boxes of all pairs are then cut from the volume and
resized to the crop size in a few batched torch calls.

Pair ``i`` of a group draws only from ``rng_for(seed, group_id, i)``, so the result does not depend
on the number of pairs, workers or shards.

Example:
    >>> import numpy as np
    >>> vol = np.random.default_rng(0).random((1, 40, 40, 20), dtype=np.float32)
    >>> settings = PairSettings(sizes=((24, 24, 12), (16, 16, 8)), crop_size=(16, 16, 8))
    >>> result = sample_pairs(vol, "case", seed=1, count=3, settings=settings, thresholds=[0.5])
    >>> tuple(result.crops.shape), result.boxes.shape
    ((3, 2, 1, 16, 16, 8), (3, 2, 6))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from radiossl.data.preprocess.boxes import (
    ForegroundScorer,
    SamplingError,
    acceptable,
    crop_resize,
    draw_boxes,
    iou3d,
)
from radiossl.data.preprocess.thesis_rejection import ThesisBrightRule
from radiossl.utils.seeding import rng_for

Size3 = tuple[int, int, int]
#: Candidates drawn per vectorised round (fixed, so results do not depend on anything else).
CANDIDATES_PER_ROUND = 32


@dataclass(frozen=True)
class PairSettings:
    """Parameters of the pair sampler (resolved from :class:`~.config.PreprocessConfig`)."""

    sizes: tuple[Size3, ...]
    crop_size: Size3
    iou_threshold: float = 0.3
    border: Size3 = (0, 0, 0)
    max_attempts: int = 1000
    max_background: float | None = 0.85
    max_foreground: float | None = None
    look_ahead: int = 0
    z_align: bool = False
    resize_mode: str = "trilinear"
    thesis_bg_max: float | None = None
    """Set: the thesis' bright-voxel rule with this ``--bg_max`` replaces the fraction limits (cluster view)."""


@dataclass(frozen=True)
class PairSamples:
    """``crops`` float32 tensor ``(N, 2, C, *crop_size)`` and ``boxes`` int64 ``(N, 2, 6)``."""

    crops: torch.Tensor
    boxes: np.ndarray


def sample_pair_boxes(
    rng: np.random.Generator,
    shape: Sequence[int],
    settings: PairSettings,
    scorer: ForegroundScorer | None,
    thesis_rule: ThesisBrightRule | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two boxes ``(6,)`` with IoU > threshold that both pass the rejection rule.

    With ``thesis_rule`` the candidates that pass the IoU test are judged in order by the thesis'
    rule (the first it accepts is returned) instead of by the fraction limits.

    Raises:
        SamplingError: no such pair among ``settings.max_attempts`` candidates.
    """
    sizes = np.asarray(settings.sizes, dtype=np.int64)
    attempts = 0
    while attempts < settings.max_attempts:
        count = min(CANDIDATES_PER_ROUND, settings.max_attempts - attempts)
        a = draw_boxes(rng, count, sizes, shape, settings.border)
        b = draw_boxes(rng, count, sizes, shape, settings.border)
        if settings.z_align:
            depth = b[:, 5] - b[:, 4]
            b[:, 4] = np.minimum(a[:, 4], int(shape[2]) - depth)
            b[:, 5] = b[:, 4] + depth
        ok = iou3d(a, b) > settings.iou_threshold
        if scorer is not None and ok.any():
            ok &= acceptable(scorer.fractions(a), settings.max_background, settings.max_foreground)
            ok &= acceptable(scorer.fractions(b), settings.max_background, settings.max_foreground)
        hits = np.flatnonzero(ok)
        if thesis_rule is not None:
            hits = np.asarray([i for i in hits if thesis_rule.accepts(a[i], b[i])][:1], dtype=np.int64)
        if hits.size:
            return a[hits[0]], b[hits[0]]
        attempts += count
    limits = (
        f"thesis rule, thesis_bg_max={settings.thesis_bg_max}"
        if settings.thesis_bg_max is not None
        else f"max_background={settings.max_background}, max_foreground={settings.max_foreground}"
    )
    raise SamplingError(
        f"no crop pair with IoU > {settings.iou_threshold} passing the rejection rule ({limits}) "
        f"in {settings.max_attempts} attempts on a volume of shape {tuple(int(n) for n in shape)}"
    )


def uses_scorer(settings: PairSettings) -> bool:
    """Whether the rejection rule needs foreground fractions at all."""
    if settings.thesis_bg_max is not None:
        return False
    return settings.max_background is not None or settings.max_foreground is not None


def sample_pairs(
    volume: np.ndarray,
    group_id: str,
    seed: int,
    count: int,
    settings: PairSettings,
    thresholds: Sequence[float],
    scorer: ForegroundScorer | None = None,
    dtype: torch.dtype = torch.float32,
) -> PairSamples:
    """``count`` crop pairs from ``volume`` ``(C, X, Y, Z)`` (already padded as needed).

    ``thresholds`` are the per-channel foreground thresholds (unused when a ``scorer`` is given or
    the rule is off); ``dtype`` is the type of the returned crops.
    """
    if scorer is None and uses_scorer(settings):
        scorer = ForegroundScorer(volume, thresholds, settings.look_ahead)
    thesis_rule = None
    if settings.thesis_bg_max is not None:
        thesis_rule = ThesisBrightRule(
            volume, thresholds, settings.crop_size, settings.thesis_bg_max, settings.resize_mode
        )
    boxes = np.empty((count, 2, 6), dtype=np.int64)
    for index in range(count):
        rng = rng_for(seed, group_id, index)
        boxes[index, 0], boxes[index, 1] = sample_pair_boxes(rng, volume.shape[1:], settings, scorer, thesis_rule)
    crops = crop_resize(volume, boxes.reshape(-1, 6), settings.crop_size, settings.resize_mode, dtype)
    return PairSamples(crops.reshape(count, 2, *crops.shape[1:]), boxes)
