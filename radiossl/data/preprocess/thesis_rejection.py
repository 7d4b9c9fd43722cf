"""The thesis' crop-pair rejection rule (spec §2.3 and §8 item 10), kept to reproduce its crop sets.

``rejection.rule: thesis`` in a preprocess config. For a candidate pair that passed the IoU test, the
thesis cut each box with three extra slices below it (``z2 + 3``), resized that window to the crop
size (its depth plus the three slices), and scored every voxel ``(i, j, d)`` of the first ``crop_z``
slices: 1 when the voxel is *bright* (``>= threshold``, the thesis used 0.425 of the normalised range,
i.e. -150 HU, for CT and MRI alike), 0.5 when only the next slice is bright, else 0. It rejected the
pair when the score sum of crop 1 **or of crop 2** exceeded ``bg_max`` times the voxel count of crop 1's
box *before* resizing. So, despite its name, ``--bg_max`` caps the share of bright voxels, and with boxes
larger than the crop it rarely rejects anything: ``--bg_max 0.85`` on 128-voxel crops drawn at 160 can
never reject (``0.85 > (128/160)^2``). radiossl's ``fraction`` rule (the default) fixes both.

radiossl resizes the windows with its own ``resize_mode`` (torch), where the thesis used scikit-image's
anti-aliased ``resize``, so scores on resized windows can differ slightly; the rule itself — what is
scored, the normaliser, and the decision — is the thesis'. Look-ahead slices past the end of the volume
(radiossl draws boxes up to the last slice; the thesis stopped 4 slices short) count as not bright.

Example:
    >>> import numpy as np
    >>> window = np.full((1, 4, 4, 3), 0.9, np.float32)      # crop depth 1 + 2 look-ahead slices, all bright
    >>> float(bright_score_sum(window, [0.425], depth=1))
    16.0
    >>> thesis_rejects(16.0, 0.0, box1_voxels=16, bg_max=0.85)  # 16 > 0.85 * 16
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radiossl.data.preprocess.boxes import crop_resize

LOOK_AHEAD_SLICES = 3
"""Slices the thesis cut below each box (its ``len_depth``); the score uses the first two of each triple."""


def bright_score_sum(window: np.ndarray, thresholds: Sequence[float], depth: int) -> float:
    """The thesis' score sum of a resized window ``(C, X, Y, depth + look-ahead)``.

    A voxel is bright when any channel is at least its threshold. Voxel ``(i, j, d)``, ``d < depth``,
    scores 1 when ``(i, j, d)`` is bright, 0.5 when only ``(i, j, d + 1)`` is, else 0.
    """
    bright = np.zeros(window.shape[1:], dtype=bool)
    for channel, threshold in zip(window, thresholds, strict=True):
        bright |= channel >= threshold
    here = bright[:, :, :depth]
    below = bright[:, :, 1 : depth + 1]
    return float(here.sum() + 0.5 * (below & ~here).sum())


def thesis_rejects(score1: float, score2: float, box1_voxels: int, bg_max: float) -> bool:
    """The thesis' decision: either crop's score sum above ``bg_max`` x crop 1's pre-resize voxel count."""
    limit = bg_max * box1_voxels
    return score1 > limit or score2 > limit


class ThesisBrightRule:
    """The rule bound to one volume ``(C, X, Y, Z)``: :meth:`accepts` judges one candidate pair of boxes."""

    def __init__(
        self,
        volume: np.ndarray,
        thresholds: Sequence[float],
        crop_size: Sequence[int],
        bg_max: float,
        resize_mode: str = "trilinear",
    ) -> None:
        # Look-ahead slices past the last one are never bright: pad with a value below every voxel.
        below = np.full((*volume.shape[:3], LOOK_AHEAD_SLICES), float(volume.min()) - 1.0, dtype=volume.dtype)
        self.volume = np.concatenate([volume, below], axis=3)
        self.thresholds = [float(t) for t in thresholds]
        self.crop_size = tuple(int(c) for c in crop_size)
        self.bg_max = float(bg_max)
        self.resize_mode = resize_mode

    def window(self, box: np.ndarray) -> np.ndarray:
        """The box and the 3 slices below it, resized to ``(crop_x, crop_y, crop_z + 3)`` (a box of the crop
        size is not resized, as in the thesis)."""
        extended = np.asarray(box, dtype=np.int64).copy()
        extended[5] += LOOK_AHEAD_SLICES
        x, y, z = self.crop_size
        return crop_resize(self.volume, extended[None], (x, y, z + LOOK_AHEAD_SLICES), self.resize_mode)[0].numpy()

    def scores(self, box1: np.ndarray, box2: np.ndarray) -> tuple[float, float]:
        """Score sums of both crops' resized windows."""
        depth = self.crop_size[2]
        return (
            bright_score_sum(self.window(box1), self.thresholds, depth),
            bright_score_sum(self.window(box2), self.thresholds, depth),
        )

    def accepts(self, box1: np.ndarray, box2: np.ndarray) -> bool:
        """True when the thesis would keep this pair."""
        score1, score2 = self.scores(box1, box2)
        voxels = int(np.prod(np.asarray(box1[1::2]) - np.asarray(box1[0::2])))
        return not thesis_rejects(score1, score2, voxels, self.bg_max)
