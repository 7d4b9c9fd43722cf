"""The CPU probe: native bf16/fp16 needs the instructions, and sees through torch's and oneDNN's ISA caps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from radiossl.runtime import cpu

ZEN4_FLAGS = frozenset({"avx2", "avx512f", "avx512bw", "avx512_bf16"})
AVX2_FLAGS = frozenset({"avx", "avx2", "fma"})


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An x86 CPU whose flags, torch capability and oneDNN answer each test sets; the cache is cleared around it."""
    monkeypatch.setattr(cpu, "_is_x86", lambda: True)
    monkeypatch.setattr(cpu, "_onednn_supports", lambda dtype: True)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpu.cpu_info.cache_clear()
    yield monkeypatch
    cpu.cpu_info.cache_clear()


def _see(probe: pytest.MonkeyPatch, flags: frozenset[str], capability: str) -> cpu.CpuInfo:
    probe.setattr(cpu, "cpu_flags", lambda: flags)
    probe.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    cpu.cpu_info.cache_clear()
    return cpu.cpu_info()


def test_avx2_only_cpu_has_no_native_bf16(probe: pytest.MonkeyPatch) -> None:
    info = _see(probe, AVX2_FLAGS, "AVX2")
    assert not info.bf16_native and "avx512_bf16" in info.bf16_why
    assert "bf16 not native" in info.summary() and "torch kernels AVX2" in info.summary()


def test_avx512_bf16_cpu_has_native_bf16_but_not_fp16(probe: pytest.MonkeyPatch) -> None:
    info = _see(probe, ZEN4_FLAGS, "AVX512")
    assert info.bf16_native and info.bf16_why == "avx512_bf16"
    assert not info.fp16_native


def test_torch_kernels_forced_to_avx2_count_as_not_native(probe: pytest.MonkeyPatch) -> None:
    info = _see(probe, ZEN4_FLAGS, "AVX2")  # ATEN_CPU_CAPABILITY=avx2 on a bf16 machine
    assert not info.bf16_native and "ATEN_CPU_CAPABILITY" in info.bf16_why


@pytest.mark.parametrize("variable", ["DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA"])
@pytest.mark.parametrize(("cap", "native"), [("AVX2", False), ("AVX512_CORE", False), ("avx512_core_bf16", True)])
def test_onednn_isa_cap_below_bf16_counts_as_not_native(
    probe: pytest.MonkeyPatch, variable: str, cap: str, native: bool
) -> None:
    probe.setenv(variable, cap)
    info = _see(probe, ZEN4_FLAGS, "AVX512")
    assert info.bf16_native is native
    if not native:
        assert variable in info.bf16_why


def test_onednn_without_bf16_kernels_counts_as_not_native(probe: pytest.MonkeyPatch) -> None:
    probe.setattr(cpu, "_onednn_supports", lambda dtype: False)
    info = _see(probe, ZEN4_FLAGS, "AVX512")
    assert not info.bf16_native and "oneDNN" in info.bf16_why


def test_this_machine_is_described_in_one_line() -> None:
    cpu.cpu_info.cache_clear()
    summary = cpu.cpu_info().summary()
    assert summary.startswith("CPU ") and "\n" not in summary
    assert torch.backends.cpu.get_cpu_capability() in summary


@pytest.mark.parametrize("supported", [True, False])
def test_other_architectures_ask_onednn(probe: pytest.MonkeyPatch, supported: bool) -> None:
    probe.setattr(cpu, "_is_x86", lambda: False)
    probe.setattr(cpu, "_onednn_supports", lambda dtype: supported)
    info = _see(probe, frozenset(), "DEFAULT")
    assert info.bf16_native is supported and "oneDNN" in info.bf16_why


def test_machine_line_names_the_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert cpu.machine_line().endswith("emulating a smaller CPU with ATEN_CPU_CAPABILITY=avx2")
