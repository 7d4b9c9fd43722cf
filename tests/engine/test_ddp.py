"""DDP through torchrun on CPU: two gloo processes train the tiny task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_task import TinyNet, TinyTask
from torch.utils.data import DataLoader

from radiossl.engine.protocol import StepContext

pytestmark = pytest.mark.ddp

SCRIPT = Path(__file__).with_name("ddp_script.py")


def _torchrun(
    tmp_path: Path, report: str, env_extra: dict[str, str] | None = None, *overrides: str
) -> subprocess.CompletedProcess:
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
        *overrides,
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
    # the process group is really gone once training returns: no Gloo thread left to die at exit
    assert not [name for r in reports for name in r["threads_after"] if "gloo" in name or "tcpstore" in name]
    assert sorted(p.name for p in run_dir.iterdir() if p.suffix == ".pt") == [
        "checkpoint_best.pt",
        "checkpoint_final.pt",
        "checkpoint_latest.pt",
    ]
    assert not any(p.name.startswith(".tmp-") for p in run_dir.iterdir())


def test_a_failure_on_one_rank_stops_every_rank_at_once_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    # rank 1 cannot read its second batch of the second epoch, then stays alive 8 s (a slow teardown):
    # rank 0 must not wait for that process to exit, and must name rank 1's error
    env = {"FAIL_RANK": "1", "FAIL_EPOCH": "1", "FAIL_HOLD": "8"}
    done = _torchrun(tmp_path, "report", env, "optim.epochs=3", "optim.batch_size=2")
    assert done.returncode != 0
    errors = [json.loads((tmp_path / "report" / f"rank{r}.error.json").read_text()) for r in (0, 1)]
    assert errors[1]["type"] == "DataError" and "truncated file (simulated)" in errors[1]["message"]
    assert errors[0]["type"] == "TrainingError"
    assert errors[0]["message"].startswith("rank 1 failed at epoch 2 (loading batch 1): DataError: /data/case")
    assert errors[0]["time"] - errors[1]["time"] < 5.0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert torch.load(run_dir / "checkpoint_latest.pt", weights_only=True)["epoch"] == 1


def test_validation_metrics_are_exact_over_the_whole_set_despite_sampler_padding(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    # 5 validation volumes on 2 ranks: shards of 3 and 2 (a DistributedSampler would repeat one)
    done = _torchrun(tmp_path, "report", {"N_VAL": "5", "NORM": "0", "VAL_JITTER": "0"}, "optim.epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / "report" / f"rank{r}.json").read_text()) for r in (0, 1)]
    ddp_mse = reports[0]["history"][-1]["val_mse"]
    assert reports[1]["history"][-1]["val_mse"] == ddp_mse

    # the same weights validated by one process on all five volumes
    net = TinyNet(norm=False)
    state = torch.load(Path(reports[0]["run_dir"]) / "checkpoint_final.pt", weights_only=True)
    net.load_state_dict(state["model"])
    task = TinyTask(n_val=5, norm=False, val_jitter=False)
    _, val_set = task.build_datasets()
    context = StepContext(epoch=0, total_epochs=1, step=0, device=torch.device("cpu"))
    with torch.no_grad():
        single = task.validate(net.eval(), DataLoader(val_set, batch_size=4), context)["val_mse"]
    assert ddp_mse == pytest.approx(single, rel=1e-6)
