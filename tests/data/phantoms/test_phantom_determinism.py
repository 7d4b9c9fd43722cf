"""Phantoms are reproducible: same seed -> identical arrays, other seed -> different ones."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from radiossl.data.phantoms import SynthResult, synthesize
from radiossl.io import read_image

KINDS = ["brats", "lits", "luna", "nnunet"]


def _arrays(result: SynthResult) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in result.files:
        if path.suffix == ".raw":
            continue
        vol = read_image(path)
        out[str(path.relative_to(result.out))] = vol.array.tobytes() + vol.affine.tobytes()
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_bytes(tmp_path: Path, kind: str, tiny_shapes: dict) -> None:
    a = synthesize(kind, tmp_path / "a", cases=2, shape=tiny_shapes[kind], seed=11)
    b = synthesize(kind, tmp_path / "b", cases=2, shape=tiny_shapes[kind], seed=11)
    assert a.case_ids == b.case_ids
    assert _arrays(a) == _arrays(b)


@pytest.mark.parametrize("kind", KINDS)
def test_other_seed_differs(tmp_path: Path, kind: str, tiny_shapes: dict) -> None:
    a = _arrays(synthesize(kind, tmp_path / "a", cases=1, shape=tiny_shapes[kind], seed=1))
    b = _arrays(synthesize(kind, tmp_path / "b", cases=1, shape=tiny_shapes[kind], seed=2))
    if kind == "luna":  # uids come from the seed, so compare the images themselves
        assert next(iter(a.values())) != next(iter(b.values()))
    else:
        assert a.keys() == b.keys() and all(a[k] != b[k] for k in a)


def test_case_does_not_depend_on_case_count(tmp_path: Path) -> None:
    small = synthesize("brats", tmp_path / "a", cases=1, shape=(32, 32, 24), seed=4)
    large = synthesize("brats", tmp_path / "b", cases=3, shape=(32, 32, 24), seed=4)
    first = small.case_ids[0]
    name = f"HGG/{first}/{first}_t1.nii.gz"
    np.testing.assert_array_equal(read_image(small.out / name).array, read_image(large.out / name).array)


# CPU seconds per case at the default shape, for the small phantoms only: each takes a fraction of the budget.
# LUNA's default is a whole chest (384 x 384 x 96 voxels, so that ModelsGenesis' cubes fit in its lungs); it
# takes seconds, and how many depends on the machine (3.4-6.4 s of CPU seen), so it is not timed by a test.
CPU_PER_CASE = {"brats": 0.5, "lits": 0.5, "nnunet": 0.5}


@pytest.mark.parametrize("kind", sorted(CPU_PER_CASE))
def test_default_shape_is_fast(tmp_path: Path, kind: str, tiny_shapes: dict) -> None:
    synthesize(kind, tmp_path / "warm", cases=1, shape=tiny_shapes[kind], seed=0)  # imports out of the timing
    start = time.process_time()
    result = synthesize(kind, tmp_path / "run", cases=2, seed=0)
    per_case = (time.process_time() - start) / len(result.case_ids)
    assert per_case < CPU_PER_CASE[kind], f"{kind}: {per_case:.2f} s of CPU per case"


@pytest.mark.slow
def test_real_size_brats(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = synthesize("brats", tmp_path / "b", cases=1, shape=(240, 240, 155), seed=0)
    elapsed = time.perf_counter() - start
    case = result.case_ids[0]
    vol = read_image(result.out / "HGG" / case / f"{case}_t1ce.nii.gz")
    seg = read_image(result.out / "HGG" / case / f"{case}_seg.nii.gz")
    assert vol.shape == (240, 240, 155) and seg.shape == (240, 240, 155)
    np.testing.assert_allclose(vol.affine[:3, :3], np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(vol.origin, (0.0, 239.0, 0.0))  # as in BraTS 2018 headers
    assert set(np.unique(seg.array).tolist()) <= {0, 1, 2, 4}
    assert elapsed < 20.0
