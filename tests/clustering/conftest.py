"""Fixtures: a tiny preprocessed folder (fabricated arrays in the real folder format)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from radiossl.data.processed import FORMAT, FORMAT_VERSION, rows_to_csv

SHAPE = (16, 16, 8)


def _phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A bright ellipsoid with a darker core and a small very bright blob, plus noise, in [0, 1]."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    r = ((x - cx) / 0.8) ** 2 + ((y - cy) / 0.7) ** 2 + (z / 0.9) ** 2
    volume = np.where(r < 1.0, 0.5, 0.02) + np.where(r < 0.3, 0.2, 0.0)
    bx, by = rng.uniform(-0.4, 0.4, 2)
    volume = volume + 0.3 * (((x - bx) ** 2 + (y - by) ** 2 + z**2) < 0.05)
    volume = volume + rng.normal(0.0, 0.02, shape)
    return np.clip(volume, 0.0, 1.0).astype(np.float32)


def write_proc(
    root: Path,
    groups: int = 3,
    pairs: int = 3,
    shape: tuple[int, int, int] = SHAPE,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """Write a preprocessed folder with ``groups`` array files of ``pairs`` crop pairs each."""
    rng = np.random.default_rng(seed)
    (root / "arrays").mkdir(parents=True)
    rows = []
    for g in range(groups):
        group_id = f"case{g:02d}_t1"
        split = "val" if g == groups - 1 and groups > 1 else "train"
        array = np.stack(
            [
                np.stack([np.stack([_phantom(rng, shape) for _ in range(channels)]) for _ in range(2)])
                for _ in range(pairs)
            ]
        ).astype(np.float16)
        file = f"arrays/{group_id}.npy"
        np.save(root / file, array)
        for i in range(pairs):
            box = [0, shape[0], 0, shape[1], 0, shape[2]]
            row = {
                "sample_id": f"{group_id}_{i:04d}",
                "case_id": f"case{g:02d}",
                "group_id": group_id,
                "split": split,
                "view": "cluster",
                "file": file,
                "index": str(i),
                "channels": str(channels),
            }
            for prefix in "ab":
                for name, value in zip(("x1", "x2", "y1", "y2", "z1", "z2"), box, strict=True):
                    row[f"{prefix}_{name}"] = str(value)
            rows.append(row)
    (root / "manifest.csv").write_text(rows_to_csv(rows), encoding="utf-8")
    params = {"format": FORMAT, "format_version": FORMAT_VERSION, "view": "cluster"}
    (root / "preprocess.json").write_text(json.dumps(params), encoding="utf-8")
    return root


@pytest.fixture
def make_proc(tmp_path: Path) -> Callable[..., Path]:
    """``make_proc(name="proc", **kwargs)`` -> a fabricated preprocessed folder under tmp_path."""

    def make(name: str = "proc", **kwargs: object) -> Path:
        return write_proc(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def proc(make_proc: Callable[..., Path]) -> Path:
    """3 groups x 3 pairs of 16x16x8 single-channel crops (2 groups train, 1 val)."""
    return make_proc()
