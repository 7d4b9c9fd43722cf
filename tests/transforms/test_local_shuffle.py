"""Local pixel shuffling: where values may go, exact permutations per block, the original's statistics."""

from __future__ import annotations

import itertools
import logging
import random
import sys
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
import torch
from scipy import stats

import radiossl.transforms  # noqa: F401  (loads the submodule)
from radiossl.transforms import LocalShuffle, local_shuffle
from radiossl.transforms import _compiled as compiled

shuffle_module = sys.modules["radiossl.transforms.local_shuffle"]


def _torch_path(x: torch.Tensor, limits: tuple[int, int, int], n_blocks: int, g: torch.Generator) -> torch.Tensor:
    """The device implementation, run on CPU tensors."""
    batch, channels, *spatial = x.shape
    source = shuffle_module._sources_torch(batch, tuple(spatial), limits, n_blocks, g)
    out = torch.empty(batch, channels, source.shape[1])
    shuffle_module._gather(x.reshape(batch, channels, -1), source, out)
    return out.reshape(x.shape)


def _coordinates(values: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Voxel coordinates of the unique integer ``values`` of an ``arange`` cube."""
    flat = values.long().reshape(-1)
    sy, sz = shape[1] * shape[2], shape[2]
    return torch.stack([flat // sy, (flat % sy) // sz, flat % sz], dim=1)


def test_single_block_is_an_exact_permutation(gen: Callable[[int], torch.Generator], cpu_path: str) -> None:
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


@pytest.mark.parametrize("backend", ["compiled", "numpy", "torch"])
def test_values_come_from_the_last_covering_block(
    gen: Callable[[int], torch.Generator], backend: str, route: Callable[[str], None]
) -> None:
    route(backend)
    shape = (40, 30, 20)
    x = torch.arange(float(np.prod(shape))).reshape(1, 1, *shape).repeat(3, 1, 1, 1, 1)
    limits = shuffle_module.block_limits(shape)
    if backend != "torch":
        y = local_shuffle(x, gen(1), n_blocks=2000)
    else:
        y = _torch_path(x, limits, 2000, gen(1))
    assert bool(torch.isin(y, x).all())
    grid = torch.stack(torch.meshgrid(*(torch.arange(s) for s in shape), indexing="ij"), dim=-1).reshape(-1, 3)
    for b in range(3):
        offset = (_coordinates(y[b, 0], shape) - grid).abs()
        assert bool((offset < torch.tensor(limits)).all())
        assert 0.3 < float((y[b] != x[b]).double().mean()) < 0.95


def test_channels_move_together_and_input_is_kept(gen: Callable[[int], torch.Generator], cpu_path: str) -> None:
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


@pytest.mark.parametrize("backend", ["compiled", "numpy", "torch"])
def test_block_permutations_have_the_exact_distribution(
    gen: Callable[[int], torch.Generator], backend: str, route: Callable[[str], None]
) -> None:
    route(backend)
    trials = 8000
    x = torch.arange(4.0).reshape(1, 1, 4).repeat(trials, 1, 1)
    if backend != "torch":
        y = local_shuffle(x.reshape(trials, 1, 2, 2, 1), gen(4), n_blocks=1, divisor=1).reshape(trials, 4)
    else:
        y = _torch_path(x.reshape(trials, 1, 2, 2, 1), (2, 2, 1), 1, gen(3)).reshape(trials, 4)
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
    gen: Callable[[int], torch.Generator], reference_loops: ModuleType, cpu_path: str
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


def test_class_applies_with_probability_and_is_deterministic(
    gen: Callable[[int], torch.Generator], cpu_path: str
) -> None:
    x = torch.rand(400, 1, 20, 20, 10)
    y = LocalShuffle(p=0.5, n_blocks=50)(x, gen(4))
    changed = (y != x).flatten(1).any(1).double().mean()
    assert 0.4 < float(changed) < 0.6
    assert torch.equal(y, LocalShuffle(p=0.5, n_blocks=50)(x, gen(4)))
    assert not torch.equal(y, LocalShuffle(p=0.5, n_blocks=50)(x, gen(5)))
    assert torch.equal(local_shuffle(x, gen(0), n_blocks=0), x)


def _exact_line_distribution(n_blocks: int) -> dict[tuple[int, ...], float]:
    """Output distribution of ``n_blocks`` blocks on a 3x1x1 cube with edges up to 3 (the original semantics).

    Each block: edge ``b`` uniform in 1..3, corner uniform in 0..3-b, a uniform permutation of its voxels
    read from the untouched cube; later blocks overwrite earlier ones.
    """
    blocks = []
    for b in (1, 2, 3):
        for corner in range(4 - b):
            perms = list(itertools.permutations(range(b)))
            blocks += [(1 / 3 / (4 - b) / len(perms), corner, perm) for perm in perms]
    probs: dict[tuple[int, ...], float] = {}
    for combo in itertools.product(blocks, repeat=n_blocks):
        out = [0, 1, 2]
        p = 1.0
        for prob, corner, perm in combo:
            p *= prob
            for i, j in enumerate(perm):
                out[corner + i] = corner + j
        probs[tuple(out)] = probs.get(tuple(out), 0.0) + p
    return probs


def _chi2_check(rows: list[list[int]], expected: dict[tuple[int, ...], float]) -> None:
    """Pearson's test of the observed rows against ``expected`` (fails with probability 1e-3 when right)."""
    from scipy.stats import chi2

    counts = dict.fromkeys(expected, 0)
    for row in rows:
        assert tuple(row) in counts, f"impossible output {row}"
        counts[tuple(row)] += 1
    observed = np.array([counts[k] for k in expected], dtype=float)
    wanted = np.array([expected[k] for k in expected]) * len(rows)
    statistic = float(((observed - wanted) ** 2 / wanted).sum())
    assert statistic < chi2.ppf(1 - 1e-3, len(expected) - 1), statistic


@pytest.mark.parametrize("backend", ["compiled", "numpy", "torch"])
def test_overlapping_blocks_have_the_exact_distribution(
    gen: Callable[[int], torch.Generator], backend: str, route: Callable[[str], None]
) -> None:
    route(backend)
    # Three blocks on a 3-voxel line overlap often: the last one decides each voxel, with its own permutation.
    trials = 20000
    x = torch.arange(3.0).reshape(1, 1, 3, 1, 1).repeat(trials, 1, 1, 1, 1)
    if backend != "torch":
        y = local_shuffle(x, gen(6), n_blocks=3, divisor=1)
    else:
        y = _torch_path(x, (3, 1, 1), 3, gen(6))
    expected = _exact_line_distribution(3)
    assert abs(sum(expected.values()) - 1.0) < 1e-12
    _chi2_check(y.reshape(trials, 3).long().tolist(), expected)


def test_rejected_ties_keep_the_permutations_uniform(
    gen: Callable[[int], torch.Generator], monkeypatch: pytest.MonkeyPatch, route: Callable[[str], None]
) -> None:
    route("numpy")  # ties exist only in the NumPy path's keyed sort
    # Leave only 4 random bits in each key so that ties (and their redraws) are frequent.
    layout = shuffle_module._layout((2, 2, 1), (2, 2, 1))
    monkeypatch.setattr(layout, "cbits", 28)
    trials = 8000
    x = torch.arange(4.0).reshape(1, 1, 2, 2, 1).repeat(trials, 1, 1, 1, 1)
    y = local_shuffle(x, gen(7), n_blocks=1, divisor=1).reshape(trials, 4)
    _chi2_check(y.long().tolist(), _exact_2x2_distribution())


def test_tied_rows_are_found_exactly_and_redrawn() -> None:
    cbits = 2
    row0 = [5 << 2 | 0, 5 << 2 | 1, 9 << 2 | 2]  # a tie
    row1 = [3 << 2 | 3, 4 << 2 | 0, 8 << 2 | 0]  # a small gap without a tie
    row2 = [8 << 2 | 3, 9 << 2 | 1]  # the random bits of the end of row 1, no tie inside
    keys = np.array(row0 + row1 + row2, dtype=np.uint32)
    rows = shuffle_module._tied_rows(keys, cbits, np.array([3, 3, 2]))
    assert rows == [(0, 3)]
    rng = np.random.Generator(np.random.PCG64(0))
    shuffle_module._redraw(keys[0:3], cbits, rng)
    assert sorted((keys[0:3] & 3).tolist()) == [0, 1, 2]
    assert bool((np.diff(keys[0:3].astype(np.int64) >> cbits) > 0).all())
    assert shuffle_module._tied_rows(keys, cbits, np.array([3, 3, 2])) == []


def test_large_blocks_and_many_blocks_use_64_bit_keys_and_values(
    gen: Callable[[int], torch.Generator], cpu_path: str
) -> None:
    shape = (96, 96, 48)  # blocks up to 9x9x4 (324 voxels: 64-bit keys); 442,368 voxels (19 bits)
    layout = shuffle_module._layout(shape, shuffle_module.block_limits(shape))
    assert layout.key_dtype == np.uint64
    assert shuffle_module._value_bits(int(np.prod(shape)), 4096)[1] == np.int64
    x = torch.arange(float(np.prod(shape))).reshape(1, 1, *shape)
    one = local_shuffle(x, gen(8), n_blocks=1)
    assert torch.equal(one.flatten().sort().values, x.flatten())
    y = local_shuffle(x, gen(8), n_blocks=4096)
    grid = torch.stack(torch.meshgrid(*(torch.arange(s) for s in shape), indexing="ij"), dim=-1).reshape(-1, 3)
    offset = (_coordinates(y[0, 0], shape) - grid).abs()
    assert bool((offset < torch.tensor([9, 9, 4])).all())
    assert 0.3 < float((y != x).double().mean()) < 0.6  # 4,096 blocks of 62.5 voxels on average cover ~44%


def test_value_packing_switches_to_int64_only_when_needed() -> None:
    assert shuffle_module._value_bits(64 * 64 * 32, 10_000) == (17, np.dtype(np.int32))
    assert shuffle_module._value_bits(64 * 64 * 32, 16_382) == (17, np.dtype(np.int32))
    assert shuffle_module._value_bits(64 * 64 * 32, 16_383) == (32, np.dtype(np.int64))


def test_chunks_are_deterministic_and_all_shuffled(gen: Callable[[int], torch.Generator], cpu_path: str) -> None:
    per_chunk = shuffle_module.CPU_CHUNK_VOXELS // 4000  # cubes of 4,000 voxels in one CPU chunk
    x = torch.rand(per_chunk + 5, 1, 20, 20, 10)  # two chunks, the second a short one
    y = local_shuffle(x, gen(9), n_blocks=400)
    assert torch.equal(y, local_shuffle(x, gen(9), n_blocks=400))
    assert bool((y != x).flatten(1).any(1).all())
    assert not torch.equal(y[:32], y[32:64])
    half = local_shuffle(x.to(torch.bfloat16), gen(9), n_blocks=400)
    assert half.dtype == torch.bfloat16 and bool(torch.isin(half.float(), x.to(torch.bfloat16).float()).all())


def test_keep_drops_only_blocks_that_cannot_reach_a_box() -> None:
    spatial, limits = (9, 8, 5), (3, 2, 2)
    box = (3, 4, 1, 2, 1, 2)
    mask = shuffle_module.corner_mask([torch.tensor([box])], spatial, limits).reshape(spatial)
    lows, sizes = np.array(box[:3]), np.array(box[3:])
    for corner in itertools.product(*(range(s) for s in spatial)):
        for edges in itertools.product(*(range(1, lim + 1) for lim in limits)):
            c, e = np.array(corner), np.array(edges)
            if ((c + e) > np.array(spatial)).any():
                continue  # not a possible block
            reaches = bool(((c < lows + sizes) & (c + e > lows)).all())
            assert not reaches or mask[corner], (corner, edges)
    assert 0 < mask.sum() < mask.size  # something is dropped, as the largest block allows
    assert shuffle_module.corner_mask([None], spatial, limits).all()
    with pytest.raises(ValueError, match=r"\[k, 6\]"):
        shuffle_module.corner_mask([torch.zeros(2, 5, dtype=torch.long)], spatial, limits)


@pytest.mark.parametrize("backend", ["compiled", "numpy", "torch"])
def test_keep_everything_changes_nothing(
    gen: Callable[[int], torch.Generator], backend: str, route: Callable[[str], None]
) -> None:
    route(backend)
    x = torch.rand(3, 1, 30, 30, 20)
    whole = [None, torch.tensor([[0, 0, 0, 30, 30, 20]]), None]
    if backend != "torch":
        assert torch.equal(local_shuffle(x, gen(10), n_blocks=500), local_shuffle(x, gen(10), n_blocks=500, keep=whole))
    else:
        limits = shuffle_module.block_limits((30, 30, 20))
        plain = shuffle_module._sources_torch(3, (30, 30, 20), limits, 500, gen(10))
        kept = shuffle_module._sources_torch(3, (30, 30, 20), limits, 500, gen(10), whole)
        assert torch.equal(plain, kept)
    with pytest.raises(ValueError, match="keep has 1 entries"):
        local_shuffle(x, gen(10), keep=[None])


@pytest.mark.parametrize("backend", ["compiled", "numpy", "torch"])
def test_keep_leaves_the_distribution_inside_the_boxes_unchanged(
    gen: Callable[[int], torch.Generator], backend: str, route: Callable[[str], None]
) -> None:
    route(backend)
    # 6x1x1 line, blocks of 1..3 voxels, 3 blocks: the two kept voxels (2, 3) are reached by blocks that
    # overlap dropped ones; their joint distribution must not change when far blocks are culled.
    trials = 30000
    x = torch.arange(6.0).reshape(1, 1, 6, 1, 1).repeat(trials, 1, 1, 1, 1)
    keep = [torch.tensor([[2, 0, 0, 2, 1, 1]])] * trials

    def run(seed: int, boxes: list[torch.Tensor] | None) -> list[tuple[int, int]]:
        if backend != "torch":
            y = local_shuffle(x, gen(seed), n_blocks=3, divisor=2, keep=boxes)
        else:
            source = shuffle_module._sources_torch(trials, (6, 1, 1), (3, 1, 1), 3, gen(seed), boxes)
            y = source.reshape(trials, 1, 6, 1, 1).double()
        pair = y.reshape(trials, 6)[:, 2:4].long()
        return [tuple(row) for row in pair.tolist()]

    plain, culled = run(11, None), run(12, keep)
    outcomes = sorted(set(plain) | set(culled))
    table = np.array([[plain.count(o) for o in outcomes], [culled.count(o) for o in outcomes]], dtype=float)
    table = table[:, table.sum(0) >= 20]  # pool rare outcomes out of the chi-square
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert len(outcomes) > 5


def test_result_does_not_depend_on_the_thread_count(gen: Callable[[int], torch.Generator], cpu_path: str) -> None:
    x = torch.rand(shuffle_module.CPU_CHUNK_VOXELS // 32_000 + 1, 2, 40, 40, 20)  # two chunks
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = local_shuffle(x, gen(13), n_blocks=3000)
        torch.set_num_threads(2)
        two = local_shuffle(x, gen(13), n_blocks=3000)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two) and not torch.equal(one, x)


def test_compiled_culling_leaves_the_kept_voxels_exactly_as_they_were(
    gen: Callable[[int], torch.Generator], route: Callable[[str], None]
) -> None:
    # Every block draws from its own counter-based stream, so dropping blocks changes no other block.
    route("compiled")
    x = torch.rand(3, 2, 30, 30, 20)
    boxes = [torch.tensor([[2, 3, 4, 10, 8, 6], [20, 20, 10, 9, 9, 9]]), None, torch.tensor([[0, 0, 0, 5, 5, 5]])]
    plain = local_shuffle(x, gen(14), n_blocks=800)
    culled = local_shuffle(x, gen(14), n_blocks=800, keep=boxes)
    assert torch.equal(plain[1], culled[1])
    for sample in (0, 2):
        for bx, by, bz, ex, ey, ez in boxes[sample].tolist():
            region = (sample, slice(None), slice(bx, bx + ex), slice(by, by + ey), slice(bz, bz + ez))
            assert torch.equal(plain[region], culled[region])
    assert not torch.equal(plain[0], culled[0])  # and something outside the boxes was indeed skipped


def test_compiled_kernel_moves_every_float_dtype_alike(
    gen: Callable[[int], torch.Generator], route: Callable[[str], None]
) -> None:
    # Values are moved as same-width integers: the same seed moves every dtype's voxels the same way.
    route("compiled")
    x = torch.arange(2 * 20 * 20 * 10, dtype=torch.float64).reshape(2, 1, 20, 20, 10)
    reference = local_shuffle(x, gen(15), n_blocks=300)
    assert not torch.equal(reference, x)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        small = x % 200  # exactly representable in every dtype
        y = local_shuffle(small.to(dtype), gen(15), n_blocks=300)
        assert y.dtype == dtype
        assert torch.equal(y.double(), reference % 200)


def test_compiled_kernel_is_not_used_without_numba_or_for_huge_layouts(
    gen: Callable[[int], torch.Generator], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if compiled.kernels() is None:
        pytest.skip("Numba is not installed")
    import numba

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert compiled.kernels.__wrapped__() is None
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "numba", None)  # as if Numba were not installed: the import fails
    with caplog.at_level(logging.INFO, logger="radiossl.transforms._compiled"):
        assert compiled.kernels.__wrapped__() is None
    assert "NumPy paths" in caplog.text and "radiossl[fast]" in caplog.text
    monkeypatch.undo()

    class Refuse:
        @staticmethod
        def shuffle_blocks(*args: object) -> None:
            raise AssertionError("the kernel must not be called for layouts without tables")

    monkeypatch.setattr(compiled, "kernels", lambda: Refuse)
    shape = (40, 40, 40)  # divisor 2: blocks up to 20x20x20, 8,000 shapes of 9.3 M voxels in all
    assert not shuffle_module._layout(shape, shuffle_module.block_limits(shape, 2)).eager
    x = torch.rand(1, 1, *shape)
    y = local_shuffle(x, gen(16), n_blocks=3, divisor=2)
    assert bool(torch.isin(y, x).all()) and not torch.equal(y, x)
