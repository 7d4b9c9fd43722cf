"""Flips: exact inverses, spatial axes only, published attempt probabilities."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from radiossl.transforms import GenesisFlip, RandomFlip, flip, sample_flips, sample_genesis_flips
from radiossl.transforms._random import leading_successes


def test_flip_twice_is_identity_and_input_untouched() -> None:
    x = torch.rand(4, 2, 6, 5, 4)
    before = x.clone()
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True], [False, True, False]])
    once = flip(x, mask)
    assert torch.equal(x, before)
    assert torch.equal(flip(once, mask), x)
    assert torch.equal(once[1], x[1])
    assert torch.equal(once[0], x[0].flip(1).flip(3))
    assert torch.equal(once[3], x[3].flip(2))


@pytest.mark.parametrize("kind", ["bfloat16", "grad", "strided"])
def test_flip_torch_path_and_strided_inputs(kind: str) -> None:
    x = torch.rand(3, 1, 5, 4, 6)
    if kind == "bfloat16":
        x = x.to(torch.bfloat16)
    elif kind == "grad":
        x.requires_grad_(True)
    else:
        x = torch.rand(3, 1, 6, 4, 5).transpose(2, 4)
    mask = torch.tensor([[True, True, False], [False, False, False], [False, False, True]])
    y = flip(x, mask)
    assert torch.equal(y[0], x[0].flip(1).flip(2)) and torch.equal(y[1], x[1]) and torch.equal(y[2], x[2].flip(3))
    if kind == "grad":
        y.sum().backward()
        assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))


def test_flip_rejects_bad_masks() -> None:
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        flip(torch.zeros(2, 1, 4, 4, 4), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="spatial axes"):
        RandomFlip(axes=(3,))


def test_genesis_attempt_counts_match_published_probabilities(gen: Callable[[int], torch.Generator]) -> None:
    attempts = leading_successes((40_000, 3), 0.4, gen(1), torch.device("cpu")).sum(1)
    freq = torch.bincount(attempts, minlength=4).double() / attempts.numel()
    expected = torch.tensor([0.6, 0.24, 0.096, 0.064], dtype=torch.float64)
    assert torch.allclose(freq, expected, atol=0.01)


def test_genesis_flips_use_spatial_axes_only(gen: Callable[[int], torch.Generator]) -> None:
    mask = sample_genesis_flips(30_000, gen(2), torch.device("cpu"))
    rate = mask.double().mean(0)
    # P(odd number of picks of one axis): sum over k attempts of P(k) * P(odd | k, p=1/3).
    odd = 0.24 * (1 / 3) + 0.096 * (4 / 9) + 0.064 * (13 / 27)
    assert torch.allclose(rate, torch.full((3,), odd, dtype=torch.float64), atol=0.01)
    no_z = sample_genesis_flips(5000, gen(3), torch.device("cpu"), axes=(0, 1))
    assert not bool(no_z[:, 2].any())


def test_random_flip_probability_and_determinism(gen: Callable[[int], torch.Generator]) -> None:
    mask = sample_flips(20_000, (0,), 0.5, gen(4), torch.device("cpu"))
    assert abs(float(mask[:, 0].double().mean()) - 0.5) < 0.015
    assert not bool(mask[:, 1:].any())
    x = torch.rand(8, 1, 6, 6, 4)
    assert torch.equal(RandomFlip()(x, gen(5)), RandomFlip()(x, gen(5)))
    assert torch.equal(GenesisFlip()(x, gen(6)), GenesisFlip()(x, gen(6)))
