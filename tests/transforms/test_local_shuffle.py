"""Local pixel shuffling: where values may go, exact permutations per block, the original's statistics."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
import torch

import radiossl.transforms  # noqa: F401  (loads the submodule)
from radiossl.transforms import LocalShuffle, local_shuffle

shuffle_module = sys.modules["radiossl.transforms.local_shuffle"]


def _coordinates(values: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Voxel coordinates of the unique integer ``values`` of an ``arange`` cube."""
    flat = values.long().reshape(-1)
    sy, sz = shape[1] * shape[2], shape[2]
    return torch.stack([flat // sy, (flat % sy) // sz, flat % sz], dim=1)


def test_single_block_is_an_exact_permutation(gen: Callable[[int], torch.Generator]) -> None:
    shape = (30, 30, 20)
    x = torch.arange(float(np.prod(shape))).reshape(1, 1, *shape).repeat(20, 1, 1, 1, 1)
    y = local_shuffle(x, gen(0), n_blocks=1)
    assert torch.equal(y.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
    for b in range(20):
        moved = (y[b, 0] != x[b, 0]).nonzero()
        if moved.numel():
            extent = moved.max(0).values - moved.min(0).values + 1
            assert bool((extent <= torch.tensor([3, 3, 2])).all())
            sources = _coordinates(y[b, 0][tuple(moved.T)], shape)
            assert bool((sources.min(0).values >= moved.min(0).values).all())
            assert bool((sources.max(0).values <= moved.max(0).values).all())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_values_come_from_the_last_covering_block(gen: Callable[[int], torch.Generator], backend: str) -> None:
    shape = (40, 30, 20)
    x = torch.arange(float(np.prod(shape))).reshape(1, 1, *shape).repeat(3, 1, 1, 1, 1)
    limits = shuffle_module.block_limits(shape)
    if backend == "numpy":
        y = local_shuffle(x, gen(1), n_blocks=2000)
    else:
        y = shuffle_module._shuffle_torch(x.reshape(3, 1, -1), shape, limits, 2000, gen(1)).reshape(x.shape)
    assert bool(torch.isin(y, x).all())
    grid = torch.stack(torch.meshgrid(*(torch.arange(s) for s in shape), indexing="ij"), dim=-1).reshape(-1, 3)
    for b in range(3):
        offset = (_coordinates(y[b, 0], shape) - grid).abs()
        assert bool((offset < torch.tensor(limits)).all())
        assert 0.3 < float((y[b] != x[b]).double().mean()) < 0.95


def test_channels_move_together_and_input_is_kept(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.rand(2, 3, 20, 20, 10)
    before = x.clone()
    y = local_shuffle(x, gen(2), n_blocks=300)
    assert torch.equal(x, before)
    pairs_in = {tuple(v) for v in x.movedim(1, -1).reshape(-1, 3).tolist()}
    pairs_out = {tuple(v) for v in y.movedim(1, -1).reshape(-1, 3).tolist()}
    assert pairs_out <= pairs_in


def _exact_2x2_distribution() -> dict[tuple[int, ...], float]:
    """Output distribution of one block in a 2x2x1 cube with edges up to 2 (voxel (x, y) = index 2x + y).

    Shapes 1x1, 2x1, 1x2, 2x2 are equally likely; 2x1 and 1x2 blocks sit at one of two positions
    and swap their two voxels half of the time; a 2x2 block applies one of the 24 permutations.
    """
    probs = {perm: 1 / 96 for perm in itertools.permutations(range(4))}
    probs[(0, 1, 2, 3)] += 1 / 4 + 2 * (1 / 4) * (1 / 2) * (1 / 2) * 2
    for swap in [(2, 1, 0, 3), (0, 3, 2, 1), (1, 0, 2, 3), (0, 1, 3, 2)]:
        probs[swap] += (1 / 4) * (1 / 2) * (1 / 2)
    return probs


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_block_permutations_have_the_exact_distribution(gen: Callable[[int], torch.Generator], backend: str) -> None:
    trials = 8000
    x = torch.arange(4.0).reshape(1, 1, 4).repeat(trials, 1, 1)
    if backend == "numpy":
        y = local_shuffle(x.reshape(trials, 1, 2, 2, 1), gen(3), n_blocks=1, divisor=1).reshape(trials, 4)
    else:
        y = shuffle_module._shuffle_torch(x, (2, 2, 1), (2, 2, 1), 1, gen(3)).reshape(trials, 4)
    expected = _exact_2x2_distribution()
    assert abs(sum(expected.values()) - 1.0) < 1e-12
    counts = dict.fromkeys(expected, 0)
    for row in y.long().tolist():
        counts[tuple(row)] += 1
    observed = np.array([counts[k] for k in expected], dtype=float)
    wanted = np.array([expected[k] for k in expected]) * trials
    chi2 = float(((observed - wanted) ** 2 / wanted).sum())
    assert chi2 < 52  # 23 degrees of freedom: P(chi2 > 52) < 1e-3


def test_statistics_match_the_reference_loop(
    gen: Callable[[int], torch.Generator], reference_loops: ModuleType
) -> None:
    shape = (30, 30, 20)
    n = float(np.prod(shape))
    x = torch.arange(n).reshape(1, 1, *shape)
    random.seed(0)
    np.random.seed(0)
    ours, theirs = [], []
    for trial in range(6):
        y = local_shuffle(x, gen(trial), n_blocks=1500)[0].numpy()
        r = reference_loops.loop_local_shuffle(x[0].numpy(), n_blocks=1500)
        for out, store in ((y, ours), (r, theirs)):
            store.append(((out != x[0].numpy()).mean(), len(np.unique(out)) / n))
    mean_ours, mean_theirs = np.mean(ours, axis=0), np.mean(theirs, axis=0)
    assert np.allclose(mean_ours, mean_theirs, atol=0.02), (mean_ours, mean_theirs)


def test_class_applies_with_probability_and_is_deterministic(gen: Callable[[int], torch.Generator]) -> None:
    x = torch.rand(400, 1, 20, 20, 10)
    y = LocalShuffle(p=0.5, n_blocks=50)(x, gen(4))
    changed = (y != x).flatten(1).any(1).double().mean()
    assert 0.4 < float(changed) < 0.6
    assert torch.equal(y, LocalShuffle(p=0.5, n_blocks=50)(x, gen(4)))
    assert not torch.equal(y, LocalShuffle(p=0.5, n_blocks=50)(x, gen(5)))
    assert torch.equal(local_shuffle(x, gen(0), n_blocks=0), x)
