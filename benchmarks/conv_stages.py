"""Where a training step's time goes: convolution time and FLOPs per input shape, against the rest.

Runs the same patch-cluster step as ``benchmarks/pretrain.py`` (fabricated crop pairs, the trainer's
memory layout and precision) once under :mod:`torch.profiler`, then groups every 3D convolution call,
forward and backward, by its input shape (batch, channels, spatial size) and weight shape. For each
group it prints the calls, the milliseconds spent (self time of the convolution kernels and of the
weight-sized copies and additions around them is not included), the FLOPs (2 x multiply-adds; a
backward counts as twice its forward, grad-input plus grad-weight, so the stem's group, whose
grad-input is not computed, is shown up to 1.5x too fast),
the achieved GFLOP/s and the group's share of convolution time and of FLOPs. A group whose time share
is far above its FLOP share is where the step loses its fraction of the matmul peak.

Usage::

    python benchmarks/conv_stages.py --backbone resenc-l --amp bf16 --batch 1 --threads 2
    python benchmarks/conv_stages.py --backbone unet3d resenc-l --amp none bf16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

FORWARD_KERNELS = ("aten::mkldnn_convolution", "aten::slow_conv3d_forward", "aten::_slow_conv2d_forward")
BACKWARD_KERNELS = ("aten::convolution_backward",)


def conv_flops(input_shape: list[int], weight_shape: list[int], output_voxels: int) -> float:
    """FLOPs of one forward 3D convolution: 2 x output voxels x out channels x in channels x kernel taps."""
    batch = input_shape[0]
    out_channels, in_channels_per_group = weight_shape[0], weight_shape[1]
    taps = math.prod(weight_shape[2:])
    return 2.0 * batch * output_voxels * out_channels * in_channels_per_group * taps


def attribute(events: Any) -> list[dict[str, Any]]:
    """Group convolution kernel events (``key_averages(group_by_input_shape=True)``) by shape."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for event in events:
        shapes = event.input_shapes
        if event.key in FORWARD_KERNELS and len(shapes) >= 2 and len(shapes[0]) == 5:
            inp, weight = list(shapes[0]), list(shapes[1])
            kind = "forward"
            flops = None  # counted below, once the backward of the same shape has told the output size
        elif event.key in BACKWARD_KERNELS and len(shapes) >= 3 and len(shapes[1]) == 5:
            grad_out, inp, weight = list(shapes[0]), list(shapes[1]), list(shapes[2])
            kind = "backward"
            flops = 2 * conv_flops(inp, weight, math.prod(grad_out[2:]))
        else:
            continue
        key = (tuple(inp), tuple(weight))
        group = groups.setdefault(
            key,
            {"input": inp, "weight": weight, "forward_calls": 0, "backward_calls": 0, "ms": 0.0, "flops": 0.0},
        )
        group[f"{kind}_calls"] += event.count
        group["ms"] += event.self_cpu_time_total / 1000.0
        if flops is not None:
            group["flops"] += flops * event.count
            group["output_voxels"] = math.prod(grad_out[2:])
    for group in groups.values():
        # a forward without its backward (a frozen layer) is taken as stride 1, 'same' padding
        voxels = group.get("output_voxels", math.prod(group["input"][2:]))
        group["flops"] += group["forward_calls"] * conv_flops(group["input"], group["weight"], voxels)
    return sorted(groups.values(), key=lambda g: -g["ms"])


def profile_step(args: argparse.Namespace, backbone: str, amp: str) -> dict[str, Any]:
    """Profile one step (after warm-up) of ``backbone`` in ``amp``; conv groups plus the step's totals."""
    import torch
    from pretrain import build_training_step
    from torch.profiler import ProfilerActivity, profile

    built = build_training_step(
        method_name=args.method,
        backbone=backbone,
        width=args.width,
        crop=tuple(args.crop),
        batch=args.batch,
        amp=amp,
        threads=args.threads,
        memory_format=args.memory_format,
    )
    step = built["step"]
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    groups = attribute(prof.key_averages(group_by_input_shape=True))
    total_self_ms = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1000.0
    return {
        "backbone": backbone,
        "amp": built["amp"],
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "step_seconds": min(times),
        "profiled_self_ms": total_self_ms,
        "conv_ms": sum(g["ms"] for g in groups),
        "conv_flops": sum(g["flops"] for g in groups),
        "groups": groups,
    }


def print_report(result: dict[str, Any], rows: int) -> None:
    conv_ms, flops = result["conv_ms"], result["conv_flops"]
    print(
        f"\n{result['backbone']} {result['amp']} batch {result['batch']}, {result['threads']} threads: "
        f"step {result['step_seconds']:.2f} s (fastest unprofiled), profiled self time "
        f"{result['profiled_self_ms'] / 1000:.2f} s of which convolution kernels {conv_ms / 1000:.2f} s "
        f"({conv_ms / result['profiled_self_ms']:.0%}) for {flops / 1e9:.1f} GFLOP "
        f"({flops / 1e9 / (conv_ms / 1000):.0f} GFLOP/s)"
    )
    print(
        f"{'input (N,C,spatial)':>24} {'weight':>18} {'fwd':>4} {'bwd':>4} {'ms':>8} {'GFLOP':>8} {'GFLOP/s':>8} "
        f"{'time %':>6} {'FLOP %':>6}"
    )
    for g in result["groups"][:rows]:
        inp = g["input"]
        label = f"{inp[0]},{inp[1]},{'x'.join(map(str, inp[2:]))}"
        weight = "x".join(map(str, g["weight"]))
        rate = g["flops"] / 1e9 / (g["ms"] / 1000) if g["ms"] > 0 else float("nan")
        print(
            f"{label:>24} {weight:>18} {g['forward_calls']:4d} {g['backward_calls']:4d} {g['ms']:8.1f} "
            f"{g['flops'] / 1e9:8.2f} {rate:8.0f} {g['ms'] / conv_ms:6.1%} {g['flops'] / flops:6.1%}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="patch-cluster")
    parser.add_argument("--backbone", nargs="+", default=["unet3d", "resenc-l"])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--crop", type=int, nargs=3, default=[64, 64, 32])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--amp", nargs="+", default=["none", "bf16"], choices=["none", "bf16", "fp16", "auto"])
    parser.add_argument("--steps", type=int, default=2, help="Unprofiled timed steps (the fastest is printed).")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default).")
    parser.add_argument("--memory-format", default="auto", choices=["auto", "contiguous", "channels_last"])
    parser.add_argument("--rows", type=int, default=12, help="Shape groups printed per run (slowest first).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    from radiossl.runtime.cpu import machine_line

    print(machine_line())
    results = [profile_step(args, backbone, amp) for backbone in args.backbone for amp in args.amp]
    for result in results:
        print_report(result, args.rows)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
