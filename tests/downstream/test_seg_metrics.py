"""Dice / HD95: hand-computed cases, properties (hypothesis), the empty policy, agreement with MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from radiossl.downstream.metrics import (
    EmptyPolicy,
    dice,
    hausdorff,
    image_diagonal,
    mean_std,
    score_regions,
    soft_dice,
    surface,
    surface_distances,
)

masks = arrays(np.bool_, st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5)))


def cube(shape: tuple[int, int, int], lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return out


def test_dice_hand_computed() -> None:
    a = cube((10, 10, 10), (0, 0, 0), (4, 4, 4))  # 64 voxels
    b = cube((10, 10, 10), (2, 0, 0), (6, 4, 4))  # 64 voxels, 32 shared
    assert dice(a, b) == pytest.approx(2 * 32 / 128)
    assert dice(a, np.zeros_like(a)) == 0.0


def test_hausdorff_hand_computed_with_spacing() -> None:
    # Two single voxels 3 voxels apart along x: the distance is 3 * spacing_x.
    a = np.zeros((8, 4, 4), bool)
    b = np.zeros_like(a)
    a[1, 1, 1] = True
    b[4, 1, 1] = True
    assert hausdorff(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hausdorff(a, b, (2.0, 1.0, 1.0), percentile=100) == pytest.approx(6.0)


def test_hausdorff_uses_surfaces_and_is_symmetric() -> None:
    big = cube((12, 12, 12), (2, 2, 2), (10, 10, 10))
    small = cube((12, 12, 12), (4, 4, 4), (8, 8, 8))
    # Every surface voxel of the small cube is 2 voxels from the big cube's surface (face-wise),
    # the big cube's corners are farther from the small cube: max distance = |(2,2,2)| = sqrt(12).
    assert hausdorff(big, small, (1, 1, 1), percentile=100) == pytest.approx(math.sqrt(12))
    assert hausdorff(big, small, (1, 1, 1)) == hausdorff(small, big, (1, 1, 1))
    assert surface_distances(small, big, (1, 1, 1)).min() == pytest.approx(2.0)


def test_surface_counts_the_image_border() -> None:
    full = np.ones((3, 3, 3), bool)
    shell = surface(full)
    assert shell.sum() == 26 and not shell[1, 1, 1]


def test_empty_policy_defaults_and_options() -> None:
    empty = np.zeros((4, 5, 6), bool)
    some = empty.copy()
    some[1, 1, 1] = True
    spacing = (1.0, 2.0, 3.0)
    assert dice(empty, empty) == 1.0 and hausdorff(empty, empty, spacing) == 0.0
    assert dice(some, empty) == 0.0 and dice(empty, some) == 0.0
    diagonal = math.sqrt(4**2 + 10**2 + 18**2)
    assert image_diagonal(empty.shape, spacing) == pytest.approx(diagonal)
    assert hausdorff(some, empty, spacing) == pytest.approx(diagonal)
    assert hausdorff(empty, some, spacing) == pytest.approx(diagonal)
    nan_policy = EmptyPolicy(both_empty="nan", one_empty_hd="nan")
    assert math.isnan(dice(empty, empty, nan_policy)) and math.isnan(hausdorff(empty, empty, spacing, 95, nan_policy))
    assert math.isnan(hausdorff(some, empty, spacing, 95, nan_policy))
    assert hausdorff(some, empty, spacing, 95, EmptyPolicy(one_empty_hd="inf")) == math.inf


def test_soft_dice_thesis_formula() -> None:
    prob = np.array([0.5, 0.5, 0.0, 1.0])
    target = np.array([1, 0, 0, 1])
    expected = (2 * 1.5 + 1e-5) / (2.0 + 2 + 1e-5)
    assert soft_dice(prob, target) == pytest.approx(expected)


def test_score_regions_and_mean_std() -> None:
    gt = np.stack([cube((6, 6, 6), (1, 1, 1), (4, 4, 4)), np.zeros((6, 6, 6), bool)])
    scores = score_regions(gt, gt, ["a", "b"], (1.0, 1.0, 1.0))
    assert [(s.region, s.dice, s.hd, s.gt_voxels) for s in scores] == [
        ("a", 1.0, 0.0, 27),
        ("b", 1.0, 0.0, 0),
    ]
    assert mean_std([1.0, 3.0, math.nan]) == (2.0, 1.0, 2)
    assert mean_std([1.0, math.inf])[0] == math.inf


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differs"):
        dice(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


@settings(max_examples=60, deadline=None)
@given(masks, st.data())
def test_dice_properties(a: np.ndarray, data: st.DataObject) -> None:
    b = data.draw(arrays(np.bool_, a.shape))
    value = dice(a, b)
    assert value == dice(b, a)
    assert 0.0 <= value <= 1.0
    assert dice(a, a) == 1.0  # identical masks, empty or not
    if a.any() and not b.any():
        assert value == 0.0


@settings(max_examples=40, deadline=None)
@given(masks, st.data())
def test_hausdorff_properties(a: np.ndarray, data: st.DataObject) -> None:
    b = data.draw(arrays(np.bool_, a.shape))
    spacing = (1.0, 1.5, 2.0)
    assert hausdorff(a, b, spacing) == hausdorff(b, a, spacing)
    assert hausdorff(a, a, spacing) == 0.0
    assert 0.0 <= hausdorff(a, b, spacing) <= image_diagonal(a.shape, spacing) + 1e-9


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_monai_on_random_masks(seed: int) -> None:
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(seed)
    shape = (14, 12, 9)
    spacing = (0.8, 1.3, 2.5)
    pred = rng.random(shape) < rng.uniform(0.05, 0.5)
    gt = rng.random(shape) < rng.uniform(0.05, 0.5)
    pred[0, 0, 0] = gt[5, 5, 5] = True
    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(gt[None, None].astype(np.float32))
    monai_dice = monai_metrics.DiceMetric(include_background=True, reduction="none")(y_pred, y)
    monai_hd = monai_metrics.HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(
        y_pred, y, spacing=list(spacing)
    )
    assert dice(pred, gt) == pytest.approx(float(monai_dice), abs=1e-6)
    assert hausdorff(pred, gt, spacing) == pytest.approx(float(monai_hd), rel=1e-5)
