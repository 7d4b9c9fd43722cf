"""Progress of one preprocessing run (one shard): cases done of its total, failures, elapsed time, ETA.

Lines go to the current :class:`~radiossl.engine.progress.ProgressReporter` (plain lines; the CLI
shows them on the console) at a bounded rate: one when the run starts, one each time another ~10 %
of the shard's cases is done, one whenever ``interval`` seconds pass without one, and one at the end.
The ETA is this run's pace (cases processed per second, not counting cases already done by an
earlier run) times the cases left.

Example:
    >>> lines = []
    >>> progress = CaseProgress("preprocess nnssl/cluster", total=4, write=lines.append)
    >>> progress.start(); progress.skip(); progress.advance(ok=True); progress.advance(ok=False)
    >>> progress.advance(ok=True); progress.finish()
    >>> lines[0], lines[-1].split(" in ")[0]
    ('preprocess nnssl/cluster: 4 cases', 'preprocess nnssl/cluster: done, 2 ok, 1 failed, 1 already done')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from radiossl.engine.progress import QUIET_INTERVAL, current_reporter, format_duration

LINES_PER_RUN = 10
"""About this many regular lines per run (plus the first, the last and the quiet-interval ones)."""


class CaseProgress:
    """Counts the cases of one run and writes progress lines (see the module docstring).

    Args:
        label: what runs, e.g. ``"preprocess nnssl/cluster shard 1/4"``.
        total: the cases of this run (this shard), including those an earlier run already did.
        write: where a line goes (default: the current reporter's ``message``).
        interval: seconds after which a line is written even when none is due.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        label: str,
        total: int,
        write: Callable[[str], None] | None = None,
        interval: float = QUIET_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(0, total)
        self.write = write or current_reporter().message
        self.interval = interval
        self.clock = clock
        self.every = max(1, math.ceil(self.total / LINES_PER_RUN))
        self.ok = 0
        self.failed = 0
        self.skipped = 0
        self._started = clock()
        self._last_line = self._started
        self._last_reported = 0

    @property
    def finished(self) -> int:
        """Cases done so far: processed (ok or failed) and skipped as already done."""
        return self.ok + self.failed + self.skipped

    def start(self) -> None:
        """Say how many cases this run has."""
        self._started = self._last_line = self.clock()
        self.write(f"{self.label}: {self.total} case" + ("s" if self.total != 1 else ""))

    def skip(self) -> None:
        """A case whose samples an earlier run already wrote."""
        self.skipped += 1

    def advance(self, ok: bool) -> None:
        """A case was processed (``ok`` false: it failed and is reported)."""
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        now = self.clock()
        if self.finished - self._last_reported >= self.every or now - self._last_line >= self.interval:
            self._line(now)

    def finish(self) -> None:
        """The run is over: the counts and the time it took."""
        now = self.clock()
        parts = [f"{self.ok} ok", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        self.write(f"{self.label}: done, {', '.join(parts)} in {format_duration(now - self._started)}")

    def eta(self, now: float) -> float | None:
        """Seconds left at this run's pace (None before the first processed case)."""
        processed = self.ok + self.failed
        if processed == 0:
            return None
        left = max(0, self.total - self.finished)
        return (now - self._started) / processed * left

    def _line(self, now: float) -> None:
        self._last_line, self._last_reported = now, self.finished
        failed = f" ({self.failed} failed)" if self.failed else ""
        timing = f"{format_duration(now - self._started)} elapsed"
        eta = self.eta(now)
        if eta is not None and self.finished < self.total:
            timing += f", ETA {format_duration(eta)}"
        self.write(f"{self.label}: {self.finished}/{self.total} cases{failed}  [{timing}]")
