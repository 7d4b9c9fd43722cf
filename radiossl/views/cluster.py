"""The ``cluster`` view: overlapping crop pairs for patch- and pixel-level clustering (spec §2.3).

Defaults: candidate box sizes (160,160,32) (192,192,32) (128,128,32) resized to the crop size, no
border, 1 mm spacing, 16 pairs per volume, and for CT an extra in-plane zoom of 0.75 (the thesis').

Sampler (with the §8 defects fixed). For each pair: draw two box sizes from the candidate list and
two corners, keep the pair when the boxes' 3-D IoU exceeds the threshold and both boxes pass the
rejection rule, otherwise draw again — in vectorised batches of candidates, for at most
``max_attempts`` candidates, then give up with a
:class:`~radiossl.data.preprocess.boxes.SamplingError`. The accepted boxes of all pairs are then cut
from the volume and resized to the crop size in a few batched torch calls.

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from radiossl.data.preprocess.boxes import (
    ForegroundScorer,
    SamplingError,
    acceptable,
    crop_resize,
    draw_boxes,
    iou3d,
)
from radiossl.data.preprocess.thesis_rejection import ThesisBrightRule
from radiossl.errors import DataError
from radiossl.utils.seeding import rng_for
from radiossl.views.base import View, ViewDataset, ViewDefaults, ViewSamples, box_tensor, is_crop_pair_view

if TYPE_CHECKING:
    from radiossl.data.view_contract import Plan

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


def pair_settings(plan: Plan, z_align: bool = False, thesis_rule: bool = False) -> PairSettings:
    """The pair sampler's settings of a resolved preprocessing plan (``thesis_rule``: the view accepts
    ``rejection.rule: thesis``)."""
    rule = plan.rejection
    return PairSettings(
        sizes=plan.candidate_sizes,
        crop_size=plan.crop_size,
        iou_threshold=plan.iou_threshold,
        border=plan.border,
        max_attempts=plan.max_attempts,
        max_background=rule.max_background,
        max_foreground=rule.max_foreground,
        look_ahead=rule.look_ahead,
        z_align=z_align,
        resize_mode=plan.resize_mode,
        thesis_bg_max=rule.thesis_bg_max if thesis_rule and rule.rule == "thesis" else None,
    )


# --------------------------------------------------------------------------------------------------
# Training dataset

_NO_TARGET = torch.zeros(0, dtype=torch.int64)


class PairSample(NamedTuple):
    """Two crops ``(C, H, W, D)``, their boxes ``(6,)``, cluster-id targets ``(H, W, D)`` or ``(0,)``."""

    view1: Tensor
    view2: Tensor
    box1: Tensor
    box2: Tensor
    target1: Tensor
    target2: Tensor
    index: Tensor  # type: ignore[assignment]  # the contract's field name shadows tuple.index


class ClusterPairDataset(ViewDataset[PairSample]):
    """Crop pairs of any view that stores them (``cluster``, the global pairs of ``pcrlv2``, plugins).

    ``targets`` names the cluster-id targets (a tag written by ``kmeans predict``); every sample
    must have them. ``ratio`` keeps a seeded, nested subset of the cases.

    Example::

        from torch.utils.data import DataLoader
        data = ClusterPairDataset("proc", split="train", targets="k10-filterbank-bilinear")
        batch = next(iter(DataLoader(data, batch_size=4)))
        batch.view1.shape   # (4, C, H, W, D)
    """

    views = ("cluster",)

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        targets: str | None = None,
        transform: Callable[[PairSample, np.random.Generator], PairSample] | None = None,
        seed: int = 0,
        ratio: float = 1.0,
    ) -> None:
        super().__init__(root, split, transform, seed, ratio)
        if targets is not None:
            missing = [r.sample_id for r in self.records if targets not in r.targets]
            if missing:
                available = ", ".join(self.data.target_tags()) or "none"
                raise DataError(
                    f"{root}: {len(missing)} samples (e.g. {missing[0]}) have no targets {targets!r}; "
                    f"available: {available} (run `radiossl kmeans predict`)"
                )
        self.targets = targets

    @classmethod
    def accepts(cls, view: str) -> bool:
        return is_crop_pair_view(view)

    @classmethod
    def described(cls) -> str:
        return "crop-pair"

    def __getitem__(self, index: int) -> PairSample:
        record = self.records[index]
        pair = torch.from_numpy(self.data.load_pair(record))
        if self.targets is not None:
            target = torch.from_numpy(self.data.load_targets(record, self.targets))
            target1, target2 = target[0], target[1]
        else:
            target1 = target2 = _NO_TARGET
        sample = PairSample(
            pair[0],
            pair[1],
            box_tensor(record.box1),
            box_tensor(record.box2),
            target1,
            target2,
            torch.tensor(index, dtype=torch.int64),
        )
        return self._finish(sample, index)


# --------------------------------------------------------------------------------------------------
# The view


class ClusterView(View):
    """Overlapping crop pairs (IoU above a threshold), resized to the crop size."""

    name = "cluster"
    summary = "Overlapping crop pairs resized to the crop size (patch- and pixel-level clustering)."
    defaults = ViewDefaults(((160, 160, 32), (192, 192, 32), (128, 128, 32)), (0, 0, 0), False, 16)
    crop_pairs = True
    dataset_class = ClusterPairDataset
    accepts_thesis_rejection = True

    def inplane_zoom(self, all_ct: bool) -> float:
        return 0.75 if all_ct else 1.0  # the thesis' CT setting

    @classmethod
    def small_settings(cls, crop_size: Size3) -> dict[str, Any]:
        """Candidate boxes 1 to 1.5 times the crop in-plane (the defaults are sized for real scans)."""
        sizes = [(round(crop_size[0] * f), round(crop_size[1] * f), crop_size[2]) for f in (1.0, 1.25, 1.5)]
        return {"crop_size": crop_size, "candidate_sizes": sizes}

    def sample(
        self, volume: np.ndarray, group_id: str, plan: Plan, thresholds: Sequence[float], dtype: torch.dtype
    ) -> ViewSamples:
        pairs = sample_pairs(
            volume, group_id, plan.seed, plan.pairs, pair_settings(plan, thesis_rule=True), thresholds, dtype=dtype
        )
        return ViewSamples(pairs.crops, pairs.boxes)
