"""Throughput of the Models Genesis corruptions: radiossl's batched versions vs per-cube loops.

For each transformation, and for the whole published pipeline (flips; local shuffling p 0.5;
Bézier p 0.9; painting p 0.9 with in:out 0.2:0.8), this prints cubes per second of

* ``batched``  — ``radiossl.transforms`` on a batch of ``--batch`` cubes (how training runs it);
* ``single``   — the same code one cube at a time (what a dataset-worker hook would do);
* ``loop``     — a straightforward per-cube NumPy / Python-``random`` implementation written here
  that follows the original algorithms step by step (10,000-iteration Python loop for local
  shuffling, 100,000-point curve + ``np.interp`` for the Bézier map, box loops for painting).

Every figure is the best of ``--repeats`` rounds, and each round times the loop, the single-cube and
the batched version one after the other (interleaved, so that a slow spell of a shared machine hits
all of them). The pipeline rows use rounds of ``--pipeline-cubes`` cubes, every round reseeded alike
so that it repeats exactly the same work (random gates make the cost vary from cube to cube); both
pipelines and the loop are timed in the same rounds.
"published pipeline" is what training runs (flips, then the fused
:class:`~radiossl.transforms.GenesisCorruption`); "pipeline, step by step" composes the separate
transforms (same distribution, no work skipped).

Usage::

    python benchmarks/transforms.py                       # 64x64x32 cubes, batch 16
    python benchmarks/transforms.py --batch 6 --threads 1 --json out.json
    python benchmarks/transforms.py --threads 1 --no-numba    # the NumPy paths, as without Numba

The header names the local-shuffling path that was timed (Numba kernel or NumPy path).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from radiossl.pretext.models_genesis import ModelsGenesisConfig, build_corruption, composed_corruption
from radiossl.runtime.cpu import machine_line
from radiossl.transforms import (
    BezierIntensity,
    Compose,
    GenesisFlip,
    InPaint,
    LocalShuffle,
    OneOf,
    OutPaint,
    generator_for,
)

# ---------------------------------------------------------------------------------------------
# Per-cube reference loops (the original algorithms, one cube (1, X, Y, Z) at a time)


def loop_flip(x: np.ndarray, y: np.ndarray, rate: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Up to three flips of a random spatial axis while U < rate, on input and target alike."""
    for _ in range(3):
        if random.random() >= rate:
            break
        axis = random.randint(1, 3)
        x, y = np.flip(x, axis=axis), np.flip(y, axis=axis)
    return x, y


def loop_local_shuffle(x: np.ndarray, n_blocks: int = 10_000) -> np.ndarray:
    """10,000 blocks: read from the untouched cube, shuffle, write into the copy (later ones win)."""
    out = x.copy()
    _, sx, sy, sz = x.shape
    for _ in range(n_blocks):
        bx, by, bz = random.randint(1, sx // 10), random.randint(1, sy // 10), random.randint(1, sz // 10)
        cx, cy, cz = random.randint(0, sx - bx), random.randint(0, sy - by), random.randint(0, sz - bz)
        block = x[0, cx : cx + bx, cy : cy + by, cz : cz + bz].flatten()
        np.random.shuffle(block)
        out[0, cx : cx + bx, cy : cy + by, cz : cz + bz] = block.reshape(bx, by, bz)
    return out


def loop_bezier(x: np.ndarray, n_points: int = 100_000) -> np.ndarray:
    """Random cubic Bézier through (0,0) and (1,1), 100,000 samples, half the maps inverted."""
    px = [0.0, random.random(), random.random(), 1.0]
    py = [0.0, random.random(), random.random(), 1.0]
    t = np.linspace(0.0, 1.0, n_points)
    weights = [t**3, 3 * t**2 * (1 - t), 3 * t * (1 - t) ** 2, (1 - t) ** 3]
    xs = sum(w * p for w, p in zip(weights, px, strict=True))
    ys = sum(w * p for w, p in zip(weights, py, strict=True))
    if random.random() < 0.5:
        xs = np.sort(xs)
    else:
        xs, ys = np.sort(xs), np.sort(ys)
    return np.interp(x, xs, ys)


def loop_inpaint(x: np.ndarray) -> np.ndarray:
    """Up to five noise boxes while U < 0.95."""
    out = x.copy()
    _, sx, sy, sz = x.shape
    count = 5
    while count > 0 and random.random() < 0.95:
        bx, by, bz = (random.randint(s // 6, s // 3) for s in (sx, sy, sz))
        cx, cy, cz = (random.randint(3, s - b - 3) for s, b in ((sx, bx), (sy, by), (sz, bz)))
        out[:, cx : cx + bx, cy : cy + by, cz : cz + bz] = np.random.rand(x.shape[0], bx, by, bz)
        count -= 1
    return out


def loop_outpaint(x: np.ndarray) -> np.ndarray:
    """Noise everywhere except one window plus up to four more while U < 0.95."""
    out = np.random.rand(*x.shape)
    _, sx, sy, sz = x.shape

    def paste() -> None:
        bx, by, bz = (s - random.randint(3 * s // 7, 4 * s // 7) for s in (sx, sy, sz))
        cx, cy, cz = (random.randint(3, s - b - 3) for s, b in ((sx, bx), (sy, by), (sz, bz)))
        out[:, cx : cx + bx, cy : cy + by, cz : cz + bz] = x[:, cx : cx + bx, cy : cy + by, cz : cz + bz]

    paste()
    count = 4
    while count > 0 and random.random() < 0.95:
        paste()
        count -= 1
    return out


def loop_pipeline(x: np.ndarray) -> np.ndarray:
    """The whole published corruption of one cube."""
    y = x
    x, y = loop_flip(x, y)
    if random.random() < 0.5:
        x = loop_local_shuffle(x)
    if random.random() < 0.9:
        x = loop_bezier(x)
    if random.random() < 0.9:
        x = loop_inpaint(x) if random.random() < 0.2 else loop_outpaint(x)
    return x


# ---------------------------------------------------------------------------------------------
# Timing


def _run_loop(loop: Callable[[np.ndarray], object], cubes: list[np.ndarray]) -> None:
    for cube in cubes:
        loop(cube)


def _run_many(transform: Callable[..., torch.Tensor], batches: list[torch.Tensor], generator: torch.Generator) -> None:
    for item in batches:
        transform(item, generator)


def interleaved_best(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time of each contender over ``rounds`` rounds, each round timing every contender once.

    Interleaving spreads slow spells of a shared machine over all contenders instead of one row.
    """
    for fn in contenders.values():
        fn()  # warm-up
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _replay_loop(loop: Callable[[np.ndarray], object], cubes: list[np.ndarray], seed: int = 0) -> None:
    """The loop over ``cubes``, every random source reseeded: each call does exactly the same work."""
    random.seed(seed)
    np.random.seed(seed)
    _run_loop(loop, cubes)


def _replay_many(transform: Callable[..., torch.Tensor], batches: list[torch.Tensor], seed: int = 0) -> None:
    """``transform`` over ``batches`` from a fresh generator: each call does exactly the same work."""
    _run_many(transform, batches, generator_for(seed))


def _choose_shuffle_path(numpy_only: bool) -> str:
    """Route the CPU transforms (Numba kernels when installed, unless ``numpy_only``) and name the shuffle path."""
    from radiossl.transforms import _compiled as compiled

    if numpy_only:
        compiled.kernels = lambda: None
    if compiled.kernels() is None:
        return "NumPy path"
    import numba

    return f"Numba {numba.__version__} kernel"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="cubes per batched call")
    parser.add_argument("--size", type=int, nargs=3, default=(64, 64, 32), help="cube size X Y Z")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (best is kept)")
    parser.add_argument("--loop-cubes", type=int, default=4, help="cubes per timed round of the loops")
    parser.add_argument("--pipeline-cubes", type=int, default=64, help="cubes per timed round of the pipeline")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--no-numba", action="store_true", help="the NumPy paths of the CPU transforms even with Numba installed"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shuffle_path = _choose_shuffle_path(args.no_numba)
    random.seed(0)
    np.random.seed(0)
    generator = generator_for(0)
    batch = torch.rand(args.batch, 1, *args.size)
    one = batch[:1].clone()
    cubes = [batch[i].numpy().astype(np.float64) for i in range(args.loop_cubes)]

    paint = OneOf([InPaint(), OutPaint()], weights=[0.2, 0.8], p=1.0)
    settings = ModelsGenesisConfig.model_validate({})
    pipeline = Compose([GenesisFlip(), build_corruption(settings)])
    step_by_step = Compose([GenesisFlip(), composed_corruption(settings)])
    cases: list[tuple[str, Callable[..., torch.Tensor], Callable[[np.ndarray], object]]] = [
        ("flip (rate 0.4)", GenesisFlip(), lambda c: loop_flip(c, c)),
        ("local shuffle (always)", LocalShuffle(p=1.0), loop_local_shuffle),
        ("bezier (always)", BezierIntensity(p=1.0), loop_bezier),
        ("in-painting (always)", InPaint(), loop_inpaint),
        ("out-painting (always)", OutPaint(), loop_outpaint),
        (
            "painting 0.2:0.8 (always)",
            paint,
            lambda c: loop_inpaint(c) if random.random() < 0.2 else loop_outpaint(c),
        ),
    ]
    print(machine_line())
    print(
        f"cubes {tuple(args.size)}, batch {args.batch}, torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, numpy {np.__version__}, local shuffling: {shuffle_path}"
    )
    columns = ("loop ms/cube", "single ms", "batched ms", "cubes/s", "speed-up")
    header = f"{'transform':28s} " + " ".join(f"{c:>12s}" for c in columns)
    print(header)
    print("-" * len(header))
    results = []

    def report(name: str, loop_s: float, single_s: float, batched_s: float) -> None:
        row = {
            "transform": name,
            "loop_ms_per_cube": loop_s * 1e3,
            "single_ms_per_cube": single_s * 1e3,
            "batched_ms_per_cube": batched_s * 1e3,
            "batched_cubes_per_s": 1.0 / batched_s,
            "speedup_vs_loop": loop_s / batched_s,
        }
        results.append(row)
        print(
            f"{name:28s} {row['loop_ms_per_cube']:12.2f} {row['single_ms_per_cube']:12.2f} "
            f"{row['batched_ms_per_cube']:12.3f} {row['batched_cubes_per_s']:12.0f} {row['speedup_vs_loop']:11.1f}x"
        )

    for name, transform, loop in cases:
        best = interleaved_best(
            {
                "loop": partial(_run_loop, loop, cubes),
                "single": partial(transform, one, generator),
                "batched": partial(transform, batch, generator),
            },
            args.repeats,
        )
        report(name, best["loop"] / len(cubes), best["single"], best["batched"] / args.batch)

    # Random gates make a pipeline's cost vary from cube to cube: many cubes per round, every round
    # replaying the same work, and both pipelines timed in the same rounds as the loop.
    many = [c for _ in range(args.pipeline_cubes // len(cubes)) for c in cubes]
    batches = [batch] * max(1, args.pipeline_cubes // args.batch)
    pipelines = {"published pipeline": pipeline, "pipeline, step by step": step_by_step}
    contenders: dict[str, Callable[[], object]] = {"loop": partial(_replay_loop, loop_pipeline, many)}
    for name, transform in pipelines.items():
        contenders[f"{name} single"] = partial(_replay_many, transform, [one] * len(many))
        contenders[f"{name} batched"] = partial(_replay_many, transform, batches)
    best = interleaved_best(contenders, args.repeats)
    for name in pipelines:
        batched = best[f"{name} batched"] / (args.batch * len(batches))
        report(name, best["loop"] / len(many), best[f"{name} single"] / len(many), batched)
    if args.json is not None:
        meta = {
            "machine": machine_line(),
            "size": list(args.size),
            "batch": args.batch,
            "threads": torch.get_num_threads(),
            "local_shuffle": shuffle_path,
        }
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
