"""Pretext tests share the engine tests' tiny task (``tests/engine/engine_task.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def register_checkout_pretext_methods() -> list[str]:
    """Register the ``radiossl.pretext`` entry points of this checkout's pyproject.toml that the installed
    metadata lacks (a checkout newer than its ``pip install -e .``); return their names."""
    from importlib import import_module

    from radiossl import registry
    from radiossl.config import tomllib  # tomli on Python 3.10

    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["radiossl.pretext"]
    known = set(registry.names("radiossl.pretext"))
    added = []
    for name, target in declared.items():
        if name not in known:
            module, _, attribute = target.partition(":")
            registry.register("radiossl.pretext", name, getattr(import_module(module), attribute))
            added.append(name)
    return added


register_checkout_pretext_methods()
