"""What this CPU computes natively: its model, torch's kernel level, and native bf16/fp16 arithmetic.

Reduced precision pays on a CPU only where the hardware has the instructions for it: bfloat16 needs
``avx512_bf16`` or AMX on x86 (oneDNN otherwise emulates it, and a bf16 matmul on an AVX2-only CPU runs
hundreds of times slower than in float32). :func:`cpu_info` answers for the running process, so it also
sees the emulation switches: ``ATEN_CPU_CAPABILITY=avx2`` (torch's own vector kernels) and
``DNNL_MAX_CPU_ISA=AVX2`` / ``ONEDNN_MAX_CPU_ISA`` (oneDNN's convolutions and matmuls) both make bf16
count as not native, as on a real AVX2 machine.

Example:
    >>> info = cpu_info()
    >>> isinstance(info.bf16_native, bool) and info.capability != ""
    True
    >>> info.summary().startswith("CPU ")
    True
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# Instructions that make a dtype's arithmetic native on x86 (one is enough).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
NATIVE_FP16_FLAGS = ("avx512_fp16", "amx_fp16")
# oneDNN ISA caps (DNNL_MAX_CPU_ISA) that still include native bf16 / fp16 instructions.
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10")
_ONEDNN_FP16_ISAS = ("AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10")
# Variables that make this CPU look like a smaller one (for measuring what such a machine would see).
EMULATION_VARIABLES = ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as this process sees it.

    Attributes:
        model: the CPU's model name (with family and model numbers on Linux x86).
        logical_cores: logical cores the OS reports.
        capability: torch's vector-kernel level (``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512, ...).
        bf16_native: bfloat16 arithmetic runs on native instructions here.
        bf16_why: one phrase saying why (or why not).
        fp16_native: the same for float16.
        fp16_why: one phrase saying why (or why not).
    """

    model: str
    logical_cores: int
    capability: str
    bf16_native: bool
    bf16_why: str
    fp16_native: bool
    fp16_why: str

    def summary(self) -> str:
        """One line for logs and benchmark headers."""
        bf16 = "native" if self.bf16_native else "not native"
        return (
            f"CPU {self.model}, {self.logical_cores} logical cores, torch kernels {self.capability}, "
            f"bf16 {bf16} ({self.bf16_why})"
        )


def _proc_cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _torch_cpu_features() -> dict[str, Any]:
    """torch's cpuinfo probe (a private API: empty when this torch has none)."""
    probe = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    try:
        features = probe() if probe is not None else {}
    except Exception:  # a private API: never let it break a run
        return {}
    return dict(features) if isinstance(features, dict) else {}


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the hardware reports (torch's cpuinfo, else /proc/cpuinfo)."""
    features = _torch_cpu_features()
    flags = {name for name, value in features.items() if value is True}
    flags.update(_proc_cpuinfo().get("flags", "").split())
    return frozenset(flags)


def cpu_model() -> str:
    """A readable CPU model name, e.g. ``AMD EPYC (family 25, model 17)``."""
    fields = _proc_cpuinfo()
    name = fields.get("model name") or str(_torch_cpu_features().get("cpu_name") or "") or platform.processor()
    name = name or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _onednn_supports(dtype: str) -> bool:
    """Whether torch's oneDNN reports kernels for ``dtype`` (honours DNNL_MAX_CPU_ISA)."""
    probe = getattr(torch.ops.mkldnn, f"_is_mkldnn_{dtype}_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # an op missing from this build
        return False


def _onednn_isa_cap() -> tuple[str, str] | None:
    """The oneDNN ISA cap set in the environment (variable, upper-case value), or None when there is none."""
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(variable, "").strip().upper()
        if value:
            return None if value in ("ALL", "DEFAULT") else (variable, value)
    return None


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _native(
    dtype: str, flags: frozenset[str], hardware: tuple[str, ...], isas: tuple[str, ...], capability: str
) -> tuple[bool, str]:
    """Native ``dtype`` arithmetic: the instructions exist and neither torch nor oneDNN is capped below them."""
    if not _is_x86():
        supported = _onednn_supports(dtype)
        return supported, f"oneDNN {'has' if supported else 'has no'} {dtype} kernels for this CPU"
    present = [flag for flag in hardware if flag in flags]
    if not present:
        return False, f"no {' or '.join(hardware)} instructions"
    if not capability.upper().startswith("AVX512"):
        return False, f"torch kernels limited to {capability} by ATEN_CPU_CAPABILITY or the torch build"
    cap = _onednn_isa_cap()
    if cap is not None and not cap[1].startswith(isas):
        return False, f"oneDNN limited to {cap[1]} by {cap[0]}"
    if not _onednn_supports(dtype):
        return False, f"oneDNN has no {dtype} kernels here"
    return True, ", ".join(present)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """What this process's CPU computes natively (probed once; see the module docstring)."""
    flags = cpu_flags()
    capability = torch.backends.cpu.get_cpu_capability()
    bf16, bf16_why = _native("bf16", flags, NATIVE_BF16_FLAGS, _ONEDNN_BF16_ISAS, capability)
    fp16, fp16_why = _native("fp16", flags, NATIVE_FP16_FLAGS, _ONEDNN_FP16_ISAS, capability)
    return CpuInfo(
        model=cpu_model(),
        logical_cores=os.cpu_count() or 1,
        capability=capability,
        bf16_native=bf16,
        bf16_why=bf16_why,
        fp16_native=fp16,
        fp16_why=fp16_why,
    )


def machine_line() -> str:
    """One line naming the CPU, torch's kernel level, native bf16, torch and its threads, and any ISA emulation.

    Benchmarks print it first, so that every figure says what it was measured on.
    """
    emulated = [f"{name}={os.environ[name]}" for name in EMULATION_VARIABLES if os.environ.get(name)]
    line = f"{cpu_info().summary()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    return line + (f"; emulating a smaller CPU with {' '.join(emulated)}" if emulated else "")
