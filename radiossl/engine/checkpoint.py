"""The engine's side of training checkpoints: the RNG state they carry, and which one to resume from.

A run folder holds three checkpoints with the same layout:

* ``checkpoint_latest.pt`` — written every ``logging.checkpoint_every`` epochs and after the last epoch;
  ``--resume`` continues from it;
* ``checkpoint_best.pt`` — the epoch with the best ``task.monitor`` validation metric (or the lowest
  epoch training loss when the task monitors nothing);
* ``checkpoint_final.pt`` — the weights after the last epoch.

The file format itself (its version, weights-only saving and loading, prefix cleaning) belongs to
:mod:`radiossl.models.checkpoint`; this module adds the per-rank RNG state (:func:`rng_state`, stored as
tensors and lists so that ``torch.load(weights_only=True)`` reads it) and finds the file ``--resume``
names.

Example:
    >>> import random
    >>> state = rng_state()
    >>> first = random.random()
    >>> set_rng_state(state)
    >>> random.random() == first
    True
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radiossl.errors import CheckpointError

LATEST = "checkpoint_latest.pt"
BEST = "checkpoint_best.pt"
FINAL = "checkpoint_final.pt"
CHECKPOINT_NAMES: tuple[str, ...] = (LATEST, BEST, FINAL)


# --------------------------------------------------------------------------------------------------
# RNG states as tensors and lists


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (CPU) and CUDA generator states as tensors, lists and numbers."""
    version, internal, gauss_next = random.getstate()
    bit_generator, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": str(bit_generator),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states produced by :func:`rng_state` (CUDA states only when the device count matches)."""
    try:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
        npy = state["numpy"]
        keys = np.asarray(torch.as_tensor(npy["keys"]).numpy(), dtype=np.uint32)
        np.random.set_state(
            (
                str(npy["bit_generator"]),
                keys,
                int(npy["pos"]),
                int(npy["has_gauss"]),
                float(npy["cached_gaussian"]),
            )
        )
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        cuda = list(state.get("cuda") or [])
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint RNG state is malformed: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Which checkpoint to resume from


def checkpoint_in(path: str | Path) -> Path:
    """The checkpoint named by ``--resume PATH``: a file, or a run folder's ``checkpoint_latest.pt``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        candidate = path / LATEST
        if candidate.is_file():
            return candidate
        raise CheckpointError(f"{path}: run folder has no {LATEST} to resume from")
    raise CheckpointError(f"{path}: no such checkpoint file or run folder")


def is_run_folder(path: Path) -> bool:
    """A folder that holds at least one radiossl training checkpoint."""
    return path.is_dir() and any((path / name).is_file() for name in CHECKPOINT_NAMES)


def newest_latest_checkpoint(folders: list[Path]) -> Path | None:
    """The most recently written ``checkpoint_latest.pt`` among ``folders`` (None if none has one)."""
    found = [folder / LATEST for folder in folders if (folder / LATEST).is_file()]
    if not found:
        return None
    return max(found, key=lambda p: (p.stat().st_mtime_ns, str(p)))
