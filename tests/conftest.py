"""Shared pytest configuration: keep torch to the machine's two cores and tests reproducible."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
