"""VoCo's crop geometry: overlap fractions equal brute-force voxel counts; the grid tiles the volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.ops.crop_grid import base_crop_size, cut_boxes, grid_boxes, overlap_fractions, random_boxes


def _voxels(box: list[int], size: tuple[int, int, int]) -> np.ndarray:
    inside = np.zeros(size, dtype=bool)
    x0, x1, y0, y1, z0, z1 = box
    inside[x0:x1, y0:y1, z0:z1] = True
    return inside


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2)),
    st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
    st.integers(0, 9999),
)
def test_targets_are_the_true_overlap_fractions(grid: tuple[int, int, int], cell: tuple[int, ...], seed: int) -> None:
    volume = (grid[0] * cell[0], grid[1] * cell[1], grid[2] * cell[2])
    bases = grid_boxes(volume, grid)
    crops = random_boxes(volume, base_crop_size(volume, grid), 3, np.random.default_rng(seed))
    fractions = overlap_fractions(crops, bases)
    for m, crop in enumerate(crops.tolist()):
        crop_voxels = _voxels(crop, volume)
        for k, base in enumerate(bases.tolist()):
            expected = (crop_voxels & _voxels(base, volume)).sum() / crop_voxels.sum()
            assert float(fractions[m, k]) == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(fractions.sum(1), torch.ones(3))  # crops inside the volume: fractions sum to 1


def test_the_grid_tiles_the_volume_x_major() -> None:
    bases = grid_boxes((8, 6, 4), (2, 3, 1))
    cover = np.sum([_voxels(box, (8, 6, 4)) for box in bases.tolist()], axis=0)
    assert (cover == 1).all()
    assert bases[:3, 0].tolist() == [0, 0, 0] and bases[3, 0] == 4
    with pytest.raises(ValueError, match="not divisible"):
        grid_boxes((8, 6, 4), (3, 1, 1))


def test_random_boxes_lie_inside_and_cover_every_offset() -> None:
    boxes = random_boxes((6, 4, 4), (3, 4, 2), 400, np.random.default_rng(0))
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 1::2] <= torch.tensor([6, 4, 4])).all()
    assert set(boxes[:, 0].tolist()) == {0, 1, 2, 3} and set(boxes[:, 4].tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="exceeds"):
        random_boxes((4, 4, 4), (5, 1, 1), 1, np.random.default_rng(0))


def test_cut_boxes_matches_slicing() -> None:
    volumes = torch.arange(2 * 4 * 4 * 2, dtype=torch.float32).view(2, 1, 4, 4, 2)
    boxes = torch.tensor([[[0, 2, 0, 2, 0, 2], [2, 4, 1, 3, 0, 2]], [[1, 3, 2, 4, 0, 2], [0, 2, 0, 2, 0, 2]]])
    crops = cut_boxes(volumes, boxes)
    assert crops.shape == (4, 1, 2, 2, 2)
    assert torch.equal(crops[1], volumes[0, :, 2:4, 1:3, 0:2]) and torch.equal(crops[2], volumes[1, :, 1:3, 2:4])
    with pytest.raises(ValueError, match="one size"):
        cut_boxes(volumes, torch.tensor([[0, 2, 0, 2, 0, 2], [0, 1, 0, 2, 0, 2]]))
