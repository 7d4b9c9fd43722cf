"""GPU readiness check: every CUDA path of radiossl in one short run, and pretraining throughput.

Run it through ``benchmarks/gpu_check.sh`` on a GPU machine (sized to finish in under 10 minutes on
one GPU; not yet timed on one). Each check prints one line, ``PASS|FAIL|SKIP name: detail (seconds)``, and all results
(with every measured number) go to a JSON file: ``--json PATH``, else ``$OUT/gpu_check.json`` when
``OUT`` is set, else ``./gpu_check.json``. The exit code is 1 when a check failed, 2 for usage errors,
0 otherwise. A check whose Python module is missing (faiss-gpu, say) is a SKIP that names the module.

Checks, in order:

* ``device`` — GPU name, compute capability, memory, torch / CUDA / cuDNN / NCCL versions;
* ``matmul-peak`` — square matmul TFLOP/s in bf16, fp16, fp32 with TF32 off and on (CUDA events);
* ``amp-bf16``, ``amp-fp16`` — a tiny patch-cluster pretraining through ``radiossl.pretrain`` with
  ``runtime.amp``; losses finite, the gradient scaler off (bf16) or on (fp16), and the fp16 scaler
  skipping a step with an infinite gradient and halving its scale;
* ``genesis-transforms`` — the device paths of the ModelsGenesis transforms against the CPU paths:
  local shuffling's exact block distribution, Bézier maps, the fused corruption under shared decisions;
* ``kmeans-assign`` — nearest-centroid assignment of device tensors against faiss on the CPU;
* ``faiss-gpu`` — k-means fitted by faiss on the GPU against the CPU (SKIP without faiss-gpu);
* ``ddp-collectives`` — ``torchrun`` on every visible GPU: NCCL all-reduce (with bus bandwidth),
  all-gather, broadcast, and SyncBatchNorm's forward and backward against BatchNorm of the global batch;
* ``ddp-pretrain`` — ``torchrun ... -m radiossl pretrain`` for 2 epochs with ``runtime.sync_batchnorm=true``;
* ``throughput-<backbone>`` — patch-cluster training steps at width 1.0 with the published crops and
  batch (64x64x32, 16 pairs), fp32 and bf16, on fabricated batches (no data loading): steps/s,
  pairs/s, FLOPs of a step (``FlopCounterMode``) and the achieved FLOP/s as a fraction of the bf16
  matmul peak measured above. One line per backbone: ``unet3d`` today; every ``model.name`` choice
  once the config has that field.

``--device cpu --quick`` runs the same check functions on the CPU at tiny sizes (the test suite does);
checks that need CUDA then SKIP with the reason. Sizes and step counts come from environment variables
(see :class:`Settings`), e.g. ``GPU_CHECK_STEPS=50 GPU_CHECK_BACKBONES=unet3d``.

Usage::

    python benchmarks/gpu_check.py                       # all checks on cuda
    python benchmarks/gpu_check.py --only device matmul-peak throughput
    python benchmarks/gpu_check.py --device cpu --quick --json /tmp/check.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Sibling helpers (host_info, phantom_data), then this checkout's radiossl, installed or not: the processes the
# checks launch get the same order (Context.child_env), so every part checks the same code.
sys.path[:0] = [str(HERE), str(REPO)]

from host_info import cpu_name  # noqa: E402
from phantom_data import PhantomSpec, phantom_pretrain_folder  # noqa: E402

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
METHOD = "patch-cluster"


class SkipCheckError(Exception):
    """The check cannot run here; the message says why."""


class CheckFailedError(Exception):
    """The check ran and found a problem; ``data`` keeps what it measured."""

    def __init__(self, detail: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.data = dict(data or {})


def expect(condition: bool, detail: str, data: Mapping[str, Any] | None = None) -> None:
    """Fail the current check with ``detail`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailedError(detail, data)


# --------------------------------------------------------------------------------------------------
# Settings


class SettingsError(ValueError):
    """An environment variable with a value the check cannot use."""


def _env_int(environ: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value}: must be at least {minimum}")
    return value


def _env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a number") from None
    if not value > 0:
        raise SettingsError(f"{name}={value}: must be positive")
    return value


def _env_crop(environ: Mapping[str, str], name: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    text = environ.get(name, "").strip()
    if not text:
        return default
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) % 8 == 0 and int(p) > 0 for p in parts):
        raise SettingsError(f"{name}={text!r}: expected three positive multiples of 8, e.g. 64,64,32")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


@dataclass(frozen=True)
class Settings:
    """Sizes of every check. ``quick`` picks tiny defaults; environment variables override either.

    ======================== ============================================= ============ =========
    variable                 meaning                                       default      quick
    ======================== ============================================= ============ =========
    GPU_CHECK_MATMUL_SIZE    side of the square matmuls of the peak         8192         128
    GPU_CHECK_MATMUL_REPEATS matmuls per timing (best of 3 timings)         20           2
    GPU_CHECK_WIDTH          network width of the throughput check          1.0          0.125
    GPU_CHECK_CROP           crop size X,Y,Z of the throughput check        64,64,32     16,16,16
    GPU_CHECK_BATCH          crop pairs per step of the throughput check    16           2
    GPU_CHECK_STEPS          timed steps per precision                      20           1
    GPU_CHECK_WARMUP         untimed steps first                            5            1
    GPU_CHECK_BACKBONES      comma-separated backbones to measure           all known    all known
    GPU_CHECK_NPROC          processes of the DDP checks                    GPUs present 2 on CPU
    GPU_CHECK_TIMEOUT        seconds allowed for each torchrun launch       600          300
    ======================== ============================================= ============ =========
    """

    quick: bool
    matmul_size: int
    matmul_repeats: int
    width: float
    crop: tuple[int, int, int]
    batch: int
    steps: int
    warmup: int
    backbones: tuple[str, ...] | None
    nproc: int | None
    timeout: float
    phantom: PhantomSpec
    tiny_width: float
    tiny_batch: int
    tiny_epochs: int
    tiny_ratio: float
    transform_cubes: int
    transform_size: tuple[int, int, int]
    shuffle_trials: int
    kmeans_points: int

    @classmethod
    def from_env(cls, quick: bool, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults for ``quick`` or a full run, with the ``GPU_CHECK_*`` overrides of ``environ``."""
        env = os.environ if environ is None else environ
        backbones = tuple(b.strip() for b in env.get("GPU_CHECK_BACKBONES", "").split(",") if b.strip())
        nproc = env.get("GPU_CHECK_NPROC", "").strip()
        return cls(
            quick=quick,
            matmul_size=_env_int(env, "GPU_CHECK_MATMUL_SIZE", 128 if quick else 8192, minimum=16),
            matmul_repeats=_env_int(env, "GPU_CHECK_MATMUL_REPEATS", 2 if quick else 20),
            width=_env_float(env, "GPU_CHECK_WIDTH", 0.125 if quick else 1.0),
            crop=_env_crop(env, "GPU_CHECK_CROP", (16, 16, 16) if quick else (64, 64, 32)),
            batch=_env_int(env, "GPU_CHECK_BATCH", 2 if quick else 16),
            steps=_env_int(env, "GPU_CHECK_STEPS", 1 if quick else 20),
            warmup=_env_int(env, "GPU_CHECK_WARMUP", 1 if quick else 5, minimum=0),
            backbones=backbones or None,
            nproc=_env_int(env, "GPU_CHECK_NPROC", 1) if nproc else None,
            timeout=_env_float(env, "GPU_CHECK_TIMEOUT", 300.0 if quick else 600.0),
            phantom=(
                PhantomSpec(cases=6, shape=(48, 48, 32), crop=(16, 16, 16), pairs=1)
                if quick
                else PhantomSpec(cases=6, shape=(64, 64, 48), crop=(32, 32, 16), pairs=4)
            ),
            tiny_width=0.125 if quick else 0.25,
            tiny_batch=2 if quick else 4,
            tiny_epochs=1 if quick else 2,
            tiny_ratio=0.25 if quick else 1.0,
            transform_cubes=2 if quick else 32,
            transform_size=(32, 32, 16) if quick else (64, 64, 32),
            shuffle_trials=4000 if quick else 40000,
            kmeans_points=4000 if quick else 400000,
        )


# --------------------------------------------------------------------------------------------------
# Running the checks


@dataclass
class Result:
    """One line of the report."""

    name: str
    status: str
    detail: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail} ({self.seconds:.1f} s)"


@dataclass
class Context:
    """What the checks share: the device, the sizes, a scratch folder and measured peaks."""

    device_name: str
    settings: Settings
    workdir: Path
    peaks_tflops: dict[str, float] = field(default_factory=dict)

    @property
    def device(self) -> Any:
        import torch

        return torch.device(self.device_name)

    @property
    def cuda(self) -> bool:
        return self.device_name == "cuda"

    def require_cuda(self) -> None:
        if not self.cuda:
            raise SkipCheckError(f"needs a CUDA device (running on {self.device_name})")

    def phantom_folder(self) -> Path:
        """The preprocessed phantom folder of the tiny pretraining runs (made on first use)."""
        return phantom_pretrain_folder(self.workdir / "data", self.settings.phantom)

    def child_env(self) -> dict[str, str]:
        """Environment of launched processes: this checkout first on the path, one thread per CPU process."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        if not self.cuda:
            env.setdefault("OMP_NUM_THREADS", "1")
        return env


Check = Callable[[Context], tuple[str, dict[str, Any]]]


def run_check(name: str, check: Check, ctx: Context) -> Result:
    """Run one check: PASS, SKIP (:class:`SkipCheckError` or a missing module) or FAIL (anything else)."""
    start = time.perf_counter()
    data: dict[str, Any] = {}
    try:
        detail, data = check(ctx)
        status = PASS
    except SkipCheckError as exc:
        status, detail = SKIP, str(exc)
    except CheckFailedError as exc:
        status, detail, data = FAIL, str(exc), exc.data
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        if missing.split(".")[0] == "radiossl":
            status, detail = FAIL, f"ModuleNotFoundError: {exc}"
            data = {"traceback": traceback.format_exc()}
        else:
            status, detail = SKIP, f"needs the Python module {missing!r}, which {sys.executable} cannot import"
    except Exception as exc:
        status, detail = FAIL, f"{type(exc).__name__}: {exc}".splitlines()[0]
        data = {"traceback": traceback.format_exc()}
    return Result(name, status, detail, time.perf_counter() - start, data)


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------------
# device, matmul-peak


def check_device(ctx: Context) -> tuple[str, dict[str, Any]]:
    import torch

    data: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    if not ctx.cuda:
        return f"CPU {data['cpu']}, {data['cpu_count']} cores, torch {torch.__version__}", data
    expect(
        torch.cuda.is_available(),
        f"CUDA not available to torch {torch.__version__} (built for CUDA {torch.version.cuda})",
    )
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            {
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count,
            }
        )
    data.update(
        gpus=gpus,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        nccl=nccl_version(),
        bf16_supported=torch.cuda.is_bf16_supported(),
    )
    first = gpus[0]
    detail = (
        f"{len(gpus)} x {first['name']} (sm {first['capability']}, {first['memory_gib']} GiB), "
        f"torch {torch.__version__}, CUDA {data['cuda']}, cuDNN {data['cudnn']}, NCCL {data['nccl']}"
    )
    return detail, data


def nccl_version() -> str | None:
    """NCCL's version as ``major.minor.patch`` (torch reports a tuple, older releases one integer)."""
    import torch

    try:
        version = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def matmul_tflops(device: Any, dtype: Any, size: int, repeats: int) -> float:
    """Best of 3 timings of ``repeats`` back-to-back ``size``² matmuls, in TFLOP/s (CUDA events on GPUs)."""
    import torch

    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty_like(a)
    for _ in range(2):
        torch.matmul(a, b, out=out)
    best = math.inf
    for _ in range(3):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000.0
        else:
            begin = time.perf_counter()
            for _ in range(repeats):
                torch.matmul(a, b, out=out)
            seconds = time.perf_counter() - begin
        best = min(best, seconds / repeats)
    return 2.0 * size**3 / best / 1e12


@contextlib.contextmanager
def float32_matmul_precision(precision: str) -> Iterator[None]:
    """``torch.set_float32_matmul_precision`` for a block (``highest``: no TF32; ``high``: TF32)."""
    import torch

    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def check_matmul_peak(ctx: Context) -> tuple[str, dict[str, Any]]:
    import torch

    s = ctx.settings
    rows: list[tuple[str, Any, str]] = [("bf16", torch.bfloat16, "highest"), ("fp32", torch.float32, "highest")]
    if ctx.cuda:  # half precision matmuls are slow emulations on most CPUs, and TF32 is a GPU format
        rows += [("fp16", torch.float16, "highest"), ("tf32", torch.float32, "high")]
    peaks: dict[str, float] = {}
    for label, dtype, precision in rows:
        with float32_matmul_precision(precision):
            peaks[label] = matmul_tflops(ctx.device, dtype, s.matmul_size, s.matmul_repeats)
    ctx.peaks_tflops.update(peaks)
    expect(all(math.isfinite(v) and v > 0 for v in peaks.values()), f"non-positive matmul rate: {peaks}", peaks)
    unit, scale = ("TFLOP/s", 1.0) if ctx.cuda else ("GFLOP/s", 1e3)
    detail = ", ".join(f"{k} {v * scale:.1f}" for k, v in peaks.items()) + f" {unit} ({s.matmul_size}² matmuls)"
    return detail, {"tflops": peaks, "size": s.matmul_size, "repeats": s.matmul_repeats}


# --------------------------------------------------------------------------------------------------
# amp-bf16, amp-fp16: radiossl's own training path


def tiny_pretrain(ctx: Context, tag: str, overrides: list[str]) -> Any:
    """A short patch-cluster run through ``radiossl.pretrain`` on the phantom folder; its TrainResult."""
    from radiossl.engine.progress import NullReporter, reporting_to
    from radiossl.pretext.base import load_pretrain_config
    from radiossl.pretext.pretrain import pretrain

    s = ctx.settings
    config = load_pretrain_config(
        METHOD,
        overrides=[
            f"data.root={ctx.phantom_folder()}",
            f"data.crop_size={list(s.phantom.crop)}",
            f"data.ratio={s.tiny_ratio}",
            "data.workers=0",
            f"model.width={s.tiny_width}",
            f"optim.epochs={s.tiny_epochs}",
            f"optim.batch_size={s.tiny_batch}",
            f"runtime.device={ctx.device_name}",
            "logging.progress=false",
            f"out={ctx.workdir / 'runs' / tag}",
            *overrides,
        ],
    )
    with reporting_to(NullReporter()):
        return pretrain(config)


def _losses(history: list[dict[str, Any]]) -> list[float]:
    return [float(h["loss"]) for h in history]


def check_amp_bf16(ctx: Context) -> tuple[str, dict[str, Any]]:
    import torch

    from radiossl.runtime.precision import autocast_context

    if ctx.cuda and not torch.cuda.is_bf16_supported():
        raise SkipCheckError("this GPU has no bfloat16 support")
    with autocast_context(ctx.device, "bf16"):
        conv_dtype = torch.nn.Conv3d(1, 2, 3).to(ctx.device)(torch.rand(1, 1, 8, 8, 8, device=ctx.device)).dtype
    expect(conv_dtype == torch.bfloat16, f"a Conv3d under runtime.amp=bf16 returned {conv_dtype}")
    result = tiny_pretrain(ctx, "amp-bf16", ["runtime.amp=bf16"])
    losses = _losses(result.history)
    scaler = torch.load(result.final_checkpoint, weights_only=True)["grad_scaler"]
    data = {"losses": losses, "grad_scaler": scaler, "run_dir": str(result.run_dir)}
    expect(bool(losses) and all(math.isfinite(v) for v in losses), f"non-finite losses {losses}", data)
    expect(not scaler, f"bf16 should run without a gradient scaler, checkpoint holds {scaler}", data)
    return f"Conv3d in bfloat16; {len(losses)} epochs, losses {_fmt(losses)}, no gradient scaler", data


def _scaler_skips_infinite_steps(device: Any) -> tuple[float, float]:
    """The fp16 scaler on ``device``: a step with an infinite gradient changes nothing and halves the scale."""
    import torch

    from radiossl.runtime.precision import autocast_context, make_grad_scaler

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = make_grad_scaler(device, "fp16")
    expect(scaler.is_enabled(), "runtime.amp=fp16 made a disabled gradient scaler")
    x = torch.randn(16, 8, device=device)
    with autocast_context(device, "fp16"):
        out = model(x)
    expect(out.dtype == torch.float16, f"a Linear under runtime.amp=fp16 returned {out.dtype}")
    scaler.scale(out.float().square().mean()).backward()
    assert model.weight.grad is not None
    model.weight.grad[0, 0] = math.inf
    before, scale = model.weight.detach().clone(), scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    expect(torch.equal(model.weight.detach(), before), "the scaler applied a step whose gradient was infinite")
    expect(scaler.get_scale() == scale * 0.5, f"scale {scale} became {scaler.get_scale()} after an inf, not half")
    return scale, scaler.get_scale()


def check_amp_fp16(ctx: Context) -> tuple[str, dict[str, Any]]:
    import torch

    from radiossl.runtime.precision import resolve_amp

    scale_before, scale_after = _scaler_skips_infinite_steps(ctx.device)
    result = tiny_pretrain(ctx, "amp-fp16", ["runtime.amp=fp16"])
    losses = _losses(result.history)
    scaler = torch.load(result.final_checkpoint, weights_only=True)["grad_scaler"]
    data = {"losses": losses, "grad_scaler": scaler, "run_dir": str(result.run_dir)}
    expect(bool(losses) and all(math.isfinite(v) for v in losses), f"non-finite losses {losses}", data)
    choice = resolve_amp(ctx.device, "fp16")
    if choice.fallback:  # a device without native fp16 (most CPUs): training runs float32, without a scaler
        expect(not scaler, f"fp16 fell back to float32 but the checkpoint holds a scaler ({scaler})", data)
        return (
            f"an inf gradient skipped the step (scale {scale_before:g} -> {scale_after:g}); fp16 is not native "
            f"here, so the run fell back to float32 without a scaler ({choice.message})",
            data,
        )
    scale = scaler.get("scale") if isinstance(scaler, dict) else None
    expect(
        isinstance(scale, float) and math.isfinite(scale) and scale > 0,
        f"the fp16 run's checkpoint holds no active gradient scaler ({scaler})",
        data,
    )
    return (
        f"an inf gradient skipped the step (scale {scale_before:g} -> {scale_after:g}); "
        f"{len(losses)} epochs, losses {_fmt(losses)}, scaler scale {scale:g}",
        data,
    )


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


# --------------------------------------------------------------------------------------------------
# genesis-transforms: device paths against the CPU paths


def exact_block_distribution() -> dict[tuple[int, ...], float]:
    """Output distribution of local shuffling with one block in a 2x2x1 cube, block edges up to 2.

    Voxel ``(x, y)`` holds ``2x + y``. Each edge is 1 or 2 with equal probability, the corner is uniform
    over the positions where the block fits, and the block's voxels are permuted uniformly.
    """
    probs: dict[tuple[int, ...], float] = {}
    for ex, ey in itertools.product((1, 2), (1, 2)):
        corners = list(itertools.product(range(3 - ex), range(3 - ey)))
        for cx, cy in corners:
            cells = [2 * x + y for x in range(cx, cx + ex) for y in range(cy, cy + ey)]
            perms = list(itertools.permutations(cells))
            for perm in perms:
                out = list(range(4))
                for target, source in zip(cells, perm, strict=True):
                    out[target] = source
                key = tuple(out)
                probs[key] = probs.get(key, 0.0) + 0.25 / len(corners) / len(perms)
    return probs


def block_distribution_chi2(device: Any, trials: int, seed: int) -> float:
    """Chi² of ``trials`` one-block shuffles of a 2x2x1 cube on ``device`` against the exact distribution."""
    import torch

    from radiossl.transforms import generator_for, local_shuffle

    x = torch.arange(4.0, device=device).reshape(1, 1, 2, 2, 1).repeat(trials, 1, 1, 1, 1)
    y = local_shuffle(x, generator_for(seed, device), n_blocks=1, divisor=1).reshape(trials, 4).long().cpu()
    expected = exact_block_distribution()
    keys = list(expected)
    code = {key: i for i, key in enumerate(keys)}
    rows = [code.get(tuple(row)) for row in y.tolist()]
    expect(None not in rows, "local shuffling produced an arrangement one block cannot make")
    observed = torch.bincount(torch.tensor(rows), minlength=len(keys)).double()
    wanted = torch.tensor([expected[k] for k in keys], dtype=torch.float64) * trials
    return float(((observed - wanted) ** 2 / wanted).sum())


def _moved_fraction(x: Any, y: Any) -> float:
    return float((x != y).double().mean())


def check_genesis_transforms(ctx: Context) -> tuple[str, dict[str, Any]]:
    import torch

    from radiossl.transforms import GenesisCorruption, apply_corruption, bezier_remap, generator_for, local_shuffle
    from radiossl.transforms.genesis_corruption import IN_PAINT, NO_PAINT, OUT_PAINT
    from radiossl.transforms.local_shuffle import block_limits

    s = ctx.settings
    device, cpu = ctx.device, torch.device("cpu")
    data: dict[str, Any] = {"device": ctx.device_name}

    # Local shuffling: the exact distribution of one block (23 degrees of freedom; P(chi2 > 52) < 1e-3).
    chi2 = block_distribution_chi2(device, s.shuffle_trials, seed=11)
    data["block_chi2"] = chi2
    expect(chi2 < 52.0, f"one-block shuffles do not follow the exact distribution (chi2 {chi2:.1f} >= 52)", data)

    # Local shuffling at the published size: every voxel comes from a block around it, and as many
    # voxels move as on the CPU. Voxel values are their own indices, so each output names its source.
    batch, size = s.transform_cubes, s.transform_size
    volume = size[0] * size[1] * size[2]
    x = torch.arange(float(volume)).reshape(1, 1, *size).repeat(batch, 1, 1, 1, 1)
    y_dev = local_shuffle(x.to(device), generator_for(12, device)).cpu()
    y_cpu = local_shuffle(x, generator_for(12, cpu))
    limits = torch.tensor(block_limits(size))
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in size), indexing="ij"), dim=-1).reshape(-1, 3)
    source = y_dev.long().reshape(batch, -1)
    plane = size[1] * size[2]
    coords = torch.stack([source // plane, (source % plane) // size[2], source % size[2]], dim=-1)
    expect(bool(((coords - grid).abs() < limits).all()), "local shuffling moved a voxel farther than a block", data)
    moved = (_moved_fraction(x, y_dev), _moved_fraction(x, y_cpu))
    data["moved_fraction"] = {"device": moved[0], "cpu": moved[1]}
    expect(abs(moved[0] - moved[1]) < 0.03, f"voxels moved: device {moved[0]:.3f}, CPU {moved[1]:.3f}", data)

    # Bézier maps: the same curves give the same intensities on both paths.
    gen = torch.Generator().manual_seed(13)
    cubes = torch.rand(batch, 1, *size, generator=gen)
    controls = torch.rand(batch, 4, generator=gen)
    inverted = torch.arange(batch) % 2 == 1
    mapped_cpu = bezier_remap(cubes, controls, inverted)
    mapped_dev = bezier_remap(cubes.to(device), controls.to(device), inverted.to(device)).cpu()
    bezier_error = float((mapped_cpu - mapped_dev).abs().max())
    data["bezier_max_abs_difference"] = bezier_error
    expect(bezier_error < 1e-5, f"Bézier maps differ by {bezier_error:.2e} between the device and the CPU", data)

    # The fused corruption under one set of decisions: what no random draw touches must agree exactly,
    # and a cube that is not painted keeps the multiset of its mapped values wherever shuffling moved them.
    corrupt = GenesisCorruption()
    plan = corrupt.plan(cubes, generator_for(14, cpu))
    plan_dev = dataclasses.replace(
        plan,
        shuffle=plan.shuffle.to(device),
        bezier=plan.bezier.to(device),
        controls=plan.controls.to(device),
        inverted=plan.inverted.to(device),
        paint=plan.paint.to(device),
    )
    out_cpu = apply_corruption(cubes, plan, generator_for(15, cpu))
    out_dev_gpu = apply_corruption(cubes.to(device), plan_dev, generator_for(15, device))
    out_dev = out_dev_gpu.cpu()
    expect(out_dev.shape == cubes.shape and out_dev.dtype == cubes.dtype, f"corruption returned {out_dev.shape}")
    expect(bool(torch.isfinite(out_dev).all()), "the corruption produced non-finite values", data)
    expect(float(out_dev.min()) >= 0.0 and float(out_dev.max()) <= 1.0, "corrupted values left [0, 1]", data)
    kinds, shuffled = plan.paint.tolist(), plan.shuffle.tolist()
    verified = {"unpainted": 0, "in-painted": 0, "out-painted": 0}
    for b in range(batch):
        if kinds[b] == NO_PAINT:
            close = torch.allclose(out_dev[b].flatten().sort().values, out_cpu[b].flatten().sort().values, atol=1e-5)
            if not shuffled[b]:
                close = close and torch.allclose(out_dev[b], out_cpu[b], atol=1e-5)
            expect(close, f"cube {b} (not painted) differs between the device and the CPU", data)
            verified["unpainted"] += 1
        elif not shuffled[b]:
            mask = torch.zeros(size, dtype=torch.bool)
            for bx, by, bz, sx, sy, sz in plan.boxes[b]:
                mask[bx : bx + sx, by : by + sy, bz : bz + sz] = True
            kept = mask if kinds[b] == OUT_PAINT else ~mask
            close = torch.allclose(out_dev[b, :, kept], out_cpu[b, :, kept], atol=1e-5)
            expect(close, f"cube {b}: voxels outside the noise differ between the device and the CPU", data)
            verified["out-painted" if kinds[b] == OUT_PAINT else "in-painted"] += 1
    data["cubes_compared"] = verified
    data["paint_kinds"] = {"none": kinds.count(NO_PAINT), "in": kinds.count(IN_PAINT), "out": kinds.count(OUT_PAINT)}

    repeats = 1 if s.quick else 5
    device_cubes = cubes.to(device)
    _synchronize(device)
    start = time.perf_counter()
    for r in range(repeats):
        corrupt(device_cubes, generator_for(16 + r, device))
    _synchronize(device)
    rate = batch * repeats / (time.perf_counter() - start)
    data["corruption_cubes_per_second"] = rate
    shape = "x".join(map(str, size))
    detail = (
        f"block chi2 {chi2:.1f} < 52; {batch} cubes {shape}: voxels moved {moved[0]:.3f} (CPU {moved[1]:.3f}), "
        f"Bézier within {bezier_error:.1e}, corruption matches the CPU path on {sum(verified.values())} "
        f"cubes; {rate:.0f} cubes/s"
    )
    return detail, data


# --------------------------------------------------------------------------------------------------
# kmeans-assign, faiss-gpu


def _faiss_or_skip() -> Any:
    from radiossl.clustering.faiss_kmeans import faiss_module
    from radiossl.errors import DataError

    try:
        return faiss_module()
    except DataError as exc:
        raise SkipCheckError(str(exc)) from None


def check_kmeans_assign(ctx: Context) -> tuple[str, dict[str, Any]]:
    import numpy as np
    import torch

    from radiossl.clustering.faiss_kmeans import CentroidAssigner

    _faiss_or_skip()
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(50, 24)).astype(np.float32)
    x = rng.normal(size=(ctx.settings.kmeans_points, 24)).astype(np.float32)
    assigner = CentroidAssigner(centroids)
    reference = assigner.assign_numpy(x)
    got = assigner.assign_torch(torch.from_numpy(x).to(ctx.device)).cpu().numpy()
    differ = np.nonzero(reference != got)[0]
    # A differing label must be a near tie: both centroids (almost) equally close in float64.
    x64, c64 = x[differ].astype(np.float64), centroids.astype(np.float64)
    gap = np.abs(((x64 - c64[reference[differ]]) ** 2).sum(1) - ((x64 - c64[got[differ]]) ** 2).sum(1))
    worst = float(gap.max()) if differ.size else 0.0
    data = {"points": int(x.shape[0]), "labels_differing": int(differ.size), "largest_distance_gap": worst}
    expect(worst < 1e-3, f"{differ.size} labels differ from faiss, by up to {worst:.2e} in squared distance", data)
    return f"{x.shape[0]} points, {differ.size} near-tie labels differ from faiss on the CPU", data


def check_faiss_gpu(ctx: Context) -> tuple[str, dict[str, Any]]:
    import numpy as np

    from radiossl.clustering.faiss_kmeans import fit_kmeans, gpus_available

    ctx.require_cuda()
    faiss = _faiss_or_skip()
    if gpus_available() == 0:
        raise SkipCheckError(
            f"faiss {faiss.__version__} has no GPU support (faiss-cpu) or sees no GPU; k-means fits on the CPU"
        )
    rng = np.random.default_rng(1)
    k, d = 32, 16
    centres = rng.normal(scale=4.0, size=(k, d))
    n = ctx.settings.kmeans_points
    x = (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    on_cpu = fit_kmeans(x, k, gpu=False, seed=1)
    on_gpu = fit_kmeans(x, k, gpu=True, seed=1)
    ratio = on_gpu.inertia / on_cpu.inertia
    data = {
        "points": n,
        "k": k,
        "used_gpu": on_gpu.used_gpu,
        "inertia_gpu_over_cpu": ratio,
        "seconds_gpu": on_gpu.seconds,
        "seconds_cpu": on_cpu.seconds,
    }
    expect(on_gpu.used_gpu, "fit_kmeans(gpu=True) fell back to the CPU", data)
    expect(abs(ratio - 1.0) < 0.1, f"GPU inertia is {ratio:.3f} x the CPU's", data)
    return (
        f"{n} points, K {k}: GPU {on_gpu.seconds:.2f} s, CPU {on_cpu.seconds:.2f} s, inertia ratio {ratio:.4f}",
        data,
    )


# --------------------------------------------------------------------------------------------------
# ddp-collectives, ddp-pretrain


def ddp_world_size(ctx: Context) -> int:
    """Processes of the DDP checks: ``GPU_CHECK_NPROC``, else every visible GPU (2 on the CPU)."""
    import torch

    if ctx.settings.nproc is not None:
        return ctx.settings.nproc
    return torch.cuda.device_count() if ctx.cuda else 2


def torchrun(ctx: Context, nproc: int, target: list[str], log_name: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node=nproc TARGET...``; output kept in the work folder."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *target]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=ctx.child_env(), timeout=ctx.settings.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckFailedError(
            f"torchrun did not finish within {ctx.settings.timeout:.0f} s (GPU_CHECK_TIMEOUT)"
        ) from None
    (ctx.workdir / f"{log_name}.log").write_text(f"$ {' '.join(command)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def check_ddp_collectives(ctx: Context) -> tuple[str, dict[str, Any]]:
    nproc = ddp_world_size(ctx)
    reports = ctx.workdir / "ddp-collectives"
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    proc = torchrun(
        ctx, nproc, [__file__, "--ddp-worker", str(reports), "--device", ctx.device_name], "ddp-collectives"
    )
    ranks = [reports / f"rank{r}.json" for r in range(nproc)]
    found = [json.loads(p.read_text()) for p in ranks if p.is_file()]
    data: dict[str, Any] = {"world_size": nproc, "ranks": found, "returncode": proc.returncode}
    errors = [f"rank {r['rank']}: {r['error']}" for r in found if r.get("error")]
    expect(not errors, "; ".join(errors), data)
    expect(proc.returncode == 0 and len(found) == nproc, f"torchrun exit {proc.returncode}: {_tail(proc.stderr)}", data)
    first = found[0]
    syncbn = first["syncbn"]
    bandwidth = first["allreduce_gbps"]
    detail = (
        f"{first['backend']}, world size {nproc}: all-reduce, all-gather and broadcast exact; "
        f"all-reduce of {first['allreduce_mib']:.0f} MiB at {bandwidth:.1f} GB/s bus bandwidth; SyncBatchNorm {syncbn}"
    )
    return detail, data


def ddp_worker(report_dir: Path, device_name: str) -> int:
    """One rank of ``ddp-collectives`` (started by torchrun): collectives and SyncBatchNorm, then a report."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    report: dict[str, Any] = {"rank": rank, "world_size": world}
    try:
        cuda = device_name == "cuda"
        if cuda:
            torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
        backend = "nccl" if cuda else "gloo"
        report["backend"] = backend
        dist.init_process_group(backend=backend, timeout=dt.timedelta(minutes=5))
        report.update(_collectives(device, rank, world))
        report["syncbn"] = _syncbn_against_global_batchnorm(device, rank, world) if cuda else "skipped (CUDA only)"
        dist.barrier()
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    (report_dir / f"rank{rank}.json").write_text(json.dumps(report, indent=2))
    return 1 if "error" in report else 0


def _collectives(device: Any, rank: int, world: int) -> dict[str, Any]:
    """All-reduce, all-gather and broadcast with known answers; the all-reduce's bus bandwidth."""
    import torch
    import torch.distributed as dist

    total = torch.full((1024,), float(rank + 1), device=device)
    dist.all_reduce(total)
    expect(bool((total == world * (world + 1) / 2).all()), f"all-reduce gave {float(total[0])}")
    parts = [torch.empty(3, device=device) for _ in range(world)]
    dist.all_gather(parts, torch.full((3,), float(rank), device=device))
    expect([float(p[0]) for p in parts] == [float(r) for r in range(world)], "all-gather put ranks out of order")
    value = torch.full((5,), 42.0 if rank == 0 else -1.0, device=device)
    dist.broadcast(value, src=0)
    expect(bool((value == 42.0).all()), "broadcast did not deliver rank 0's tensor")

    elements = (64 if device.type == "cuda" else 1) * 2**20  # 256 MiB on GPUs, 4 MiB on CPUs
    big = torch.ones(elements, device=device)
    dist.all_reduce(big)
    _synchronize(device)
    repeats = 5
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(big)
    _synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    nbytes = big.numel() * big.element_size()
    # Bus bandwidth as nccl-tests defines it: ring all-reduce moves 2 (n - 1) / n of the data per rank.
    factor = 2.0 * (world - 1) / world if world > 1 else 1.0
    return {
        "allreduce_mib": nbytes / 2**20,
        "allreduce_seconds": seconds,
        "allreduce_gbps": factor * nbytes / seconds / 1e9,
    }


def _syncbn_against_global_batchnorm(device: Any, rank: int, world: int) -> str:
    """SyncBatchNorm on each rank's batch equals BatchNorm of the whole global batch, forward and backward."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.modules._functions import SyncBatchNorm as SyncBatchNormFunction

    torch.manual_seed(100 + rank)
    x = torch.randn(3, 6, 5, 5, 4, device=device) * (rank + 1) + rank  # different statistics per rank
    w = torch.randn_like(x)
    xs, ws = [torch.empty_like(x) for _ in range(world)], [torch.empty_like(w) for _ in range(world)]
    dist.all_gather(xs, x)
    dist.all_gather(ws, w)
    global_x = torch.cat(xs).requires_grad_()
    reference = F.batch_norm(global_x, None, None, training=True, eps=1e-5)
    (reference * torch.cat(ws)).sum().backward()
    assert global_x.grad is not None
    mine = slice(rank * x.shape[0], (rank + 1) * x.shape[0])

    layer = torch.nn.SyncBatchNorm(6, affine=False).to(device).train()
    own = x.clone().requires_grad_()
    if world > 1:
        out, path = layer(own), f"module synchronised over {world} ranks"
    else:  # the module skips synchronising in a group of one; its autograd function runs the same kernels
        out = SyncBatchNormFunction.apply(
            own, None, None, layer.running_mean, layer.running_var, layer.eps, layer.momentum, dist.group.WORLD, 1
        )
        path = "kernels run through its autograd function (world size 1: the module skips synchronising)"
    (out * w).sum().backward()
    assert own.grad is not None
    expect(torch.allclose(out, reference[mine], atol=1e-4), "SyncBatchNorm forward differs from global BatchNorm")
    expect(torch.allclose(own.grad, global_x.grad[mine], atol=1e-4), "SyncBatchNorm gradient differs")
    assert layer.running_mean is not None and layer.momentum is not None
    expected_mean = layer.momentum * global_x.detach().mean(dim=(0, 2, 3, 4))
    expect(torch.allclose(layer.running_mean, expected_mean, atol=1e-4), "running mean is not the global mean's")
    return f"matches global BatchNorm ({path})"


def check_ddp_pretrain(ctx: Context) -> tuple[str, dict[str, Any]]:
    import torch

    nproc = ddp_world_size(ctx)
    s = ctx.settings
    runs = ctx.workdir / "runs" / "ddp-pretrain"
    shutil.rmtree(runs, ignore_errors=True)
    epochs = max(2, s.tiny_epochs)
    target = [
        "-m",
        "radiossl",
        "pretrain",
        "--method",
        METHOD,
        "--data",
        str(ctx.phantom_folder()),
        "--out",
        str(runs),
        "--epochs",
        str(epochs),
        "--batch-size",
        str(s.tiny_batch),
        "--width",
        str(s.tiny_width),
        "--device",
        ctx.device_name,
        "--workers",
        "0",
        "--set",
        "runtime.sync_batchnorm=true",
        "--set",
        f"data.crop_size={list(s.phantom.crop)}",
        "--set",
        f"data.ratio={s.tiny_ratio}",
        "--set",
        "logging.progress=false",
    ]
    proc = torchrun(ctx, nproc, target, "ddp-pretrain")
    data: dict[str, Any] = {"world_size": nproc, "returncode": proc.returncode}
    expect(proc.returncode == 0, f"torchrun exit {proc.returncode}: {_tail(proc.stderr)}", data)
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    log = (run_dir / "train.log").read_text()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [float(line["loss"]) for line in lines if line.get("type") == "epoch"]
    state = torch.load(run_dir / "checkpoint_final.pt", weights_only=True)
    data.update(run_dir=str(run_dir), losses=losses)
    expect(len(losses) == epochs and all(math.isfinite(v) for v in losses), f"epoch losses {losses}", data)
    expect(not any(k.startswith("module.") for k in state["model"]), "checkpoint keys carry DDP's module. prefix")
    note = next((line for line in log.splitlines() if "runtime.sync_batchnorm" in line), None)
    data["sync_batchnorm_note"] = note
    if ctx.cuda and nproc > 1:
        if note is None or "BatchNorm layers use the statistics" not in note:
            raise CheckFailedError(f"train.log has no SyncBatchNorm conversion note (got {note!r})", data)
        syncbn = note.split("runtime.sync_batchnorm:", 1)[-1].strip()
    elif nproc > 1:
        expect(note is not None and "ignored" in note, f"expected the 'ignored' note off CUDA, got {note}", data)
        syncbn = f"ignored on {ctx.device_name}, as documented"
    else:
        syncbn = "not converted: one process runs without a process group (needs 2 GPUs)"
    return f"{nproc} processes, {epochs} epochs, losses {_fmt(losses)}; SyncBatchNorm: {syncbn}", data


# --------------------------------------------------------------------------------------------------
# throughput


def backbone_names() -> tuple[list[str], bool]:
    """The backbones to measure and whether the config selects them with ``model.name``.

    Every registered backbone (entry-point group ``radiossl.models``) when
    :class:`~radiossl.config.ModelConfig` has that field; otherwise the one network there is, the 3D
    U-Net (``unet3d``).
    """
    from radiossl.config import ModelConfig

    if "name" not in ModelConfig.model_fields:
        return ["unet3d"], False
    from radiossl.models.backbone import backbone_names as registered

    return registered() or ["unet3d"], True


def _pretrain_benchmark() -> Any:
    """``benchmarks/pretrain.py`` as a module: its fabricated batches (collated crop pairs with overlapping
    boxes) and its training step."""
    spec = importlib.util.spec_from_file_location("radiossl_benchmark_pretrain", HERE / "pretrain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backbone_crop(crop: tuple[int, int, int], backbone: str, by_name: bool) -> tuple[int, int, int]:
    """``crop`` rounded up, per axis, to a multiple of the backbone's total stride (its smallest input)."""
    if not by_name:
        return crop
    from radiossl.config import ModelConfig
    from radiossl.models.network import input_divisor

    divisor = input_divisor(ModelConfig(name=backbone))
    x, y, z = (-(-size // step) * step for size, step in zip(crop, divisor, strict=True))
    return (x, y, z)


def measure_training(ctx: Context, backbone: str, by_name: bool, amp: str) -> dict[str, Any]:
    """Steps/s, pairs/s, FLOPs and peak memory of patch-cluster training steps in precision ``amp``.

    The crop is the configured one, rounded up to the backbone's total stride (:func:`backbone_crop`).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from radiossl.engine.optim import build_optimizer
    from radiossl.engine.protocol import StepContext
    from radiossl.pretext.base import get_method, load_pretrain_config
    from radiossl.runtime.device import move_to_device
    from radiossl.runtime.precision import make_grad_scaler

    s, device = ctx.settings, ctx.device
    crop = backbone_crop(s.crop, backbone, by_name)
    overrides = [
        f"model.width={s.width}",
        f"data.crop_size={list(crop)}",
        f"optim.batch_size={s.batch}",
        f"runtime.amp={amp}",
        f"runtime.device={ctx.device_name}",
    ]
    if by_name:
        overrides.append(f"model.name={backbone}")
    config = load_pretrain_config(METHOD, overrides=overrides)
    torch.manual_seed(0)
    method = get_method(METHOD)(config)
    model = method.build_model().to(device).train()
    optimizer = build_optimizer(model, config.optim)
    scaler = make_grad_scaler(device, amp)
    bench = _pretrain_benchmark()
    batch = move_to_device(bench.fabricate_batch(s.batch, crop, config.model.in_channels, seed=1), device)
    context = StepContext(epoch=1, total_epochs=2, step=0, device=device)
    if ctx.cuda:
        torch.backends.cudnn.benchmark = True  # as the engine sets it for non-deterministic CUDA runs
        torch.cuda.reset_peak_memory_stats(device)

    step = bench.optimiser_step(method, model, optimizer, scaler, batch, context, amp)

    losses = [step() for _ in range(s.warmup)]
    _synchronize(device)
    start = time.perf_counter()
    losses += [step() for _ in range(s.steps)]
    _synchronize(device)
    seconds = (time.perf_counter() - start) / s.steps
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = float(counter.get_total_flops())
    peak_bf16 = ctx.peaks_tflops.get("bf16")
    # fp32 convolutions use TF32 on GPUs by default (torch.backends.cudnn.allow_tf32), so that is their peak.
    own_dtype = "bf16" if amp == "bf16" else ("tf32" if ctx.cuda else "fp32")
    peak_own = ctx.peaks_tflops.get(own_dtype)
    achieved = flops / seconds / 1e12
    return {
        "amp": amp,
        "seconds_per_step": seconds,
        "steps_per_second": 1.0 / seconds,
        "pairs_per_second": s.batch / seconds,
        "flops_per_step": flops,
        "achieved_tflops": achieved,
        "fraction_of_bf16_peak": achieved / peak_bf16 if peak_bf16 else None,
        "own_peak_dtype": own_dtype,
        "fraction_of_own_peak": achieved / peak_own if peak_own else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if ctx.cuda else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "losses": losses,
    }


def check_throughput(backbone: str, by_name: bool) -> Check:
    """The throughput check of one backbone (fp32 and bf16)."""

    def check(ctx: Context) -> tuple[str, dict[str, Any]]:
        if not by_name and backbone != "unet3d":
            raise SkipCheckError(f"radiossl has no model.name setting yet, so {backbone!r} cannot be chosen")
        s = ctx.settings
        rows = [measure_training(ctx, backbone, by_name, amp) for amp in ("none", "bf16")]
        crop = backbone_crop(s.crop, backbone, by_name)
        data = {
            "backbone": backbone,
            "width": s.width,
            "crop": list(crop),
            "batch": s.batch,
            "steps": s.steps,
            "bf16_peak_tflops": ctx.peaks_tflops.get("bf16"),
            "rows": rows,
        }
        for row in rows:
            expect(all(math.isfinite(v) for v in row["losses"]), f"{row['amp']}: non-finite loss", data)
        parts = []
        for row in rows:
            share = row["fraction_of_bf16_peak"]
            parts.append(
                f"{'fp32' if row['amp'] == 'none' else row['amp']} {row['steps_per_second']:.2f} steps/s "
                f"{row['pairs_per_second']:.1f} pairs/s {row['achieved_tflops']:.3g} TFLOP/s"
                + (f" = {share:.3f} of bf16 peak" if share is not None else " (no peak measured)")
            )
        shape = "x".join(map(str, crop))
        params = rows[0]["parameters"] / 1e6
        return f"width {s.width:g}, {params:.1f} M params, {shape} x {s.batch} pairs: " + "; ".join(parts), data

    return check


# --------------------------------------------------------------------------------------------------
# main


def all_checks(settings: Settings) -> list[tuple[str, Check]]:
    """Every check in the order it runs (the throughput checks need the matmul peak first).

    The throughput checks are those of ``GPU_CHECK_BACKBONES`` when given, else of every known backbone.
    """
    checks: list[tuple[str, Check]] = [
        ("device", check_device),
        ("matmul-peak", check_matmul_peak),
        ("amp-bf16", check_amp_bf16),
        ("amp-fp16", check_amp_fp16),
        ("genesis-transforms", check_genesis_transforms),
        ("kmeans-assign", check_kmeans_assign),
        ("faiss-gpu", check_faiss_gpu),
        ("ddp-collectives", check_ddp_collectives),
        ("ddp-pretrain", check_ddp_pretrain),
    ]
    try:
        names, by_name = backbone_names()
    except ModuleNotFoundError:  # radiossl's dependencies are missing: the throughput check will say which
        names, by_name = ["unet3d"], False
    if settings.backbones is not None:
        names = list(settings.backbones)
    return checks + [(f"throughput-{name}", check_throughput(name, by_name)) for name in names]


def selected(name: str, only: list[str] | None, skip: list[str]) -> bool:
    """Whether check ``name`` runs: ``only``/``skip`` name checks or prefixes (``throughput``)."""

    def matches(patterns: list[str]) -> bool:
        return any(name == p or name.startswith(p + "-") for p in patterns)

    return (only is None or matches(only)) and not matches(skip)


def json_path(given: Path | None, environ: Mapping[str, str]) -> Path:
    """Where the JSON goes: ``--json``, else ``$OUT/gpu_check.json``, else ``./gpu_check.json``."""
    if given is not None:
        return given
    out = environ.get("OUT", "").strip()
    return Path(out) / "gpu_check.json" if out else Path("gpu_check.json")


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file, so no half-written report is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="Where to run (default cuda).")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes (for tests and a first look).")
    parser.add_argument("--json", type=Path, default=None, help="Results file (default $OUT/gpu_check.json).")
    parser.add_argument("--only", nargs="+", default=None, metavar="CHECK", help="Run only these checks.")
    parser.add_argument("--skip", nargs="+", default=[], metavar="CHECK", help="Leave these checks out.")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    parser.add_argument("--keep-workdir", action="store_true", help="Keep the scratch folder (runs, logs).")
    parser.add_argument("--list", action="store_true", help="List the checks and exit.")
    parser.add_argument("--ddp-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.ddp_worker is not None:
        return ddp_worker(args.ddp_worker, args.device)
    try:
        settings = Settings.from_env(args.quick)
    except SettingsError as exc:
        parser.error(str(exc))
    checks = all_checks(settings)
    if args.list:
        print("\n".join(name for name, _ in checks))
        return 0
    known = [name for name, _ in checks]
    for pattern in (args.only or []) + args.skip:
        if not any(selected(name, [pattern], []) for name in known):
            parser.error(f"unknown check {pattern!r}; checks: {', '.join(known)}")
    try:
        import torch
    except ModuleNotFoundError:
        print(f"SKIP all: torch is not importable by {sys.executable}; set PYTHON to an interpreter with torch")
        return 2

    out_path = json_path(args.json, os.environ)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="radiossl-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args.device, settings, workdir)
    started = time.perf_counter()
    print(
        f"radiossl GPU check on {args.device}{' (quick sizes)' if args.quick else ''}: torch {torch.__version__}, "
        f"{sys.executable}; JSON -> {out_path}",
        flush=True,
    )
    results: list[Result] = []
    cuda_missing = args.device == "cuda" and not torch.cuda.is_available()
    for name, check in checks:
        # Without CUDA the device check always reports, so that a run of any subset fails on such a machine.
        if not selected(name, args.only, args.skip) and not (cuda_missing and name == "device"):
            continue
        if cuda_missing and name != "device":
            result = Result(name, SKIP, "no CUDA device (see the device check)", 0.0)
        else:
            result = run_check(name, check, ctx)
        results.append(result)
        print(result.line(), flush=True)
    total = time.perf_counter() - started
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, SKIP)}
    payload = {
        "meta": {
            "device": args.device,
            "quick": args.quick,
            "host": platform.node(),
            "python": sys.executable,
            "torch": torch.__version__,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": total,
            "settings": dataclasses.asdict(settings),
            "counts": counts,
        },
        "results": [dataclasses.asdict(r) for r in results],
    }
    write_json(out_path, payload)
    print(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped in {total:.0f} s; {out_path}")
    if args.keep_workdir or args.workdir is not None:
        print(f"work folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if counts[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
