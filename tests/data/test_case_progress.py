"""Preprocessing progress: bounded lines with cases done, failures, elapsed time and an ETA per shard."""

from __future__ import annotations

from radiossl.data.preprocess.progress import CaseProgress
from radiossl.engine.progress import PlainProgress, reporting_to


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_thousand_cases_give_about_ten_lines_with_an_eta() -> None:
    lines: list[str] = []
    clock = FakeClock()
    progress = CaseProgress("preprocess nnssl/cluster shard 2/4", 1000, write=lines.append, interval=1e9, clock=clock)
    progress.start()
    for _ in range(100):  # an earlier run did these: they count as done but not in the pace
        progress.skip()
    for number in range(900):
        clock.now += 2.0
        progress.advance(ok=number % 100 != 0)
    progress.finish()
    assert lines[0] == "preprocess nnssl/cluster shard 2/4: 1000 cases"
    assert len(lines) <= 12
    # The first case processed after the resume says where the run stands; then every ~10 %.
    assert lines[1].endswith(": 101/1000 cases (1 failed)  [2s elapsed, ETA 29m58s]")
    assert lines[2].endswith(": 201/1000 cases (2 failed)  [3m22s elapsed, ETA 26m38s]")  # 2 s a case, 799 left
    assert lines[-1] == "preprocess nnssl/cluster shard 2/4: done, 891 ok, 9 failed, 100 already done in 30m00s"


def test_a_quiet_interval_forces_a_line_and_lines_reach_the_reporter() -> None:
    lines: list[str] = []
    clock = FakeClock()
    with reporting_to(PlainProgress(write=lines.append)):
        progress = CaseProgress("preprocess x/genesis", 100_000, interval=60.0, clock=clock)
    progress.start()
    clock.now = 30.0
    progress.advance(ok=True)
    assert lines == ["preprocess x/genesis: 100000 cases"]
    clock.now = 61.0
    progress.advance(ok=True)
    assert lines[-1] == "preprocess x/genesis: 2/100000 cases  [1m01s elapsed, ETA 847h12m]"
