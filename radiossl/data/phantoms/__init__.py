"""Synthetic data sets ("phantoms") in the exact on-disk layouts of BraTS 2018, LiTS 2017, LUNA16,
nnU-Net v2 and nnssl pretraining collections (``pretrain_data.json``), so that every radiossl command
can be tried and tested without downloading anything.

Each case is generated from its own random stream (seed, kind, case index), so a case is the same
whatever the number of cases, and the same seed always gives identical files.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "brats"
    >>> result = synthesize("brats", out, cases=2, shape=(32, 32, 24), seed=0)
    >>> result.case_ids
    ['Brats18_PHANTOM_000_1', 'Brats18_PHANTOM_001_1']
    >>> sorted(p.name for p in (out / "LGG" / "Brats18_PHANTOM_001_1").iterdir())[:2]
    ['Brats18_PHANTOM_001_1_flair.nii.gz', 'Brats18_PHANTOM_001_1_seg.nii.gz']
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from radiossl.errors import ConfigError

KINDS = ("brats", "lits", "luna", "nnunet", "nnssl")
# Every default passes the default rules of every preprocessing view (tests/data/test_phantom_views.py);
# LUNA's is a whole chest, so that ModelsGenesis' lung cubes fit in its lungs.
DEFAULT_SHAPES: dict[str, tuple[int, int, int]] = {
    "brats": (64, 64, 48),
    "lits": (128, 128, 32),
    "luna": (384, 384, 96),
    "nnunet": (48, 48, 40),
    "nnssl": (48, 48, 40),
}
MIN_SIZE = 16
MAX_SIZE = 1024
LUNA_ANNOTATIONS = "annotations.csv"


@dataclass(frozen=True)
class SynthResult:
    """What :func:`synthesize` wrote: the data-set folder, case ids (in order), files and preview."""

    kind: str
    out: Path
    case_ids: list[str]
    groups: dict[str, str]
    files: list[Path] = field(repr=False)
    shape: tuple[int, int, int]
    seed: int
    preview: Path | None
    seconds: float


def synthesize(
    kind: str,
    out: str | Path,
    cases: int = 4,
    shape: Sequence[int] | None = None,
    seed: int = 1,
    preview: bool = False,
    overwrite: bool = False,
) -> SynthResult:
    """Write ``cases`` phantom cases of ``kind`` (brats, lits, luna, nnunet, nnssl) into ``out``.

    ``shape`` is the volume size in voxels (default: see :data:`DEFAULT_SHAPES`: small, except LUNA's
    whole chest of 384 x 384 x 96; use ``(240, 240, 155)`` for real-size BraTS). ``preview`` also
    writes ``<out>/preview.png``. An existing non-empty ``out`` is refused unless ``overwrite`` (files
    with the same names are replaced). For nnunet, ``cases`` is the number of training cases; a quarter
    as many (at least one) held-out cases are added. For nnssl, a case is one image of the collection
    (with its anatomy mask), and ``pretrain_data.json`` lists them all. For lits, volumes 28-47 are the
    validation split, or the last volume when none of them exists (see
    :func:`radiossl.data.phantoms.lits.split_of`).
    """
    size = _check(kind, cases, shape, seed)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root}: exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise ConfigError(f"--out {root}: folder is not empty; choose a new folder or pass --overwrite")
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    records = _generate(kind, root, cases, size, seed, preview)
    if kind == "luna":
        _write_luna_annotations(root / LUNA_ANNOTATIONS, [row for r in records for row in r.annotations])
    elif kind == "nnunet":
        from radiossl.data.phantoms import nnunet
        from radiossl.utils.atomic import write_json

        write_json(root / nnunet.DATASET_NAME / "dataset.json", nnunet.dataset_json(cases))
    elif kind == "nnssl":
        from radiossl.data.datasets.nnssl import PRETRAIN_JSON
        from radiossl.data.phantoms import nnssl
        from radiossl.utils.atomic import write_json

        write_json(root / PRETRAIN_JSON, nnssl.pretrain_json(nnssl.identities(cases)))
    preview_path = None
    if preview:
        from radiossl.data.phantoms.preview import MAX_ROWS, save_montage

        rows = [(f"{r.case_id}  [{r.group}]", r.tiles) for r in records]
        shown = f"first {MAX_ROWS} of {len(rows)} cases" if len(rows) > MAX_ROWS else f"{len(rows)} cases"
        title = f"{kind} phantoms | {shown} | {'x'.join(str(s) for s in size)} voxels | seed {seed}"
        preview_path = save_montage(rows, root / "preview.png", title=title, label_names=_label_names(kind))
    return SynthResult(
        kind=kind,
        out=root,
        case_ids=[r.case_id for r in records],
        groups={r.case_id: r.group for r in records},
        files=[f for r in records for f in r.files],
        shape=size,
        seed=seed,
        preview=preview_path,
        seconds=time.perf_counter() - start,
    )


def _check(kind: str, cases: int, shape: Sequence[int] | None, seed: int) -> tuple[int, int, int]:
    if kind not in KINDS:
        raise ConfigError(f"unknown phantom kind {kind!r}; choose one of {', '.join(KINDS)}")
    if cases < 1:
        raise ConfigError(f"--cases must be at least 1, got {cases}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    size = DEFAULT_SHAPES[kind] if shape is None else tuple(int(s) for s in shape)
    if len(size) != 3 or not all(MIN_SIZE <= s <= MAX_SIZE for s in size):
        raise ConfigError(f"--shape needs three sizes between {MIN_SIZE} and {MAX_SIZE}, got {tuple(size)}")
    return size[0], size[1], size[2]


def _generate(kind: str, root: Path, cases: int, shape: tuple[int, int, int], seed: int, preview: bool) -> list:
    if kind == "brats":
        from radiossl.data.phantoms import brats

        return [brats.write_case(root, i, seed, shape, preview) for i in range(cases)]
    if kind == "lits":
        from radiossl.data.phantoms import lits

        return [lits.write_case(root, i, seed, cases, shape, preview) for i in range(cases)]
    if kind == "luna":
        from radiossl.data.phantoms import luna

        return [luna.write_case(root, i, seed, shape, preview) for i in range(cases)]
    if kind == "nnssl":
        from radiossl.data.phantoms import nnssl

        return [nnssl.write_case(root, i, seed, shape, preview) for i in range(cases)]
    from radiossl.data.phantoms import nnunet

    total = cases + nnunet.test_cases(cases)
    return [nnunet.write_case(root, i, seed, cases, shape, preview) for i in range(total)]


def _label_names(kind: str) -> dict[int, str]:
    """The label values of ``kind`` and their names (for the preview legend)."""
    from radiossl.data.phantoms import brats, lits, luna, nnssl, nnunet

    return {"brats": brats, "lits": lits, "luna": luna, "nnunet": nnunet, "nnssl": nnssl}[kind].LABEL_NAMES


def _write_luna_annotations(path: Path, rows: list[dict[str, str | float]]) -> None:
    from radiossl.utils.atomic import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


__all__ = ["DEFAULT_SHAPES", "KINDS", "SynthResult", "synthesize"]
