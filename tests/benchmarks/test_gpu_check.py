"""benchmarks/gpu_check.py runs its checks on the CPU at tiny sizes and reports them in the documented format."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
LINE = re.compile(r"^(PASS|FAIL|SKIP) ([a-z0-9-]+): (.+) \((\d+\.\d) s\)$")


@pytest.fixture(scope="module")
def gpu_check() -> Iterator[ModuleType]:
    """The script as a module; its sibling helpers leave sys.path and sys.modules as they were."""
    path, modules = list(sys.path), set(sys.modules)
    spec = importlib.util.spec_from_file_location("radiossl_gpu_check_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    sys.path[:] = path
    yield module
    for name in set(sys.modules) - modules:
        if name in (spec.name, "host_info", "phantom_data"):
            del sys.modules[name]


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=timeout, check=False)


def _report_lines(stdout: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


def test_quick_cpu_run_passes_every_check_that_runs_on_a_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run("--device", "cpu", "--quick", "--skip", "ddp-collectives", "ddp-pretrain", env={"OUT": str(out)})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = _report_lines(done.stdout)
    expected = ["device", "matmul-peak", "amp-bf16", "amp-fp16", "genesis-transforms", "kmeans-assign", "faiss-gpu"]
    from radiossl.models.backbone import backbone_names

    assert list(lines) == [*expected, *(f"throughput-{name}" for name in backbone_names())]
    # each backbone's crop is the quick 16³ rounded up to its total stride
    assert "16x16x16 x 2 pairs" in lines["throughput-unet3d"][1]
    assert "32x32x32 x 2 pairs" in lines["throughput-resenc-l"][1]
    assert lines["faiss-gpu"] == ("SKIP", "needs a CUDA device (running on cpu)")
    assert all(status == "PASS" for name, (status, _) in lines.items() if name != "faiss-gpu"), lines
    assert "no gradient scaler" in lines["amp-bf16"][1]
    assert "scale 65536 -> 32768" in lines["amp-fp16"][1]
    assert "of bf16 peak" in lines["throughput-unet3d"][1]

    report = json.loads((out / "gpu_check.json").read_text())  # $OUT/gpu_check.json without --json
    assert [r["name"] for r in report["results"]] == list(lines)
    assert report["meta"]["counts"] == {"PASS": len(lines) - 1, "FAIL": 0, "SKIP": 1}
    assert report["meta"]["quick"] is True and report["meta"]["device"] == "cpu"
    throughput = next(r for r in report["results"] if r["name"] == "throughput-unet3d")["data"]
    assert [row["amp"] for row in throughput["rows"]] == ["none", "bf16"]
    for row in throughput["rows"]:
        assert row["flops_per_step"] > 0 and row["pairs_per_second"] > 0
        assert row["fraction_of_bf16_peak"] == pytest.approx(row["achieved_tflops"] / throughput["bf16_peak_tflops"])
    transforms = next(r for r in report["results"] if r["name"] == "genesis-transforms")["data"]
    assert transforms["block_chi2"] < 52 and transforms["bezier_max_abs_difference"] < 1e-5


@pytest.mark.ddp
def test_quick_cpu_ddp_checks_launch_torchrun_with_two_gloo_processes(tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    done = _run("--device", "cpu", "--quick", "--only", "ddp-collectives", "ddp-pretrain", "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = _report_lines(done.stdout)
    assert lines["ddp-collectives"][0] == "PASS" and "gloo, world size 2" in lines["ddp-collectives"][1]
    assert "SyncBatchNorm skipped (CUDA only)" in lines["ddp-collectives"][1]
    assert lines["ddp-pretrain"][0] == "PASS" and "ignored on cpu" in lines["ddp-pretrain"][1]
    results = json.loads(report.read_text())["results"]
    ranks = results[0]["data"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["allreduce_gbps"] > 0 for r in ranks)
    assert len(results[1]["data"]["losses"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report of a machine without CUDA")
def test_without_cuda_the_device_check_fails_and_the_rest_skip(tmp_path: Path) -> None:
    done = _run("--only", "matmul-peak", "throughput", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1
    lines = _report_lines(done.stdout)
    assert lines["device"][0] == "FAIL" and "CUDA not available" in lines["device"][1]
    assert lines["matmul-peak"] == ("SKIP", "no CUDA device (see the device check)")
    assert lines["throughput-unet3d"][0] == "SKIP"


def test_usage_errors_exit_2_and_name_the_problem(tmp_path: Path) -> None:
    done = _run("--device", "cpu", "--only", "nosuch", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 2 and "unknown check 'nosuch'" in done.stderr
    done = _run("--device", "cpu", "--list", env={"GPU_CHECK_CROP": "64,64"})
    assert done.returncode == 2 and "GPU_CHECK_CROP='64,64'" in done.stderr
    assert not (tmp_path / "r.json").exists()


def test_full_size_throughput_uses_the_published_patch_cluster_crop_and_batch(gpu_check: ModuleType) -> None:
    from radiossl.pretext.base import load_pretrain_config

    published = load_pretrain_config("patch-cluster")
    settings = gpu_check.Settings.from_env(quick=False, environ={})
    assert settings.width == published.model.width == 1.0
    assert settings.crop == tuple(published.data.crop_size)
    assert settings.batch == published.optim.batch_size
    tuned = gpu_check.Settings.from_env(quick=False, environ={"GPU_CHECK_STEPS": "50", "GPU_CHECK_CROP": "96x96x32"})
    assert (tuned.steps, tuned.crop) == (50, (96, 96, 32))
    with pytest.raises(gpu_check.SettingsError, match="GPU_CHECK_STEPS=0: must be at least 1"):
        gpu_check.Settings.from_env(quick=True, environ={"GPU_CHECK_STEPS": "0"})


def test_backbones_are_every_registered_model_name(
    gpu_check: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from radiossl.models.backbone import backbone_names

    names, by_name = gpu_check.backbone_names()
    assert by_name and names == backbone_names() and {"unet3d", "resenc-l"} <= set(names)
    checks = [name for name, _ in gpu_check.all_checks(gpu_check.Settings.from_env(True, {}))]
    assert checks[-len(names) :] == [f"throughput-{name}" for name in names]
    only = gpu_check.Settings.from_env(True, {"GPU_CHECK_BACKBONES": "resenc-l"})
    assert [name for name, _ in gpu_check.all_checks(only)][-1] == "throughput-resenc-l"

    class WithoutNames(BaseModel):  # a radiossl before model.name: only the one network there is
        width: float = 1.0

    monkeypatch.setattr("radiossl.config.ModelConfig", WithoutNames)
    assert gpu_check.backbone_names() == (["unet3d"], False)
    asked = gpu_check.Settings.from_env(True, {"GPU_CHECK_BACKBONES": "resenc-m"})
    ((name, check),) = [(n, c) for n, c in gpu_check.all_checks(asked) if n.startswith("throughput")]
    skipped = gpu_check.run_check(name, check, gpu_check.Context("cpu", asked, tmp_path))
    assert (name, skipped.status) == ("throughput-resenc-m", "SKIP")  # never unet3d under another name
    assert "no model.name setting" in skipped.detail


def test_a_check_passes_skips_or_fails_by_what_it_raises(gpu_check: ModuleType, tmp_path: Path) -> None:
    ctx = gpu_check.Context("cpu", gpu_check.Settings.from_env(True, {}), tmp_path)

    def missing_optional(_: Any) -> Any:
        raise ModuleNotFoundError("No module named 'faiss'", name="faiss")

    def missing_own(_: Any) -> Any:
        raise ModuleNotFoundError("No module named 'radiossl.nothing'", name="radiossl.nothing")

    def wrong(_: Any) -> Any:
        gpu_check.expect(False, "loss is nan", {"losses": [float("nan")]})

    def broken(_: Any) -> Any:
        raise RuntimeError("CUDA error: out of memory\nmore lines")

    outcomes = {
        name: gpu_check.run_check(name, check, ctx)
        for name, check in [
            ("ok", lambda _: ("fine", {"x": 1})),
            ("optional", missing_optional),
            ("own", missing_own),
            ("wrong", wrong),
            ("broken", broken),
            ("cuda", lambda c: c.require_cuda()),
        ]
    }
    assert outcomes["ok"].line().startswith("PASS ok: fine (")
    assert outcomes["optional"].status == "SKIP" and "'faiss'" in outcomes["optional"].detail
    assert outcomes["own"].status == "FAIL"  # radiossl's own modules are never optional
    assert (outcomes["wrong"].status, outcomes["wrong"].detail) == ("FAIL", "loss is nan")
    assert math.isnan(outcomes["wrong"].data["losses"][0])  # what the check measured is kept
    assert outcomes["broken"].detail == "RuntimeError: CUDA error: out of memory"
    assert "traceback" in outcomes["broken"].data
    assert outcomes["cuda"].status == "SKIP" and "needs a CUDA device" in outcomes["cuda"].detail


def test_the_exact_block_distribution_is_a_distribution(gpu_check: ModuleType) -> None:
    probs = gpu_check.exact_block_distribution()
    assert len(probs) == 24 and sum(probs.values()) == pytest.approx(1.0)
    # identity: a 1x1 block, an unswapped 2-voxel block, or the identity of 24 permutations
    assert probs[(0, 1, 2, 3)] == pytest.approx(1 / 4 + 1 / 8 + 1 / 8 + 1 / 96)
    assert probs[(2, 1, 0, 3)] == pytest.approx(1 / 16 + 1 / 96)  # x-swap in column y = 0
    assert gpu_check.block_distribution_chi2(torch.device("cpu"), 4000, seed=3) < 52


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _BatchNormStandIn:
    """SyncBatchNorm's autograd function for a group of one, on the CPU (its CUDA kernels are GPU-only)."""

    eps = 1e-5

    @classmethod
    def apply(cls, x: Any, weight: Any, bias: Any, mean: Any, var: Any, eps: float, momentum: float, *_: Any) -> Any:
        return F.batch_norm(x, mean, var, weight, bias, True, momentum, cls.eps)


class _WrongEps(_BatchNormStandIn):
    eps = 1.0


def test_syncbatchnorm_comparison_accepts_batchnorm_and_rejects_other_numbers(
    gpu_check: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.nn.modules._functions as functions

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        monkeypatch.setattr(functions, "SyncBatchNorm", _BatchNormStandIn)
        detail = gpu_check._syncbn_against_global_batchnorm(torch.device("cpu"), 0, 1)
        assert detail.startswith("matches global BatchNorm (kernels run through its autograd function")
        monkeypatch.setattr(functions, "SyncBatchNorm", _WrongEps)
        with pytest.raises(gpu_check.CheckFailedError, match="forward differs"):
            gpu_check._syncbn_against_global_batchnorm(torch.device("cpu"), 0, 1)
    finally:
        dist.destroy_process_group()


def test_the_json_goes_to_the_option_then_out_then_the_current_folder(gpu_check: ModuleType) -> None:
    assert gpu_check.json_path(Path("a.json"), {"OUT": "/o"}) == Path("a.json")
    assert gpu_check.json_path(None, {"OUT": "/o"}) == Path("/o/gpu_check.json")
    assert gpu_check.json_path(None, {}) == Path("gpu_check.json")


def test_the_shell_driver_refuses_an_interpreter_without_torch(tmp_path: Path) -> None:
    fake = tmp_path / "python-without-torch"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--list"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(fake)},
        check=False,
    )
    assert done.returncode == 2 and f"SKIP all: {fake} cannot import torch" in done.stderr
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--list"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert done.returncode == 0 and done.stdout.splitlines()[0] == "device"
