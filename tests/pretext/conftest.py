"""Pretext tests share the engine tests' tiny task (``tests/engine/engine_task.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
