"""Models Genesis' local pixel shuffling, vectorised over blocks and samples.

The original, for one cube ``(X, Y, Z)``, loops 10,000 times: draw a block size
``b ∈ [1, S // 10]`` and a corner ``∈ [0, S - b]`` per axis, read that block from the *untouched*
input, permute its voxels uniformly at random and write it into the output; later blocks
overwrite earlier ones where they overlap. So an output voxel holds a value from inside the last
block that covers it; where blocks overlap, values can be duplicated or lost (the cube's multiset
of values is *not* preserved), and uncovered voxels keep their value.

This implementation produces exactly that distribution without a Python loop over blocks:

1. the shapes and corners of all blocks are drawn at once; the blocks are grouped by shape (at most
   ``(X//10)·(Y//10)·(Z//10)`` shapes, 108 for 64x64x32) so that one group is a ``[count, voxels]``
   array and one row-wise sort serves all its blocks;
2. a block's permutation comes from sorting random keys: each key holds random high bits above
   the "compact" index of one voxel of the block (its position inside the largest block), so the
   sorted row lists the block's voxels in uniformly random order. Rows whose random bits tie are
   drawn again (rejection), so the permutation is exactly uniform;
3. "later blocks win" is one ``scatter_reduce(amax)`` of ``(draw number << bits) | source voxel``
   over the destination voxels (a block's voxels in their natural order); the output is one gather.

On CPU the work runs in NumPy (PCG64 random bits, SIMD row sort) on 32-bit keys and values, one
cube at a time so the buffers stay in cache; on other devices it runs in torch on rows padded to the
largest block. Both are seeded from ``generator``.

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

CPU_CHUNK_VOXELS = 131_072
"""On CPU, samples are processed in chunks of about this many voxels (one 64x64x32 cube: cache-sized buffers)."""

DEVICE_CHUNK_KEYS = 1 << 23
"""On other devices, chunks hold about this many padded keys (8 cubes of 64x64x32)."""

MAX_BLOCK_VOXELS = 1 << 20
"""Largest supported block (the compact voxel index must leave room for random key bits)."""

Shape = tuple[int, int, int]


def block_limits(spatial: Shape, divisor: int = 10) -> Shape:
    """Largest block edge per axis, ``max(1, S // divisor)``."""
    lx, ly, lz = (max(1, s // divisor) for s in spatial)
    return lx, ly, lz


class _Layout:
    """Per-(cube size, block limits) tables: block shapes, voxel offsets, compact indices."""

    def __init__(self, spatial: Shape, limits: Shape) -> None:
        lx, ly, lz = limits
        self.width = lx * ly * lz  # voxels of the largest block == number of block shapes
        if self.width > MAX_BLOCK_VOXELS:
            raise ValueError(f"local_shuffle: blocks of up to {limits} voxels are too large; raise the divisor")
        # Key layout: random bits above ``cbits`` bits holding the voxel's compact index. 32-bit keys
        # (24+ random bits) sort twice as fast as 64-bit ones; large blocks need the 64-bit keys.
        self.cbits = max(1, (self.width - 1).bit_length())
        self.key_dtype = np.dtype(np.uint32 if self.cbits <= 8 else np.uint64)
        sy, sz = spatial[1] * spatial[2], spatial[2]
        dx, dy, dz = np.indices(limits).reshape(3, -1)
        # real[compact]: flat offset from the block corner of the voxel at compact index dx·ly·lz + dy·lz + dz
        self.real = (dx * sy + dy * sz + dz).astype(np.int32)
        self.edges = np.stack([dx + 1, dy + 1, dz + 1], axis=1)  # shape id -> (bx, by, bz)
        self.sizes: list[int] = self.edges.prod(axis=1).tolist()
        self.spans = [(s - self.edges[:, a] + 1).astype(np.float64) for a, s in enumerate(spatial)]
        self.compact: list[np.ndarray] = []  # per shape, its voxels' compact indices in natural order
        for bx, by, bz in self.edges.tolist():
            grid = np.arange(bx)[:, None, None] * (ly * lz) + np.arange(by)[None, :, None] * lz + np.arange(bz)
            self.compact.append(grid.reshape(-1))
        self.natural = [self.real[c].astype(np.int64) for c in self.compact]
        self._tiles: tuple[int, list[np.ndarray]] = (0, [])
        self._device_tables: dict[str, tuple[torch.Tensor, ...]] = {}

    def tiles(self, rows: int) -> list[np.ndarray]:
        """Per shape: its compact indices (key dtype) repeated for at least ``rows`` blocks."""
        have, tiles = self._tiles  # one read: another thread may replace the pair, never mutate it
        if rows > have:
            have = max(rows, 2 * have)
            tiles = [np.tile(c.astype(self.key_dtype), have) for c in self.compact]
            self._tiles = (have, tiles)
        return tiles

    def device_tables(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Padded ``[shapes, width]`` tables for the torch path: compact index, natural offset, validity;
        then the corner spans ``[3, shapes]`` and ``real`` padded to ``2^cbits`` entries."""
        key = str(device)
        if key not in self._device_tables:
            compact = np.zeros((self.width, self.width), dtype=np.int64)
            valid = np.zeros((self.width, self.width), dtype=bool)
            for s, c in enumerate(self.compact):
                compact[s, : c.size] = c
                valid[s, : c.size] = True
            natural = np.where(valid, self.real[compact], 0)
            spans = np.stack(self.spans).astype(np.int64)
            real = np.zeros(1 << self.cbits, dtype=np.int64)  # pad keys have every compact bit set
            real[: self.width] = self.real
            arrays = (compact, natural, valid, spans, real)
            self._device_tables[key] = tuple(torch.from_numpy(a).to(device) for a in arrays)
        return self._device_tables[key]


@lru_cache(maxsize=16)
def _layout(spatial: Shape, limits: Shape) -> _Layout:
    return _Layout(spatial, limits)


def _value_bits(volume: int, n_blocks: int) -> tuple[int, np.dtype]:
    """Shift of the draw number above the source voxel in a packed value, and its dtype (int32 when it fits)."""
    vbits = max(1, (volume - 1).bit_length())
    if (n_blocks + 1) < (1 << (31 - vbits)):
        return vbits, np.dtype(np.int32)
    return 32, np.dtype(np.int64)


def _tied_rows(keys: np.ndarray, cbits: int, row_size: np.ndarray) -> list[tuple[int, int]]:
    """``(begin, end)`` of the sorted rows in which two keys share their random bits."""
    gap = np.subtract(keys[1:], keys[:-1])  # unsigned; a tie has a gap below 2^cbits (and so do rare non-ties)
    if gap.min() >= (1 << cbits):
        return []
    candidates = np.flatnonzero(gap < (1 << cbits))
    candidates = candidates[(keys[candidates] >> cbits) == (keys[candidates + 1] >> cbits)]
    row_end = np.cumsum(row_size)
    rows = np.searchsorted(row_end, candidates, side="right")  # row of entry i (row_end is exclusive)
    same = np.searchsorted(row_end, candidates + 1, side="right") == rows
    return [(int(row_end[r] - row_size[r]), int(row_end[r])) for r in np.unique(rows[same]).tolist()]


def _redraw(keys: np.ndarray, cbits: int, rng: np.random.Generator) -> None:
    """Draw new random bits for one sorted row of ``keys`` until no two agree, and sort it again."""
    low = keys.dtype.type((1 << cbits) - 1)
    compact = keys & low
    while True:
        fresh = np.sort((rng.bit_generator.random_raw(keys.size).astype(keys.dtype) & ~low) | compact)
        high = fresh >> cbits
        if not (high[1:] == high[:-1]).any():
            keys[:] = fresh
            return


def _sources_numpy(batch: int, spatial: Shape, limits: Shape, n_blocks: int, seed: int) -> torch.Tensor:
    """CPU implementation: the source voxel of every voxel, ``[batch, V]`` (int32 or int64, within the cube)."""
    volume = spatial[0] * spatial[1] * spatial[2]
    layout = _layout(spatial, limits)
    rng = np.random.Generator(np.random.PCG64(seed))
    m = batch * n_blocks
    shape = rng.integers(0, layout.width, m, dtype=np.int16 if layout.width < 2**15 else np.int64)
    rows = np.argsort(shape, kind="stable")  # a radix sort: groups the blocks by shape, in draw order
    counts = np.bincount(shape, minlength=layout.width)
    # Corners, drawn in grouped order: floor(U[0, 1) · span) (float64 U: bias below span / 2^53).
    u = rng.random((3, m))
    for axis in range(3):
        u[axis] *= np.repeat(layout.spans[axis], counts)
    corner = u.astype(np.int64)
    start = corner[0] * (spatial[1] * spatial[2]) + corner[1] * spatial[2] + corner[2]
    vbits, vdtype = _value_bits(volume, n_blocks)
    if batch == 1:
        draw, base = rows + 1, start
    else:
        draw, base = rows % n_blocks + 1, start + (rows // n_blocks) * volume
    tag = ((draw << vbits) + start).astype(vdtype)  # plus a voxel's offset in the block: its packed value
    row_size = np.repeat(np.array(layout.sizes), counts)
    total = int(row_size.sum())

    kdtype, cbits = layout.key_dtype, layout.cbits
    low = kdtype.type((1 << cbits) - 1)
    keys = rng.bit_generator.random_raw(-(-total * kdtype.itemsize // 8)).view(kdtype)[:total]
    keys &= ~low
    targets = np.empty(total, dtype=np.int64)
    groups = []
    pos = row = 0
    tiles = layout.tiles(int(counts.max()))
    for count, size, compact, natural in zip(counts.tolist(), layout.sizes, tiles, layout.natural, strict=True):
        if count == 0:
            continue
        end = pos + count * size
        group = keys[pos:end]
        np.bitwise_or(group, compact[: end - pos], out=group)
        if size > 1:
            group.reshape(count, size).sort(axis=1)  # row r: block r's voxels in uniformly random order
        np.add(base[row : row + count, None], natural, out=targets[pos:end].reshape(count, size))
        groups.append((pos, end, row, count, size))
        pos, row = end, row + count
    # Rejection: a row whose random bits tie is drawn again, so every accepted permutation is uniform.
    for begin, end in _tied_rows(keys, cbits, row_size):
        _redraw(keys[begin:end], cbits, rng)

    keys &= low
    index = torch.from_numpy(keys.view(np.int32 if kdtype == np.uint32 else np.int64))
    values = torch.index_select(torch.from_numpy(layout.real.astype(vdtype, copy=False)), 0, index)
    packed = values.numpy()
    for pos, end, row, count, size in groups:
        block = packed[pos:end].reshape(count, size)
        np.add(block, tag[row : row + count, None], out=block)
    winner = torch.arange(volume, dtype=values.dtype).repeat(batch)  # tag 0: uncovered voxels keep their own
    winner.scatter_reduce_(0, torch.from_numpy(targets), values, reduce="amax")
    winner &= (1 << vbits) - 1
    return winner.view(batch, volume)


def _sources_torch(
    batch: int, spatial: Shape, limits: Shape, n_blocks: int, generator: torch.Generator
) -> torch.Tensor:
    """Device implementation (the same algorithm on rows padded to the largest block): ``[batch, V]`` int64."""
    volume = spatial[0] * spatial[1] * spatial[2]
    device = generator.device
    layout = _layout(spatial, limits)
    compact_tab, natural_tab, valid_tab, spans, real = layout.device_tables(device)
    width, cbits = layout.width, layout.cbits
    m = batch * n_blocks
    shape = torch.randint(0, width, (m,), generator=generator, device=device)
    # Corners: floor(r · span / 2^k) with r uniform on [0, 2^k), k ≤ 53 so that r · span fits int64
    # (a bias below span / 2^k, like the float64 draws of the CPU path).
    k = min(53, 62 - max(spatial).bit_length())
    r = torch.randint(0, 1 << k, (3, m), generator=generator, device=device)
    corner = (r * spans[:, shape]) >> k
    start = corner[0] * (spatial[1] * spatial[2]) + corner[1] * spatial[2] + corner[2]
    block = torch.arange(m, device=device)
    vbits = _value_bits(volume, n_blocks)[0]
    tag = ((block % n_blocks + 1) << vbits) + start
    base = start + (block // n_blocks) * volume

    valid = valid_tab[shape]
    compact = compact_tab[shape]
    # int64 keys with 63 - cbits random bits; pads are larger than every real key, so they sort last.
    high = (1 << (63 - cbits)) - 1
    pad = torch.iinfo(torch.int64).max
    keys = torch.empty((m, width), dtype=torch.int64, device=device)
    todo = torch.arange(m, device=device)
    while todo.numel():  # rejection of rows whose random bits tie, as on CPU
        fresh = torch.randint(0, high, (todo.numel(), width), generator=generator, device=device)
        fresh = torch.where(valid[todo], (fresh << cbits) | compact[todo], pad).sort(dim=1).values
        keys[todo] = fresh
        random_bits = fresh >> cbits
        todo = todo[((random_bits[:, 1:] == random_bits[:, :-1]) & valid[todo, 1:]).any(dim=1)]
    values = torch.where(valid, tag[:, None] + real[keys & ((1 << cbits) - 1)], 0)
    sink = batch * volume  # padded entries land on an extra voxel that is dropped
    targets = torch.where(valid, base[:, None] + natural_tab[shape], sink)
    winner = torch.cat(
        [torch.arange(volume, device=device).repeat(batch), torch.zeros(1, dtype=torch.long, device=device)]
    )
    winner.scatter_reduce_(0, targets.reshape(-1), values.reshape(-1), reduce="amax")
    return (winner[:sink] & ((1 << vbits) - 1)).view(batch, volume)


def _gather(flat: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``out[b, c, v] = flat[b, c, source[b, v]]``."""
    batch, channels, volume = flat.shape
    if channels == 1:
        if batch * volume >= 2**31:
            source = source.long()
        offsets = torch.arange(0, batch * volume, volume, dtype=source.dtype, device=source.device)
        index = (source + offsets[:, None]).reshape(-1)
        return torch.index_select(flat.reshape(-1), 0, index).view(batch, 1, volume)
    return torch.gather(flat, 2, source.long().unsqueeze(1).expand(batch, channels, volume))


def local_shuffle(
    x: torch.Tensor, generator: torch.Generator, n_blocks: int = N_BLOCKS, divisor: int = 10
) -> torch.Tensor:
    """Shuffle voxels inside ``n_blocks`` random blocks of every sample (all channels move together)."""
    check_batch(x, "local_shuffle")
    if n_blocks <= 0:
        return x
    batch, channels, sx, sy, sz = x.shape
    spatial = (sx, sy, sz)
    volume = sx * sy * sz
    if volume >= 2**31 or n_blocks >= 2**30:
        raise ValueError("local_shuffle: cube or block count too large for 32-bit voxel indices")
    limits = block_limits(spatial, divisor)
    if x.device.type == "cpu":
        step = max(1, CPU_CHUNK_VOXELS // volume)
        seeds = torch.randint(0, 2**62, ((batch + step - 1) // step,), generator=generator).tolist()
        parts = [
            _sources_numpy(min(step, batch - i), spatial, limits, n_blocks, seed)
            for i, seed in zip(range(0, batch, step), seeds, strict=True)
        ]
    else:
        step = max(1, DEVICE_CHUNK_KEYS // (n_blocks * _layout(spatial, limits).width))
        parts = [
            _sources_torch(min(step, batch - i), spatial, limits, n_blocks, generator) for i in range(0, batch, step)
        ]
    source = parts[0] if len(parts) == 1 else torch.cat(parts)
    return _gather(x.reshape(batch, channels, volume), source).view(x.shape)


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
