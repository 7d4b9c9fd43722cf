"""Work split across shards: one result file ("fragment") per item, and the merge that joins them.

Every shardable stage (``preprocess``, ``kmeans fit``, ``kmeans predict``, ``evaluate``) follows one
pattern, so that a user learns it once (``docs/data.md``, "Determinism, parallelism, sharding,
resuming"):

1. The whole run's items (cases, sample groups, ...) are listed in a fixed order; ``--shard I/N``
   takes its share of them (:func:`share`, i.e. :meth:`Shard.select`).
2. Each item's result is written atomically as one fragment, ``<folder>/<key><suffix>``. The
   fragment is the item's done marker: a rerun skips the items that have one (resume).
3. The fragments record what they are the results *of* (:meth:`Fragments.claim`): a shard started
   with other settings is refused instead of being mixed in.
4. After its own items a shard looks for items of the whole run without a fragment
   (:meth:`Fragments.missing`); the shard that finds none (the last to finish) runs the merge, and
   ``--merge-only`` runs the merge alone. A merge that finds items missing writes nothing that
   claims to be whole.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> parts = Fragments(folder / "cases", ".json", folder / "run.json")
    >>> parts.claim({"weights": "a.pt"}, advice="use another folder")
    >>> from radiossl.utils.sharding import Shard
    >>> for case in share(["c1", "c2", "c3"], Shard(1, 2)):
    ...     parts.write_json(case, {"dice": 0.5})
    >>> parts.missing(["c1", "c2", "c3"]), describe_missing(["c2"], 3, "cases")
    (['c2'], '1 of 3 cases not done yet (c2)')
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from radiossl.errors import ConfigError, DataError
from radiossl.utils.atomic import atomic_save_npy, write_json
from radiossl.utils.locking import folder_lock
from radiossl.utils.settings_diff import settings_differences
from radiossl.utils.sharding import Shard

T = TypeVar("T")
_SHOWN = 5


def share(items: Sequence[T], shard: Shard | None) -> list[T]:
    """The items ``shard`` does (all of them for an unsharded run), in their order."""
    return list(items) if shard is None else shard.select(items)


def describe_missing(missing: Sequence[str], total: int, noun: str) -> str:
    """``"2 of 6 cases not done yet (case03, case05)"`` (at most five named)."""
    named = ", ".join(missing[:_SHOWN]) + (", …" if len(missing) > _SHOWN else "")
    return f"{len(missing)} of {total} {noun} not done yet ({named})"


def merge_advice(command: str) -> str:
    """What to do about items without a fragment: run their shards, then merge."""
    return f"run the shards that are missing (the same command with --shard I/N), then `{command} --merge-only`"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (to record which weights or centroids the fragments came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(identity: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON description (keys sorted): a short name for what a merge was made from."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Fragments:
    """The fragments of one sharded run: ``folder/<key><suffix>``, described by the JSON ``record``."""

    folder: Path
    suffix: str
    record: Path

    def path(self, key: str) -> Path:
        """Where the fragment of item ``key`` is (or will be)."""
        return self.folder / f"{key}{self.suffix}"

    def has(self, key: str) -> bool:
        """Whether item ``key`` has its fragment."""
        return self.path(key).is_file()

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys without a fragment, in their order."""
        return [key for key in keys if not self.has(key)]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock (for a merge; do not nest it with :meth:`claim`)."""
        with folder_lock(self.folder):
            yield

    def claim(
        self,
        identity: Mapping[str, Any],
        *,
        advice: str,
        replace: bool = False,
        models: Mapping[str, BaseModel] | None = None,
    ) -> None:
        """Record that the fragments are results of ``identity``, or check that they are.

        A folder without a record gets ``identity``. A record of other settings
        (:func:`radiossl.utils.settings_diff.settings_differences`; ``models`` says which parts of
        ``identity`` are dumps of which config model, so that a field added since the record was
        written is accepted at its default) is a ConfigError naming the first differences and ending
        with ``advice``, unless ``replace`` (an unsharded run: no other shard can be writing), which
        deletes the old fragments and records ``identity``. A record that is accepted is kept as it is.
        """
        wanted = json.loads(json.dumps(dict(identity), default=str))
        with folder_lock(self.folder):
            if self.record.is_file():
                try:
                    found = json.loads(self.record.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as exc:
                    raise DataError(f"{self.record}: unreadable ({exc}); delete it and rerun") from exc
                differences = [] if found == wanted else settings_differences(found, wanted, models)
                if not differences:
                    return
                if not replace:
                    changes = "; ".join(differences[:3])
                    raise ConfigError(f"{self.record.parent} holds results of other settings ({changes}); {advice}")
                self._clear()
            write_json(self.record, wanted)

    def _clear(self) -> None:
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.name.endswith(self.suffix) or path.name.startswith(".tmp-"):
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)

    def write_json(self, key: str, value: Any) -> None:
        """Write item ``key``'s fragment as JSON, atomically."""
        write_json(self.path(key), value)

    def read_json(self, key: str) -> Any:
        """Item ``key``'s JSON fragment (DataError naming the file when it cannot be read)."""
        path = self.path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read this fragment ({exc}); delete it and rerun its shard") from exc

    def save_npy(self, key: str, array: np.ndarray) -> None:
        """Write item ``key``'s fragment as ``.npy``, atomically."""
        atomic_save_npy(self.path(key), array)

    def load_npy(self, key: str) -> np.ndarray:
        """Item ``key``'s ``.npy`` fragment, memory-mapped (DataError naming the file when unreadable)."""
        path = self.path(key)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read this fragment ({exc}); delete it and rerun its shard") from exc
