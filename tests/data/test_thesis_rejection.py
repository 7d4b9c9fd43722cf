"""The cluster sampler with ``rejection.rule: thesis``: the thesis' bright-voxel rule, its defect included."""

from __future__ import annotations

import numpy as np
import pytest

from radiossl.data.preprocess.boxes import SamplingError
from radiossl.data.preprocess.config import PreprocessConfig, RejectionConfig
from radiossl.views.cluster import PairSettings, sample_pairs

BRIGHT = np.full((1, 40, 40, 24), 0.9, np.float32)


def test_a_bright_pair_drawn_at_the_crop_size_is_rejected() -> None:
    settings = PairSettings(sizes=((8, 8, 4),), crop_size=(8, 8, 4), max_attempts=64, thesis_bg_max=0.85)
    with pytest.raises(SamplingError, match=r"thesis rule, thesis_bg_max=0\.85"):
        sample_pairs(BRIGHT, "case", seed=1, count=1, settings=settings, thresholds=[0.425])


def test_the_same_pair_drawn_larger_than_the_crop_is_kept_as_in_the_thesis() -> None:
    # scored on the 8x8 resized window but limited by 0.85 x the 16x16 box: 256 <= 0.85 * 1024
    settings = PairSettings(sizes=((16, 16, 4),), crop_size=(8, 8, 4), max_attempts=64, thesis_bg_max=0.85)
    pairs = sample_pairs(BRIGHT, "case", seed=1, count=2, settings=settings, thresholds=[0.425])
    assert pairs.boxes.shape == (2, 2, 6)
    # the fixed rule with the thesis' number rejects nothing here either, but for the opposite reason
    fixed = PairSettings(sizes=((16, 16, 4),), crop_size=(8, 8, 4), max_attempts=64, max_foreground=0.85)
    with pytest.raises(SamplingError):
        sample_pairs(BRIGHT, "case", seed=1, count=1, settings=fixed, thresholds=[0.425])


def test_the_thesis_rule_is_the_cluster_views_only() -> None:
    with pytest.raises(ValueError, match="cluster view"):
        PreprocessConfig(dataset="brats18", view="pcrlv2", rejection=RejectionConfig(rule="thesis"))
