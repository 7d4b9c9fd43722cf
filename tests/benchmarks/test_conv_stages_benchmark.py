"""benchmarks/conv_stages.py: convolution time and FLOPs per input shape of one real training step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "conv_stages.py"


def test_groups_every_convolution_of_a_tiny_resenc_step_by_shape(tmp_path: Path) -> None:
    out = tmp_path / "stages.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--backbone", "resenc-l", "--width", "0.0625", "--amp", "none",
         "--steps", "1", "--warmup", "0", "--threads", "1", "--rows", "3", "--json", str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0].startswith("CPU ")
    (result,) = json.loads(out.read_text())
    groups = result["groups"]
    # ResEnc-L: 6 stages of 1, 3, 4, 6, 6, 6 residual blocks (two 3x3x3 convolutions each) plus the stem,
    # and a 1x1x1 skip projection where the channels change (stages 1-4; the last stage keeps 320);
    # both crops of the pair go through the encoder
    assert sum(g["forward_calls"] for g in groups) == 2 * (1 + 2 * (1 + 3 + 4 + 6 + 6 + 6) + 4)
    assert all(g["backward_calls"] == g["forward_calls"] for g in groups)
    assert result["conv_ms"] > 0 and abs(result["conv_flops"] - sum(g["flops"] for g in groups)) < 1.0
    bottleneck = [g for g in groups if g["input"][2:] == [2, 2, 1] and g["weight"][2:] == [3, 3, 3]]
    assert bottleneck, "the 2x2x1 bottleneck convolutions of a 64x64x32 crop are grouped"
    (group,) = bottleneck
    channels = group["weight"][0]
    # forward + backward FLOPs of a stride-1 3x3x3 convolution on 4 voxels, per call
    assert group["flops"] == group["forward_calls"] * 3 * 2 * 4 * channels * channels * 27
    assert "GFLOP/s" in proc.stdout and "resenc-l none batch 1" in proc.stdout
