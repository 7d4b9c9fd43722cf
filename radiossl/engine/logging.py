"""Training output: ``metrics.jsonl``, ``train.log``, optional TensorBoard, and the console reporter.

``metrics.jsonl`` is always written (rank 0): one JSON object per line, either a step line
(``"type": "step"``, every ``logging.log_every`` optimiser steps) or an epoch line (``"type": "epoch"``),
each with ``epoch`` (1-based), ``step`` (optimiser steps so far), ``lr``, ``loss``, the task's metrics
and ``time`` (seconds since the run started). Read it with e.g. ``pandas.read_json(path, lines=True)``.

``train.log`` (rank 0) is the human-readable log of the run: every message, every epoch's full
metric line and the end-of-run table, with time stamps; it is appended to when a run resumes.

The console shows much less: :class:`RunLogger` forwards the run's progress to a
:class:`~radiossl.engine.progress.ProgressReporter` (a live bar on a terminal, bounded plain lines
elsewhere) that shows the task's headline metrics only.

Example:
    >>> import tempfile, pathlib, json
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> log = RunLogger(run, enabled=True, reporter=NullReporter())
    >>> log.log_line({"type": "step", "epoch": 1, "step": 10, "lr": 0.1, "loss": 0.5})
    >>> log.close()
    >>> json.loads((run / "metrics.jsonl").read_text())["loss"]
    0.5
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radiossl.engine.progress import (
    ItemCounter,
    NullReporter,
    ProgressReporter,
    RunPlan,
    RunSummary,
    current_reporter,
    format_number,
    summary_lines,
    summary_table,
)
from radiossl.errors import ConfigError
from radiossl.utils.atomic import atomic_write_text
from radiossl.utils.jsonl import read_jsonl
from radiossl.utils.text_table import TextTable

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"

_NOT_SHOWN = ("type", "time", "step")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable
    return value


def epoch_line(record: Mapping[str, Any]) -> str:
    """Every measured value of an epoch record on one line (``epoch 3  lr 0.01  loss 0.25  ...``).

    NaN means "not measured this epoch" (e.g. no validation): kept in ``metrics.jsonl``, left out here.
    """
    shown = {k: v for k, v in record.items() if k not in _NOT_SHOWN and not (isinstance(v, float) and math.isnan(v))}
    return "  ".join(f"{k} {format_number(v)}" for k, v in shown.items())


class RunLogger:
    """The sinks of one training process; all no-ops unless ``enabled`` (rank 0).

    It is itself a :class:`~radiossl.engine.progress.ProgressReporter`: what it is told goes to the
    console reporter (``reporter``, default :func:`~radiossl.engine.progress.current_reporter`) and
    to ``train.log``. With ``verbose`` the console also gets every epoch's full metric line.
    """

    def __init__(
        self,
        run_dir: Path,
        enabled: bool,
        tensorboard: bool = False,
        reporter: ProgressReporter | None = None,
        verbose: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.verbose = verbose
        self.reporter: ProgressReporter = (reporter or current_reporter()) if enabled else NullReporter()
        self.start = time.perf_counter()
        self._writer: Any = None
        self._run_open = False
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError(
                    "logging.tensorboard is on but the tensorboard package is not installed "
                    "(pip install 'radiossl[tensorboard]')"
                ) from exc
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    def elapsed(self) -> float:
        """Seconds since this logger was created."""
        return time.perf_counter() - self.start

    # ---------------------------------------------------------------------------------------- files

    def truncate_after(self, global_step: int) -> None:
        """Drop lines logged after ``global_step`` (a resumed run re-does those steps)."""
        if not self.enabled or not self.metrics_path.is_file():
            return
        kept = [record for record in read_jsonl(self.metrics_path) if int(record.get("step", 0)) <= global_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(record) + "\n" for record in kept))

    def log_line(self, record: Mapping[str, Any]) -> None:
        """Append one record to ``metrics.jsonl`` and, for numbers, to TensorBoard."""
        if not self.enabled:
            return
        line = json.dumps({k: _json_value(v) for k, v in record.items()})
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
        if self._writer is not None:
            step = int(record.get("step", 0))
            prefix = "train_step" if record.get("type") == "step" else "epoch"
            for key, value in record.items():
                if key in ("type", "epoch", "step", "time") or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(f"{prefix}/{key}", value, step)

    def log_images(self, images: Mapping[str, Any], epoch: int) -> None:
        """Send ``H x W x 3`` uint8 images to TensorBoard (PNG files are written by the trainer)."""
        if self.enabled and self._writer is not None:
            for name, image in images.items():
                self._writer.add_image(f"vis/{name}", image, epoch, dataformats="HWC")

    def _log_text(self, *lines: str) -> None:
        """Append time-stamped lines to ``train.log``."""
        if not self.enabled or not lines:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{stamp}  {line}\n" for line in lines)

    # ------------------------------------------------------------------------- the reporter role

    def message(self, text: str) -> None:
        """A line for the console and ``train.log`` (rank 0 only)."""
        if self.enabled:
            self.reporter.message(text)
            self._log_text(text)

    def section(self, title: str) -> None:
        if self.enabled:
            self.reporter.section(title)
            self._log_text(f"== {title} ==")

    def table(self, table: TextTable) -> None:
        if self.enabled:
            self.reporter.table(table)
            self._log_text(*table.lines())

    def start_run(self, plan: RunPlan) -> None:
        if not self.enabled:
            return
        self._run_open = True
        self.reporter.start_run(plan)
        self._log_text(f"{plan.label}: {plan.done_epochs}/{plan.total_epochs} epochs done, run folder {plan.run_dir}")

    def start_epoch(self, epoch: int, steps: int) -> None:
        """A new epoch (``epoch`` is 1-based) of ``steps`` batches."""
        self.reporter.start_epoch(epoch, steps)

    def advance_step(self, loss: float, lr: float) -> None:
        self.reporter.advance_step(loss, lr)

    def end_epoch(self, record: Mapping[str, Any], validated: bool = False) -> None:
        """The epoch's record: its full line goes to ``train.log`` (and the console when verbose)."""
        if not self.enabled:
            return
        line = epoch_line(record)
        self._log_text(line)
        if self.verbose:
            self.reporter.message(line)
        self.reporter.end_epoch(record, validated)

    def end_run(self, summary: RunSummary | None) -> None:
        """Close the progress display; with a summary, show and log the end-of-run table."""
        if not self.enabled or not self._run_open:
            return
        self._run_open = False
        self.reporter.end_run(summary)
        if summary is not None:
            table = summary_table(summary)
            self._log_text(*(table.lines() if table is not None else []), *summary_lines(summary))

    def counter(self, label: str, total: int, unit: str) -> ItemCounter:
        """A counted step, shown by the console reporter (rank 0 only)."""
        return self.reporter.counter(label, total, unit)

    def close(self) -> None:
        """Stop the display if the run ended without a summary, and flush TensorBoard."""
        self.end_run(None)
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
