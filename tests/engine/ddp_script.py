"""Launched by test_ddp.py with ``torchrun --nproc_per_node=2``: train the tiny task with DDP on CPU (gloo).

Usage: ddp_script.py DATA_ROOT OUT_DIR REPORT_DIR [extra --set style overrides...]
Each rank writes REPORT_DIR/rank<r>.json with its view of the result.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from engine_task import TinyTask, tiny_config

from radiossl.engine.trainer import run_training


def main() -> None:
    data_root, out, report = (Path(a) for a in sys.argv[1:4])
    torch.set_num_threads(1)
    config = tiny_config(data_root, out, "optim.epochs=2", *sys.argv[4:])
    resume = os.environ.get("RESUME") or None
    crash = os.environ.get("CRASH_AT_EPOCH")
    task = TinyTask(n_train=10, n_val=3, crash_at_epoch=int(crash) if crash else None)
    result = run_training(task, config, resume=resume)
    rank = int(os.environ["RANK"])
    state = torch.load(result.final_checkpoint, weights_only=True) if rank == 0 else None
    report.mkdir(parents=True, exist_ok=True)
    (report / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "history": result.history,
                "after_steps": task.after_steps,
                "rng_world_size": None if state is None else state["rng"]["world_size"],
                "rng_states": None if state is None else len(state["rng"]["states"]),
            }
        )
    )


if __name__ == "__main__":
    main()
