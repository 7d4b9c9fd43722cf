"""Device selection and moving batches onto a device.

``auto`` picks CUDA, then Apple MPS, then the CPU. Nothing in radiossl calls ``.cuda()`` directly:
every tensor goes through :func:`move_to_device`, so CPU-only machines never touch CUDA.

Example:
    >>> import torch
    >>> device = select_device("cpu")
    >>> batch = {"x": torch.zeros(2), "pair": (torch.ones(1), [torch.zeros(1)])}
    >>> move_to_device(batch, device)["pair"][1][0].device.type
    'cpu'
    >>> pin_memory_for(device)
    False
    >>> memory_format_for(device)
    torch.channels_last_3d
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from radiossl.errors import ConfigError


def mps_available() -> bool:
    """True when Apple's Metal backend is built into torch and usable."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``).

    Under ``torchrun`` pass ``local_rank`` so that each process uses its own GPU.

    Raises:
        ConfigError: an explicitly requested accelerator is not available.
    """
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif mps_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"runtime.device: {name!r} requested but CUDA is not available "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        if name == "cuda":
            index = local_rank if local_rank is not None else torch.cuda.current_device()
            return torch.device("cuda", index % torch.cuda.device_count())
        return torch.device(name)
    if name == "mps":
        if not mps_available():
            raise ConfigError("runtime.device: 'mps' requested but the MPS backend is not available; use cpu")
        return torch.device("mps")
    raise ConfigError(f"runtime.device: unknown device {name!r}; use auto, cpu, cuda or mps")


def memory_format_for(device: torch.device, requested: str = "auto") -> torch.memory_format:
    """The layout of 3D weights for ``runtime.memory_format``: ``auto`` = channels_last_3d on the CPU only.

    On CPUs oneDNN runs small-channel 3D U-Net steps 1.1-1.4x faster (forward and backward) on
    channels-last tensors, with the same results to float rounding; on GPUs the gain depends on cuDNN
    and precision, so ``auto`` leaves them contiguous.
    """
    if requested == "auto":
        return torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
    if requested == "channels_last":
        return torch.channels_last_3d
    if requested == "contiguous":
        return torch.contiguous_format
    raise ConfigError(f"runtime.memory_format: unknown value {requested!r}; use auto, contiguous or channels_last")


def apply_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """Lay out every 5-D parameter and buffer of ``model`` in ``memory_format``, in place; others stay.

    (``Module.to(memory_format=channels_last_3d)`` would fail on a 4-D weight, e.g. a 2D convolution in a head.)
    """
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return model


def pin_memory_for(device: torch.device) -> bool:
    """Pinned host memory only helps (and only works everywhere) for CUDA devices."""
    return device.type == "cuda"


def move_to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor inside ``obj`` (NamedTuples, tuples, lists, dicts, nested) to ``device``.

    Containers are rebuilt with the same type; anything that is not a tensor or container is returned as is.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # NamedTuple
        return type(obj)(*(move_to_device(v, device, non_blocking) for v in obj))
    if isinstance(obj, tuple):
        return tuple(move_to_device(v, device, non_blocking) for v in obj)
    if isinstance(obj, list):
        return [move_to_device(v, device, non_blocking) for v in obj]
    if isinstance(obj, Mapping):
        moved = {k: move_to_device(v, device, non_blocking) for k, v in obj.items()}
        if isinstance(obj, dict) and type(obj) is not dict:
            try:
                return type(obj)(moved)
            except TypeError:
                return moved
        return moved
    return obj
