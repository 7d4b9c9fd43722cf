"""The ``genesis`` view: ModelsGenesis cubes, random crops of the crop size (default 64 x 64 x 32), not resized.

Baselines spec A4: corners uniform inside the volume minus a border (default 100, 100, 30 voxels,
reduced on small axes), native voxel spacing, CT window [−1000, 1000] → [0, 1], and the tissue rule
"at most 15 % of voxels at or above −150 HU, with a 2-slice soft look-ahead" (configurable; see
:class:`~.config.RejectionConfig`). Cube ``i`` of a group draws from ``rng_for(seed, group_id, i)``;
a cube not found within ``max_attempts`` candidates is skipped (``allow_partial``, the original
behaviour) or fails the case. Defaults: border 100, 100, 30, native spacing, 32 cubes per volume;
the view's own settings are the ``genesis`` section (:class:`GenesisOptions`).

Example:
    >>> import numpy as np
    >>> lung = np.full((1, 40, 40, 20), 0.1, dtype=np.float32)   # -800 HU everywhere: all "air"
    >>> out = sample_cubes(lung, "c", 1, 3, GenesisSettings(crop_size=(16, 16, 8), border=(4, 4, 2)), [0.425])
    >>> tuple(out.cubes.shape), out.boxes.shape, out.indices.tolist()
    ((3, 1, 16, 16, 8), (3, 6), [0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from radiossl.config import Section
from radiossl.data.preprocess.boxes import (
    ForegroundScorer,
    SamplingError,
    acceptable,
    crop_resize,
    draw_boxes,
)
from radiossl.data.view_contract import RejectionConfig
from radiossl.utils.seeding import rng_for
from radiossl.views.base import View, ViewDataset, ViewDefaults, ViewSamples
from radiossl.views.cluster import CANDIDATES_PER_ROUND

if TYPE_CHECKING:
    from radiossl.data.view_contract import Plan

Size3 = tuple[int, int, int]


class GenesisOptions(Section):
    """ModelsGenesis cube extraction."""

    allow_partial: bool = Field(
        default=True, description="Skip cubes not found within max_attempts (fail only if none is found)."
    )


@dataclass(frozen=True)
class GenesisSettings:
    """Parameters of cube extraction."""

    crop_size: Size3 = (64, 64, 32)
    border: Size3 = (100, 100, 30)
    max_attempts: int = 1000
    max_background: float | None = None
    max_foreground: float | None = 0.15
    look_ahead: int = 2
    allow_partial: bool = True


@dataclass(frozen=True)
class GenesisSamples:
    """``cubes`` ``(M, C, *crop)``, ``boxes`` ``(M, 6)``; ``indices``: which of the N cubes were found."""

    cubes: torch.Tensor
    boxes: np.ndarray
    indices: np.ndarray


def sample_cube_box(
    rng: np.random.Generator, shape: Sequence[int], settings: GenesisSettings, scorer: ForegroundScorer | None
) -> np.ndarray | None:
    """One accepted cube box ``(6,)``, or None after ``max_attempts`` candidates."""
    size = np.asarray([settings.crop_size], dtype=np.int64)
    attempts = 0
    while attempts < settings.max_attempts:
        count = min(CANDIDATES_PER_ROUND, settings.max_attempts - attempts)
        boxes = draw_boxes(rng, count, size, shape, settings.border)
        if scorer is None:
            return boxes[0]
        hits = np.flatnonzero(acceptable(scorer.fractions(boxes), settings.max_background, settings.max_foreground))
        if hits.size:
            return boxes[hits[0]]
        attempts += count
    return None


def sample_cubes(
    volume: np.ndarray,
    group_id: str,
    seed: int,
    count: int,
    settings: GenesisSettings,
    thresholds: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> GenesisSamples:
    """Up to ``count`` cubes from ``volume`` ``(C, X, Y, Z)`` (padded to at least the crop size)."""
    use_rule = settings.max_background is not None or settings.max_foreground is not None
    scorer = ForegroundScorer(volume, thresholds, settings.look_ahead) if use_rule else None
    found: list[np.ndarray] = []
    indices: list[int] = []
    for index in range(count):
        box = sample_cube_box(rng_for(seed, group_id, index), volume.shape[1:], settings, scorer)
        if box is None:
            if not settings.allow_partial:
                raise SamplingError(
                    f"cube {index}: none of {settings.max_attempts} candidates passed the rejection rule "
                    f"(max_background={settings.max_background}, max_foreground={settings.max_foreground})"
                )
            continue
        found.append(box)
        indices.append(index)
    if not found:
        raise SamplingError(
            f"no cube passed the rejection rule (max_background={settings.max_background}, "
            f"max_foreground={settings.max_foreground}) in {settings.max_attempts} attempts per cube; "
            f"loosen it with --set rejection.max_foreground=F / rejection.max_background=F, or use a smaller crop_size"
        )
    boxes = np.stack(found)
    cubes = crop_resize(volume, boxes, settings.crop_size, dtype=dtype)
    return GenesisSamples(cubes, boxes, np.asarray(indices, dtype=np.int64))


class GenesisCubeDataset(ViewDataset[Tensor]):
    """ModelsGenesis cubes: float32 ``(C, 64, 64, 32)`` tensors."""

    views = ("genesis",)

    def __getitem__(self, index: int) -> Tensor:
        cube = torch.from_numpy(self.data.load_crops(self.records[index]))
        return self._finish(cube, index)


class GenesisView(View):
    """Cubes of the crop size at native spacing, kept where the tissue rule allows."""

    name = "genesis"
    summary = "Cubes of the crop size at native spacing, not resized (ModelsGenesis)."
    options_class = GenesisOptions
    defaults = ViewDefaults(None, (100, 100, 30), True, 32)
    dataset_class = GenesisCubeDataset
    options: GenesisOptions

    @classmethod
    def small_settings(cls, crop_size: Size3) -> dict[str, Any]:
        """Cubes twice as wide as the crop and 32 slices deep (they are not resized)."""
        return {"crop_size": (crop_size[0] * 2, crop_size[1] * 2, 32)}

    def rejection(self, any_ct: bool) -> RejectionConfig:
        if any_ct:  # ModelsGenesis' lung rule: at most 15 % soft tissue, 2-slice look-ahead
            return RejectionConfig(max_background=None, max_foreground=0.15, look_ahead=2)
        return RejectionConfig()

    def sample(
        self, volume: np.ndarray, group_id: str, plan: Plan, thresholds: Sequence[float], dtype: torch.dtype
    ) -> ViewSamples:
        rule = plan.rejection
        settings = GenesisSettings(
            plan.crop_size,
            plan.border,
            plan.max_attempts,
            rule.max_background,
            rule.max_foreground,
            rule.look_ahead,
            self.options.allow_partial,
        )
        cubes = sample_cubes(volume, group_id, plan.seed, plan.pairs, settings, thresholds, dtype)
        return ViewSamples(cubes.cubes, np.stack([cubes.boxes, cubes.boxes], axis=1), cubes.indices.tolist())
