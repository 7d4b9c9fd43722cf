"""Masked reconstruction loss: only hidden voxels count, L2 by default and L1 on request."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.losses.masked_reconstruction import MaskedReconstructionLoss, masked_reconstruction_loss
from radiossl.ops.block_mask import random_block_mask


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 0.95), st.integers(0, 10_000), st.sampled_from(["l2", "l1"]))
def test_zero_on_exact_hidden_voxels_whatever_the_visible_ones_hold(ratio: float, seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(rng.normal(size=(2, 2, 8, 8, 4))).float()
    mask = random_block_mask(2, (4, 4, 2), ratio, rng)
    hidden = torch.nn.functional.interpolate(mask.float(), size=(8, 8, 4)).bool().expand_as(target)
    prediction = torch.where(hidden, target, torch.from_numpy(rng.normal(size=target.shape) * 100).float())
    assert float(masked_reconstruction_loss(prediction, target, mask, kind)) == 0.0  # type: ignore[arg-type]
    prediction[~hidden] = float("nan")  # not even a NaN at a visible voxel reaches the loss
    assert float(masked_reconstruction_loss(prediction, target, mask, kind)) == 0.0  # type: ignore[arg-type]


def test_hand_computed_mean_over_hidden_voxels_and_channels() -> None:
    target = torch.zeros(1, 2, 4, 4, 4)
    mask = torch.zeros(1, 1, 2, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0, 0] = mask[0, 0, 1, 1, 1] = True  # two 2x2x2 blocks: 16 voxels x 2 channels hidden
    prediction = torch.zeros_like(target)
    prediction[0, 0, :2, :2, :2] = 2.0  # 8 hidden voxels of channel 0 off by 2
    prediction[0, 1, 2:, :2, :2] = 9.0  # a visible block: ignored
    assert float(masked_reconstruction_loss(prediction, target, mask)) == pytest.approx(8 * 4 / 32)
    assert float(masked_reconstruction_loss(prediction, target, mask, "l1")) == pytest.approx(8 * 2 / 32)
    assert float(MaskedReconstructionLoss("l1")(prediction, target, mask)) == pytest.approx(0.5)


def test_nothing_hidden_is_zero_and_bad_input_a_value_error() -> None:
    x = torch.rand(1, 1, 4, 4, 4)
    assert float(masked_reconstruction_loss(x, torch.zeros_like(x), torch.zeros(1, 1, 2, 2, 2, dtype=torch.bool))) == 0
    with pytest.raises(ValueError, match="shape mismatch"):
        masked_reconstruction_loss(x, torch.zeros(1, 1, 4, 4, 2), torch.zeros(1, 1, 2, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="kind"):
        masked_reconstruction_loss(x, x, torch.zeros(1, 1, 2, 2, 2, dtype=torch.bool), "l3")  # type: ignore[arg-type]
