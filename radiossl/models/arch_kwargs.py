"""Network constructor arguments as plain values: the ``arch_kwargs`` form of nnU-Net and nnssl plans.

dynamic-network-architectures networks take operator classes (``conv_op``, ``norm_op``,
``dropout_op``, ``nonlin``) as arguments. Plans and radiossl checkpoints store them as dotted import
names instead (``"torch.nn.modules.conv.Conv3d"``), so that the arguments are JSON-compatible and a
checkpoint opens with ``torch.load(weights_only=True)``.

Example:
    >>> import torch
    >>> plain = serialise_arch_kwargs({"conv_op": torch.nn.Conv3d, "kernel_sizes": ((3, 3, 3),)})
    >>> plain
    {'conv_op': 'torch.nn.modules.conv.Conv3d', 'kernel_sizes': [[3, 3, 3]]}
    >>> resolve_arch_kwargs(plain)["conv_op"] is torch.nn.Conv3d
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from radiossl.errors import CheckpointError

ARCH_KWARGS_REQUIRING_IMPORT: tuple[str, ...] = ("conv_op", "norm_op", "dropout_op", "nonlin")
"""The constructor arguments that are classes, stored as dotted import names."""


def dotted_name(obj: Any) -> str:
    """The import path of a class or function, e.g. ``"torch.nn.modules.conv.Conv3d"``."""
    return f"{obj.__module__}.{obj.__qualname__}"


def import_dotted(name: str) -> Any:
    """The object a dotted import name refers to; a one-line :class:`CheckpointError` if there is none."""
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        raise CheckpointError(f"{name!r} is not a dotted import name (module.attribute)")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"cannot import {name!r}: {err}") from err


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def serialise_arch_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with operator classes as dotted names and tuples as lists (JSON-compatible)."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in ARCH_KWARGS_REQUIRING_IMPORT and value is not None and not isinstance(value, str):
            out[key] = dotted_name(value)
        else:
            out[key] = _plain(value)
    return out


def resolve_arch_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with dotted operator names imported (the inverse of :func:`serialise_arch_kwargs`)."""
    out = dict(kwargs)
    for key in ARCH_KWARGS_REQUIRING_IMPORT:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = import_dotted(value)
    return out
