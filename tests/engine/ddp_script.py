"""Launched by test_ddp.py with ``torchrun --nproc_per_node=2``: train the tiny task with DDP on CPU (gloo).

Usage: ddp_script.py DATA_ROOT OUT_DIR REPORT_DIR [extra --set style overrides...]
Each rank writes REPORT_DIR/rank<r>.json with its view of the result, or REPORT_DIR/rank<r>.error.json
(exception type, message, time) when training raised.

Environment: RESUME; CRASH_AT_EPOCH (every rank raises in that 0-based epoch); N_VAL; NORM=0 (no
BatchNorm); VAL_JITTER=0 (validation targets without worker randomness); FAIL_RANK + FAIL_EPOCH (that
rank's training data raises a DataError from the third read of that 0-based epoch) and FAIL_HOLD
(seconds the failing rank then stays alive, like a process stuck in its teardown); LOSE_RANK +
LOSE_EPOCH (that rank's process vanishes at the start of that 0-based epoch without raising: LOSE_HOW
``exit`` ends it at once, ``freeze`` stops it with SIGSTOP; it first writes the time to LOSE_MARK),
and with LOSE_ONCE=1 only if LOSE_MARK does not exist yet (the first attempt of a restarted job).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

from engine_task import Pair, RandomVolumes, TinyTask, tiny_config

from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.engine.trainer import run_training
from radiossl.errors import DataError


class BadFileVolumes(RandomVolumes):
    """Training volumes whose files become unreadable after the first two reads of one epoch."""

    def __init__(self, n: int, seed: int, fail_epoch: int) -> None:
        super().__init__(n, seed)
        self.fail_epoch = fail_epoch
        self.reads = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.reads = 0

    def __getitem__(self, index: int) -> Pair:
        self.reads += 1
        if self.epoch == self.fail_epoch and self.reads > 2:
            raise DataError(f"/data/case{index:03d}.npy: truncated file (simulated)")
        return super().__getitem__(index)


class LostNodeTask(TinyTask):
    """A task whose process disappears at the start of one epoch, without raising (a lost node)."""

    def __init__(self, lose_epoch: int, how: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lose_epoch = lose_epoch
        self.how = how

    def training_step(self, model: Any, batch: Pair, context: StepContext) -> StepOutput:
        if context.epoch == self.lose_epoch:
            mark = Path(os.environ["LOSE_MARK"])
            if self.how == "freeze":  # the test ends the stopped process itself (torchrun leaves it behind)
                mark.with_suffix(".pid").write_text(str(os.getpid()))
            mark.write_text(str(time.time()))  # when the node was lost
            if self.how == "freeze":  # alive but silent, like a node behind a dead network link
                os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(1)  # gone at once: no exception, no teardown, sockets closed by the kernel
        return super().training_step(model, batch, context)


class FailingTask(TinyTask):
    def __init__(self, fail_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_epoch = fail_epoch

    def build_datasets(self) -> tuple[Any, Any]:
        _, val = super().build_datasets()
        return BadFileVolumes(self.n_train, 7, self.fail_epoch), val


def _native_threads() -> list[str]:
    """Names of this process's OS threads (Linux), to check that the process group's threads stopped."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return []
    return [(task / "comm").read_text().strip() for task in tasks.iterdir()]


def main() -> None:
    data_root, out, report = (Path(a) for a in sys.argv[1:4])
    torch.set_num_threads(1)
    config = tiny_config(data_root, out, "optim.epochs=2", *sys.argv[4:])
    resume = os.environ.get("RESUME") or None
    crash = os.environ.get("CRASH_AT_EPOCH")
    rank = int(os.environ["RANK"])
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    lose_mark = os.environ.get("LOSE_MARK", "")
    options: dict[str, Any] = {
        "n_train": 10,
        "n_val": int(os.environ.get("N_VAL", "3")),
        "crash_at_epoch": int(crash) if crash else None,
        "norm": os.environ.get("NORM", "1") == "1",
        "val_jitter": os.environ.get("VAL_JITTER", "1") == "1",
    }
    fail_rank = os.environ.get("FAIL_RANK")
    if fail_rank is not None and int(fail_rank) == rank:
        task: TinyTask = FailingTask(int(os.environ["FAIL_EPOCH"]), **options)
    elif os.environ.get("LOSE_RANK") == str(rank) and not (os.environ.get("LOSE_ONCE") and Path(lose_mark).exists()):
        task = LostNodeTask(int(os.environ["LOSE_EPOCH"]), os.environ.get("LOSE_HOW", "exit"), **options)
    else:
        task = TinyTask(**options)
    report.mkdir(parents=True, exist_ok=True)
    try:
        result = run_training(task, config, resume=resume)
    except Exception as exc:
        failure = {"type": type(exc).__name__, "message": str(exc), "time": time.time()}
        (report / f"rank{rank}.error.json").write_text(json.dumps(failure))
        if fail_rank is not None and int(fail_rank) == rank:
            time.sleep(float(os.environ.get("FAIL_HOLD", "0")))
        raise
    state = torch.load(result.final_checkpoint, weights_only=True) if rank == 0 else None
    (report / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "attempt": int(attempt),
                "local_rank": int(os.environ["LOCAL_RANK"]),
                "node": int(os.environ.get("GROUP_RANK", "0")),
                "history": result.history,
                "after_steps": task.after_steps,
                "rng_world_size": None if state is None else state["rng"]["world_size"],
                "rng_states": None if state is None else len(state["rng"]["states"]),
                "threads_after": _native_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
