"""Checkpoint files: weights_only safety, RNG round trip, atomic writes, clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from radiossl.engine.checkpoint import (
    check_weights_only_safe,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    strip_module_prefix,
    to_plain,
)
from radiossl.errors import CheckpointError


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached gaussian in the legacy state
    path = save_checkpoint(tmp_path / "c.pt", {"format_version": 1, "model": {}, "rng": rng_state()})
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected


def test_unsafe_objects_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"history\[0\].x: a numpy.float32"):
        save_checkpoint(tmp_path / "c.pt", {"format_version": 1, "model": {}, "history": [{"x": np.float32(1)}]})
    with pytest.raises(CheckpointError, match="Path"):
        check_weights_only_safe({"out": Path("a")})
    assert not list(tmp_path.iterdir())  # nothing half-written
    check_weights_only_safe({"a": [1, 2.0, None, "s", True, (torch.zeros(1),)]})


def test_to_plain_converts_numpy_paths_and_tensors() -> None:
    plain = to_plain({"a": np.float32(1.5), "b": (Path("x"), np.arange(2)), "c": torch.tensor(2.0)})
    assert plain == {"a": 1.5, "b": ["x", [0, 1]], "c": 2.0}
    check_weights_only_safe(plain)


def test_load_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"broken\.pt: cannot read checkpoint"):
        load_checkpoint(broken)
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.zeros(1)}, bare)
    with pytest.raises(CheckpointError, match="not a radiossl training checkpoint"):
        load_checkpoint(bare)
    future = tmp_path / "future.pt"
    torch.save({"format_version": 99, "model": {}}, future)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(future)


def test_strip_module_prefix() -> None:
    sd = {"module._orig_mod.a.weight": torch.zeros(1), "b": torch.ones(1)}
    assert list(strip_module_prefix(sd)) == ["a.weight", "b"]
