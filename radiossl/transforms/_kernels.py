"""Local pixel shuffling compiled with Numba: the original per-block loop, without its Python overhead.

One call shuffles a batch ``[B, C, V]`` (values viewed as same-width integers, so every float dtype
shares the kernel) into ``out``. For every sample, block after block as the original draws them:
a shape uniform over the ``lx·ly·lz`` shapes (the same law as three independent uniform edges), a
corner uniform on every axis, then a forward Fisher–Yates shuffle of the block's voxels whose
settled positions are written straight into ``out``, read from the untouched input. Later blocks
overwrite earlier ones, exactly as in the original.

Random numbers are counter-based: block ``k`` of a sample draws from a SplitMix64 stream started at
``seed + golden·k·2^32``, and bounded integers are exactly uniform (Lemire's multiply-shift on
16-bit draws, with rejection).
So a block's draws do not depend on any other block: dropping the blocks whose corner is not in
``corners_ok`` (they cannot reach a kept voxel) leaves every other block, and the kept voxels,
exactly as they are without dropping.

This module imports Numba; :mod:`radiossl.transforms.local_shuffle` imports it only when Numba is
installed (``pip install "radiossl[fast]"``) and falls back to its NumPy path otherwise.
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LOW16 = np.uint64(0xFFFF)


@numba.njit(inline="always")
def _mix(z: np.uint64) -> np.uint64:
    """SplitMix64's output function (Steele, Lea & Flood 2014)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _below(bits: np.uint64, n: int, state: np.uint64) -> tuple[np.int64, np.uint64]:
    """An integer exactly uniform on ``[0, n)`` from 16 random ``bits`` (``n <= 2^16``).

    Lemire's multiply-shift; a product whose low 16 bits fall below ``2^16 mod n`` is rejected and
    drawn again from the top 16 bits of the next output of ``state``'s stream.
    """
    span = np.uint64(n)
    product = bits * span
    if (product & _LOW16) < span:
        threshold = (_LOW16 + np.uint64(1) - span) % span
        while (product & _LOW16) < threshold:
            state = state + _GOLDEN
            product = (_mix(state) >> np.uint64(48)) * span
    return np.int64(product >> np.uint64(16)), state


@numba.njit(nogil=True, cache=True)
def shuffle_blocks(
    source: np.ndarray,
    out: np.ndarray,
    spatial: tuple[int, int, int],
    edges: np.ndarray,
    offsets: np.ndarray,
    offsets_start: np.ndarray,
    n_blocks: int,
    seeds: np.ndarray,
    corners_ok: np.ndarray,
) -> None:
    """Shuffle ``n_blocks`` blocks of every sample of ``source`` ``[B, C, V]`` into ``out`` (same shape).

    ``edges[s]``: the edges of block shape ``s``; ``offsets[offsets_start[s] + j]``: the flat offset
    from the corner of voxel ``j`` of shape ``s`` (natural order). ``seeds``: one uint64 per sample.
    ``corners_ok``: bool ``[B, V]`` (blocks whose corner is ``False`` are dropped), or ``[0, 0]`` for none.
    Every draw takes 16 bits: cube edges, the number of shapes and block sizes must be at most 2^16
    (:data:`radiossl.transforms.local_shuffle.KERNEL_MAX_SPAN`).
    """
    batch, channels, _ = source.shape
    _, sy, sz = spatial
    syz = sy * sz
    n_shapes = edges.shape[0]
    culling = corners_ok.shape[0] > 0
    order = np.empty(offsets.shape[0], np.int64)
    for b in range(batch):
        out[b] = source[b]
        read, write = source[b, 0], out[b, 0]  # 1-D views: the common one-channel case indexes fastest
        seed = np.uint64(seeds[b])
        for k in range(n_blocks):
            # Block k's stream: SplitMix64 states seed + golden·(k·2^32 + i), i = 1, 2, ...: disjoint
            # from every other block's (golden is odd), so each block's draws are its own.
            state = seed + _GOLDEN * (np.uint64(k) << np.uint64(32)) + _GOLDEN
            bits = _mix(state)  # the shape and the corner: four 16-bit draws
            shape, state = _below(bits >> np.uint64(48), n_shapes, state)
            bx, by, bz = edges[shape, 0], edges[shape, 1], edges[shape, 2]
            cx, state = _below((bits >> np.uint64(32)) & _LOW16, spatial[0] - bx + 1, state)
            cy, state = _below((bits >> np.uint64(16)) & _LOW16, sy - by + 1, state)
            cz, state = _below(bits & _LOW16, sz - bz + 1, state)
            corner = cx * syz + cy * sz + cz
            if culling and not corners_ok[b, corner]:
                continue
            first = offsets_start[shape]
            size = bx * by * bz
            for j in range(size):
                order[j] = offsets[first + j]
            # Forward Fisher–Yates: position i takes a uniform pick among the voxels not yet placed,
            # and is final at once, so it is written straight away (four 16-bit draws per output).
            for i in range(size):
                if i + 1 < size:
                    if (i & 3) == 0:
                        state = state + _GOLDEN
                        bits = _mix(state)
                    pick, state = _below((bits >> np.uint64(16 * (i & 3))) & _LOW16, size - i, state)
                    picked = order[i + pick]
                    order[i + pick] = order[i]
                else:
                    picked = order[i]
                target = corner + offsets[first + i]
                origin = corner + picked
                if channels == 1:
                    write[target] = read[origin]
                else:
                    for c in range(channels):
                        out[b, c, target] = source[b, c, origin]


@numba.njit(nogil=True, cache=True)
def map_tables(
    values: np.ndarray,
    tables: np.ndarray,
    slopes: np.ndarray,
    out: np.ndarray,
    zero: np.floating,
    one: np.floating,
    scale: np.floating,
) -> None:
    """``out[b, j] = tables[b, i] + slopes[b, i] · f`` where ``clip(values[b, j], 0, 1) · scale = i + f``.

    ``values``, ``out``: ``[B, N]``; ``tables``, ``slopes``: ``[B, T]`` with ``scale = T - 1``; the
    scalars carry the values' dtype, so that float32 stays float32 throughout. Every operation is the
    one the NumPy path does, in the same order and precision (the results are identical); NaN stays NaN.
    ``out`` may be ``values``.
    """
    batch, count = values.shape
    for b in range(batch):
        for j in range(count):
            value = values[b, j]
            if value != value:
                out[b, j] = value
                continue
            position = min(max(value, zero), one) * scale
            floor = np.floor(position)
            index = np.int64(floor)
            out[b, j] = slopes[b, index] * (position - floor) + tables[b, index]
