"""The CLI's console side: a bar per counted step on a terminal, log records through the reporter."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from radiossl.commands.progress import RichProgress, console_progress
from radiossl.engine.logging import RunLogger
from radiossl.engine.progress import NullReporter, PlainProgress, RunPlan, counting, reporting_to


def test_a_counted_step_is_a_bar_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with reporting_to(RichProgress(console)), counting("kmeans fit: features", 8, "crop pairs") as advance:
        advance(5)
        advance(3)
    last_frame = buffer.getvalue().rsplit("\r", 1)[-1]
    assert "kmeans fit: features" in last_frame and "8/8" in last_frame


def test_a_counted_step_inside_a_live_run_prints_lines_instead_of_a_second_bar(tmp_path: Path) -> None:
    buffer = io.StringIO()
    reporter = RichProgress(Console(file=buffer, force_terminal=True, width=120))
    reporter.start_run(RunPlan("pretrain tiny", tmp_path, total_epochs=2, done_epochs=0, headline=("loss",)))
    with reporting_to(reporter), counting("caching", 2, "cases") as advance:  # rich allows one live display
        advance(2)
    reporter.end_run(None)
    text = buffer.getvalue()
    assert "caching: 2 cases" in text and "caching: done, 2 cases in " in text


def test_log_records_reach_the_console_while_the_cli_reports(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("radiossl.some.module")
    with console_progress(Console(file=io.StringIO())):  # not a terminal: plain lines on standard output
        logger.info("runtime.amp=auto: bf16")
        logger.warning("runtime.amp=bf16 falls back to float32")
        logger.debug("not shown")
    logger.warning("after the command")  # the handler is gone again
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["runtime.amp=auto: bf16", "warning: runtime.amp=bf16 falls back to float32"]
    assert "after the command" not in captured.out
    assert logging.getLogger("radiossl").level == logging.NOTSET


def test_log_records_of_a_training_run_also_land_in_train_log(tmp_path: Path) -> None:
    with console_progress(Console(file=io.StringIO())) as console_reporter:
        assert isinstance(console_reporter, PlainProgress)
        run_log = RunLogger(tmp_path, enabled=True, reporter=NullReporter())
        with reporting_to(run_log):
            logging.getLogger("radiossl.transforms").info("NumPy paths")
        run_log.close()
    assert "NumPy paths" in (tmp_path / "train.log").read_text()
