"""Moved to :mod:`radiossl.runtime.device` (every stage uses it, not only training); kept so older imports work."""

from radiossl.runtime.device import (
    apply_memory_format,
    memory_format_for,
    move_to_device,
    mps_available,
    pin_memory_for,
    select_device,
)

__all__ = [
    "apply_memory_format",
    "memory_format_for",
    "move_to_device",
    "mps_available",
    "pin_memory_for",
    "select_device",
]
