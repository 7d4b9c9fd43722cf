"""One cell of a sweep, run in its own process: ``python -m radiossl.sweep.cell <cell>/request.json``.

The sweep writes ``request.json`` (the cell's finetune config and evaluation settings) and starts this
module; it leaves in the cell folder:

* ``finetune/`` — an ordinary finetune run folder (config.yaml, metrics.jsonl, checkpoints, splits.json);
  ``probe/`` instead in mode ``probe`` (a frozen-encoder probe's run folder, the same files);
* ``evaluate/`` — an ordinary evaluate folder (metrics.csv, summary.json, cases/);
* ``cell.json`` — written last, atomically: the cell is done (the sweep's done marker), with the
  labelled cases it trained on and where its results are;
* ``failed.json`` — instead of ``cell.json`` when the cell failed, with the error.

Everything resumes: finetuning continues from ``finetune/checkpoint_latest.pt`` (``resume="auto"``) and
evaluation skips the cases that have a result, so a cell killed at any point (``kill -9``, a lost node,
a time limit) continues where it stopped when the sweep is run again.

How a cell adapts the network is its ``mode``; :data:`MODE_RUNNERS` maps each mode to the function
that does it. ``finetune`` and ``probe`` (the frozen-encoder probe of :mod:`radiossl.downstream.probe`)
are built in; another mode adds a function with the same signature that trains into its own folder and
evaluates into ``evaluate/``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radiossl.errors import ConfigError, DataError, RadiosslError
from radiossl.utils.atomic import write_json
from radiossl.utils.fragments import Fragments
from radiossl.utils.locking import folder_lock

if TYPE_CHECKING:
    from radiossl.downstream.config import FinetuneConfig

REQUEST = "request.json"
DONE = "cell.json"
SWEEP_JSON = "sweep.json"
CELLS_DIR = "cells"


def cell_fragments(out: Path) -> Fragments:
    """The done markers of a sweep's cells, ``out/cells/<cell>/cell.json``, described by ``out/sweep.json``."""
    return Fragments(out / CELLS_DIR, f"/{DONE}", out / SWEEP_JSON)


FAILED = "failed.json"
LOG = "cell.log"
FINETUNE_DIR = "finetune"
PROBE_DIR = "probe"
EVALUATE_DIR = "evaluate"


@dataclass
class CellOutcome:
    """What a mode runner produced: the evaluation folder and what to record in ``cell.json``."""

    evaluate_dir: Path
    train_subset: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def _finetune_then_evaluate(request: dict[str, Any], cell_dir: Path) -> CellOutcome:
    """The ``finetune`` mode: finetune (resuming) into ``finetune/``, then evaluate (resuming) into ``evaluate/``."""
    return _train_then_evaluate(request, cell_dir, "finetune", FINETUNE_DIR)


def _probe_then_evaluate(request: dict[str, Any], cell_dir: Path) -> CellOutcome:
    """The ``probe`` mode: train a frozen-encoder probe (resuming) into ``probe/``, then evaluate into ``evaluate/``."""
    return _train_then_evaluate(request, cell_dir, "probe", PROBE_DIR)


def _train_then_evaluate(request: dict[str, Any], cell_dir: Path, mode: str, folder: str) -> CellOutcome:
    """Train the cell's config in ``mode`` (resuming) into ``folder``, then evaluate (resuming) into ``evaluate/``."""
    from radiossl.downstream.config import load_task_config, task_config_class
    from radiossl.downstream.evaluate import evaluate
    from radiossl.downstream.finetune import finetune

    task = str(request["task"])
    config_class, _ = task_config_class(task, "finetune")
    config: FinetuneConfig = config_class.model_validate({**request["finetune"], "mode": mode})  # type: ignore[assignment]
    run_dir = cell_dir / folder
    finished = (run_dir / "checkpoint_final.pt").is_file() and (run_dir / "splits.json").is_file()
    details: dict[str, Any] = {mode: folder}
    if not finished:
        result = finetune(config, resume="auto", run_dir=run_dir)
        details.update(epochs=result.epochs_completed, best_val_dice=result.best_metric)
    splits = _read_json(run_dir / "splits.json")
    left_out = splits.get("left_out") or []
    if left_out:  # the other methods of this ratio and seed trained on cases this one did not have
        cases = ", ".join(f"{c['case']} ({c['error']})" for c in left_out[:3])
        raise DataError(f"{run_dir}: {len(left_out)} case(s) could not be loaded: {cases}")
    wanted = request["evaluate"].get("checkpoint", "best")
    weights = run_dir / ("checkpoint_best.pt" if wanted == "best" else "checkpoint_final.pt")
    if not weights.is_file():  # no validation cases and no loss improvement recorded: the final one
        weights = run_dir / "checkpoint_final.pt"
    flags = {
        "data": {"root": config.data.root, "workers": config.data.workers},
        "runtime": {"device": config.runtime.device, "workers": config.runtime.workers, "amp": config.runtime.amp},
        "weights": weights,
        "out": cell_dir / EVALUATE_DIR,
        "split": request["evaluate"]["split"],
        "protocol": request["evaluate"]["protocol"],
    }
    evaluation = evaluate(load_task_config("evaluate", task, flags=flags))
    if evaluation.failures:
        cases = ", ".join(f"{f['case']} ({f['error']})" for f in evaluation.failures[:3])
        raise DataError(f"{evaluation.out_dir}: {len(evaluation.failures)} case(s) failed: {cases}")
    details.update(checkpoint=weights.name, mean_dice=evaluation.summary.get("mean", {}).get("dice_mean"))
    return CellOutcome(cell_dir / EVALUATE_DIR, list(splits.get("train_subset", [])), details)


MODE_RUNNERS: dict[str, Callable[[dict[str, Any], Path], CellOutcome]] = {
    "finetune": _finetune_then_evaluate,
    "probe": _probe_then_evaluate,
}
"""How each ``sweep.mode`` runs a cell: ``runner(request, cell_dir) -> CellOutcome``."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc


def run_cell(request_path: Path) -> dict[str, Any]:
    """Run the cell described by ``request_path`` and write its ``cell.json``; returns what was written.

    Raises:
        RadiosslError: the cell failed (the caller records it in ``failed.json``).
    """
    cell_dir = request_path.parent
    # A cell process whose sweep was killed may still be running: a second one waits for it here,
    # then finds the cell done (or resumes it from where the first one stopped).
    with folder_lock(cell_dir):
        if (cell_dir / DONE).is_file():
            return dict(_read_json(cell_dir / DONE))
        return _run_locked(request_path, cell_dir)


def _run_locked(request_path: Path, cell_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    request = _read_json(request_path)
    cell = request["cell"]
    runner = MODE_RUNNERS.get(str(cell.get("mode", "finetune")))
    if runner is None:
        raise ConfigError(f"{request_path}: mode {cell.get('mode')!r} is not available (known: {sorted(MODE_RUNNERS)})")
    outcome = runner(request, cell_dir)
    planned = request.get("train_subset")
    if planned is not None and sorted(planned) != sorted(outcome.train_subset):
        raise DataError(
            f"{cell_dir}: trained on other labelled cases than the sweep planned for ratio {cell['ratio']} and "
            f"seed {cell['seed']} ({len(outcome.train_subset)} instead of {len(planned)}); its dataset or split "
            "changed since the sweep started"
        )
    record = {
        "status": "ok",
        "cell": cell,
        "train_subset": outcome.train_subset,
        "evaluate": outcome.evaluate_dir.name,
        "metrics_csv": f"{outcome.evaluate_dir.name}/metrics.csv",
        **outcome.details,
        "seconds": round(time.monotonic() - started, 1),
    }
    write_json(cell_dir / DONE, record)
    return record


def main(argv: list[str] | None = None) -> int:
    """Entry point of the cell process: exit 0 done, 1 the cell failed (``failed.json``), 2 bad request."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m radiossl.sweep.cell CELL_DIR/request.json", file=sys.stderr)
        return 2
    request_path = Path(args[0])
    try:
        run_cell(request_path)
    except RadiosslError as exc:
        print(f"error: {exc}", file=sys.stderr)
        write_json(request_path.parent / FAILED, {"status": "failed", "error": str(exc)})
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
