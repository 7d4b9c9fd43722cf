"""Crop samplers on NumPy arrays: box invariants (hypothesis), rejection scoring, determinism, limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.data.preprocess.boxes import (
    ForegroundScorer,
    SamplingError,
    acceptable,
    box_sizes,
    crop_resize,
    draw_boxes,
    iou3d,
    pad_to,
)
from radiossl.utils.seeding import rng_for
from radiossl.views.cluster import PairSettings, sample_pair_boxes, sample_pairs
from radiossl.views.genesis import GenesisSettings, sample_cubes
from radiossl.views.pcrlv2 import LocalSettings, sample_pcrlv2

size_lists = st.lists(st.tuples(st.integers(4, 40), st.integers(4, 40), st.integers(2, 20)), min_size=1, max_size=4)
shapes = st.tuples(st.integers(16, 48), st.integers(16, 48), st.integers(8, 24))


def _blob(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A bright ellipsoid (foreground) in a dark volume, shape (1, X, Y, Z)."""
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    radius = sum(g * g for g in grids)
    noise = np.random.default_rng(seed).random(shape) * 0.05
    return ((radius < 0.6) * 0.8 + noise).astype(np.float32)[None]


@settings(max_examples=60, deadline=None)
@given(sizes=size_lists, shape=shapes, seed=st.integers(0, 10_000), border=st.integers(0, 8))
def test_pair_boxes_invariants(sizes: list, shape: tuple, seed: int, border: int) -> None:
    pair_settings = PairSettings(
        sizes=tuple(sizes),
        crop_size=(8, 8, 4),
        border=(border, border, border // 2),
        max_attempts=400,
        max_background=None,
    )
    try:
        a, b = sample_pair_boxes(rng_for(seed, "g", 0), shape, pair_settings, scorer=None)
    except SamplingError:
        # only possible when no two allowed boxes can overlap enough; then it must fail again
        with pytest.raises(SamplingError):
            sample_pair_boxes(rng_for(seed, "g", 0), shape, pair_settings, scorer=None)
        return
    boxes = np.stack([a, b])
    assert iou3d(boxes[:1], boxes[1:])[0] > 0.3
    dims = np.asarray(shape)
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 1::2] <= dims).all()
    allowed = {tuple(np.minimum(np.asarray(s), dims)) for s in sizes}
    assert {tuple(s) for s in box_sizes(boxes).tolist()} <= allowed
    again = sample_pair_boxes(rng_for(seed, "g", 0), shape, pair_settings, scorer=None)
    assert (again[0] == a).all() and (again[1] == b).all()


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 1000), count=st.integers(1, 30))
def test_draw_boxes_respect_borders_when_they_fit(shape: tuple, seed: int, count: int) -> None:
    sizes = np.array([[8, 8, 4]])
    border = (3, 3, 2)
    boxes = draw_boxes(np.random.default_rng(seed), count, sizes, shape, border)
    assert (boxes[:, 0::2] >= np.asarray(border)).all()
    assert (boxes[:, 1::2] <= np.asarray(shape) - np.asarray(border)).all()


def test_iou_matches_hand_computation() -> None:
    a = np.array([[0, 4, 0, 4, 0, 4], [0, 2, 0, 2, 0, 2]])
    b = np.array([[2, 6, 0, 4, 0, 4], [5, 7, 5, 7, 5, 7]])
    assert iou3d(a, b).tolist() == pytest.approx([32 / 96, 0.0])


def _reference_score(volume: np.ndarray, threshold: float, look_ahead: int) -> np.ndarray:
    """The original per-voxel rule, written with loops (slices past the end count as background)."""
    x, y, z = volume.shape
    score = np.zeros(volume.shape)
    for i in range(x):
        for j in range(y):
            for d in range(z):
                for k in range(max(look_ahead, 1)):
                    if d + k < z and volume[i, j, d + k] >= threshold:
                        score[i, j, d] = 1.0 - k / look_ahead if look_ahead else 1.0
                        break
    return score


@pytest.mark.parametrize("look_ahead", [0, 2, 3])
def test_foreground_fractions_match_brute_force(look_ahead: int) -> None:
    volume = np.random.default_rng(look_ahead).random((7, 6, 9)).astype(np.float32)
    scorer = ForegroundScorer(volume[None], [0.6], look_ahead)
    reference = _reference_score(volume, 0.6, look_ahead)
    boxes = draw_boxes(np.random.default_rng(0), 25, np.array([[3, 4, 5], [7, 6, 9], [1, 1, 1]]), (7, 6, 9), (0, 0, 0))
    expected = [reference[b[0] : b[1], b[2] : b[3], b[4] : b[5]].mean() for b in boxes]
    assert scorer.fractions(boxes) == pytest.approx(expected)


def test_multichannel_foreground_is_any_channel() -> None:
    volume = np.zeros((2, 4, 4, 4), np.float32)
    volume[0, :2] = 1.0
    volume[1, 2:3] = 1.0
    scorer = ForegroundScorer(volume, [0.5, 0.5])
    assert scorer.fractions(np.array([[0, 4, 0, 4, 0, 4]]))[0] == pytest.approx(0.75)


def test_rejection_rule_semantics() -> None:
    fractions = np.array([0.05, 0.2, 0.9])
    assert acceptable(fractions, max_background=0.85, max_foreground=None).tolist() == [False, True, True]
    assert acceptable(fractions, max_background=None, max_foreground=0.15).tolist() == [True, False, False]
    assert acceptable(fractions, None, None).all()


def test_accepted_pairs_pass_the_rule_and_are_deterministic() -> None:
    volume = _blob((40, 40, 20))
    pair_settings = PairSettings(sizes=((16, 16, 8), (24, 24, 8)), crop_size=(8, 8, 4), max_background=0.5)
    first = sample_pairs(volume, "case", 3, 5, pair_settings, thresholds=[0.5])
    scorer = ForegroundScorer(volume, [0.5])
    assert (1 - scorer.fractions(first.boxes.reshape(-1, 6)) <= 0.5).all()
    # pair i depends only on (seed, group, i): asking for fewer pairs gives a prefix
    prefix = sample_pairs(volume, "case", 3, 2, pair_settings, thresholds=[0.5])
    assert (prefix.boxes == first.boxes[:2]).all()
    assert torch.equal(prefix.crops, first.crops[:2])
    other = sample_pairs(volume, "other", 3, 5, pair_settings, thresholds=[0.5])
    assert not (other.boxes == first.boxes).all()


def test_impossible_rule_gives_up_with_an_error() -> None:
    volume = np.zeros((1, 32, 32, 16), np.float32)
    pair_settings = PairSettings(sizes=((16, 16, 8),), crop_size=(8, 8, 4), max_attempts=50, max_background=0.5)
    with pytest.raises(SamplingError, match="in 50 attempts"):
        sample_pairs(volume, "dark", 0, 1, pair_settings, thresholds=[0.5])


def test_crops_are_resized_views_of_their_boxes() -> None:
    volume = np.random.default_rng(1).random((2, 30, 30, 12)).astype(np.float32)
    boxes = np.array([[0, 20, 2, 22, 0, 8], [5, 13, 5, 13, 2, 6], [1, 21, 0, 20, 4, 12]])
    crops = crop_resize(volume, boxes, (8, 8, 4))
    for crop, b in zip(crops, boxes, strict=True):
        window = torch.from_numpy(volume[:, b[0] : b[1], b[2] : b[3], b[4] : b[5]])[None]
        expected = F.interpolate(window, size=(8, 8, 4), mode="trilinear", align_corners=False)[0]
        assert torch.allclose(crop, expected, atol=1e-6)
    assert crop_resize(volume, boxes, (8, 8, 4), dtype=torch.float16).dtype == torch.float16


def test_pad_to_pads_the_end_with_the_minimum() -> None:
    volume = np.full((1, 4, 5, 3), 2.0, np.float32)
    volume[0, 0, 0, 0] = -1.0
    padded = pad_to(volume, (6, 5, 8))
    assert padded.shape == (1, 6, 5, 8)
    assert (padded[:, :4, :, :3] == volume).all() and (padded[:, 4:] == -1.0).all()
    assert pad_to(volume, (2, 2, 2)) is volume


def test_pcrlv2_locals_lie_around_the_global_union() -> None:
    volume = _blob((48, 48, 24))
    pair_settings = PairSettings(sizes=((24, 24, 12), (32, 32, 16)), crop_size=(16, 16, 8), max_background=None)
    local = LocalSettings(count=6, size=(8, 8, 8), sizes=((8, 8, 8), (16, 16, 8)), margin=3)
    out = sample_pcrlv2(volume, "c", 7, 4, pair_settings, local, thresholds=[0.5])
    assert tuple(out.globals.shape) == (4, 2, 1, 16, 16, 8)
    assert tuple(out.locals.shape) == (4, 6, 1, 8, 8, 8)
    for pair, locals_ in zip(out.boxes, out.local_boxes, strict=True):
        low = np.maximum(np.minimum(pair[0, 0::2], pair[1, 0::2]) - 3, 0)
        high = np.minimum(np.maximum(pair[0, 1::2], pair[1, 1::2]) + 3, volume.shape[1:])
        assert (locals_[:, 0::2] >= low).all() and (locals_[:, 0::2] < high).all()
        assert (locals_[:, 1::2] <= np.asarray(volume.shape[1:])).all()
    again = sample_pcrlv2(volume, "c", 7, 4, pair_settings, local, thresholds=[0.5])
    assert (again.local_boxes == out.local_boxes).all()


def test_z_aligned_pairs_share_their_z_start() -> None:
    volume = _blob((48, 48, 24))
    pair_settings = PairSettings(
        sizes=((24, 24, 8), (32, 32, 8)), crop_size=(16, 16, 8), max_background=None, z_align=True
    )
    out = sample_pairs(volume, "z", 1, 6, pair_settings, thresholds=[0.5])
    assert (out.boxes[:, 0, 4] == out.boxes[:, 1, 4]).all()


def test_genesis_cubes_follow_the_lung_rule_and_may_be_partial() -> None:
    lung = np.full((1, 40, 40, 20), 0.1, np.float32)  # air/lung everywhere ...
    lung[:, :, :20] = 0.6  # ... except soft tissue in half of the volume
    cube_settings = GenesisSettings(crop_size=(16, 16, 8), border=(2, 2, 1), max_foreground=0.15, look_ahead=2)
    out = sample_cubes(lung, "c", 1, 5, cube_settings, thresholds=[0.425])
    assert tuple(out.cubes.shape) == (5, 1, 16, 16, 8)
    assert (out.boxes[:, 2] >= 18).all()  # at most 2 of 16 columns in the tissue half (2/16 <= 0.15)
    assert (box_sizes(out.boxes) == [16, 16, 8]).all()
    tissue = np.full((1, 40, 40, 20), 0.6, np.float32)
    with pytest.raises(SamplingError, match="no cube"):
        sample_cubes(tissue, "c", 1, 2, cube_settings, thresholds=[0.425])
    strict = GenesisSettings(crop_size=(16, 16, 8), border=(2, 2, 1), max_attempts=40, allow_partial=False)
    with pytest.raises(SamplingError, match="cube 0"):
        sample_cubes(tissue, "c", 1, 2, strict, thresholds=[0.425])
