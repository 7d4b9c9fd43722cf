"""DDP through torchrun on CPU: two gloo processes train the tiny task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.ddp

SCRIPT = Path(__file__).with_name("ddp_script.py")


def _torchrun(tmp_path: Path, report: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(SCRIPT),
        str(tmp_path / "data"),
        str(tmp_path / "runs"),
        str(tmp_path / report),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_torchrun_two_processes_train_write_once_and_resume(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    crashed = _torchrun(tmp_path, "crashed", {"CRASH_AT_EPOCH": "1"})
    assert crashed.returncode != 0 and "simulated interruption" in crashed.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert torch.load(run_dir / "checkpoint_latest.pt", weights_only=True)["epoch"] == 1

    done = _torchrun(tmp_path, "report", {"RESUME": "auto"})
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / "report" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["run_dir"] == reports[1]["run_dir"] == str(run_dir)  # one folder, named by rank 0
    timeless = [[{k: v for k, v in h.items() if "time" not in k} for h in r["history"]] for r in reports]
    assert timeless[0] == timeless[1]  # metrics are all-reduced, so both ranks log the same numbers
    history = reports[0]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["step"] == 2  # 10 samples / 2 ranks = 5 per rank; batch 4, drop_last -> 1 step per epoch
    assert "val_mse" in history[-1]
    assert reports[0]["rng_world_size"] == 2 and reports[0]["rng_states"] == 2
    assert sorted(p.name for p in run_dir.iterdir() if p.suffix == ".pt") == [
        "checkpoint_best.pt",
        "checkpoint_final.pt",
        "checkpoint_latest.pt",
    ]
    assert not any(p.name.startswith(".tmp-") for p in run_dir.iterdir())
