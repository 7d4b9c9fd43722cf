"""Training output: a rich progress bar, ``metrics.jsonl``, optional TensorBoard, a closing summary.

``metrics.jsonl`` is always written (rank 0): one JSON object per line, either a step line
(``"type": "step"``, every ``logging.log_every`` optimiser steps) or an epoch line (``"type": "epoch"``),
each with ``epoch`` (1-based), ``step`` (optimiser steps so far), ``lr``, ``loss``, the task's metrics
and ``time`` (seconds since the run started). Read it with e.g. ``pandas.read_json(path, lines=True)``.

Example:
    >>> import tempfile, pathlib, json
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> log = RunLogger(run, enabled=True, progress=False)
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

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from radiossl.errors import ConfigError
from radiossl.utils.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them readable
    return value


def format_number(value: Any) -> str:
    """Short human form of a metric value."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class RunLogger:
    """Progress display and metric sinks of one training process (all no-ops unless ``enabled``)."""

    def __init__(
        self,
        run_dir: Path,
        enabled: bool,
        progress: bool = True,
        tensorboard: bool = False,
        console: Console | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.console = console or Console(highlight=False)
        self.start = time.perf_counter()
        self._writer: Any = None
        self._progress: Progress | None = None
        self._epoch_task: TaskID | None = None
        self._step_task: TaskID | None = None
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
        if progress:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def elapsed(self) -> float:
        """Seconds since this logger was created."""
        return time.perf_counter() - self.start

    # ---------------------------------------------------------------------------------------- files

    def truncate_after(self, global_step: int) -> None:
        """Drop lines logged after ``global_step`` (a resumed run re-does those steps)."""
        if not self.enabled or not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(record, dict) and int(record.get("step", 0)) <= global_step:
                kept.append(line)
        atomic_write_text(self.metrics_path, "".join(f"{line}\n" for line in kept))

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

    # ------------------------------------------------------------------------------------- console

    def info(self, message: str) -> None:
        """Print a line (rank 0 only)."""
        if self.enabled:
            self.console.print(message)

    def start_progress(self, total_epochs: int, done_epochs: int) -> None:
        if self._progress is None:
            return
        self._progress.start()
        self._epoch_task = self._progress.add_task("epochs", total=total_epochs, completed=done_epochs, info="")

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Reset the per-epoch bar (``epoch`` is 1-based)."""
        if self._progress is None:
            return
        if self._step_task is not None:
            self._progress.remove_task(self._step_task)
        self._step_task = self._progress.add_task(f"epoch {epoch}", total=steps, info="")

    def advance_step(self, loss: float, lr: float) -> None:
        if self._progress is not None and self._step_task is not None:
            self._progress.update(self._step_task, advance=1, info=f"loss {loss:.4g}  lr {lr:.3g}")

    def end_epoch(self, record: Mapping[str, Any]) -> None:
        """Advance the run bar and print the epoch's summary line."""
        if not self.enabled:
            return
        shown = {
            k: v
            for k, v in record.items()
            if k not in ("type", "time", "step") and not (isinstance(v, float) and math.isnan(v))
        }  # NaN means "not measured this epoch" (e.g. no validation): kept in metrics.jsonl, not printed
        text = "  ".join(f"{k} {format_number(v)}" for k, v in shown.items())
        if self._progress is not None and self._epoch_task is not None:
            self._progress.update(self._epoch_task, advance=1, info=f"loss {format_number(record.get('loss'))}")
        self.console.print(text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

    def summary(
        self,
        history: list[dict[str, Any]],
        run_dir: Path,
        best: Path | None,
        best_metric: Any,
        columns: list[str] | None = None,
    ) -> None:
        """A closing table of the last epochs (``columns``, default all) and where the checkpoints are."""
        if not self.enabled or not history:
            return
        available = [k for k in history[-1] if k not in ("type", "step", "time")]
        keys = [k for k in columns if k in available] if columns else available
        table = Table(title=f"training finished in {self.elapsed():.1f} s", show_lines=False)
        for key in keys:
            table.add_column(key, justify="right")
        for record in history[-5:]:
            table.add_row(*(format_number(record.get(k, "")) for k in keys))
        self.console.print(table)
        self.console.print(f"run folder: {run_dir}")
        if best is not None:
            self.console.print(f"best checkpoint: {best} (metric {format_number(best_metric)})")
