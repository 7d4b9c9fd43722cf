"""Models Genesis' local pixel shuffling, vectorised over blocks and samples.

The original, for one cube ``(X, Y, Z)``, loops 10,000 times: draw a block size
``b ∈ [1, S // 10]`` and a corner ``∈ [0, S - b]`` per axis, read that block from the *untouched*
input, permute its voxels uniformly at random and write it into the output; later blocks
overwrite earlier ones where they overlap. So an output voxel holds a value from inside the last
block that covers it; where blocks overlap, values can be duplicated or lost (the cube's multiset
of values is *not* preserved), and uncovered voxels keep their value.

This implementation produces exactly that distribution without a Python loop over blocks:

1. the sizes and corners of all blocks of the batch are drawn at once;
2. blocks are grouped by shape (at most ``(X//10)·(Y//10)·(Z//10)`` shapes, 108 for 64x64x32), so a
   group's voxel indices are one broadcast ``corner + offsets``;
3. a block's permutation comes from sorting random keys: each key holds random bits above the
   offset of one voxel of the block, so a row-wise sort lists the block's offsets in uniformly
   random order (two keys tie only if 40+ random bits agree);
4. "later blocks win" is one ``scatter_reduce(amax)`` of ``(block number << 32) | voxel`` over the
   destinations; the output is one gather. (The shuffled side is the destination; a uniform random
   permutation and its inverse have the same distribution.)

On CPU the work runs in NumPy (PCG64 random bits, SIMD row sort, ``take``), several times faster
than the same torch operations there; on GPU it runs in torch. Both are seeded from ``generator``.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> x = torch.rand(2, 1, 32, 32, 16)
    >>> y = local_shuffle(x, generator_for(0), n_blocks=500)
    >>> bool(torch.isin(y, x).all()), bool((y != x).any())
    (True, True)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from radiossl.transforms._random import check_batch
from radiossl.transforms.compose import random_apply

N_BLOCKS = 10_000
"""Blocks per cube (the original's constant, independent of the cube size)."""

CPU_CHUNK_VOXELS = 524_288
"""On CPU, samples are processed in chunks of about this many voxels (four 64x64x32 cubes)."""

Shape = tuple[int, int, int]


def block_limits(spatial: Shape, divisor: int = 10) -> Shape:
    """Largest block edge per axis, ``max(1, S // divisor)``."""
    lx, ly, lz = (max(1, s // divisor) for s in spatial)
    return lx, ly, lz


@lru_cache(maxsize=1024)
def _block_offsets(shape: Shape, spatial: Shape) -> np.ndarray:
    """Flat offsets (int64, read-only) of the voxels of a block of ``shape`` from its corner."""
    bx, by, bz = shape
    sy, sz = spatial[1] * spatial[2], spatial[2]
    grid = np.arange(bx)[:, None, None] * sy + np.arange(by)[None, :, None] * sz + np.arange(bz)[None, None, :]
    offsets = grid.reshape(-1).astype(np.int64)
    offsets.setflags(write=False)
    return offsets


def _shapes(limits: Shape) -> list[Shape]:
    """Block shapes by shape id ``(bx-1)·ly·lz + (by-1)·lz + (bz-1)``."""
    lx, ly, lz = limits
    return [(s // (ly * lz) + 1, (s // lz) % ly + 1, s % lz + 1) for s in range(lx * ly * lz)]


def _shuffle_numpy(x: np.ndarray, spatial: Shape, limits: Shape, n_blocks: int, seed: int) -> np.ndarray:
    """CPU implementation on ``x`` ``[B, C, V]``; returns ``[B, C, V]``."""
    batch, channels, volume = x.shape
    rng = np.random.Generator(np.random.PCG64(seed))
    sizes = [rng.integers(1, lim, size=(batch, n_blocks), endpoint=True) for lim in limits]
    corners = [
        (rng.random((batch, n_blocks)) * (s - b + 1)).astype(np.int64) for s, b in zip(spatial, sizes, strict=True)
    ]
    sy, sz = spatial[1] * spatial[2], spatial[2]
    start = (np.arange(batch)[:, None] * volume + corners[0] * sy + corners[1] * sz + corners[2]).reshape(-1)
    lx, ly, lz = limits
    shape_id = ((sizes[0] - 1) * (ly * lz) + (sizes[1] - 1) * lz + (sizes[2] - 1)).reshape(-1)
    # A stable sort of 16-bit keys is a radix sort: it groups the blocks of one shape in linear time.
    rows = np.argsort(shape_id.astype(np.int16 if lx * ly * lz < 2**15 else np.int32), kind="stable")
    counts = np.bincount(shape_id, minlength=lx * ly * lz)
    start = start[rows]
    tagged = start + ((rows % n_blocks + 1) << 32)  # block number (1-based, per sample) in the high bits
    groups = [(int(c), shape) for c, shape in zip(counts, _shapes(limits), strict=True) if c]
    total = sum(c * int(np.prod(shape)) for c, shape in groups)
    targets = np.empty(total, dtype=np.int64)
    values = np.empty(total, dtype=np.int64)
    bits = rng.bit_generator
    row = pos = 0
    for count, shape in groups:
        offsets = _block_offsets(shape, spatial)
        n = offsets.size
        block_start = start[row : row + count, None]
        np.add(tagged[row : row + count, None], offsets, out=values[pos : pos + count * n].reshape(count, n))
        target = targets[pos : pos + count * n].reshape(count, n)
        row, pos = row + count, pos + count * n
        if n == 1:
            np.add(block_start, offsets, out=target)
            continue
        low_bits = int(offsets[-1]).bit_length()
        keys = bits.random_raw((count, n))  # uint64; clear the top bit and the low bits, put offsets there
        keys &= np.uint64(((1 << 63) - 1) ^ ((1 << low_bits) - 1))
        keys |= offsets.astype(np.uint64)
        ordered = keys.view(np.int64)
        ordered.sort(axis=1)
        ordered &= (1 << low_bits) - 1
        np.add(block_start, ordered, out=target)
    source = np.arange(batch * volume, dtype=np.int64)  # NumPy memory: large buffers fault in faster
    winner = torch.from_numpy(source)
    winner.scatter_reduce_(0, torch.from_numpy(targets), torch.from_numpy(values), reduce="amax")
    source &= 0xFFFFFFFF
    if channels == 1:
        return np.take(x.reshape(-1), source).reshape(x.shape)
    return (
        np.take(np.moveaxis(x, 1, 2).reshape(batch * volume, channels), source, axis=0)
        .reshape(batch, volume, channels)
        .transpose(0, 2, 1)
    )


def _shuffle_torch(
    x: torch.Tensor, spatial: Shape, limits: Shape, n_blocks: int, generator: torch.Generator
) -> torch.Tensor:
    """Device implementation on ``x`` ``[B, C, V]`` (the same algorithm with torch operations)."""
    batch, channels, volume = x.shape
    device = x.device
    sizes = [torch.randint(1, lim + 1, (batch, n_blocks), generator=generator, device=device) for lim in limits]
    corners = [
        torch.minimum((torch.rand(batch, n_blocks, generator=generator, device=device) * (s - b + 1)).long(), s - b)
        for s, b in zip(spatial, sizes, strict=True)
    ]
    sy, sz = spatial[1] * spatial[2], spatial[2]
    sample = torch.arange(batch, device=device).unsqueeze(1)
    start = (sample * volume + corners[0] * sy + corners[1] * sz + corners[2]).reshape(-1)
    lx, ly, lz = limits
    shape_id = ((sizes[0] - 1) * (ly * lz) + (sizes[1] - 1) * lz + (sizes[2] - 1)).reshape(-1)
    rows = torch.sort(shape_id).indices
    counts = torch.bincount(shape_id, minlength=lx * ly * lz).tolist()
    start = start[rows]
    tagged = start + ((rows % n_blocks + 1) << 32)
    groups = [(c, shape) for c, shape in zip(counts, _shapes(limits), strict=True) if c]
    total = sum(c * int(np.prod(shape)) for c, shape in groups)
    targets = torch.empty(total, dtype=torch.int64, device=device)
    values = torch.empty(total, dtype=torch.int64, device=device)
    row = pos = 0
    for count, shape in groups:
        offsets = torch.from_numpy(_block_offsets(shape, spatial).copy()).to(device)
        n = offsets.numel()
        block_start = start[row : row + count, None]
        torch.add(tagged[row : row + count, None], offsets, out=values[pos : pos + count * n].view(count, n))
        target = targets[pos : pos + count * n].view(count, n)
        row, pos = row + count, pos + count * n
        if n == 1:
            torch.add(block_start, offsets, out=target)
            continue
        low_bits = int(offsets[-1]).bit_length()
        keys = torch.randint(0, 1 << (63 - low_bits), (count, n), generator=generator, device=device)
        ordered = torch.sort((keys << low_bits) | offsets, dim=1).values
        torch.add(block_start, ordered & ((1 << low_bits) - 1), out=target)
    winner = torch.arange(batch * volume, dtype=torch.int64, device=device)
    winner.scatter_reduce_(0, targets, values, reduce="amax")
    source = winner & 0xFFFFFFFF
    flat = x.transpose(1, 2).reshape(batch * volume, channels)
    return flat[source].reshape(batch, volume, channels).transpose(1, 2)


def local_shuffle(
    x: torch.Tensor, generator: torch.Generator, n_blocks: int = N_BLOCKS, divisor: int = 10
) -> torch.Tensor:
    """Shuffle voxels inside ``n_blocks`` random blocks of every sample (all channels move together)."""
    check_batch(x, "local_shuffle")
    if n_blocks <= 0:
        return x
    batch, channels, sx, sy, sz = x.shape
    spatial = (sx, sy, sz)
    if batch * sx * sy * sz >= 2**32 or n_blocks >= 2**30:
        raise ValueError("local_shuffle: batch too large for 32-bit voxel indices; split it")
    limits = block_limits(spatial, divisor)
    flat = x.reshape(batch, channels, -1)
    if x.device.type == "cpu":
        # Small chunks keep the index buffers in cache and out of fresh (page-faulting) allocations.
        array = flat.detach().contiguous().numpy()
        step = max(1, CPU_CHUNK_VOXELS // array.shape[2])
        seeds = torch.randint(0, 2**62, ((batch + step - 1) // step,), generator=generator).tolist()
        out = torch.from_numpy(
            np.concatenate(
                [
                    _shuffle_numpy(array[i : i + step], spatial, limits, n_blocks, seed)
                    for i, seed in zip(range(0, batch, step), seeds, strict=True)
                ]
            )
        )
    else:
        out = _shuffle_torch(flat, spatial, limits, n_blocks, generator)
    return out.reshape(x.shape).contiguous()


class LocalShuffle:
    """Local pixel shuffling, applied per sample with probability ``p`` (published 0.5), 10,000 blocks."""

    def __init__(self, p: float = 0.5, n_blocks: int = N_BLOCKS, divisor: int = 10) -> None:
        self.p = p
        self.n_blocks = n_blocks
        self.divisor = divisor

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_apply(
            x, self.p, generator, lambda sub: local_shuffle(sub, generator, self.n_blocks, self.divisor)
        )

    def __repr__(self) -> str:
        return f"LocalShuffle(p={self.p:g}, n_blocks={self.n_blocks})"
