"""Fixtures for the phantom tests: tiny volume shapes so every test stays fast."""

from __future__ import annotations

import pytest

TINY = {"brats": (32, 32, 24), "lits": (32, 32, 16), "luna": (32, 32, 24), "nnunet": (32, 32, 24)}


@pytest.fixture
def tiny_shapes() -> dict[str, tuple[int, int, int]]:
    """A small but anatomically meaningful shape per phantom kind."""
    return dict(TINY)
