"""A shared thread pool for CPU work that releases the GIL (NumPy loops and sorts, torch copies).

Work is split so that every item has its own random seed, drawn before the items are handed out,
and its own output: results never depend on the number of threads.

Example:
    >>> run_parallel(lambda i: i * i, range(4), threads=2)
    [0, 1, 4, 9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_pools: dict[int, ThreadPoolExecutor] = {}


def cpu_threads(items: int) -> int:
    """Threads worth using for ``items`` independent pieces of CPU work: ``torch.get_num_threads()`` at most."""
    return max(1, min(torch.get_num_threads(), items))


def run_parallel(fn: Callable[[T], R], items: Iterable[T], threads: int) -> list[R]:
    """``[fn(item) for item in items]``, on ``threads`` threads of a shared pool when ``threads > 1``."""
    if threads <= 1:
        return [fn(item) for item in items]
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="radiossl-transforms")
    return list(_pools[threads].map(fn, items))
