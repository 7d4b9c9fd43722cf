"""The ``--shard I/N`` notation: which part of a list of work items one process takes.

Shards count from 1, as the same notation does in Jest, Playwright and Vitest: ``1/2`` and ``2/2``
together are the whole run. Shard ``I/N`` takes the items at positions ``p`` (0-based, in the list's
order) with ``p % N == I - 1``. ``slurm`` reads the shard of a Slurm job array task from the
environment, so ``sbatch --array=0-3`` and ``--array=1-4`` (and ``--array=0-12:4``) each give shards
1/4 ... 4/4.

Example:
    >>> shard = parse_shard("2/3")
    >>> shard, shard.select(["a", "b", "c", "d", "e"])
    (Shard(index=2, count=3), ['b', 'e'])
    >>> parse_shard("slurm", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"})
    Shard(index=1, count=4)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: The value that reads the shard of a Slurm job array task from the environment.
SLURM = "slurm"
_SLURM_ID = "SLURM_ARRAY_TASK_ID"
_SLURM_MIN = "SLURM_ARRAY_TASK_MIN"
_SLURM_MAX = "SLURM_ARRAY_TASK_MAX"
_SLURM_COUNT = "SLURM_ARRAY_TASK_COUNT"
_SLURM_STEP = "SLURM_ARRAY_TASK_STEP"


class ShardError(ValueError):
    """A shard value that names no shard; the message starts with the value and says what is valid."""


def _valid(count: int) -> str:
    if count == 1:
        return "use 1/1"
    if count == 2:
        return "use 1/2 or 2/2"
    return f"use 1/{count} … {count}/{count}"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``1 <= index <= count``, as typed on the command line)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"{self}: the number of shards N must be at least 1 (e.g. 1/4)")
        if self.index < 1:
            raise ShardError(f"{self}: shards count from 1; {_valid(self.count)}")
        if self.index > self.count:
            there = "there is only 1 shard" if self.count == 1 else f"there are only {self.count} shards"
            raise ShardError(f"{self}: {there}; {_valid(self.count)}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, position: int) -> bool:
        """Whether the item at 0-based ``position`` belongs to this shard."""
        return position % self.count == self.index - 1

    def select(self, items: Iterable[T]) -> list[T]:
        """The items of this shard, in their order."""
        return list(self.pick(items))

    def pick(self, items: Iterable[T]) -> Iterator[T]:
        """The items of this shard, one at a time: ``items`` may be a stream (nothing is held)."""
        return itertools.islice(items, self.index - 1, None, self.count)


def check_shard(text: str) -> None:
    """ShardError unless ``text`` is ``I/N`` with ``1 <= I <= N`` or ``slurm`` (the environment is not read)."""
    if text.strip().lower() != SLURM:
        parse_shard(text)


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """The shard named by ``"I/N"`` or ``"slurm"`` (read from ``environ``, default ``os.environ``).

    Raises:
        ShardError: malformed or out-of-range values, or ``slurm`` outside a Slurm job array.
    """
    if text.strip().lower() == SLURM:
        return slurm_shard(os.environ if environ is None else environ)
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        shown = text.strip() or repr(text)
        raise ShardError(f"{shown}: expected I/N with 1 <= I <= N (e.g. 1/4), or 'slurm' in a Slurm job array")
    return Shard(int(index), int(count))


def slurm_shard(environ: Mapping[str, str]) -> Shard:
    """The shard of this Slurm job array task: its position in the array, counted from 1.

    Uses ``SLURM_ARRAY_TASK_ID``, ``_MIN``, ``_STEP`` (default 1) and ``_COUNT`` (or ``_MAX``), so
    that the array's first task is shard 1 whether the array starts at 0, at 1 or elsewhere.
    """

    def number(name: str) -> int | None:
        value = environ.get(name, "").strip()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise ShardError(f"slurm: {name}={value!r} is not an integer") from None

    task, first, last = number(_SLURM_ID), number(_SLURM_MIN), number(_SLURM_MAX)
    count, given_step = number(_SLURM_COUNT), number(_SLURM_STEP)
    step = 1 if given_step is None else given_step
    missing = [name for name, value in ((_SLURM_ID, task), (_SLURM_MIN, first)) if value is None]
    if count is None and last is None:
        missing.append(f"{_SLURM_COUNT} or {_SLURM_MAX}")
    if task is None or first is None or missing:
        raise ShardError(
            f"slurm: {', '.join(missing)} not set; run inside a Slurm job array (sbatch --array=1-N) "
            "or give the shard as I/N"
        )
    if step < 1:
        raise ShardError(f"slurm: {_SLURM_STEP}={step} must be at least 1")
    if count is None:  # only the last index is known
        count, evenly_spaced = (last - first) // step + 1 if last is not None else 0, True
    else:  # a list such as --array=1,3,7 has a count that no min-max-step range gives
        evenly_spaced = last is None or last - first == (count - 1) * step
    offset, remainder = divmod(task - first, step)
    if remainder or not evenly_spaced or not 0 <= offset < count:
        raise ShardError(
            f"slurm: task {task} is not one of {count} evenly spaced tasks from {first} (step {step}); "
            "use sbatch --array=A-B or A-B:S (e.g. 1-4), or give the shard as I/N"
        )
    return Shard(offset + 1, count)
