"""Lay a LiTS-2017 download out into the thesis' train/val folders (``radiossl lits-layout``).

The LiTS training data comes as ``volume-<N>.nii`` and ``segmentation-<N>.nii`` files (often in
``Training Batch 1/`` and ``Training Batch 2/``). The thesis code expects::

    <out>/train/ct/volume-<N>.nii    <out>/train/seg/segmentation-<N>.nii   (volumes 0-27, 48-130)
    <out>/val/ct/volume-<N>.nii      <out>/val/seg/segmentation-<N>.nii     (volumes 28-47)

Files are symbolic links by default (no copy of the ~50 GB), or copies, hard links or moves.
Rerunning is safe: entries that already point at the same file are kept.

Example:
    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> for n in (3, 30):
    ...     _ = (src / f"volume-{n}.nii").write_bytes(b"x")
    ...     _ = (src / f"segmentation-{n}.nii").write_bytes(b"y")
    >>> result = lay_out_lits(src, src.parent / (src.name + "-laid-out"), mode="copy")
    >>> result.train, result.val, sorted(p.name for p in (result.out / "val" / "ct").iterdir())
    (1, 1, ['volume-30.nii'])
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from radiossl.data.datasets.lits17 import SEGMENTATION_PATTERN, THESIS_VAL, VOLUME_PATTERN, numbered_files
from radiossl.errors import ConfigError, DataError

LayoutMode = Literal["symlink", "copy", "hardlink", "move"]


@dataclass
class LayoutResult:
    """What :func:`lay_out_lits` did."""

    out: Path
    train: int = 0
    val: int = 0
    missing_segmentations: list[str] = field(default_factory=list)
    mode: str = "symlink"


def lay_out_lits(
    src: str | Path,
    out: str | Path,
    *,
    val: Container[int] = THESIS_VAL,
    mode: LayoutMode = "symlink",
) -> LayoutResult:
    """Place every ``volume-<N>`` (and its segmentation) of ``src`` into ``out/{train,val}/{ct,seg}``.

    Raises:
        DataError: ``src`` holds no LiTS volumes.
        ConfigError: ``out`` already holds a different file of the same name.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"{src}: LiTS download folder not found")
    inside = out.resolve()
    volumes = {n: p for n, p in numbered_files(src, VOLUME_PATTERN, recursive=True).items() if not _under(p, inside)}
    segmentations = {
        n: p for n, p in numbered_files(src, SEGMENTATION_PATTERN, recursive=True).items() if not _under(p, inside)
    }
    if not volumes:
        raise DataError(f"{src}: no volume-<N>.nii files found")
    result = LayoutResult(out=out, mode=mode)
    for number, volume in sorted(volumes.items()):
        split = "val" if number in val else "train"
        _place(volume, out / split / "ct" / volume.name, mode)
        segmentation = segmentations.get(number)
        if segmentation is None:
            result.missing_segmentations.append(volume.name)
        else:
            _place(segmentation, out / split / "seg" / segmentation.name, mode)
        if split == "val":
            result.val += 1
        else:
            result.train += 1
    return result


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except ValueError:
        return False
    return True


def _place(source: Path, target: Path, mode: LayoutMode) -> None:
    if target.exists() or target.is_symlink():
        if target.exists() and os.path.samefile(source, target):
            return
        raise ConfigError(f"{target}: exists and is not {source}; choose an empty --out folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "symlink":
            target.symlink_to(source.resolve())
        elif mode == "hardlink":
            os.link(source, target)
        elif mode == "move":
            shutil.move(str(source), str(target))
        else:
            shutil.copy2(source, target)
    except OSError as exc:
        if mode in ("symlink", "hardlink"):  # e.g. no link permission, or another file system
            shutil.copy2(source, target)
        else:
            raise DataError(f"{source}: cannot {mode} to {target}: {exc}") from exc
