"""PCRLv2's torchio-style transforms: affine, blur, noise, gamma, patch swap, z-normalisation, composition."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from radiossl.transforms import (
    Compose,
    OneOf,
    RandomAffine,
    RandomBlur,
    RandomGamma,
    RandomNoise,
    RandomPatchSwap,
    ZNormalise,
    affine_warp,
    gamma_transform,
    gaussian_blur,
    patch_swap,
    z_normalise,
)


def test_affine_identity_rotation_and_scale() -> None:
    x = torch.rand(2, 1, 12, 12, 6)
    assert torch.allclose(affine_warp(x, torch.ones(2, 3), torch.zeros(2, 3)), x, atol=1e-5)
    # 90 degrees about Z maps an X x X slab onto itself: compare with rot90 on the X-Y plane.
    square = torch.rand(1, 1, 10, 10, 4)
    turned = affine_warp(square, torch.ones(1, 3), torch.tensor([[0.0, 0.0, 90.0]]))
    expected = torch.rot90(square, k=1, dims=(2, 3))
    assert torch.allclose(turned, expected, atol=1e-4) or torch.allclose(
        turned, torch.rot90(square, k=-1, dims=(2, 3)), atol=1e-4
    )
    # A factor above 1 enlarges: a centred blob covers more voxels.
    blob = torch.zeros(1, 1, 21, 21, 21)
    blob[..., 8:13, 8:13, 8:13] = 1.0
    bigger = affine_warp(blob, torch.full((1, 3), 1.3), torch.zeros(1, 3))
    assert float((bigger > 0.5).sum()) > float((blob > 0.5).sum())


def test_affine_pads_with_the_sample_minimum(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.rand(3, 1, 16, 16, 8) + torch.tensor([2.0, -1.0, 0.0]).view(3, 1, 1, 1, 1)
    y = affine_warp(x, torch.ones(3, 3), torch.tensor([[0.0, 0.0, 45.0]] * 3))
    for b in range(3):
        assert float(y[b, 0, 0, 0, 4]) == pytest.approx(float(x[b].min()), abs=1e-6)
        assert float(y[b].min()) >= float(x[b].min()) - 1e-6
    z = RandomAffine()(x, gen(0))
    assert z.shape == x.shape and torch.equal(z, RandomAffine()(x, gen(0)))


def test_blur_matches_scipy() -> None:
    x = torch.rand(2, 2, 12, 7, 5)
    sigmas = torch.tensor([[1.3, 2.0, 0.0], [0.4, 0.0, 1.7]])
    y = gaussian_blur(x, sigmas)
    for b in range(2):
        for c in range(2):
            reference = gaussian_filter(x[b, c].double().numpy(), sigmas[b].double().numpy())
            assert np.abs(reference - y[b, c].numpy()).max() < 1e-5
    assert torch.equal(gaussian_blur(x, torch.zeros(2, 3)), x)
    with pytest.raises(ValueError, match=">= 0"):
        gaussian_blur(x, -torch.ones(2, 3))


def test_noise_gamma_and_znorm_statistics(gen: Callable[[int], torch.Generator]) -> None:
    zeros = torch.zeros(1000, 1, 16, 16, 16)
    noisy = RandomNoise()(zeros, gen(1))
    stds = noisy.flatten(1).std(1)
    assert float(stds.max()) < 0.26 and abs(float(stds.mean()) - 0.125) < 0.01
    x = torch.tensor([-4.0, -1.0, 0.0, 0.25, 4.0]).view(1, 1, 5, 1, 1)
    assert gamma_transform(x, torch.tensor([0.5])).flatten().tolist() == [-2.0, -1.0, 0.0, 0.5, 2.0]
    ramp = torch.linspace(0.01, 1, 50).view(1, 1, 50, 1, 1).repeat(500, 1, 1, 1, 1)
    gamma = torch.log(RandomGamma()(ramp, gen(2))[:, 0, 1, 0, 0]) / torch.log(ramp[:, 0, 1, 0, 0])
    assert float(gamma.log().min()) >= -0.3 - 1e-4 and float(gamma.log().max()) <= 0.3 + 1e-4
    z = z_normalise(torch.rand(3, 2, 6, 6, 6) * 7 + 3)
    assert torch.allclose(z.flatten(2).mean(2), torch.zeros(3, 2), atol=1e-5)
    assert torch.allclose(z.flatten(2).std(2), torch.ones(3, 2), atol=1e-5)
    assert torch.equal(z_normalise(torch.full((1, 1, 2, 2, 2), 3.0)), torch.zeros(1, 1, 2, 2, 2))


def test_patch_swap_exchanges_two_patches(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.arange(float(16 * 8 * 8)).reshape(1, 1, 16, 8, 8).repeat(50, 1, 1, 1, 1)
    y = patch_swap(x, (8, 4, 4), 1, gen(3))
    for b in range(50):
        changed = (y[b, 0] != x[b, 0]).sum()
        # Distinct corners: two whole patches change unless they overlap (then fewer voxels move).
        assert 0 < int(changed) <= 2 * 8 * 4 * 4
        assert bool(torch.isin(y[b], x[b]).all())
    many = RandomPatchSwap()(torch.rand(2, 1, 64, 64, 32), gen(4))
    assert many.shape == (2, 1, 64, 64, 32)
    with pytest.raises(ValueError, match="larger than the image"):
        patch_swap(torch.zeros(1, 1, 4, 4, 4), (8, 4, 4), 1, gen(5))


def test_composition_probabilities_and_determinism(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.zeros(4000, 1, 2, 2, 2)
    y = OneOf([RandomNoise(std=(1.0, 1.0)), ZNormalise()], weights=[3, 1], p=0.5)(x, gen(6))
    noisy = (y != 0).flatten(1).any(1).double().mean()
    assert abs(float(noisy) - 0.5 * 0.75) < 0.03
    pipeline = Compose([RandomBlur(), RandomNoise(), RandomGamma(), RandomPatchSwap((4, 2, 2), 10), ZNormalise()])
    batch = torch.rand(3, 1, 16, 16, 8)
    assert torch.equal(pipeline(batch, gen(7)), pipeline(batch, gen(7)))
    assert not torch.equal(pipeline(batch, gen(7)), pipeline(batch, gen(8)))
