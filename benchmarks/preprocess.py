"""Benchmark ``radiossl preprocess``: crop pairs per second and bytes per pair on real-size BraTS phantoms.

Writes N phantom BraTS cases of 240 x 240 x 155 voxels with 4 modalities (once, reused on later runs
with the same ``--work`` folder), then preprocesses them in the cluster view with

* ``thesis128`` — the thesis' pixel-level setting: 128 x 128 x 32 crops from 160/192/128-sized boxes,
  at most 85 % background, float16 (the setting the original's numbers refer to);
* ``default64`` — radiossl's default 64 x 64 x 32 crops, float16;
* ``uint8-128`` — as ``thesis128`` but stored as uint8 (values * 255);

each with every ``--workers`` count. The original implementation takes about 1.1 s per pair on a
2-core machine and stores a 128 x 128 x 32 pair as float64 (8 MiB). "pair" = the two crops of one
sample; BraTS gives 4 modalities x 16 pairs = 64 pairs per case.

Usage::

    python benchmarks/preprocess.py --cases 2 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ORIGINAL_SECONDS_PER_PAIR = 1.1
THESIS_SIZES = [(160, 160, 32), (192, 192, 32), (128, 128, 32)]
SETTINGS: dict[str, dict[str, Any]] = {
    "thesis128": {"crop_size": (128, 128, 32), "candidate_sizes": THESIS_SIZES, "storage": "float16"},
    "default64": {"crop_size": (64, 64, 32), "candidate_sizes": THESIS_SIZES, "storage": "float16"},
    "uint8-128": {"crop_size": (128, 128, 32), "candidate_sizes": THESIS_SIZES, "storage": "uint8"},
}


def make_phantoms(raw: Path, cases: int, shape: tuple[int, int, int]) -> float:
    """Write the phantom dataset unless it exists; returns the seconds spent."""
    from radiossl.data.phantoms import synthesize

    if raw.is_dir() and len([p for p in raw.glob("*GG/*") if p.is_dir()]) == cases:
        return 0.0
    shutil.rmtree(raw, ignore_errors=True)
    start = time.perf_counter()
    synthesize("brats", raw, cases=cases, shape=shape, seed=0)
    return time.perf_counter() - start


def run_one(raw: Path, out: Path, setting: str, workers: int) -> dict[str, Any]:
    """Preprocess ``raw`` into a fresh ``out`` with ``setting``; returns the measurements."""
    from radiossl.data.preprocess import PreprocessConfig, preprocess

    shutil.rmtree(out, ignore_errors=True)
    config = PreprocessConfig(
        dataset="brats18", data=raw, out=out, workers=workers, progress=False, **SETTINGS[setting]
    )
    start, before = time.perf_counter(), os.times()
    result = preprocess(config)
    wall, after = time.perf_counter() - start, os.times()
    # CPU seconds of this process (all threads) and of the worker processes (they have exited here)
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("user", "system", "children_user", "children_system"))
    if result.failed:
        raise SystemExit(f"{setting}: {result.failed} case(s) failed: {result.failures}")
    pairs = result.manifest_rows
    stored = sum(p.stat().st_size for p in (out / "arrays").glob("*.npy"))
    h, w, d = config.crop_size
    float64_pair = 2 * h * w * d * 8
    return {
        "setting": setting,
        "workers": workers,
        "pairs": pairs,
        "wall_s": wall,
        "cpu_s": cpu,
        "s_per_pair": wall / pairs,
        "cpu_s_per_pair": cpu / pairs,
        "pairs_per_s": pairs / wall,
        "speedup_vs_original": ORIGINAL_SECONDS_PER_PAIR / (wall / pairs),
        "cpu_speedup_vs_original": ORIGINAL_SECONDS_PER_PAIR / (cpu / pairs),
        "bytes_per_pair": stored / pairs,
        "size_ratio_vs_float64": float64_pair / (stored / pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2, help="phantom BraTS cases (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155), help="volume size")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="radiossl-bench-"))
    synth_seconds = make_phantoms(work / "raw", args.cases, tuple(args.shape))
    rows = [run_one(work / "raw", work / f"{s}-w{w}", s, w) for s in args.settings for w in args.workers]

    from rich.console import Console
    from rich.table import Table

    from radiossl.runtime.cpu import machine_line

    table = Table(title=f"radiossl preprocess: {args.cases} BraTS phantoms {tuple(args.shape)}, 4 modalities")
    columns = (
        "setting",
        "workers",
        "pairs",
        "wall s",
        "s/pair",
        "pairs/s",
        "speed-up (wall)",
        "CPU s/pair",
        "speed-up (CPU)",
        "KiB/pair",
        "smaller than float64",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["setting"],
            str(row["workers"]),
            str(row["pairs"]),
            f"{row['wall_s']:.2f}",
            f"{row['s_per_pair']:.4f}",
            f"{row['pairs_per_s']:.1f}",
            f"{row['speedup_vs_original']:.0f}x",
            f"{row['cpu_s_per_pair']:.4f}",
            f"{row['cpu_speedup_vs_original']:.0f}x",
            f"{row['bytes_per_pair'] / 1024:.0f}",
            f"{row['size_ratio_vs_float64']:.1f}x",
        )
    console = Console(width=150)
    console.print(machine_line(), highlight=False)
    console.print(table)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    console.print(
        f"speed-ups against the original's {ORIGINAL_SECONDS_PER_PAIR} s per pair; CPU = all processes and "
        f"threads; load average after the runs: {load}"
    )
    if synth_seconds:
        console.print(f"(phantom generation, not timed above: {synth_seconds:.1f} s; data in {work})")
    if args.json is not None:
        args.json.write_text(json.dumps([{**row, "machine": machine_line()} for row in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
