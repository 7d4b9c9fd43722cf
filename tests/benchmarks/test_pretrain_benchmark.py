"""The pretraining benchmark names the machine and measures bf16 only where the CPU computes it natively."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from radiossl.runtime.cpu import CpuInfo


def test_bf16_is_not_measured_on_a_cpu_without_native_bf16(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_cpu: Callable[..., CpuInfo]
) -> None:
    fake_cpu(bf16=False)
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pretrain.py"
    spec = importlib.util.spec_from_file_location("radiossl_benchmark_pretrain_smoke", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    argv = ["--width", "0.125", "--crop", "16", "16", "16", "--steps", "1", "--warmup", "0", "--threads", "1"]
    argv += ["--peak-size", "256", "--amp", "none", "bf16", "--json", str(out)]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("CPU Fake CPU") and "bf16 not native" in lines[0]
    assert lines[1].startswith("runtime.amp=bf16 falls back to float32") and "not measured separately" in lines[1]
    (result,) = json.loads(out.read_text())  # float32 once, not a second time under the name bf16
    assert result["amp"] == "none" and result["min_step_seconds"] > 0
    assert result["machine"].startswith("CPU ")  # the child's own view of the real CPU
