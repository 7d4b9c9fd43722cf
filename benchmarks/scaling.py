"""Strong scaling of DDP pretraining: training samples/s with 1, 2, ... processes on one machine.

The problem is fixed: one phantom folder, the same epochs and the same **global** batch, so every world
size trains the same samples in the same optimiser steps (each of ``W`` processes takes
``global batch / W`` samples per step). Each run is the real command,
``torchrun --standalone --nproc_per_node=W -m radiossl pretrain --method patch-cluster ...`` (Gloo on
the CPU, NCCL with ``--device cuda``), with a fixed number of threads per process (``--threads``, default
1), so ``W`` processes use ``W`` cores.

Throughput counts the training loop only: the samples of epochs 2..E over their ``epoch_time`` in
``metrics.jsonl`` (epoch 1 warms up; validation and checkpoints are not timed). Runs interleave the
world sizes (1, 2, 1, 2, ...) so that a slow spell of a shared machine hits every world size, and the
table reports medians over ``--repeats``.

Usage::

    python benchmarks/scaling.py                          # 1 vs 2 processes, 3 repeats, on the CPU
    python benchmarks/scaling.py --world-sizes 1 2 4 --threads 2 --json scaling.json
    python benchmarks/scaling.py --device cuda --world-sizes 1 2 4 8 --global-batch 64 --width 1.0
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]  # sibling helpers, then this checkout's radiossl (as the runs get it)

from host_info import cpu_name, load_average  # noqa: E402
from phantom_data import PhantomSpec, phantom_pretrain_folder  # noqa: E402


@dataclass
class Run:
    """One training run of one world size."""

    world_size: int
    repeat: int
    samples: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds


def training_throughput(metrics: Path, global_batch: int) -> tuple[int, float]:
    """Samples and seconds of the training loops of epochs 2..E in a run's ``metrics.jsonl``.

    Raises:
        ValueError: fewer than two epoch lines (nothing left after the warm-up epoch).
    """
    epochs = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    epochs = [e for e in epochs if e.get("type") == "epoch"]
    if len(epochs) < 2:
        raise ValueError(f"{metrics}: {len(epochs)} epoch line(s); need at least 2 (epoch 1 is the warm-up)")
    samples, seconds = 0, 0.0
    for before, epoch in itertools.pairwise(epochs):
        samples += (int(epoch["step"]) - int(before["step"])) * global_batch
        seconds += float(epoch["epoch_time"])
    return samples, seconds


def launch(args: argparse.Namespace, proc: Path, world: int, out: Path) -> Path:
    """One ``torchrun ... -m radiossl pretrain`` run; its run folder."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={world}",
        "-m",
        "radiossl",
        "pretrain",
        "--method",
        "patch-cluster",
        "--data",
        str(proc),
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.global_batch // world),
        "--width",
        str(args.width),
        "--device",
        args.device,
        "--workers",
        "0",
        "--set",
        f"data.crop_size={list(args.crop)}",
        "--set",
        "logging.progress=false",
        "--set",
        f"logging.log_every={10**6}",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"world size {world}: torchrun exited {done.returncode}\n{done.stderr[-3000:]}")
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def summarise(runs: Sequence[Run], world_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Per world size: median samples/s, range, speed-up and efficiency against the smallest world size."""
    rows = []
    for world in world_sizes:
        rates = [r.samples_per_second for r in runs if r.world_size == world]
        rows.append({"world_size": world, "median": statistics.median(rates), "min": min(rates), "max": max(rates)})
    base = rows[0]
    for row in rows:
        row["speedup"] = row["median"] / base["median"]
        row["efficiency"] = row["speedup"] * base["world_size"] / row["world_size"]
    return rows


def markdown_table(rows: Sequence[dict[str, Any]], threads: int, global_batch: int) -> str:
    """The table for docs/scaling.md."""
    lines = [
        "| processes | threads each | batch per process | samples/s (median) | range | speed-up | efficiency |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['world_size']} | {threads} | {global_batch // row['world_size']} | {row['median']:.2f} | "
            f"{row['min']:.2f}–{row['max']:.2f} | {row['speedup']:.2f}× | {row['efficiency']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="Epochs per run (the first one is not timed).")
    parser.add_argument("--global-batch", type=int, default=4, help="Samples per optimiser step, all processes.")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--crop", type=int, nargs=3, default=[32, 32, 16])
    parser.add_argument("--cases", type=int, default=6, help="Phantom BraTS cases (4 of 6 train).")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 48], help="Phantom volume size.")
    parser.add_argument("--pairs", type=int, default=4, help="Crop pairs per modality and case.")
    parser.add_argument("--threads", type=int, default=1, help="Threads per process (OMP_NUM_THREADS).")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    parser.add_argument("--json", type=Path, default=None, help="Also write every run and the table here.")
    args = parser.parse_args(argv)
    for world in args.world_sizes:
        if world < 1 or args.global_batch % world:
            parser.error(f"--global-batch {args.global_batch} must split evenly over {world} processes")
    if args.repeats < 1 or args.epochs < 2:
        parser.error("--repeats must be at least 1 and --epochs at least 2 (the first epoch is not timed)")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="radiossl-scaling-"))
    spec = PhantomSpec(
        cases=args.cases,
        shape=(args.shape[0], args.shape[1], args.shape[2]),
        crop=(args.crop[0], args.crop[1], args.crop[2]),
        pairs=args.pairs,
    )
    proc = phantom_pretrain_folder(workdir / "data", spec)
    load_before = load_average()
    runs: list[Run] = []
    for repeat in range(args.repeats):
        for world in args.world_sizes:
            out = workdir / "runs" / f"w{world}-r{repeat}"
            if out.exists():
                raise SystemExit(f"{out}: exists; give a fresh --workdir")
            run_dir = launch(args, proc, world, out)
            samples, seconds = training_throughput(run_dir / "metrics.jsonl", args.global_batch)
            runs.append(Run(world, repeat, samples, seconds))
            print(f"repeat {repeat + 1}, {world} process(es): {samples / seconds:.2f} samples/s", flush=True)
    rows = summarise(runs, args.world_sizes)
    load_after = load_average()

    def loads(value: tuple[float, float, float] | None) -> str:
        return "n/a" if value is None else " ".join(f"{v:.1f}" for v in value)

    import torch

    print(
        f"\n{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, device {args.device}; "
        f"patch-cluster width {args.width:g}, crops {'x'.join(map(str, args.crop))}, global batch {args.global_batch}, "
        f"{args.epochs} epochs ({runs[0].samples} samples timed per run); "
        f"load average {loads(load_before)} before, {loads(load_after)} after"
    )
    print(markdown_table(rows, args.threads, args.global_batch))
    if args.json is not None:
        payload = {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "load_before": load_before,
            "load_after": load_after,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "runs": [asdict(r) | {"samples_per_second": r.samples_per_second} for r in runs],
            "table": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(math.isfinite(r["median"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
