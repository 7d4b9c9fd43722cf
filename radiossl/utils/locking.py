"""An exclusive lock on a folder, shared by the processes (shards) that write into it.

Shards of one stage run into the same folder, on one machine or on several sharing a disk; the
steps that read and rewrite a joint file (a manifest, a summary) run under this lock so that two
shards finishing at once do not interleave. Where advisory locks do not exist (Windows) the lock is
a no-op, and the shards' joint files are rebuilt once with ``--merge-only`` after all of them.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with folder_lock(folder):
    ...     (folder / "joint.txt").write_text("written by one process at a time")
    32
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on ``root/.lock``, held for the ``with`` block (``root`` is created if needed).

    The lock belongs to the open file, not to the process: do not nest two locks on the same folder
    in one process (the inner one would wait for the outer one forever).
    """
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; shards should then merge with --merge-only
        yield
        return
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
