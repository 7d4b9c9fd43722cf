"""Content hashes of images: the voxel values, whatever the file format or compression.

The hash is the SHA-256 of the array's shape and its voxels as little-endian float64 in C order
(``-0.0`` folded into ``0.0``), read through :func:`radiossl.io.read_image`. So the same scan hashes
equal as ``.nii``, ``.nii.gz`` or ``.mha``, stored as int16 or float32; the header (affine, spacing,
description) is not part of it. :class:`HashCache` remembers the hash of each file by path, size and
modification time in a small JSON file, so a second check reads no image it has read before.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from radiossl.io import write_image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> voxels = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    >>> a = write_image(folder / "a.nii", voxels, affine=np.eye(4))
    >>> b = write_image(folder / "b.nii.gz", voxels.astype(np.float32), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> cache = HashCache(folder / "hashes.json")
    >>> cache.file_hash(a) == cache.file_hash(b) == voxel_hash(voxels)
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from radiossl.io import read_image
from radiossl.utils.atomic import write_json

CACHE_FORMAT = "radiossl-voxel-hashes"
HASH_VERSION = 1
"""Version of the canonical form; a cache of another version is ignored."""
_SLAB_VOXELS = 1 << 22  # ~32 MB of float64 at a time, so a large CT is never copied whole

log = logging.getLogger("radiossl")


def voxel_hash(array: np.ndarray) -> str:
    """SHA-256 (hex) of ``array``'s shape and values in the canonical form (see the module docstring)."""
    digest = hashlib.sha256(f"radiossl-voxels-v{HASH_VERSION}:{tuple(array.shape)}".encode())
    if array.ndim == 0 or array.shape[0] == 0:
        digest.update(np.asarray(array, dtype="<f8").tobytes())
        return digest.hexdigest()
    per_row = max(1, array.size // array.shape[0])
    step = max(1, _SLAB_VOXELS // per_row)
    for start in range(0, array.shape[0], step):
        slab = np.ascontiguousarray(array[start : start + step], dtype="<f8") + 0.0  # -0.0 -> 0.0
        digest.update(slab.tobytes())
    return digest.hexdigest()


class HashCache:
    """Voxel hashes of image files, remembered in ``path`` (None: in memory only) by path, size and mtime.

    A missing, unreadable or foreign cache file starts an empty cache (with a log line for the last two);
    :meth:`save` writes it atomically when something was added.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._changed = False
        self.read = 0
        """Image files read by this cache (hashes not found in it)."""
        if path is not None and path.is_file():
            self._entries = _load_entries(path)

    def file_hash(self, path: Path) -> str:
        """The voxel hash of the image ``path`` (ImageReadError when it cannot be read)."""
        stat = path.stat()
        key = str(path.resolve())
        entry = self._entries.get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return str(entry["sha256"])
        digest = voxel_hash(read_image(path).array)
        self.read += 1
        self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._changed = True
        return digest

    def save(self) -> None:
        """Write the cache file (atomically) if hashes were added; nothing for an in-memory cache."""
        if self.path is None or not self._changed:
            return
        write_json(self.path, {"format": CACHE_FORMAT, "version": HASH_VERSION, "files": self._entries})
        self._changed = False


def _load_entries(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: hash cache cannot be read (%s); hashing again", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("files"), dict):
        log.warning("%s: not a radiossl hash cache; hashing again (it will be replaced)", path)
        return {}
    if data.get("version") != HASH_VERSION:
        return {}
    return {k: v for k, v in data["files"].items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}
