"""How training runs and pipeline steps report to whoever watches: a small interface and its plain form.

Library code never prints to the console itself. It reports through a :class:`ProgressReporter`:
messages, section headings (one per demo step), tables, the progress of a training run
(``start_run`` → ``start_epoch`` → ``advance_step``... → ``end_epoch`` ... → ``end_run``), and
counted steps (``counter``: the k-means features of N crop pairs, ...; :func:`counting` wraps one).
:func:`current_reporter` returns the reporter installed with :func:`reporting_to`, or a
:class:`PlainProgress` when none is. Diagnostics (a fallback, a choice made for the user) go to
Python :mod:`logging` under the ``radiossl`` logger; the CLI shows them through its reporter.

* :class:`PlainProgress` (the default; notebooks, pipes, CI logs) writes plain lines at a bounded
  rate: an epoch line at the first epoch, every ~10 % of the epochs, at each validation when
  validations are rarer than that, and at the last epoch, plus a line whenever ``interval`` seconds
  pass without one; then the end-of-run table. A counted step gets a line when it starts, about
  every 10 % of its items and at its end. It never writes escape codes.
* The CLI installs a rich live bar on a terminal (``radiossl/commands/progress.py``); it draws the
  same :class:`RunPlan`, headline metrics and :func:`summary_table`.
* :class:`NullReporter` says nothing (DDP ranks other than 0).

Everything else a run measures goes to ``metrics.jsonl`` (and TensorBoard), not to the console.

Example:
    >>> lines = []
    >>> progress = PlainProgress(write=lines.append)
    >>> progress.start_run(RunPlan("pretrain tiny", Path("run"), total_epochs=2, done_epochs=0, headline=("loss",)))
    >>> progress.start_epoch(1, steps=3)
    >>> progress.end_epoch({"epoch": 1, "loss": 0.5, "mae": 0.1}, validated=False)
    >>> "loss 0.5" in lines[-1] and "mae" not in lines[-1]
    True
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from radiossl.utils.text_table import TextTable

LINES_PER_RUN = 10
"""Plain output: at most about this many regular epoch lines per run (plus validations and the last)."""

QUIET_INTERVAL = 60.0
"""Plain output: seconds after which a line is written even when no epoch line is due."""


def format_number(value: Any) -> str:
    """Short human form of a metric value (4 significant digits for floats)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h07m``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def is_measured(value: Any) -> bool:
    """A number that was measured: not a bool, and finite (NaN means "not measured this epoch")."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RunPlan:
    """What a training run is about to do, for its progress display."""

    label: str  # e.g. "pretrain patch-cluster"
    run_dir: Path
    total_epochs: int
    done_epochs: int  # already completed (resumed runs)
    headline: tuple[str, ...]  # the metrics shown on the console (see protocol.headline_metrics)
    live: bool = True  # False (logging.progress=false): no per-step display, epoch lines only


@dataclass(frozen=True)
class RunSummary:
    """What a finished training run achieved, for the end-of-run table."""

    label: str
    run_dir: Path
    history: Sequence[Mapping[str, Any]]  # the epoch records, as in metrics.jsonl
    headline: tuple[str, ...]
    monitor: tuple[str, Literal["min", "max"]]  # what selected the best checkpoint
    best_checkpoint: Path | None
    final_checkpoint: Path | None
    best_metric: float | None
    seconds: float


@runtime_checkable
class ProgressReporter(Protocol):
    """Where library code reports; see the module docstring for the call order of a run."""

    def message(self, text: str) -> None:
        """One line of information (plain text, no markup)."""
        ...

    def section(self, title: str) -> None:
        """A heading between the steps of a pipeline (e.g. the demo's ``4/6 pretrain``)."""
        ...

    def table(self, table: TextTable) -> None:
        """A table (the checkpoint match report, the demo's results...)."""
        ...

    def start_run(self, plan: RunPlan) -> None:
        """A training run starts (or resumes at ``plan.done_epochs``)."""
        ...

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Epoch ``epoch`` (1-based) of ``steps`` batches starts."""
        ...

    def advance_step(self, loss: float, lr: float) -> None:
        """One batch is done."""
        ...

    def end_epoch(self, record: Mapping[str, Any], validated: bool) -> None:
        """The epoch's record (``metrics.jsonl``'s epoch line); ``validated``: validation ran this epoch."""
        ...

    def end_run(self, summary: RunSummary | None) -> None:
        """The run is over: show the end-of-run table, or just stop the display (``None``: it failed)."""
        ...

    def counter(self, label: str, total: int, unit: str) -> ItemCounter:
        """A counted step of ``total`` items (``unit``: their plural name, e.g. ``"crop pairs"``) starts."""
        ...


@runtime_checkable
class ItemCounter(Protocol):
    """The progress of one counted step (see :meth:`ProgressReporter.counter` and :func:`counting`).

    ``advance`` may be called from worker threads.
    """

    def advance(self, n: int = 1) -> None:
        """``n`` more items are done."""
        ...

    def end(self, completed: bool = True) -> None:
        """The step is over (``completed`` false: it stopped on an error)."""
        ...


class HeadlineValues:
    """The latest measured value of each headline metric and the epoch it was measured in.

    Validation metrics are measured every few epochs only; between validations the display keeps
    the last value and names its epoch (``val_dice 0.61 (e40)``).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.values: dict[str, tuple[Any, int]] = {}

    def update(self, record: Mapping[str, Any]) -> None:
        """Take the measured headline values of an epoch record."""
        epoch = int(record.get("epoch", 0))
        for name in self.names:
            if is_measured(record.get(name)):
                self.values[name] = (record[name], epoch)

    def text(self, epoch: int, live: Mapping[str, float] | None = None) -> str:
        """``loss 0.41  val_dice 0.52 (e10)  lr 0.001``; ``live`` values (this step's) take precedence."""
        parts = []
        for name in self.names:
            if live and name in live:
                parts.append(f"{name} {format_number(live[name])}")
            elif name in self.values:
                value, measured = self.values[name]
                parts.append(f"{name} {format_number(value)}" + (f" (e{measured})" if measured != epoch else ""))
        return "  ".join(parts)


def best_record(history: Sequence[Mapping[str, Any]], monitor: tuple[str, str]) -> Mapping[str, Any] | None:
    """The epoch record with the best measured ``monitor`` value (the first one on ties)."""
    name, mode = monitor
    best: Mapping[str, Any] | None = None
    for record in history:
        value = record.get(name)
        if not is_measured(value):
            continue
        if best is None or (value < best[name] if mode == "min" else value > best[name]):
            best = record
    return best


def summary_table(summary: RunSummary) -> TextTable | None:
    """The end-of-run table: the first, best and last epochs with the headline metrics."""
    history = list(summary.history)
    if not history:
        return None
    chosen: list[tuple[str, Mapping[str, Any]]] = [("first", history[0])]
    best = best_record(history, summary.monitor)
    if best is not None:
        chosen.append(("best", best))
    chosen.append(("last", history[-1]))
    merged: dict[int, tuple[list[str], Mapping[str, Any]]] = {}
    for label, record in chosen:
        entry = merged.setdefault(int(record.get("epoch", 0)), ([], record))
        if label not in entry[0]:
            entry[0].append(label)
    shown = [name for name in summary.headline if any(name in record for record in history)]
    columns = ("", "epoch", *shown)
    rows = []
    for epoch, (labels, record) in sorted(merged.items()):
        cells = [format_number(record[name]) if is_measured(record.get(name)) else "-" for name in shown]
        rows.append((", ".join(labels), str(epoch), *cells))
    epochs = f"{len(history)} epoch" + ("s" if len(history) != 1 else "")
    title = f"{summary.label}: {epochs}, finished in {format_duration(summary.seconds)}"
    return TextTable(title, columns, rows, right=tuple(range(1, len(columns))))


def summary_lines(summary: RunSummary) -> list[str]:
    """The lines under the end-of-run table: the run folder and the checkpoints in it."""

    def short(path: Path) -> str:
        return path.name if path.parent == summary.run_dir else str(path)

    lines = [f"run folder: {summary.run_dir}"]
    files = []
    if summary.best_checkpoint is not None:
        name, _ = summary.monitor
        value = "" if summary.best_metric is None else f" ({name} {format_number(summary.best_metric)})"
        files.append(f"best {short(summary.best_checkpoint)}{value}")
    if summary.final_checkpoint is not None:
        files.append(f"final {short(summary.final_checkpoint)}")
    files.append("every metric in metrics.jsonl and train.log")
    lines.append("  " + "; ".join(files))
    return lines


def show_summary(reporter: ProgressReporter, summary: RunSummary) -> None:
    """The end of a run through ``reporter``: its table (when there are epochs), then the folder and checkpoints."""
    table = summary_table(summary)
    if table is not None:
        reporter.table(table)
    for line in summary_lines(summary):
        reporter.message(line)


def _print_line(text: str) -> None:
    print(text, file=sys.stdout, flush=True)  # sys.stdout looked up per call: captured output works


@dataclass
class _RunState:
    plan: RunPlan
    values: HeadlineValues
    started: float
    every: int
    epoch: int = 0
    steps: int = 0
    step: int = 0
    trained: int = 0
    last_printed_epoch: int = 0
    last_validated_epoch: float = -math.inf
    last_line: float = 0.0


class PlainProgress:
    """Line-based progress at a bounded rate; never escape codes (see the module docstring).

    Args:
        write: where a line goes (default: printed to ``sys.stdout``).
        interval: seconds after which a line is written even when none is due (long epochs).
        lines_per_run: regular epoch lines per run, about (validations and the last epoch add theirs).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        interval: float = QUIET_INTERVAL,
        lines_per_run: int = LINES_PER_RUN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write or _print_line
        self.interval = interval
        self.lines_per_run = max(1, lines_per_run)
        self.clock = clock
        self._run: _RunState | None = None

    def message(self, text: str) -> None:
        self.write(text)

    def section(self, title: str) -> None:
        self.write(f"== {title} ==")

    def table(self, table: TextTable) -> None:
        for line in table.lines():
            self.write(line)

    def start_run(self, plan: RunPlan) -> None:
        now = self.clock()
        every = max(1, math.ceil(plan.total_epochs / self.lines_per_run))
        self._run = _RunState(plan, HeadlineValues(plan.headline), now, every, last_line=now)
        self._run.last_printed_epoch = plan.done_epochs
        if plan.done_epochs < plan.total_epochs:
            first = plan.done_epochs + 1
            self.write(f"{plan.label}: epochs {first}-{plan.total_epochs} -> {plan.run_dir}")

    def start_epoch(self, epoch: int, steps: int) -> None:
        run = self._run
        if run is None:
            return
        run.epoch, run.steps, run.step = epoch, steps, 0

    def advance_step(self, loss: float, lr: float) -> None:
        run = self._run
        if run is None:
            return
        run.step += 1
        now = self.clock()
        if now - run.last_line < self.interval:
            return
        metrics = run.values.text(run.epoch, {"loss": loss, "lr": lr})
        where = f"epoch {run.epoch}/{run.plan.total_epochs} step {run.step}/{run.steps}"
        done = run.trained + run.step / max(run.steps, 1)
        self._line(f"{run.plan.label} {where}  {metrics}  [{self._timing(now, done)}]", now)

    def end_epoch(self, record: Mapping[str, Any], validated: bool) -> None:
        run = self._run
        if run is None:
            return
        now = self.clock()
        run.trained += 1
        run.values.update(record)
        epoch = int(record.get("epoch", run.epoch))
        total = run.plan.total_epochs
        # A validation gets its own line when validations are rarer than the regular lines; a task that
        # validates (nearly) every epoch shows its latest value on the regular lines instead.
        new_validation = validated and epoch - run.last_validated_epoch >= run.every
        if validated:
            run.last_validated_epoch = epoch
        due = (
            new_validation
            or epoch == run.plan.done_epochs + 1
            or epoch - run.last_printed_epoch >= run.every
            or epoch >= total
            or now - run.last_line >= self.interval
        )
        if not due:
            return
        run.last_printed_epoch = epoch
        metrics = run.values.text(epoch)
        self._line(f"{run.plan.label} epoch {epoch}/{total}  {metrics}  [{self._timing(now, run.trained)}]", now)

    def end_run(self, summary: RunSummary | None) -> None:
        self._run = None
        if summary is None:
            return
        show_summary(self, summary)

    def counter(self, label: str, total: int, unit: str) -> ItemCounter:
        return PlainCounter(label, total, unit, self.write, self.interval, self.lines_per_run, self.clock)

    def _line(self, text: str, now: float) -> None:
        assert self._run is not None
        self._run.last_line = now
        self.write(text)

    def _timing(self, now: float, epochs_done: float) -> str:
        """``1m05s elapsed, ETA 3m10s`` from this session's pace."""
        run = self._run
        assert run is not None
        elapsed = now - run.started
        remaining = run.plan.total_epochs - run.plan.done_epochs - epochs_done
        if epochs_done <= 0 or remaining <= 0:
            return f"{format_duration(elapsed)} elapsed"
        return f"{format_duration(elapsed)} elapsed, ETA {format_duration(elapsed / epochs_done * remaining)}"


class PlainCounter:
    """Plain lines for a counted step: one at the start, about every 10 % of the items, one at the end.

    A line is also written when ``interval`` seconds pass without one. Thread-safe.

    Example:
        >>> lines = []
        >>> counter = PlainCounter("kmeans fit: features", 4, "crop pairs", lines.append, clock=lambda: 0.0)
        >>> counter.advance(2); counter.advance(2); counter.end()
        >>> lines[0], lines[-1]
        ('kmeans fit: features: 4 crop pairs', 'kmeans fit: features: done, 4 crop pairs in 0s')
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str,
        write: Callable[[str], None],
        interval: float = QUIET_INTERVAL,
        lines_per_run: int = LINES_PER_RUN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, max(0, total), unit
        self.write, self.interval, self.clock = write, interval, clock
        self.every = max(1, math.ceil(self.total / max(1, lines_per_run)))
        self.done = 0
        self._lock = threading.Lock()
        self._started = self._last_line = clock()
        self._last_reported = 0
        self.write(f"{label}: {self.total} {unit}")

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = self.clock()
            due = self.done - self._last_reported >= self.every or now - self._last_line >= self.interval
            if not due or self.done >= self.total:  # the last items are reported by end()
                return
            self._last_line, self._last_reported = now, self.done
            elapsed = now - self._started
            eta = elapsed / self.done * (self.total - self.done)
            timing = f"{format_duration(elapsed)} elapsed, ETA {format_duration(eta)}"
            self.write(f"{self.label}: {self.done}/{self.total} {self.unit}  [{timing}]")

    def end(self, completed: bool = True) -> None:
        with self._lock:
            elapsed = format_duration(self.clock() - self._started)
            if completed:
                self.write(f"{self.label}: done, {self.done} {self.unit} in {elapsed}")
            else:
                self.write(f"{self.label}: stopped after {self.done}/{self.total} {self.unit} ({elapsed})")


class NullCounter:
    """Counts nothing."""

    def advance(self, n: int = 1) -> None:
        """Say nothing."""

    def end(self, completed: bool = True) -> None:
        """Say nothing."""


class NullReporter:
    """Reports nothing (DDP ranks other than 0)."""

    def message(self, text: str) -> None:
        """Say nothing."""

    def section(self, title: str) -> None:
        """Say nothing."""

    def table(self, table: TextTable) -> None:
        """Say nothing."""

    def start_run(self, plan: RunPlan) -> None:
        """Say nothing."""

    def start_epoch(self, epoch: int, steps: int) -> None:
        """Say nothing."""

    def advance_step(self, loss: float, lr: float) -> None:
        """Say nothing."""

    def end_epoch(self, record: Mapping[str, Any], validated: bool) -> None:
        """Say nothing."""

    def end_run(self, summary: RunSummary | None) -> None:
        """Say nothing."""

    def counter(self, label: str, total: int, unit: str) -> ItemCounter:
        """Count nothing."""
        return NullCounter()


_CURRENT: ContextVar[ProgressReporter | None] = ContextVar("radiossl_progress_reporter", default=None)


def current_reporter(default: ProgressReporter | None = None) -> ProgressReporter:
    """The reporter installed by :func:`reporting_to` in this thread, else ``default``, else PlainProgress."""
    return _CURRENT.get() or default or PlainProgress()


@contextmanager
def reporting_to(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    """Route every report inside the ``with`` block to ``reporter``.

    Example:
        >>> lines = []
        >>> with reporting_to(PlainProgress(write=lines.append)):
        ...     report("hello")
        >>> lines
        ['hello']
    """
    token = _CURRENT.set(reporter)
    try:
        yield reporter
    finally:
        _CURRENT.reset(token)


def report(text: str) -> None:
    """Send one message line to the current reporter."""
    current_reporter().message(text)


@contextmanager
def counting(label: str, total: int, unit: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Report a counted step to the current reporter; yields ``advance(n)``, callable from worker threads.

    Nothing is reported when ``enabled`` is false or there is nothing to count.

    Example:
        >>> lines = []
        >>> with reporting_to(PlainProgress(write=lines.append)):
        ...     with counting("kmeans predict", 3, "crop pairs") as advance:
        ...         advance(3)
        >>> lines[0], lines[-1].split(" in ")[0]
        ('kmeans predict: 3 crop pairs', 'kmeans predict: done, 3 crop pairs')
    """
    if not enabled or total <= 0:
        yield _ignore
        return
    counter = current_reporter().counter(label, total, unit)
    try:
        yield counter.advance
    except BaseException:
        counter.end(completed=False)
        raise
    counter.end()


def _ignore(n: int = 1) -> None:
    """``advance`` of a step that is not reported."""
