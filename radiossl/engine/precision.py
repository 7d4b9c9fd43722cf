"""Mixed precision: an autocast context and a gradient scaler for ``runtime.amp``.

* ``none`` — plain float32;
* ``bf16`` — ``torch.autocast`` with bfloat16 (same exponent range as float32, no scaler needed);
* ``fp16`` — ``torch.autocast`` with float16 plus a :class:`torch.amp.GradScaler` against underflow.

Tasks compute their losses in float32 (cast logits with ``.float()`` before the loss), so only the
network runs in reduced precision.

Example:
    >>> import torch
    >>> with autocast_context(torch.device("cpu"), "bf16"):
    ...     y = torch.nn.Linear(4, 4)(torch.zeros(1, 4))
    >>> y.dtype
    torch.bfloat16
    >>> make_grad_scaler(torch.device("cpu"), "none").is_enabled()
    False
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from radiossl.errors import ConfigError

AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (``None`` for ``none``)."""
    if amp == "none":
        return None
    if amp not in AMP_DTYPES:
        raise ConfigError(f"runtime.amp: unknown value {amp!r}; use none, bf16 or fp16")
    return AMP_DTYPES[amp]


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """A context manager that runs the enclosed forward pass in the precision ``amp`` asks for."""
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for ``fp16`` (a disabled scaler passes everything through)."""
    amp_dtype(amp)
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")
