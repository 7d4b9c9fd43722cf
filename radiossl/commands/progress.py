"""The console side of progress reports: a rich live bar on a terminal, plain bounded lines elsewhere.

Library code reports through :mod:`radiossl.engine.progress`; the commands that train wrap their
work in :func:`console_progress`, which installs

* :class:`RichProgress` when standard output is an interactive terminal: one live bar per training
  stage (epoch x/N and the step within the epoch, elapsed time, ETA, the headline metrics), a bar per
  counted step (items done of the total, elapsed time, ETA), rules between pipeline steps, rich tables;
* :class:`~radiossl.engine.progress.PlainProgress` otherwise (pipes, CI logs, ``TERM=dumb``,
  ``NO_COLOR``, notebooks): plain lines at a bounded rate, never escape codes.

Inside the block the ``radiossl`` logger's records (INFO and up) are shown through the same reporter
(:class:`ReporterLogHandler`), so a warning prints above a live bar instead of through it, and inside
a training run also lands in ``train.log``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
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

from radiossl.engine.progress import (
    HeadlineValues,
    ItemCounter,
    PlainCounter,
    PlainProgress,
    ProgressReporter,
    RunPlan,
    RunSummary,
    current_reporter,
    reporting_to,
    show_summary,
)
from radiossl.utils.text_table import TextTable


def live_display_possible(console: Console) -> bool:
    """Whether ``console`` can show a live bar: an interactive terminal, not dumb, no ``NO_COLOR``."""
    if os.environ.get("NO_COLOR"):
        return False
    return console.is_terminal and not console.is_dumb_terminal and not console.is_jupyter


def rich_table(table: TextTable) -> Table:
    """``table`` as a rich table (cells are shown as they are: no markup)."""
    out = Table(title=escape(table.title), title_justify="left")
    for index, name in enumerate(table.columns):
        out.add_column(escape(name), justify="right" if index in table.right else "left")
    for row in table.rows:
        out.add_row(*(escape(cell) for cell in row))
    return out


class RichProgress:
    """A :class:`~radiossl.engine.progress.ProgressReporter` drawing on a rich console.

    A run shows one live bar that advances per step (so the ETA covers the whole stage), then the
    end-of-run table; messages print above the bar. With ``plan.live`` false (``logging.progress``
    off) the run prints plain epoch lines instead of the bar.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._lines: PlainProgress | None = None
        self._plan: RunPlan | None = None
        self._values = HeadlineValues(())
        self._epoch = 0
        self._steps = 0
        self._step = 0

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def section(self, title: str) -> None:
        self.console.rule(f"[bold]{escape(title)}[/]")

    def table(self, table: TextTable) -> None:
        self.console.print(rich_table(table))

    def start_run(self, plan: RunPlan) -> None:
        self.close()
        self._plan = plan
        self._values = HeadlineValues(plan.headline)
        if not plan.live:
            self._lines = PlainProgress(write=self.message)
            self._lines.start_run(plan)
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[position]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            escape(plan.label),
            total=max(plan.total_epochs, 1),
            completed=plan.done_epochs,
            position=f"epoch {plan.done_epochs}/{plan.total_epochs}",
            metrics="",
        )

    def start_epoch(self, epoch: int, steps: int) -> None:
        self._epoch, self._steps, self._step = epoch, steps, 0
        if self._lines is not None:
            self._lines.start_epoch(epoch, steps)
        self._update(completed=epoch - 1)

    def advance_step(self, loss: float, lr: float) -> None:
        self._step += 1
        if self._lines is not None:
            self._lines.advance_step(loss, lr)
            return
        fraction = self._step / max(self._steps, 1)
        self._update(completed=self._epoch - 1 + fraction, live={"loss": loss, "lr": lr})

    def end_epoch(self, record: Mapping[str, Any], validated: bool) -> None:
        if self._lines is not None:
            self._lines.end_epoch(record, validated)
            return
        self._values.update(record)
        self._epoch = int(record.get("epoch", self._epoch))
        self._steps = 0
        self._update(completed=self._epoch)

    def end_run(self, summary: RunSummary | None) -> None:
        self.close()
        if summary is None:
            return
        show_summary(self, summary)

    def counter(self, label: str, total: int, unit: str) -> ItemCounter:
        """A bar of its own; plain lines when a training run's bar is live (rich shows one live display)."""
        if self._progress is not None:
            return PlainCounter(label, total, unit, self.message)
        return RichCounter(self.console, label, total)

    def close(self) -> None:
        """Stop a live display (also after an error: the bar stays as it was)."""
        if self._progress is not None:
            self._progress.stop()
        if self._lines is not None:
            self._lines.end_run(None)
        self._progress, self._task, self._lines = None, None, None

    def _update(self, completed: float, live: Mapping[str, float] | None = None) -> None:
        if self._progress is None or self._task is None or self._plan is None:
            return
        total = self._plan.total_epochs
        position = f"epoch {self._epoch}/{total}"
        if self._steps and self._step < self._steps:
            position += f" · step {self._step}/{self._steps}"
        metrics = escape(self._values.text(self._epoch, live))
        self._progress.update(self._task, completed=completed, position=position, metrics=metrics)


class RichCounter:
    """A live bar for one counted step: items done of the total, elapsed time and ETA (thread-safe)."""

    def __init__(self, console: Console, label: str, total: int) -> None:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._bar = Progress(*columns, console=console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task(escape(label), total=total)

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)

    def end(self, completed: bool = True) -> None:
        self._bar.stop()  # the bar stays as it was, also after an error


def console_reporter(console: Console | None = None) -> ProgressReporter:
    """A live :class:`RichProgress` on an interactive terminal, else plain lines on standard output."""
    from radiossl.commands.common import console as default_console

    console = console or default_console()
    if live_display_possible(console):
        return RichProgress(console)
    return PlainProgress()


class ReporterLogHandler(logging.Handler):
    """Log records as messages of the current reporter (warnings and errors prefixed with their level).

    The current reporter is the one installed in the logging thread (inside a training run: the run's,
    which also writes ``train.log``); records from other threads go to ``fallback``.
    """

    def __init__(self, fallback: ProgressReporter, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            current_reporter(self.fallback).message(text)
        except Exception:  # logging must never break the command
            self.handleError(record)


@contextmanager
def showing_logs(reporter: ProgressReporter, logger_name: str = "radiossl") -> Iterator[None]:
    """Show ``logger_name``'s records (INFO and up) through ``reporter`` inside the ``with`` block."""
    logger = logging.getLogger(logger_name)
    handler = ReporterLogHandler(reporter)
    previous = logger.level
    if previous == logging.NOTSET or previous > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def console_progress(console: Console | None = None) -> Iterator[ProgressReporter]:
    """Send the library's reports and log records inside the ``with`` block to the console (console_reporter)."""
    reporter = console_reporter(console)
    try:
        with reporting_to(reporter), showing_logs(reporter):
            yield reporter
    finally:
        if isinstance(reporter, RichProgress):
            reporter.close()
