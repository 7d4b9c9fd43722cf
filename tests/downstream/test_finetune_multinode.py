"""``radiossl finetune`` across two torchrun agents on this machine acting as two nodes.

Two agents (``--nnodes=2``, one process each, c10d rendezvous on 127.0.0.1) run the real CLI on a
BraTS phantom; the result must equal ``torchrun --standalone --nproc_per_node=2`` on one node in
deterministic mode, and only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.ddp


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _finetune_args(data: Path, out: Path) -> list[str]:
    return [
        "-m",
        "radiossl",
        "finetune",
        "--task",
        "brats",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--width",
        "0.125",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        "data.crop_size=[16,16,16]",
        "--set",
        "sliding_window.roi=[32,32,24]",
        "--set",
        "logging.progress=false",
        "--set",
        "runtime.deterministic=true",
    ]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def _only_run(out: Path) -> Path:
    (run_dir,) = [path for path in out.iterdir() if path.is_dir()]
    return run_dir


def test_two_node_finetune_equals_two_processes_on_one_node(brats_root: Path, tmp_path: Path) -> None:
    one_node = tmp_path / "one-node"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *_finetune_args(brats_root, one_node),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=_environment(),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    two_nodes = tmp_path / "two-nodes"
    port = _free_port()
    agents = []
    logs = []
    for node in (0, 1):
        log = tmp_path / f"agent{node}.log"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={node}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            f"--rdzv_id=finetune-{port}",
            *_finetune_args(brats_root, two_nodes),
        ]
        with open(log, "wb") as sink:
            agents.append(subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=_environment()))
        logs.append(log)
    try:
        codes = [agent.wait(timeout=300) for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
    assert codes == [0, 0], "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)

    reference, multi = _only_run(one_node), _only_run(two_nodes)
    assert sorted(p.name for p in multi.iterdir()) == sorted(p.name for p in reference.iterdir())
    first = torch.load(reference / "checkpoint_final.pt", weights_only=True)
    second = torch.load(multi / "checkpoint_final.pt", weights_only=True)
    assert first["model"].keys() == second["model"].keys()
    for key, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][key]), key
    assert first["global_step"] == second["global_step"]
    log = (multi / "train.log").read_text()
    assert "2 processes on 2 nodes" in log
    assert log.count("  epoch 2  ") == 1
