"""Optimiser step time per implementation (``optim.implementation``) over a backbone's parameters.

Builds the patch-cluster network of ``--backbone`` at ``--width`` (as ``radiossl pretrain`` builds it),
gives every parameter a random gradient and times ``optimizer.step()`` for SGD (momentum 0.9) and
AdamW with torch's for-loop, foreach and fused kernels, through :func:`radiossl.engine.optim.build_optimizer`.
No forward or backward runs, so the figures are the optimiser's own share of a training step.

Usage::

    python benchmarks/optimizer.py --backbone resenc-l --threads 2
    python benchmarks/optimizer.py --backbone unet3d resenc-l --repeats 10 --json opt.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

IMPLEMENTATIONS = ("for-loop", "foreach", "fused")


def time_steps(backbone: str, width: float, optimizer: str, implementation: str, repeats: int) -> dict[str, Any]:
    """Fastest of ``repeats`` optimiser steps (after two untimed ones) for one backbone and implementation."""
    import torch
    from pretrain import build_training_step

    from radiossl.config import OptimConfig
    from radiossl.engine.optim import build_optimizer

    # the network as `radiossl pretrain` builds it; contiguous parameters, as on a GPU
    built = build_training_step("patch-cluster", backbone, width, (64, 64, 32), 1, "none", 0, "contiguous")
    model = built["model"]
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter) * 1e-3
    opt = build_optimizer(model, OptimConfig(optimizer=optimizer, implementation=implementation, lr=1e-3))  # type: ignore[arg-type]
    opt.step()
    opt.step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return {
        "backbone": backbone,
        "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer": optimizer,
        "implementation": implementation,
        "step_ms": 1000 * min(times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=["resenc-l"])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--optimizer", nargs="+", default=["sgd", "adamw"], choices=["sgd", "adam", "adamw"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    import torch

    from radiossl.runtime.cpu import machine_line

    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    results = [
        time_steps(backbone, args.width, optimizer, implementation, args.repeats)
        for backbone in args.backbone
        for optimizer in args.optimizer
        for implementation in IMPLEMENTATIONS
    ]
    header = ("backbone", "parameters", "optimizer", "implementation", "ms/step", "vs for-loop")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (12, 12, 9, 14, 8, 11), strict=True)))
    for r in results:
        base = next(
            b["step_ms"]
            for b in results
            if (b["backbone"], b["optimizer"], b["implementation"]) == (r["backbone"], r["optimizer"], "for-loop")
        )
        print(
            f"{r['backbone']:>12} {r['parameters']:12,d} {r['optimizer']:>9} {r['implementation']:>14} "
            f"{r['step_ms']:8.1f} {base / r['step_ms']:10.2f}x"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
