"""Counted steps (``ProgressReporter.counter``): bounded plain lines, thread-safe, silent where asked."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from radiossl.engine.logging import RunLogger
from radiossl.engine.progress import (
    NullReporter,
    PlainCounter,
    PlainProgress,
    counting,
    reporting_to,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_counter_writes_about_ten_lines_whatever_the_total() -> None:
    lines: list[str] = []
    clock = FakeClock()
    counter = PlainCounter("kmeans fit: features", 1000, "crop pairs", lines.append, clock=clock)
    for _ in range(1000):
        clock.now += 0.01
        counter.advance()
    counter.end()
    assert lines[0] == "kmeans fit: features: 1000 crop pairs"
    assert lines[1] == "kmeans fit: features: 100/1000 crop pairs  [1s elapsed, ETA 9s]"
    assert lines[-1] == "kmeans fit: features: done, 1000 crop pairs in 10s"
    assert len(lines) == 11  # start, 100 ... 900, done
    assert all("\x1b" not in line for line in lines)


def test_plain_counter_writes_a_line_after_a_quiet_interval() -> None:
    lines: list[str] = []
    clock = FakeClock()
    counter = PlainCounter("kmeans predict (k3)", 1000, "crop pairs", lines.append, interval=60.0, clock=clock)
    counter.advance(3)
    assert len(lines) == 1  # 3 of 1000: not due
    clock.now = 61.0
    counter.advance(1)
    assert lines[-1] == "kmeans predict (k3): 4/1000 crop pairs  [1m01s elapsed, ETA 4h13m]"


def test_plain_counter_counts_every_item_advanced_from_threads() -> None:
    lines: list[str] = []
    counter = PlainCounter("features", 8 * 500, "crop pairs", lines.append)

    def work() -> None:
        for _ in range(500):
            counter.advance()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counter.end()
    assert counter.done == 4000 and lines[-1].startswith("features: done, 4000 crop pairs in ")
    assert len(lines) <= 11


def test_counting_reports_to_the_current_reporter_and_says_when_it_stopped() -> None:
    lines: list[str] = []
    reporter = PlainProgress(write=lines.append)
    with (
        reporting_to(reporter),
        pytest.raises(RuntimeError, match="boom"),
        counting("features", 10, "crop pairs") as add,
    ):
        add(4)
        raise RuntimeError("boom")
    assert lines[0] == "features: 10 crop pairs"
    assert lines[-1].startswith("features: stopped after 4/10 crop pairs (")


@pytest.mark.parametrize(("enabled", "total"), [(False, 10), (True, 0)])
def test_counting_says_nothing_when_disabled_or_empty(enabled: bool, total: int) -> None:
    lines: list[str] = []
    with reporting_to(PlainProgress(write=lines.append)), counting("features", total, "crop pairs", enabled) as advance:
        advance(3)
    assert lines == []


def test_null_reporter_and_a_disabled_run_logger_count_silently(tmp_path: Path) -> None:
    lines: list[str] = []
    for reporter in (NullReporter(), RunLogger(tmp_path, enabled=False, reporter=PlainProgress(write=lines.append))):
        counter = reporter.counter("features", 5, "crop pairs")
        counter.advance(5)
        counter.end()
    assert lines == []
    logger = RunLogger(tmp_path, enabled=True, reporter=PlainProgress(write=lines.append))
    with reporting_to(logger), counting("features", 2, "crop pairs") as advance:
        advance(2)
    assert lines[0] == "features: 2 crop pairs" and lines[-1].startswith("features: done, 2 crop pairs")
