"""Moved to :mod:`radiossl.runtime.cpu` (every stage uses it, not only training); kept so older imports work."""

from radiossl.runtime.cpu import (
    EMULATION_VARIABLES,
    NATIVE_BF16_FLAGS,
    NATIVE_FP16_FLAGS,
    CpuInfo,
    cpu_flags,
    cpu_info,
    cpu_model,
    machine_line,
)

__all__ = [
    "EMULATION_VARIABLES",
    "NATIVE_BF16_FLAGS",
    "NATIVE_FP16_FLAGS",
    "CpuInfo",
    "cpu_flags",
    "cpu_info",
    "cpu_model",
    "machine_line",
]
