"""Block masks: exact ratio, resizing rules, zeroing, and SparK re-masking on a plain conv encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from radiossl.ops.block_mask import mask_grid, random_block_mask, visible_at, zero_masked


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 0.99), st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)), st.integers(0, 9999))
def test_the_mask_ratio_is_met_per_sample(ratio: float, grid: tuple[int, int, int], seed: int) -> None:
    mask = random_block_mask(3, grid, ratio, np.random.default_rng(seed))
    cells = grid[0] * grid[1] * grid[2]
    assert mask.shape == (3, 1, *grid) and mask.dtype == torch.bool
    assert mask.flatten(1).sum(1).tolist() == [int(ratio * cells)] * 3
    # at the input resolution the hidden fraction is the same, within one block of rounding
    voxels = zero_masked(torch.ones(3, 1, grid[0] * 4, grid[1] * 4, grid[2] * 2), mask)
    assert abs(float(1 - voxels.mean()) - ratio) <= 1 / cells + 1e-6


def test_masks_differ_between_samples_and_follow_the_generator() -> None:
    a = random_block_mask(4, (4, 4, 2), 0.75, np.random.default_rng(3))
    b = random_block_mask(4, (4, 4, 2), 0.75, np.random.default_rng(3))
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_resizing_nearest_up_and_any_visible_down() -> None:
    mask = torch.tensor([[True, False], [True, True]]).view(1, 1, 2, 2, 1)
    up = visible_at(mask, (4, 4, 2))
    assert up.shape == (1, 1, 4, 4, 2) and float(up.sum()) == 4 * 2  # one visible cell, 2x2x2 voxels
    assert torch.equal(up[0, 0, :2, 2:], torch.ones(2, 2, 2))
    assert visible_at(mask, (1, 1, 1)).item() == 1.0  # one visible cell among the four keeps it visible
    assert visible_at(torch.ones(1, 1, 2, 2, 1, dtype=torch.bool), (1, 1, 1)).item() == 0.0
    with pytest.raises(ValueError, match="cannot be resized"):
        visible_at(mask, (3, 3, 1))


def test_grid_needs_divisible_sizes() -> None:
    assert mask_grid((64, 64, 32), 16) == (4, 4, 2)
    with pytest.raises(ValueError, match="multiple of the block size 16"):
        mask_grid((64, 64, 24), 16)
    with pytest.raises(ValueError, match="ratio"):
        random_block_mask(1, (2, 2, 2), 1.0, np.random.default_rng(0))


class PlainEncoder(nn.Module):
    """Three conv stages with 2x max-pooling between them; ``stage_mask`` re-applies the mask after each."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stages = nn.ModuleList([nn.Sequential(nn.Conv3d(c_in, 4, 3, padding=1), nn.ReLU()) for c_in in (1, 4, 4)])

    def forward(self, x: torch.Tensor, stage_mask: torch.Tensor | None = None) -> torch.Tensor:
        for index, stage in enumerate(self.stages):
            x = stage(x if index == 0 else nn.functional.max_pool3d(x, 2))
            if stage_mask is not None:
                x = zero_masked(x, stage_mask)
        return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_remasking_after_every_stage_keeps_masked_positions_independent_of_the_masked_input(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = random_block_mask(2, (4, 4, 4), 0.5, rng)  # 4-voxel blocks of a 16³ input; the encoder ends at 1/4
    x = torch.from_numpy(rng.normal(size=(2, 1, 16, 16, 16))).float()
    hidden = visible_at(mask, x.shape[2:]) == 0
    other = torch.where(hidden, torch.from_numpy(rng.normal(size=x.shape) * 10).float(), x)  # new masked input
    encoder = PlainEncoder()
    hidden_out = (visible_at(mask, (4, 4, 4)) == 0).expand(2, 4, 4, 4, 4)
    with torch.no_grad():
        sparse_a, sparse_b = encoder(x, mask), encoder(other, mask)
        dense_a, dense_b = encoder(x), encoder(other)
    assert torch.equal(sparse_a[hidden_out], sparse_b[hidden_out])
    assert not torch.allclose(dense_a[hidden_out], dense_b[hidden_out])  # without it they do depend on it
