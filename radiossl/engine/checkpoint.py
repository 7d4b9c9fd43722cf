"""Training checkpoints: what they hold, how they are written and read, and which one to resume from.

A run folder holds three checkpoints with the same layout:

* ``checkpoint_latest.pt`` — written every ``logging.checkpoint_every`` epochs and after the last epoch;
  ``--resume`` continues from it;
* ``checkpoint_best.pt`` — the epoch with the best ``task.monitor`` validation metric (or the lowest
  epoch training loss when the task monitors nothing);
* ``checkpoint_final.pt`` — the weights after the last epoch.

Layout (``format_version`` 1)::

    {"format_version": 1, "radiossl_version": str, "torch_version": str,
     "kind": "pretrain" | "finetune", "name": method/task name,
     "config": resolved config (JSON-compatible dict), "model": state_dict (no "module." prefix),
     "model_spec": {"class", "kwargs"}, "optimizer": state_dict, "scheduler": state_dict,
     "grad_scaler": state_dict, "epoch": completed epochs, "global_step": optimiser steps,
     "rng": {"world_size": n, "states": [per-rank RNG state]}, "best_metric": float | None,
     "history": [per-epoch dicts], "scale": effective batch and learning rate (optim.BatchScale),
     "steps_per_epoch": optimiser steps per epoch}

Everything is a tensor or a primitive (numpy and Python RNG states are converted), so
``torch.load(path, weights_only=True)`` reads it. Files are written atomically.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
    >>> _ = save_checkpoint(path, {"format_version": 1, "model": {"w": torch.zeros(2)}, "rng": rng_state()})
    >>> load_checkpoint(path)["model"]["w"].shape
    torch.Size([2])
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radiossl.errors import CheckpointError
from radiossl.utils.atomic import atomic_write_path

FORMAT_VERSION = 1
LATEST = "checkpoint_latest.pt"
BEST = "checkpoint_best.pt"
FINAL = "checkpoint_final.pt"
CHECKPOINT_NAMES: tuple[str, ...] = (LATEST, BEST, FINAL)

_PRIMITIVES = (bool, int, float, str, type(None))


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
# Safety check, save, load


def check_weights_only_safe(obj: Any, where: str = "checkpoint") -> None:
    """Raise CheckpointError if ``obj`` holds anything but tensors, primitives, lists, tuples and dicts.

    Catches e.g. numpy scalars, ``Path`` objects or pydantic models before they end up pickled into a
    file that ``torch.load(weights_only=True)`` would refuse.
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PRIMITIVES:  # exact types: no str/int subclasses
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where}: key {key!r} of type {type(key).__name__} cannot be stored safely")
            check_weights_only_safe(value, f"{where}.{key}")
        return
    if isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            check_weights_only_safe(value, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"{where}: a {type(obj).__module__}.{type(obj).__name__} cannot be stored "
        "(checkpoints hold only tensors and primitives so that weights_only=True loading works)"
    )


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically after checking it is ``weights_only``-safe."""
    path = Path(path)
    check_weights_only_safe(payload)
    with atomic_write_path(path) as tmp:
        torch.save(dict(payload), tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a radiossl training checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a radiossl training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint: {first}") from exc
    if not isinstance(obj, dict) or "format_version" not in obj or "model" not in obj:
        raise CheckpointError(f"{path}: not a radiossl training checkpoint (no format_version/model entries)")
    version = obj["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is newer than this radiossl supports "
            f"({FORMAT_VERSION}); upgrade radiossl"
        )
    return obj


def to_plain(value: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples into primitives and lists (for history/config)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP/DataParallel ``module.`` and ``torch.compile`` ``_orig_mod.`` prefixes from keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        clean = key
        changed = True
        while changed:
            changed = False
            for prefix in ("module.", "_orig_mod."):
                if clean.startswith(prefix):
                    clean = clean[len(prefix) :]
                    changed = True
        out[clean] = value
    return out


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
