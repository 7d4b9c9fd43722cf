"""NT-Xent: a brute-force reference, invariance to the order of the pairs and of the views, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.losses.nt_xent import NTXentLoss, nt_xent_loss


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """The SimCLR paper's definition, one query at a time, in float64."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = z1.shape[0]
    total = 0.0
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        similarities = [float(z[a] @ z[b]) / temperature for b in range(2 * n)]
        denominator = sum(math.exp(s) for b, s in enumerate(similarities) if b != a)
        total += -math.log(math.exp(similarities[positive]) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_the_brute_force_definition(temperature: float) -> None:
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=generator), torch.randn(5, 7, generator=generator)
    assert float(nt_xent_loss(z1, z2, temperature)) == pytest.approx(reference_nt_xent(z1, z2, temperature), rel=1e-5)
    assert float(NTXentLoss(temperature)(z1, z2)) == pytest.approx(float(nt_xent_loss(z1, z2, temperature)))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(1, 5), st.integers(0, 10_000))
def test_invariant_to_the_order_of_the_pairs_and_of_the_views(n: int, dim: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(n, dim, generator=generator), torch.randn(n, dim, generator=generator)
    order = torch.randperm(n, generator=generator)
    loss = nt_xent_loss(z1, z2)
    assert torch.allclose(nt_xent_loss(z1[order], z2[order]), loss, atol=1e-6)  # pairs permuted together
    assert torch.allclose(nt_xent_loss(z2, z1), loss, atol=1e-6)
    assert torch.allclose(nt_xent_loss(3.0 * z1, z2), loss, atol=1e-6)  # cosine similarity: scale-free


def test_breaking_the_pairs_changes_the_loss() -> None:
    z = torch.eye(4)
    matched = nt_xent_loss(z, z)
    shuffled = nt_xent_loss(z, z[[1, 0, 3, 2]])
    assert float(shuffled) > float(matched) + 1.0


def test_gradients_are_finite_with_identical_embeddings() -> None:
    z1 = torch.ones(3, 4, requires_grad=True)
    nt_xent_loss(z1, torch.ones(3, 4)).backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(torch.ones(2, 3), torch.ones(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        nt_xent_loss(torch.ones(2, 3), torch.ones(3, 3))
