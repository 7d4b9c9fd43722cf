"""Running a sweep (or one shard of it): :func:`run_sweep`, behind ``radiossl sweep``.

The sweep folder::

    SWEEP/  sweep.json      what the results are results of (task, methods by SHA-256, grid, finetune settings, cells)
            subsets.json    every seed's split and nested label-ratio subsets
            overlap.json    which checkpoints' pretraining data held evaluation cases (radiossl.sweep.overlap)
            cells/<cell>/   request.json  cell.log  finetune/  evaluate/  cell.json | failed.json
            sweep.csv  summary.csv  table.md  label_efficiency.png      (the report, once every cell is done)

It follows the sharding pattern of every stage (:mod:`radiossl.utils.fragments`): the cells are listed in
a fixed order and ``--shard I/N`` takes its share; a cell's ``cell.json`` is its done marker, so a rerun
skips done cells and resumes the others; ``sweep.json`` is claimed, so a shard started with other
settings is refused instead of being mixed in (results are never deleted); the shard that finds every
cell done writes the report, and ``radiossl sweep report`` writes it at any time from the cells that
are done.

Every cell runs in its own process (:mod:`radiossl.sweep.cell`): a cell that crashes or is killed
(out of memory, ``kill -9``) is recorded as failed and the sweep goes on with the next one; the next
run resumes it from its last checkpoint. Each process also starts with fresh global state (random
generators, CUDA caches, deterministic-algorithm flags).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radiossl.errors import ConfigError, DataError
from radiossl.sweep.cell import CELLS_DIR, DONE, FAILED, LOG, REQUEST, cell_fragments
from radiossl.sweep.overlap import check_sweep_overlap
from radiossl.sweep.plan import (
    Cell,
    Method,
    cell_config,
    identity,
    identity_models,
    parse_methods,
    plan_cells,
    plan_subsets,
)
from radiossl.utils.atomic import write_json
from radiossl.utils.fragments import Fragments, share

if TYPE_CHECKING:
    from radiossl.sweep.report import SweepReport
    from radiossl.utils.sharding import Shard

SUBSETS_JSON = "subsets.json"


@dataclass
class SweepRun:
    """What :func:`run_sweep` did."""

    out: Path
    cells: list[Cell]
    shard: Shard | None
    skipped: list[str] = field(default_factory=list)
    """Cells of this shard that were done already."""
    ran: list[str] = field(default_factory=list)
    """Cells this run finished."""
    failed: dict[str, str] = field(default_factory=dict)
    """Cells this run tried and could not finish, with the error (a rerun tries them again)."""
    missing: list[str] = field(default_factory=list)
    """Cells of the whole sweep (all shards) without a result yet."""
    report: SweepReport | None = None
    """The report, written when no cell was missing."""


def run_sweep(
    config: Any,
    *,
    shard: Shard | None = None,
    python: str | None = None,
) -> SweepRun:
    """Run the cells of ``config`` (a sweep config, :func:`radiossl.sweep.plan.load_sweep_config`) not done yet.

    Args:
        config: the resolved sweep config; ``config.out`` is the sweep folder.
        shard: run only this share of the cells (``--shard I/N``); None = all of them.
        python: the interpreter that runs the cells (default: this one).

    Raises:
        ConfigError: nothing to compare, a missing checkpoint, or a sweep with other settings in ``config.out``.
        DataError: the dataset folder is missing or has no cases.
    """
    from radiossl.engine.progress import report as say  # one line per cell, to the current reporter

    if config.data.root is None:
        raise ConfigError("data.root: no dataset folder given (--data RAW_DIR)")
    if not Path(config.data.root).is_dir():
        raise DataError(f"{config.data.root}: dataset folder not found")
    methods = parse_methods(config.sweep.weights)
    cells = plan_cells(config, methods)
    subsets = plan_subsets(config)
    out = Path(config.out)
    fragments = claim_sweep_folder(config, methods, cells)
    write_json(out / SUBSETS_JSON, subsets)
    for entry in check_sweep_overlap(config, methods, out):
        say(f"overlap check, {entry['method']}: {entry.get('summary') or 'not checked: ' + entry['reason']}")
    by_name = {method.name: method for method in methods}
    result = SweepRun(out, cells, shard)
    mine = share(cells, shard)
    todo = [cell for cell in mine if not fragments.has(cell.id)]
    result.skipped = [cell.id for cell in mine if fragments.has(cell.id)]
    where = f" of shard {shard}" if shard else ""
    if result.skipped:
        say(f"{len(result.skipped)} of {len(mine)} cell(s){where} done already")
    for number, cell in enumerate(todo, start=1):
        cell_dir = out / CELLS_DIR / cell.id
        request = {
            "task": config.task.name,
            "cell": cell.as_dict(),
            "finetune": cell_config(config, cell, by_name[cell.method], cell_dir),
            "evaluate": {
                "split": config.sweep.split,
                "protocol": config.sweep.protocol,
                "checkpoint": config.sweep.checkpoint,
            },
            "train_subset": subsets[str(cell.seed)]["subsets"][f"{cell.ratio:g}"],
        }
        resumed = " (resuming)" if (cell_dir / "finetune").is_dir() or (cell_dir / "probe").is_dir() else ""
        say(f"[{number}/{len(todo)}{where}] {cell.id}{resumed}: log in {cell_dir / LOG}")
        started = time.monotonic()
        error = run_cell_process(cell_dir, request, python or sys.executable)
        seconds = time.monotonic() - started
        if error is None:
            result.ran.append(cell.id)
            say(f"[{number}/{len(todo)}{where}] {cell.id}: done in {seconds:.0f} s")
        else:
            result.failed[cell.id] = error
            say(f"[{number}/{len(todo)}{where}] {cell.id}: [red]failed[/] after {seconds:.0f} s: {error}")
    result.missing = fragments.missing([cell.id for cell in cells])
    if not result.missing:
        from radiossl.sweep.report import write_report

        result.report = write_report(out)
    return result


def claim_sweep_folder(config: Any, methods: Sequence[Method], cells: Sequence[Cell]) -> Fragments:
    """The cells' done markers in ``config.out``, after recording (or checking) what ``sweep.json`` says they are.

    A ``sweep.json`` written before a finetune field existed is accepted while that field is at its default.

    Raises:
        ConfigError: ``config.out`` holds a sweep of other settings (the first differences named).
    """
    fragments = cell_fragments(Path(config.out))
    fragments.claim(
        identity(config, methods, cells),
        advice="use another --out for a sweep with other settings (nothing in it was changed)",
        models=identity_models(config),
    )
    return fragments


def run_cell_process(cell_dir: Path, request: dict[str, Any], python: str) -> str | None:
    """Run one cell in a child process (output appended to ``cell.log``); None when done, else the error.

    A cell that ends without ``cell.json`` gets a ``failed.json`` saying why (its own error message, or
    its exit code or signal), which the next attempt replaces.
    """
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / FAILED).unlink(missing_ok=True)
    write_json(cell_dir / REQUEST, request)
    command = [python, "-m", "radiossl.sweep.cell", str(cell_dir / REQUEST)]
    with open(cell_dir / LOG, "ab") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            code = process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the cell too: let it stop, then stop the sweep
            process.wait()
            raise
    if code == 0 and (cell_dir / DONE).is_file():
        return None
    failed = cell_dir / FAILED
    if failed.is_file():
        try:
            return str(json.loads(failed.read_text(encoding="utf-8")).get("error"))
        except (OSError, json.JSONDecodeError):
            pass
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        error = f"the cell process was killed ({name}); rerun the sweep to resume it (see {cell_dir / LOG})"
    else:
        error = f"the cell process stopped with exit code {code} (see {cell_dir / LOG})"
    write_json(failed, {"status": "failed", "error": error})
    return error
