"""Models Genesis' local pixel shuffling: a compiled per-block loop on CPU, vectorised elsewhere.

The original, for one cube ``(X, Y, Z)``, loops 10,000 times: draw a block size
``b ∈ [1, S // 10]`` and a corner ``∈ [0, S - b]`` per axis, read that block from the *untouched*
input, permute its voxels uniformly at random and write it into the output; later blocks
overwrite earlier ones where they overlap. So an output voxel holds a value from inside the last
block that covers it; where blocks overlap, values can be duplicated or lost (the cube's multiset
of values is *not* preserved), and uncovered voxels keep their value.

The vectorised implementation produces exactly that distribution without a loop over blocks:

1. the shapes and corners of all blocks are drawn at once; the blocks are grouped by shape (at most
   ``(X//10)·(Y//10)·(Z//10)`` shapes, 108 for 64x64x32) so that one group is a ``[count, voxels]``
   array and one row-wise sort serves all its blocks;
2. a block's permutation comes from sorting random keys: each key holds random high bits above
   the "compact" index of one voxel of the block (its position inside the largest block), so the
   sorted row lists the block's voxels in uniformly random order. Rows whose random bits tie are
   drawn again (rejection), so every permutation is exactly uniform;
3. "later blocks win" is one ``scatter_reduce(amax)`` of ``(draw number << bits) | source voxel``
   over the destination voxels (a block's voxels in natural order); the output is one gather.

On CPU, when Numba is installed (``pip install "radiossl[fast]"``), none of this is needed: a
compiled kernel (:mod:`radiossl.transforms._kernels`) runs the original loop itself, block
after block with a Fisher–Yates shuffle each, about twice as fast as the vectorised form; each
sample has its own seed, drawn up front, and the samples are spread over up to
``torch.get_num_threads()`` threads. Without Numba the algorithm above runs in NumPy (SFC64 random
bits, SIMD row sorts of 32-bit keys, 32-bit packed values) four 64x64x32 cubes at a time, on up to
``torch.get_num_threads()`` threads (each chunk has its own seed, drawn up front, so the result
does not depend on the thread count); on other devices it runs in torch with the blocks bucketed by
size instead of shape (a few large kernels). All three are seeded from ``generator`` and draw from the
same distribution, but the same seed gives different shuffles on each. The NumPy and torch block
corners carry the float64-uniform bias of below ``span / 2^53``; the kernel's draws are exact.

``keep`` (optional, per sample: boxes ``[k, 6]`` as ``(x, y, z, size_x, size_y, size_z)``) names the
only voxels whose result will be used, e.g. the windows that out-painting keeps. Blocks too far from
all of them to reach one are dropped after all blocks are drawn (before their permutations are): a
block only ever writes inside itself, so the voxels inside the boxes have exactly the distribution
they have without ``keep`` (with the compiled kernel, whose blocks draw from streams of their own,
they are even the very same values); voxels outside the boxes are then unspecified.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> x = torch.rand(2, 1, 32, 32, 16)
    >>> y = local_shuffle(x, generator_for(0), n_blocks=500)
    >>> bool(torch.isin(y, x).all()), bool((y != x).any())
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType

import numpy as np
import torch

from radiossl.transforms import _compiled
from radiossl.transforms._random import check_batch, numpy_rng
from radiossl.transforms._threads import cpu_threads, run_parallel
from radiossl.transforms.compose import random_apply

N_BLOCKS = 10_000
"""Blocks per cube (the original's constant, independent of the cube size)."""

CPU_CHUNK_VOXELS = 524_288
"""On CPU, samples are processed in chunks of about this many voxels (four 64x64x32 cubes: buffers of ~10 MB)."""

DEVICE_CHUNK_KEYS = 1 << 24
"""On other devices, chunks hold about this many padded keys (34 cubes of 64x64x32)."""

KERNEL_MAX_SPAN = 1 << 16
"""The compiled kernel draws 16 bits at a time: cube edges and block shapes (and so block sizes) up to this many."""

MAX_BLOCK_VOXELS = 1 << 20
"""Largest supported block (the compact voxel index must leave room for random key bits)."""

Shape = tuple[int, int, int]


def block_limits(spatial: Shape, divisor: int = 10) -> Shape:
    """Largest block edge per axis, ``max(1, S // divisor)``."""
    lx, ly, lz = (max(1, s // divisor) for s in spatial)
    return lx, ly, lz


class _Layout:
    """Per-(cube size, block limits) tables: block shapes, voxel offsets, compact indices."""

    EAGER_ENTRIES = 1 << 21
    """Per-shape index tables are kept when all shapes together have at most this many voxels."""

    def __init__(self, spatial: Shape, limits: Shape) -> None:
        lx, ly, lz = limits
        self.limits = limits
        self.strides = (spatial[1] * spatial[2], spatial[2])
        self.width = lx * ly * lz  # voxels of the largest block == number of block shapes
        if self.width > MAX_BLOCK_VOXELS:
            raise ValueError(f"local_shuffle: blocks of up to {limits} voxels are too large; raise the divisor")
        # Key layout: random bits above ``cbits`` bits holding the voxel's compact index. 32-bit keys
        # (24+ random bits) sort twice as fast as 64-bit ones; large blocks need the 64-bit keys.
        self.cbits = max(1, (self.width - 1).bit_length())
        self.key_dtype = np.dtype(np.uint32 if self.cbits <= 8 else np.uint64)
        dx, dy, dz = np.indices(limits).reshape(3, -1)
        # real[compact]: flat offset from the block corner of the voxel at compact index dx·ly·lz + dy·lz + dz
        self.real = (dx * self.strides[0] + dy * self.strides[1] + dz).astype(np.int32)
        self.edges = np.stack([dx + 1, dy + 1, dz + 1], axis=1)  # shape id -> (bx, by, bz)
        self.sizes: list[int] = self.edges.prod(axis=1).tolist()
        self.spans = [(s - self.edges[:, a] + 1).astype(np.float64) for a, s in enumerate(spatial)]
        self._tables: list[tuple[np.ndarray, np.ndarray]] | None = None
        if sum(self.sizes) <= self.EAGER_ENTRIES:
            self._tables = [self._shape_tables(s) for s in range(self.width)]
        self._device: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._compiled: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def eager(self) -> bool:
        """Whether every shape's index tables are kept (small enough for the compiled kernel's tables too)."""
        return self._tables is not None

    def _shape_tables(self, shape_id: int) -> tuple[np.ndarray, np.ndarray]:
        bx, by, bz = self.edges[shape_id].tolist()
        _, ly, lz = self.limits
        offsets = (np.arange(bx)[:, None, None], np.arange(by)[None, :, None], np.arange(bz))
        compact = (offsets[0] * (ly * lz) + offsets[1] * lz + offsets[2]).reshape(-1)
        natural = (offsets[0] * self.strides[0] + offsets[1] * self.strides[1] + offsets[2]).reshape(-1)
        return compact.astype(self.key_dtype), natural.astype(np.int64)

    def shape_tables(self, shape_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Compact indices (key dtype) and offsets from the corner (int64) of a shape's voxels, natural order."""
        return self._shape_tables(shape_id) if self._tables is None else self._tables[shape_id]

    def compiled_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the compiled kernel: block edges ``[shapes, 3]``, every shape's natural-order offsets
        concatenated, and where each shape's run starts (all int64)."""
        if self._compiled is None:
            runs = [self.shape_tables(shape_id)[1] for shape_id in range(self.width)]
            starts = np.cumsum([0] + [run.size for run in runs[:-1]])
            self._compiled = (self.edges.astype(np.int64), np.concatenate(runs), starts.astype(np.int64))
        return self._compiled

    def device_tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Block edges ``[shapes, 3]`` and ``real`` padded to ``2^cbits`` entries, on ``device`` (int64)."""
        key = str(device)
        if key not in self._device:
            real = np.zeros(1 << self.cbits, dtype=np.int64)  # pad keys have every compact bit set
            real[: self.width] = self.real
            self._device[key] = (torch.from_numpy(self.edges).to(device), torch.from_numpy(real).to(device))
        return self._device[key]


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
    if gap.size == 0 or gap.min() >= (1 << cbits):
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


Boxes = Sequence[torch.Tensor | None]
"""Per sample: ``[k, 6]`` boxes ``(x, y, z, size_x, size_y, size_z)`` whose voxels are used, or ``None`` (all)."""


def corner_mask(keep: Boxes, spatial: Shape, limits: Shape) -> np.ndarray:
    """Bool ``[batch · V]``: the corners from which a block of up to ``limits`` voxels can reach a kept box.

    A block is dropped when its corner is not marked. The test uses the largest block edge, so a few
    small blocks that cannot reach a box are kept as well (harmless: only dropping is restricted).
    """
    mask = np.zeros((len(keep), *spatial), dtype=bool)
    for sample, boxes in enumerate(keep):
        if boxes is None:
            mask[sample] = True
            continue
        if boxes.numel() and (boxes.dim() != 2 or boxes.shape[1] != 6):
            raise ValueError(f"local_shuffle: keep boxes must be [k, 6], got {tuple(boxes.shape)}")
        for x, y, z, sx, sy, sz in boxes.reshape(-1, 6).tolist():
            lx, ly, lz = limits
            mask[sample, max(0, x - lx + 1) : x + sx, max(0, y - ly + 1) : y + sy, max(0, z - lz + 1) : z + sz] = True
    return mask.reshape(-1)


def _sources_numpy(
    batch: int, spatial: Shape, limits: Shape, n_blocks: int, seed: int, keep: Boxes | None = None
) -> torch.Tensor:
    """CPU implementation: the source voxel of every voxel, ``[batch, V]`` (int32 or int64, within the cube)."""
    volume = spatial[0] * spatial[1] * spatial[2]
    layout = _layout(spatial, limits)
    rng = numpy_rng(seed)
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
    if keep is not None:  # drop the blocks that cannot reach a kept box (after every block was drawn)
        touching = corner_mask(keep, spatial, limits)[base]
        kept_before = np.concatenate([[0], np.cumsum(touching)])  # kept blocks among the first i drawn
        ends = np.cumsum(counts)
        counts = kept_before[ends] - kept_before[ends - counts]
        kept = np.flatnonzero(touching)
        tag, base, row_size = tag.take(kept), base.take(kept), row_size.take(kept)
    total = int(row_size.sum())

    kdtype, cbits = layout.key_dtype, layout.cbits
    low = kdtype.type((1 << cbits) - 1)
    keys = rng.bit_generator.random_raw(-(-total * kdtype.itemsize // 8)).view(kdtype)[:total]
    keys &= ~low
    targets = np.empty(total, dtype=np.int64)
    pos = row = 0
    for shape_id, (count, size) in enumerate(zip(counts.tolist(), layout.sizes, strict=True)):
        if count == 0:
            continue
        compact, natural = layout.shape_tables(shape_id)
        end = pos + count * size
        group = keys[pos:end].reshape(count, size)
        np.bitwise_or(group, compact, out=group)
        if size > 1:
            group.sort(axis=1)  # row r: block r's voxels in uniformly random order
        np.add(base[row : row + count, None], natural, out=targets[pos:end].reshape(count, size))
        pos, row = end, row + count
    # Rejection: a row whose random bits tie is drawn again, so every accepted permutation is uniform.
    for begin, end in _tied_rows(keys, cbits, row_size):
        _redraw(keys[begin:end], cbits, rng)

    keys &= low
    index = torch.from_numpy(keys.view(np.int32 if kdtype == np.uint32 else np.int64))
    values = torch.index_select(torch.from_numpy(layout.real.astype(vdtype, copy=False)), 0, index)
    values += torch.from_numpy(np.repeat(tag, row_size))
    winner = torch.arange(volume, dtype=values.dtype).repeat(batch)  # tag 0: uncovered voxels keep their own
    winner.scatter_reduce_(0, torch.from_numpy(targets), values, reduce="amax")
    winner &= (1 << vbits) - 1
    return winner.view(batch, volume)


def _sources_torch(
    batch: int, spatial: Shape, limits: Shape, n_blocks: int, generator: torch.Generator, keep: Boxes | None = None
) -> torch.Tensor:
    """Device implementation: ``[batch, V]`` int64. The same algorithm, with the blocks bucketed by size
    (rows padded to the next power of two) instead of grouped by shape, for few and large kernels."""
    volume = spatial[0] * spatial[1] * spatial[2]
    device = generator.device
    layout = _layout(spatial, limits)
    edges, real = layout.device_tables(device)
    _, ly, lz = limits
    sy, sz = layout.strides
    cbits = layout.cbits
    m = batch * n_blocks
    size = edges[torch.randint(0, layout.width, (m,), generator=generator, device=device)]  # [m, 3]
    # Corners: floor(r · span / 2^k) with r uniform on [0, 2^k), k ≤ 53 so that r · span fits int64
    # (a bias below span / 2^k, like the float64 draws of the CPU path).
    k = min(53, 62 - max(spatial).bit_length())
    r = torch.randint(0, 1 << k, (m, 3), generator=generator, device=device)
    corner = (r * (torch.tensor(spatial, device=device) - size + 1)) >> k
    start = corner[:, 0] * sy + corner[:, 1] * sz + corner[:, 2]
    block = torch.arange(m, device=device)
    vbits = _value_bits(volume, n_blocks)[0]
    tag = ((block % n_blocks + 1) << vbits) + start
    base = start + (block // n_blocks) * volume
    voxels = size.prod(dim=1)
    used = torch.ones(m, dtype=torch.bool, device=device)
    if keep is not None:
        used = torch.from_numpy(corner_mask(keep, spatial, limits)).to(device)[base]

    sink = batch * volume  # padded entries land on an extra voxel that is dropped
    winner = torch.cat([torch.arange(volume, device=device).repeat(batch), block.new_zeros(1)])
    high = (1 << (63 - cbits)) - 1  # int64 keys: 63 - cbits random bits
    pad = torch.iinfo(torch.int64).max  # larger than every real key: pads sort last
    bucket = 1
    while bucket // 2 < layout.width:  # blocks of (bucket / 2, bucket] voxels, in rows of min(bucket, width)
        rows = ((voxels > bucket // 2) & (voxels <= bucket) & used).nonzero().squeeze(1)
        columns = torch.arange(min(bucket, layout.width), device=device)
        bucket *= 2
        if rows.numel() == 0:
            continue
        _, by, bz = size[rows].unbind(1)
        valid = columns < voxels[rows, None]
        dx = columns // (by * bz)[:, None]  # voxel j of a block: its position (dx, dy, dz)
        dy = (columns // bz[:, None]) % by[:, None]
        dz = columns % bz[:, None]
        compact = dx * (ly * lz) + dy * lz + dz
        keys = torch.empty(valid.shape, dtype=torch.int64, device=device)
        todo = torch.arange(rows.numel(), device=device)
        while todo.numel():  # rejection of rows whose random bits tie, as on CPU
            fresh = torch.randint(0, high, (todo.numel(), valid.shape[1]), generator=generator, device=device)
            fresh = torch.where(valid[todo], (fresh << cbits) | compact[todo], pad).sort(dim=1).values
            keys[todo] = fresh
            random_bits = fresh >> cbits
            todo = todo[((random_bits[:, 1:] == random_bits[:, :-1]) & valid[todo, 1:]).any(dim=1)]
        values = torch.where(valid, tag[rows, None] + real[keys & ((1 << cbits) - 1)], 0)
        targets = torch.where(valid, base[rows, None] + dx * sy + dy * sz + dz, sink)
        winner.scatter_reduce_(0, targets.reshape(-1), values.reshape(-1), reduce="amax")
    return (winner[:sink] & ((1 << vbits) - 1)).view(batch, volume)


_SAME_WIDTH_INTEGER = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}
"""The kernel moves values without looking at them: each float dtype is viewed as an integer of its width."""


def compiled_path(x: torch.Tensor, divisor: int = 10) -> ModuleType | None:
    """The kernel if ``local_shuffle(x, divisor=divisor)`` takes the compiled path (CPU, Numba, tables), or ``None``."""
    if x.device.type != "cpu":
        return None
    spatial = (x.shape[-3], x.shape[-2], x.shape[-1])
    layout = _layout(spatial, block_limits(spatial, divisor))
    if not layout.eager or max(layout.width, *spatial) > KERNEL_MAX_SPAN:
        return None
    return _compiled.kernels()


def compiled_seeds(count: int, generator: torch.Generator) -> np.ndarray:
    """One seed per sample for :func:`shuffle_compiled` (uint64), drawn from ``generator``."""
    return torch.randint(0, 2**62, (count,), generator=generator).numpy().astype(np.uint64)


def shuffle_compiled(
    kernel: ModuleType,
    flat: torch.Tensor,
    out: torch.Tensor,
    spatial: Shape,
    n_blocks: int,
    seeds: np.ndarray,
    keep: Boxes | None = None,
    divisor: int = 10,
) -> None:
    """Shuffle ``flat`` ``[B, C, V]`` into ``out`` (contiguous, same shape) with the kernel, on this thread.

    Sample ``b`` depends only on ``seeds[b]`` (and ``keep[b]``): a batch can be split in any way.
    """
    limits = block_limits(spatial, divisor)
    corners_ok = np.zeros((0, 0), dtype=bool)  # no culling
    if keep is not None:
        corners_ok = corner_mask(keep, spatial, limits).reshape(flat.shape[0], -1)
    integer = _SAME_WIDTH_INTEGER[flat.dtype]
    edges, offsets, offsets_start = _layout(spatial, limits).compiled_tables()
    kernel.shuffle_blocks(
        flat.contiguous().view(integer).numpy(),
        out.view(integer).numpy(),
        spatial,
        edges,
        offsets,
        offsets_start,
        n_blocks,
        seeds,
        corners_ok,
    )


def _gather(flat: torch.Tensor, source: torch.Tensor, out: torch.Tensor) -> None:
    """``out[b, c, v] = flat[b, c, source[b, v]]`` (``out`` contiguous)."""
    batch, channels, volume = flat.shape
    if channels == 1:
        if batch * volume >= 2**31:
            source = source.long()
        offsets = torch.arange(0, batch * volume, volume, dtype=source.dtype, device=source.device)
        torch.index_select(flat.reshape(-1), 0, (source + offsets[:, None]).reshape(-1), out=out.view(-1))
    else:
        torch.gather(flat, 2, source.long().unsqueeze(1).expand(batch, channels, volume), out=out)


def local_shuffle(
    x: torch.Tensor,
    generator: torch.Generator,
    n_blocks: int = N_BLOCKS,
    divisor: int = 10,
    keep: Boxes | None = None,
) -> torch.Tensor:
    """Shuffle voxels inside ``n_blocks`` random blocks of every sample (all channels move together).

    With ``keep`` (one entry per sample), only the voxels inside each sample's boxes are computed
    faithfully; see the module docstring.
    """
    check_batch(x, "local_shuffle")
    if keep is not None and len(keep) != x.shape[0]:
        raise ValueError(f"local_shuffle: keep has {len(keep)} entries for a batch of {x.shape[0]}")
    if n_blocks <= 0:
        return x
    batch, channels, sx, sy, sz = x.shape
    spatial = (sx, sy, sz)
    volume = sx * sy * sz
    if volume >= 2**31 or n_blocks >= 2**30:
        raise ValueError("local_shuffle: cube or block count too large for 32-bit voxel indices")
    limits = block_limits(spatial, divisor)
    flat = x.detach().reshape(batch, channels, volume)
    out = torch.empty_like(flat, memory_format=torch.contiguous_format)
    kernel = compiled_path(x, divisor)
    if kernel is not None:
        kernel_seeds = compiled_seeds(batch, generator)
        threads = cpu_threads(batch)
        bounds = np.linspace(0, batch, threads + 1).round().astype(int).tolist()

        def run_part(part: int) -> None:  # samples have their own seeds: the result does not depend on the split
            lo, hi = bounds[part], bounds[part + 1]
            boxes = None if keep is None else keep[lo:hi]
            shuffle_compiled(kernel, flat[lo:hi], out[lo:hi], spatial, n_blocks, kernel_seeds[lo:hi], boxes, divisor)

        run_parallel(run_part, range(threads), threads)
        return out.view(x.shape)
    if x.device.type == "cpu":
        step = max(1, CPU_CHUNK_VOXELS // volume)
        seeds = torch.randint(0, 2**62, ((batch + step - 1) // step,), generator=generator).tolist()
    else:
        mean_voxels = float(np.prod([(lim + 1) / 2 for lim in limits]))
        step = max(1, int(DEVICE_CHUNK_KEYS // (2 * n_blocks * mean_voxels)))  # rows padded to at most 2x
    starts = list(range(0, batch, step))

    def run(chunk: int) -> None:
        i = starts[chunk]
        size = min(step, batch - i)
        part = None if keep is None else keep[i : i + size]
        if x.device.type == "cpu":
            source = _sources_numpy(size, spatial, limits, n_blocks, seeds[chunk], part)
        else:
            source = _sources_torch(size, spatial, limits, n_blocks, generator, part)
        _gather(flat[i : i + size], source, out[i : i + size])

    threads = cpu_threads(len(starts)) if x.device.type == "cpu" else 1
    run_parallel(run, range(len(starts)), threads)  # chunks have their own seeds and outputs
    return out.view(x.shape)


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
