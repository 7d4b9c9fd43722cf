"""Readable run-folder names, and which folder and checkpoint a (resumed) run uses.

A run folder is named ``<kind>-<name>-<dataset>-<task parts>-w<width>-b<batch>-e<epochs>-lr<lr>-<time>``,
e.g. ``pretrain-patch-cluster-brats18-k50-w1.0-b16-e240-lr0.002-20261125-201500``. Everything before
the time stamp is the *prefix*; the dataset is the name the caller gives (``pretrain`` gives the
dataset its preprocessed folder records), otherwise the data folder's name. Names are built from the
config and compared with plain string operations; paths are never parsed with regular expressions.

``--resume`` rule (see :func:`resolve_run_dir`):

* ``PATH`` — a checkpoint file (its folder becomes the run folder) or a run folder (its
  ``checkpoint_latest.pt``);
* ``auto`` — if ``--out`` is itself a run folder, continue there; otherwise continue the folder under
  ``--out`` with the same prefix whose ``checkpoint_latest.pt`` was written most recently; if there
  is none, start a new run.

Under ``torchrun`` a run folder also names the job that made it (:data:`JOB_FILE`), so that workers
torchrun restarts continue that folder (:func:`job_run_dir`; see :func:`radiossl.engine.trainer.run_training`).

Example:
    >>> format_setting(0.002), format_setting(1.0), format_setting(16)
    ('0.002', '1.0', '16')
    >>> safe_name("BraTS 2018/HGG")
    'BraTS_2018_HGG'
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from radiossl.config import RunConfig
from radiossl.engine.checkpoint import FINAL, LATEST, checkpoint_in, newest_latest_checkpoint
from radiossl.errors import ConfigError

TIME_FORMAT = "%Y%m%d-%H%M%S"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
JOB_FILE = "torchrun.json"
"""``{"run_id": ...}``: the torchrun job (``TORCHELASTIC_RUN_ID``, i.e. ``--rdzv_id``) that made the run folder."""
_RUN_MARKERS = ("checkpoint_latest.pt", "checkpoint_best.pt", "checkpoint_final.pt", "config.yaml")


def safe_name(text: str) -> str:
    """``text`` with every character that is unsafe in a folder name replaced by ``_``."""
    cleaned = "".join(ch if ch in _SAFE else "_" for ch in text.strip())
    return cleaned.strip("._") or "data"


def format_setting(value: Any) -> str:
    """A compact, unambiguous string for a setting in a folder name (floats keep their decimal point)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def dataset_name(root: Path | None) -> str:
    """The dataset name for run folders when the caller gives none: the data folder's name."""
    if root is None:
        return "data"
    return safe_name(Path(root).resolve().name or "data")


def run_prefix(
    kind: str, name: str, config: RunConfig, parts: list[str] | None = None, dataset: str | None = None
) -> str:
    """The run-folder name without its time stamp (``dataset``: the dataset's name, else the folder's)."""
    pieces = [
        kind,
        name,
        safe_name(dataset) if dataset and dataset.strip() else dataset_name(config.data.root),
        *(parts or []),
        f"w{format_setting(config.model.width)}",
        f"b{format_setting(config.optim.batch_size)}",
        f"e{format_setting(config.optim.epochs)}",
        f"lr{format_setting(config.optim.lr)}",
    ]
    return "-".join(safe_name(str(p)) for p in pieces if str(p))


def timestamp(now: datetime.datetime | None = None) -> str:
    """The local time as ``YYYYmmdd-HHMMSS``."""
    return (now or datetime.datetime.now()).strftime(TIME_FORMAT)


def new_run_dir(out: Path, prefix: str, now: datetime.datetime | None = None) -> Path:
    """A fresh (not yet existing) folder ``out/<prefix>-<time>``, suffixed ``-2``, ``-3``... on a clash."""
    base = Path(out) / f"{prefix}-{timestamp(now)}"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def _is_stamp(text: str) -> bool:
    stamp, rest = text[:15], text[15:]
    try:
        datetime.datetime.strptime(stamp, TIME_FORMAT)
    except ValueError:
        return False
    return not rest or (rest.startswith("-") and rest[1:].isdigit())


def matching_run_dirs(out: Path, prefix: str) -> list[Path]:
    """Folders in ``out`` named ``<prefix>-<time>`` (or ``<prefix>-<time>-<n>``)."""
    out = Path(out)
    if not out.is_dir():
        return []
    head = prefix + "-"
    return sorted(
        child
        for child in out.iterdir()
        if child.is_dir() and child.name.startswith(head) and _is_stamp(child.name[len(head) :])
    )


def job_run_dir(out: Path, prefix: str, run_id: str) -> Path | None:
    """The unfinished folder under ``out`` with ``prefix`` that torchrun job ``run_id`` made earlier, if any.

    A folder with ``checkpoint_final.pt`` is skipped: torchrun restarts only failed jobs, so a finished
    run with this id belongs to an earlier job that reused the ``--rdzv_id``.
    """
    for folder in reversed(matching_run_dirs(out, prefix)):
        if (folder / FINAL).is_file():
            continue
        try:
            recorded = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(recorded, dict) and recorded.get("run_id") == run_id:
            return folder
    return None


def is_run_dir(path: Path) -> bool:
    """A folder that a training run wrote (it holds a checkpoint or a config.yaml)."""
    return path.is_dir() and any((path / marker).is_file() for marker in _RUN_MARKERS)


def resolve_run_dir(
    prefix: str, out: Path, run_dir: Path | None = None, resume: str | Path | None = None
) -> tuple[Path, Path | None, bool]:
    """Decide the run folder and the checkpoint to resume from.

    Returns ``(run_dir, checkpoint or None, created)`` where ``created`` says the folder name is new.

    Raises:
        ConfigError: ``run_dir`` already holds a run but no ``resume`` was asked for.
        CheckpointError: ``resume`` names a missing checkpoint or a folder without one.
    """
    out = Path(out)
    if resume is None or str(resume) == "":
        if run_dir is not None:
            run_dir = Path(run_dir)
            if any((run_dir / name).is_file() for name in _RUN_MARKERS[:3]):
                raise ConfigError(
                    f"{run_dir}: already holds checkpoints; pass --resume auto to continue it, or choose another folder"
                )
            return run_dir, None, False
        return new_run_dir(out, prefix), None, True
    if str(resume) != "auto":
        checkpoint = checkpoint_in(resume)
        return (Path(run_dir) if run_dir is not None else checkpoint.parent), checkpoint, False
    if run_dir is not None:
        run_dir = Path(run_dir)
        latest = run_dir / LATEST
        return run_dir, latest if latest.is_file() else None, False
    if is_run_dir(out):
        latest = out / LATEST
        return out, latest if latest.is_file() else None, False
    newest = newest_latest_checkpoint(matching_run_dirs(out, prefix))
    if newest is not None:
        return newest.parent, newest, False
    return new_run_dir(out, prefix), None, True
