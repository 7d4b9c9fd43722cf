"""Two torchrun agents on this machine acting as two nodes (one process each, c10d rendezvous on 127.0.0.1).

Each test starts the agents of ``ddp_script.py`` as separate process groups; with a c10d rendezvous
``--node_rank`` is ignored and the rendezvous decides which agent's process becomes rank 0, so the
tests find out from the rank reports instead of assuming it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.ddp

SCRIPT = Path(__file__).with_name("ddp_script.py")
EPOCHS = "optim.epochs=2"


@dataclass
class Job:
    """One multi-process training job: its folders and, per torchrun agent, the process and its log."""

    root: Path
    agents: list[subprocess.Popen[bytes]]
    logs: list[Path]

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def rank_report(self, rank: int) -> dict[str, Any]:
        return json.loads((self.report / f"rank{rank}.json").read_text())

    def wait(self, timeout: float) -> list[int | None]:
        """Exit codes of the agents once they all ended, or ``None`` for those still running at ``timeout``."""
        deadline = time.monotonic() + timeout
        for agent in self.agents:
            with contextlib.suppress(subprocess.TimeoutExpired):
                agent.wait(timeout=max(deadline - time.monotonic(), 0.1))
        return [agent.poll() for agent in self.agents]

    def wait_for(self, text: str, timeout: float) -> int | None:
        """The index of the agent whose log shows ``text``, once that agent ended (``None``: not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, agent in enumerate(self.agents):
                if agent.poll() is not None and text in self.output(index):
                    return index
            time.sleep(0.2)
        return None

    def kill(self) -> None:
        """End every agent still running, with its worker processes (each agent leads its own group)."""
        for agent in self.agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()

    def output(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")


def _end_frozen_process(pid_file: Path) -> None:
    """SIGKILL the process that stopped itself (a frozen node): torchrun leaves a stopped worker behind."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _start_two_nodes(root: Path, env: dict[str, str], *overrides: str, max_restarts: int = 0) -> Job:
    (root / "data").mkdir(parents=True, exist_ok=True)
    port = _free_port()
    agents, logs = [], []
    for node in (0, 1):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={node}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            f"--rdzv_id=multinode-{port}",
            f"--max-restarts={max_restarts}",
            str(SCRIPT),
            str(root / "data"),
            str(root / "runs"),
            str(root / "report"),
            *overrides,
        ]
        log = root / f"agent{node}.log"
        with open(log, "wb") as sink:
            agents.append(
                subprocess.Popen(
                    command, stdout=sink, stderr=subprocess.STDOUT, env=_environment(env), start_new_session=True
                )
            )
        logs.append(log)
    return Job(root, agents, logs)


def _run_two_nodes(root: Path, env: dict[str, str], *overrides: str, max_restarts: int = 0) -> Job:
    job = _start_two_nodes(root, env, *overrides, max_restarts=max_restarts)
    try:
        codes = job.wait(timeout=150)
    finally:
        job.kill()
    assert codes == [0, 0], f"exit codes {codes}\n{job.output(0)[-3000:]}\n{job.output(1)[-3000:]}"
    return job


def _timeless_metrics(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if "time" not in k} for line in lines]


def _assert_same_training(a: Path, b: Path) -> None:
    """Bit-identical final weights and optimiser state, and the same metrics apart from timings."""
    first = torch.load(a / "checkpoint_final.pt", weights_only=True)
    second = torch.load(b / "checkpoint_final.pt", weights_only=True)
    assert first["model"].keys() == second["model"].keys()
    for key, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][key]), key
    for index, state in first["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(second["optimizer"]["state"][index][key]))
    assert first["global_step"] == second["global_step"] and first["epoch"] == second["epoch"]
    assert _timeless_metrics(a) == _timeless_metrics(b)


@pytest.fixture(scope="module")
def one_node_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: ``torchrun --standalone --nproc_per_node=2`` on the same tiny deterministic task."""
    root = tmp_path_factory.mktemp("one-node")
    (root / "data").mkdir()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        str(root / "data"),
        str(root / "runs"),
        str(root / "report"),
        EPOCHS,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=150, env=_environment({}), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def test_two_nodes_train_exactly_like_two_processes_on_one_node_and_only_rank_0_writes(
    tmp_path: Path, one_node_run: Path
) -> None:
    job = _run_two_nodes(tmp_path, {}, EPOCHS)
    reports = [job.rank_report(rank) for rank in (0, 1)]
    # two nodes of one process each: both processes have LOCAL_RANK 0, only the global rank tells them apart
    assert [r["local_rank"] for r in reports] == [0, 0] and sorted(r["node"] for r in reports) == [0, 1]
    (run_dir,) = job.runs.iterdir()
    assert reports[0]["run_dir"] == reports[1]["run_dir"] == str(run_dir)

    _assert_same_training(run_dir, one_node_run)  # gloo's CPU all-reduce sums in the same order: exact

    # rank 0 alone wrote: the same files as the one-node run, each line once, and only one agent's
    # process printed the run's messages
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in one_node_run.iterdir())
    log = (run_dir / "train.log").read_text()
    assert log.count("  epoch 2  ") == 1
    header = "effective batch 8 = 4 per process x 2 processes on 2 nodes x 1 accumulation step"
    assert header in log and "lr 0.05 = optim.lr (lr_scaling none)" in log
    assert [header in job.output(i) for i in (0, 1)].count(True) == 1
    config = (run_dir / "config.yaml").read_text()
    assert "#   effective_batch_size: 8" in config and "#   nodes: 2" in config


@pytest.mark.parametrize("how", ["exit", "freeze"])
def test_a_lost_node_stops_the_other_promptly_with_a_message_naming_it(tmp_path: Path, how: str) -> None:
    # rank 1's process vanishes at the start of epoch 2 (0-based 1) without raising: "exit" closes its
    # connections (a killed process, a crashed machine whose kernel still answers), "freeze" keeps them
    # open and silent (a hung machine, a lost link); only runtime.dist_timeout_s bounds that wait
    mark = tmp_path / "lost-at"
    env = {"LOSE_RANK": "1", "LOSE_EPOCH": "1", "LOSE_HOW": how, "LOSE_MARK": str(mark)}
    job = _start_two_nodes(tmp_path, env, "optim.epochs=3", "runtime.dist_timeout_s=5")
    try:
        # the surviving node's agent must end by itself (a frozen node's agent need not: it waits for its process)
        survivor = job.wait_for("lost contact with rank 1", timeout=120)
        ended = time.time()
        codes = [agent.poll() for agent in job.agents]
    finally:
        job.kill()
        _end_frozen_process(mark.with_suffix(".pid"))
    assert survivor is not None, f"{job.output(0)[-3000:]}\n{job.output(1)[-3000:]}"
    assert codes[survivor] not in (None, 0)  # torchrun's agent reports the failure and exits non-zero
    error = json.loads((job.report / "rank0.error.json").read_text())
    assert error["type"] == "TrainingError"
    assert error["message"].startswith("lost contact with rank 1 (host ")
    assert "at epoch 2 (batch 0)" in error["message"] and "--resume auto" in error["message"]
    waited = error["time"] - float(mark.read_text())
    if how == "exit":
        assert waited < 5.0  # the closed connection is noticed at once
    else:
        assert 4.0 < waited < 15.0  # runtime.dist_timeout_s=5, not torch's 30 minutes
    assert ended - float(mark.read_text()) < waited + 20.0  # and the surviving node's torchrun ends too
    (run_dir,) = job.runs.iterdir()
    assert torch.load(run_dir / "checkpoint_latest.pt", weights_only=True)["epoch"] == 1


def test_a_torchrun_restart_resumes_in_the_same_run_folder_and_ends_as_an_uninterrupted_run(
    tmp_path: Path, one_node_run: Path
) -> None:
    # the first attempt loses rank 1's process in epoch 2; torchrun (--max-restarts=1) restarts both
    # nodes' workers, which continue the run without being told --resume
    env = {"LOSE_RANK": "1", "LOSE_EPOCH": "1", "LOSE_ONCE": "1", "LOSE_MARK": str(tmp_path / "lost-at")}
    # torch >= 2.5 shares torchrun's rendezvous store with the workers by default, where a restarted
    # worker can read a peer's address from the failed attempt (pytorch/pytorch#135712): without
    # this, 1 of 3 runs of this test failed to connect after the restart (Gloo connectFullMesh: refused)
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    job = _run_two_nodes(tmp_path, env, EPOCHS, max_restarts=1)
    (run_dir,) = job.runs.iterdir()
    reports = [job.rank_report(rank) for rank in (0, 1)]
    assert max(r["attempt"] for r in reports) == 1 and reports[0]["run_dir"] == str(run_dir)
    assert [h["epoch"] for h in reports[0]["history"]] == [1, 2]
    log = (run_dir / "train.log").read_text()
    assert "torchrun restarted the workers of job multinode-" in log
    assert f"resumed from {run_dir / 'checkpoint_latest.pt'} (epoch 1, step 1)" in log
    _assert_same_training(run_dir, one_node_run)
