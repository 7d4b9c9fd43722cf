"""Mixed precision: which precision a run uses, an autocast context and a gradient scaler for ``runtime.amp``.

* ``none`` — plain float32;
* ``bf16`` — ``torch.autocast`` with bfloat16 (same exponent range as float32, no scaler needed);
* ``fp16`` — ``torch.autocast`` with float16 plus a :class:`torch.amp.GradScaler` against underflow;
* ``auto`` — bf16 where the device computes it natively, else float32.

:func:`resolve_amp` turns the requested value into the one that runs, and is the only place that decides:
reduced precision runs only where the device has native instructions for it. On a CPU without native
bf16 (AVX2-only x86, or torch/oneDNN capped below it, see :mod:`radiossl.runtime.cpu`) a bf16 request falls
back to float32 with a one-line warning, because emulated bf16 runs hundreds of times slower than float32
there; fp16 on a CPU is treated the same way. Falling back instead of refusing keeps one config usable on
every machine (a bf16 config written for a GPU still runs on a laptop, in the reference precision), and the
run's ``config.yaml`` records the precision that ran.

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
    >>> resolve_amp(torch.device("cpu"), "none").amp
    'none'
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from radiossl.errors import ConfigError
from radiossl.runtime import cpu

logger = logging.getLogger(__name__)

AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = ("none", "bf16", "fp16", "auto")


@dataclass(frozen=True)
class AmpChoice:
    """The precision a run uses and, when it is not simply what was asked, why.

    Attributes:
        requested: the ``runtime.amp`` value asked for.
        amp: what runs: ``none``, ``bf16`` or ``fp16``.
        message: one line for the log; None when ``amp`` is exactly the explicit request.
        fallback: True when an explicit bf16/fp16 request was not honoured.
    """

    requested: str
    amp: str
    message: str | None = None
    fallback: bool = False

    def log(self) -> None:
        """Log the message once (a warning for a fallback, info for what ``auto`` chose)."""
        if self.message is not None:
            logger.log(logging.WARNING if self.fallback else logging.INFO, self.message)


def _check(amp: str) -> None:
    if amp not in AMP_CHOICES:
        raise ConfigError(f"runtime.amp: unknown value {amp!r}; use none, bf16, fp16 or auto")


def _native_on(device: torch.device, amp: str) -> tuple[bool, str, str]:
    """Whether ``device`` computes ``amp`` (bf16 or fp16) natively, the device's name, and why."""
    if device.type == "cpu":
        info = cpu.cpu_info()
        native, why = (info.bf16_native, info.bf16_why) if amp == "bf16" else (info.fp16_native, info.fp16_why)
        return native, f"the CPU ({info.model}, torch kernels {info.capability})", why
    name = f"GPU {torch.cuda.get_device_name(device)}"
    if amp == "fp16":
        return True, name, "CUDA"
    major, minor = torch.cuda.get_device_capability(device)
    return bool(torch.cuda.is_bf16_supported(including_emulation=False)), name, f"compute capability {major}.{minor}"


def resolve_amp(device: torch.device, requested: str) -> AmpChoice:
    """The precision to run for ``runtime.amp = requested`` on ``device`` (see the module docstring).

    CPU and CUDA devices are probed; on other devices (MPS) an explicit request is kept and ``auto`` is float32.

    Raises:
        ConfigError: ``requested`` is not none, bf16, fp16 or auto.
    """
    _check(requested)
    if requested == "none":
        return AmpChoice(requested, "none")
    probed = device.type in ("cpu", "cuda")
    if requested == "auto":
        if not probed:
            return AmpChoice(requested, "none", f"runtime.amp=auto: float32 on {device.type} (bf16 support not probed)")
        native, subject, why = _native_on(device, "bf16")
        if native:
            return AmpChoice(requested, "bf16", f"runtime.amp=auto: bf16, {subject} computes bf16 natively ({why})")
        return AmpChoice(requested, "none", f"runtime.amp=auto: float32, {subject} has no native bf16 ({why})")
    if not probed:
        return AmpChoice(requested, requested)
    native, subject, why = _native_on(device, requested)
    if native:
        return AmpChoice(requested, requested)
    return AmpChoice(
        requested,
        "none",
        f"runtime.amp={requested} falls back to float32: {subject} has no native {requested} ({why}), "
        f"and emulated {requested} runs far slower than float32",
        fallback=True,
    )


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype of a resolved ``amp`` (``None`` for ``none``)."""
    if amp == "none":
        return None
    if amp not in AMP_DTYPES:
        raise ConfigError(f"runtime.amp: unknown value {amp!r}; use none, bf16 or fp16 (resolve auto first)")
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
