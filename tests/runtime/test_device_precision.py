"""Device selection, moving nested batches, autocast and the gradient scaler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch

from radiossl.errors import ConfigError
from radiossl.runtime.cpu import CpuInfo
from radiossl.runtime.device import (
    apply_memory_format,
    memory_format_for,
    move_to_device,
    pin_memory_for,
    select_device,
)
from radiossl.runtime.precision import AmpChoice, amp_dtype, autocast_context, make_grad_scaler, resolve_amp


class Batch(NamedTuple):
    x: torch.Tensor
    extra: dict


def test_auto_and_cpu_select_a_usable_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    assert select_device("auto").type in {expected or "cpu", "mps", "cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_requesting_missing_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")


def test_unknown_device_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        select_device("tpu")


def test_pin_memory_only_on_cuda() -> None:
    assert pin_memory_for(torch.device("cpu")) is False
    assert pin_memory_for(torch.device("cuda", 0)) is True


def test_move_to_device_keeps_container_types() -> None:
    batch = Batch(torch.zeros(2), {"pair": (torch.ones(1), [torch.zeros(1), "name"]), "n": 3})
    moved = move_to_device(batch, torch.device("cpu"))
    assert isinstance(moved, Batch)
    assert isinstance(moved.extra["pair"], tuple) and isinstance(moved.extra["pair"][1], list)
    assert moved.extra["pair"][1][1] == "name" and moved.extra["n"] == 3
    assert moved.extra["pair"][0].device.type == "cpu"


def test_memory_format_is_channels_last_on_cpu_only_by_default() -> None:
    assert memory_format_for(torch.device("cpu")) == torch.channels_last_3d
    assert memory_format_for(torch.device("cuda", 0)) == torch.contiguous_format
    assert memory_format_for(torch.device("cpu"), "contiguous") == torch.contiguous_format
    assert memory_format_for(torch.device("cuda", 0), "channels_last") == torch.channels_last_3d
    with pytest.raises(ConfigError, match=r"runtime\.memory_format"):
        memory_format_for(torch.device("cpu"), "nhwc")


def test_apply_memory_format_converts_5d_tensors_and_leaves_the_rest() -> None:
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3), torch.nn.BatchNorm3d(4), torch.nn.Conv2d(4, 4, 1))
    apply_memory_format(model, torch.channels_last_3d)  # Module.to(memory_format=...) fails on the 4-D weight
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not model[0].weight.is_contiguous()
    assert model[2].weight.is_contiguous() and model[1].weight.is_contiguous()


def test_channels_last_unet_computes_the_same_outputs_and_gradients() -> None:
    from radiossl.models import UNet3D

    torch.manual_seed(0)
    reference = UNet3D(in_channels=4, out_channels=3, width=0.125)
    converted = UNet3D(in_channels=4, out_channels=3, width=0.125)
    converted.load_state_dict(reference.state_dict())
    apply_memory_format(converted, torch.channels_last_3d)
    x = torch.rand(2, 4, 16, 16, 16)
    outputs = [model(x) for model in (reference, converted)]
    assert outputs[1].is_contiguous(memory_format=torch.channels_last_3d)  # activations follow the weights
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    for out in outputs:
        out.square().mean().backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), converted.named_parameters(), strict=True):
        assert b.grad is not None and a.grad is not None, name
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6, msg=name)


def test_autocast_dtypes_and_scaler() -> None:
    layer = torch.nn.Linear(4, 4)
    cpu = torch.device("cpu")
    with autocast_context(cpu, "none"):
        assert layer(torch.zeros(1, 4)).dtype == torch.float32
    with autocast_context(cpu, "bf16"):
        assert layer(torch.zeros(1, 4)).dtype == torch.bfloat16
    assert amp_dtype("fp16") == torch.float16
    assert make_grad_scaler(cpu, "fp16").is_enabled()
    assert not make_grad_scaler(cpu, "bf16").is_enabled()
    with pytest.raises(ConfigError, match=r"runtime\.amp"):
        amp_dtype("fp8")
    with pytest.raises(ConfigError, match=r"resolve auto"):
        amp_dtype("auto")  # autocast needs the resolved precision


CPU = torch.device("cpu")
FakeCpu = Callable[..., CpuInfo]


def test_bf16_on_a_cpu_without_native_bf16_falls_back_to_float32_with_a_warning(
    fake_cpu: FakeCpu, caplog: pytest.LogCaptureFixture
) -> None:
    fake_cpu(bf16=False)
    choice = resolve_amp(CPU, "bf16")
    assert choice.amp == "none" and choice.fallback
    with caplog.at_level(logging.INFO, logger="radiossl.runtime.precision"):
        choice.log()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert record.getMessage().startswith(
        "runtime.amp=bf16 falls back to float32: the CPU (Fake CPU, torch kernels AVX2)"
    )
    assert "no avx512_bf16 or amx_bf16 instructions" in record.getMessage()


def test_bf16_on_a_cpu_with_native_bf16_is_kept_silently(fake_cpu: FakeCpu) -> None:
    fake_cpu(bf16=True)
    assert resolve_amp(CPU, "bf16") == AmpChoice("bf16", "bf16", message=None, fallback=False)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "none")])
def test_auto_is_bf16_only_where_the_cpu_has_it_natively(fake_cpu: FakeCpu, native: bool, expected: str) -> None:
    fake_cpu(bf16=native)
    choice = resolve_amp(CPU, "auto")
    assert choice.amp == expected and not choice.fallback
    assert choice.message is not None and choice.message.startswith("runtime.amp=auto: ")


@pytest.mark.parametrize(("native", "expected"), [(True, "fp16"), (False, "none")])
def test_fp16_on_cpu_needs_native_fp16(fake_cpu: FakeCpu, native: bool, expected: str) -> None:
    fake_cpu(bf16=True, fp16=native)
    choice = resolve_amp(CPU, "fp16")
    assert choice.amp == expected and choice.fallback is not native


def test_none_and_unprobed_devices_keep_the_request(fake_cpu: FakeCpu) -> None:
    fake_cpu(bf16=False)
    assert resolve_amp(CPU, "none").message is None
    assert resolve_amp(torch.device("mps"), "bf16").amp == "bf16"
    assert resolve_amp(torch.device("mps"), "auto").amp == "none"
    with pytest.raises(ConfigError, match=r"runtime\.amp.*auto"):
        resolve_amp(CPU, "fp8")


@pytest.mark.parametrize(("native", "bf16_runs"), [(False, "none"), (True, "bf16")])
def test_cuda_runs_bf16_only_where_the_gpu_has_it_and_keeps_fp16(
    monkeypatch: pytest.MonkeyPatch, native: bool, bf16_runs: str
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0) if native else (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    gpu = torch.device("cuda", 0)
    choice = resolve_amp(gpu, "bf16")
    assert choice.amp == bf16_runs and choice.fallback is not native
    if not native:
        assert (
            choice.message is not None and "GPU Fake GPU has no native bf16 (compute capability 7.5)" in choice.message
        )
    assert resolve_amp(gpu, "auto").amp == bf16_runs
    assert resolve_amp(gpu, "fp16") == AmpChoice("fp16", "fp16")
