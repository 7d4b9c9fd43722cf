"""Device selection, moving nested batches, autocast and the gradient scaler."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from radiossl.engine.device import move_to_device, pin_memory_for, select_device
from radiossl.engine.precision import amp_dtype, autocast_context, make_grad_scaler
from radiossl.errors import ConfigError


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
