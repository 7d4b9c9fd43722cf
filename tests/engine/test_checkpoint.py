"""The engine's part of checkpoints: the RNG state round trip and which file --resume names."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from radiossl.engine.checkpoint import LATEST, checkpoint_in, rng_state, set_rng_state
from radiossl.errors import CheckpointError
from radiossl.models.checkpoint import save_checkpoint


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached gaussian in the legacy state
    path = save_checkpoint(tmp_path / "c.pt", {"format_version": 1, "model": {}, "rng": rng_state()})
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected


def test_a_malformed_rng_state_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="RNG state is malformed"):
        set_rng_state({"python": {}})


def test_resume_names_a_file_or_the_latest_checkpoint_of_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"has no checkpoint_latest\.pt"):
        checkpoint_in(tmp_path)
    (tmp_path / LATEST).write_bytes(b"")
    assert checkpoint_in(tmp_path) == tmp_path / LATEST
    assert checkpoint_in(tmp_path / LATEST) == tmp_path / LATEST
    with pytest.raises(CheckpointError, match="no such checkpoint file or run folder"):
        checkpoint_in(tmp_path / "missing")
